//! Panics never cross into Node: every entry point runs under `catch_unwind`, and the
//! payload's text (the one extraction both addons use) becomes an `E_INTERNAL` error.

use napi::Env;
use torchsave_core::{Error as CoreError, ErrorCode};

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs `f`, turning a panic into its text (for code running off the JS thread).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| panic_text(p.as_ref()))
}

/// The core error for a caught panic: `E_INTERNAL`, asking for a report.
pub fn internal(what: &str) -> CoreError {
    CoreError::new(
        ErrorCode::Internal,
        format!("internal error in torchsave (please report it): {what}"),
    )
}

/// The JS error for a caught panic.
pub fn panic_error(env: &Env, what: &str) -> napi::Error {
    crate::error::to_napi(env, &internal(what))
}

/// Runs a sync entry point, turning a panic into an `E_INTERNAL` JS error.
pub fn guard<T>(env: &Env, f: impl FnOnce() -> napi::Result<T>) -> napi::Result<T> {
    match catch(f) {
        Ok(r) => r,
        Err(what) => Err(panic_error(env, &what)),
    }
}

/// [`guard`] for entry points that throw [`crate::Coded`] errors and have no `Env`.
pub fn guard_coded<T>(f: impl FnOnce() -> crate::CodedResult<T>) -> crate::CodedResult<T> {
    match catch(f) {
        Ok(r) => r,
        Err(what) => {
            let e = internal(&what);
            Err(crate::coded(e.code, e.message))
        }
    }
}
