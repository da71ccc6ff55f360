//! Node-API plumbing shared by torchsave's addons, as `oxc_napi` is for oxc's bindings.
//!
//! Both `crate/node` (the loader/saver) and `crate/libtorch` (compute over tch) speak the
//! core's vocabulary across the boundary: every JS error they throw has `.code` from
//! [`torchsave_core::ErrorCode`] (and `.path`/`.record`/`.offset` when the core knows them),
//! a panic becomes `E_INTERNAL` instead of aborting Node, and memory handed to JS without a
//! copy goes through one function that copies where the runtime refuses external buffers
//! (Electron's V8 sandbox). The addons stay thin: they convert values and call this.
//!
//! * [`error`]: core errors -> JS errors; [`Coded`], the napi status type whose string is the
//!   code, for code that has no `Env` at hand (`napi::Result<T, Coded>`).
//! * [`panic`]: the one panic-text extraction and the `catch_unwind` helpers.
//! * [`buffer`]: external ArrayBuffers with the copy fallback; JS-owned buffers the addon fills.
//! * [`release`]: external buffers whose memory is given back before Node's late finalizer.
//! * [`memory`]: what V8 is told about memory held for JS values (the accounting rules).
//! * [`pool`]: the anonymous memory of eager storages, reused across loads.
//! * [`pressure`]: when a big allocation makes V8 collect first (the collection policy).

pub mod buffer;
pub mod error;
pub mod memory;
pub mod panic;
pub mod pool;
pub mod pressure;
pub mod release;

pub use error::{coded, message_of, to_napi, Coded, CodedResult};
pub use panic::{catch, guard, panic_text};
