//! Core errors → JS `Error`s with a stable `.code`.
//!
//! The JS error carries `code` (`E_TRUNCATED`, ...), a message that says where (file, record,
//! byte offset) and what went wrong, and the same facts as properties (`path`, `record`,
//! `offset`) so callers never parse messages. A panic inside the binding or the core becomes
//! `E_INTERNAL` instead of taking the Node process down.

use crate::js::Js;
use napi::bindgen_prelude::FromNapiValue;
use napi::{Env, Unknown};
use torchsave_core::{Error as CoreError, ErrorCode};

/// Code for a bug on our side (a caught panic); never produced by bad input on purpose.
pub const E_INTERNAL: &str = "E_INTERNAL";

/// The message JS sees: the core's Display without the leading code (it is in `.code`).
pub fn message_of(e: &CoreError) -> String {
    let mut out = String::new();
    if let Some(p) = &e.path {
        out.push_str(p);
        out.push_str(": ");
    }
    if let Some(r) = &e.record {
        out.push_str("record ");
        out.push_str(r);
        out.push_str(": ");
    }
    if let Some(o) = e.offset {
        out.push_str(&format!("at byte {o}: "));
    }
    out.push_str(&e.message);
    out
}

/// Builds the JS error object for a core error and wraps it so napi-rs throws (or rejects
/// with) exactly that object.
pub fn to_napi(env: &Env, e: &CoreError) -> napi::Error {
    match build(env, e.code.as_str(), e) {
        Ok(err) => err,
        Err(fallback) => fallback,
    }
}

/// Same as [`to_napi`] for code that holds a [`Js`] rather than an [`Env`].
pub fn to_napi_js(js: Js, e: &CoreError) -> napi::Error {
    to_napi(&Env::from_raw(js.raw_env()), e)
}

fn build(env: &Env, code: &str, e: &CoreError) -> napi::Result<napi::Error> {
    let js = Js::new(env);
    let obj = js.error(code, &message_of(e))?;
    if let Some(p) = &e.path {
        js.set(obj, c"path", js.string(p)?)?;
    }
    if let Some(r) = &e.record {
        js.set(obj, c"record", js.string(r)?)?;
    }
    if let Some(o) = e.offset {
        js.set(obj, c"offset", js.f64(o as f64)?)?;
    }
    // SAFETY: obj is a live handle from this scope.
    let unknown = unsafe { Unknown::from_napi_value(env.raw(), obj) }?;
    Ok(napi::Error::from(unknown))
}

/// A core error with a code, for failures the binding itself detects (bad raw tree, bad options).
pub fn core(code: ErrorCode, message: impl Into<String>) -> CoreError {
    CoreError::new(code, message)
}

/// The error for a caught panic.
pub fn panic_error(env: &Env, payload: &(dyn std::any::Any + Send)) -> napi::Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    let msg = format!("internal error in torchsave (please report it): {what}");
    let js = Js::new(env);
    match js.error(E_INTERNAL, &msg) {
        // SAFETY: obj is a live handle from this scope.
        Ok(obj) => match unsafe { Unknown::from_napi_value(env.raw(), obj) } {
            Ok(u) => napi::Error::from(u),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Runs `f`, turning a panic into a plain string (for code running off the JS thread).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string())
    })
}

/// A caught panic's message as a JS error.
pub fn panic_message_error(env: &Env, what: &str) -> napi::Error {
    panic_error(env, &what.to_string())
}
