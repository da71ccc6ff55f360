//! Core errors → JS `Error`s with a stable `.code`: the shared crate's builders
//! (`torchsave-napi-common`, also used by the libtorch addon), named as this crate's modules
//! call them. A panic inside the binding or the core becomes `E_INTERNAL` instead of taking
//! the Node process down.

use crate::js::Js;
use napi::Env;
use torchsave_core::{Error as CoreError, ErrorCode};

pub use torchsave_napi_common::error::to_napi;
pub use torchsave_napi_common::panic::{catch, guard, panic_error};

/// Same as [`to_napi`] for code that holds a [`Js`] rather than an [`Env`].
pub fn to_napi_js(js: Js, e: &CoreError) -> napi::Error {
    to_napi(&Env::from_raw(js.raw_env()), e)
}

/// A core error with a code, for failures the binding itself detects (bad raw tree, bad options).
pub fn core(code: ErrorCode, message: impl Into<String>) -> CoreError {
    CoreError::new(code, message)
}
