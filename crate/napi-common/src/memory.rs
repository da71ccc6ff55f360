//! What the addons tell V8 about memory they hold for JS values, and why.
//!
//! V8 decides when to collect from the memory it knows about. It already counts every
//! ArrayBuffer's byte length as external memory, external (Rust-owned) and JS-owned alike
//! (`process.memoryUsage().external` rises by 1 GiB for a 1 GiB external buffer with
//! `arrayBuffers` at 0), and takes it back when the buffer dies or is detached. So:
//!
//! * eager storages, Electron-mode copies, safetensors and convert/save byte buffers are
//!   ArrayBuffers: V8 counts them once per buffer (one buffer per storage, or per file for a
//!   mapping; views add nothing). Calling [`adjust`] for them too would count them twice and
//!   make V8 collect twice as eagerly as it should.
//! * a mapped file (`mmap: true`) is one external ArrayBuffer over the whole file, and the
//!   mapping is also reported here with [`adjust`], once per file, for as long as it is
//!   mapped (`crate::release`). Why report the full length: it bounds the private pages JS
//!   writes can dirty, and touched file pages count in the process's RSS while they are
//!   mapped, so V8 must collect dropped mappings about as eagerly as heap copies (clean file
//!   pages are page cache, not process memory, once unmapped). Why not rely on V8's own
//!   count: under churn it goes negative for external buffers (Node 20.20: `external` read
//!   -2 GiB in a synchronous loop of 1 GiB mapped loads) and then triggers nothing; the
//!   mapping ends up counted up to twice, never zero times.
//! * [`adjust`] is for native memory no ArrayBuffer stands for (the libtorch addon's tensors
//!   that JS holds only as objects): report it when the JS value is made, un-report it in the
//!   value's finalizer or `dispose`, once per allocation, never per view.
//!
//! When a big allocation makes V8 collect first is [`crate::pressure`]'s rule, not an
//! accounting one: it reports nothing that stays reported.

use napi::sys;

/// Tells V8 that `delta` bytes of native memory (negative: given back) live for JS values.
/// Returns V8's new total, or `None` when the call failed.
pub fn adjust(env: &napi::Env, delta: i64) -> Option<i64> {
    let env = env.raw();
    let mut total = 0i64;
    // SAFETY: a plain call on the live env.
    let status = unsafe { sys::napi_adjust_external_memory(env, delta, &mut total) };
    (status == sys::Status::napi_ok).then_some(total)
}
