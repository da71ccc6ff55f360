//! Thin napi-rs binding over torchsave-core. (stub: helper E)
#![deny(clippy::unwrap_used)]

use napi_derive::napi;

/// The version of the core crate.
#[napi]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
