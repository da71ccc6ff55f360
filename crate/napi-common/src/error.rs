//! Core errors -> JS `Error`s with a stable `.code`.
//!
//! The JS error carries `code` (`E_TRUNCATED`, ...), a message that says where (file, record,
//! byte offset) and what went wrong, and the same facts as properties (`path`, `record`,
//! `offset`) so callers never parse messages. The code is never repeated in the message.

use napi::bindgen_prelude::FromNapiValue;
use napi::{sys, Env, Unknown};
use std::ffi::CStr;
use std::ptr;
use torchsave_core::{Error as CoreError, ErrorCode};

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
    match build(env.raw(), e) {
        Ok(err) => err,
        Err(fallback) => fallback,
    }
}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::from(status),
            format!("Node-API call {what} failed"),
        ))
    }
}

fn string(env: sys::napi_env, s: &str) -> napi::Result<sys::napi_value> {
    let mut out = ptr::null_mut();
    // SAFETY: `s` is valid UTF-8 of the given length; `out` is a valid out-pointer.
    check(
        unsafe { sys::napi_create_string_utf8(env, s.as_ptr().cast(), s.len() as isize, &mut out) },
        "napi_create_string_utf8",
    )?;
    Ok(out)
}

fn set(
    env: sys::napi_env,
    obj: sys::napi_value,
    key: &CStr,
    v: sys::napi_value,
) -> napi::Result<()> {
    // SAFETY: key is NUL-terminated; obj and v are handles from this scope.
    check(
        unsafe { sys::napi_set_named_property(env, obj, key.as_ptr(), v) },
        "napi_set_named_property",
    )
}

fn build(env: sys::napi_env, e: &CoreError) -> napi::Result<napi::Error> {
    let code = string(env, e.code.as_str())?;
    let msg = string(env, &message_of(e))?;
    let mut obj = ptr::null_mut();
    // SAFETY: both are string handles from this scope.
    check(
        unsafe { sys::napi_create_error(env, code, msg, &mut obj) },
        "napi_create_error",
    )?;
    if let Some(p) = &e.path {
        set(env, obj, c"path", string(env, p)?)?;
    }
    if let Some(r) = &e.record {
        set(env, obj, c"record", string(env, r)?)?;
    }
    if let Some(o) = e.offset {
        let mut n = ptr::null_mut();
        // SAFETY: a plain number handle in this scope.
        check(
            unsafe { sys::napi_create_double(env, o as f64, &mut n) },
            "napi_create_double",
        )?;
        set(env, obj, c"offset", n)?;
    }
    // SAFETY: obj is a live handle from this scope.
    let unknown = unsafe { Unknown::from_napi_value(env, obj) }?;
    Ok(napi::Error::from(unknown))
}

/// A napi error status that is one of the core's codes: napi-rs sets a thrown error's
/// `.code` to its status string, so `napi::Result<T, Coded>` throws a coded JS error from
/// code that has no `Env` (the libtorch addon's methods). The message stays the reason alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coded(pub ErrorCode);

impl AsRef<str> for Coded {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}

/// The result type of entry points that throw [`Coded`] errors.
pub type CodedResult<T> = napi::Result<T, Coded>;

/// An error JS sees with `.code === code.as_str()` and `.message === message`.
pub fn coded(code: ErrorCode, message: impl std::fmt::Display) -> napi::Error<Coded> {
    napi::Error::new(Coded(code), message.to_string())
}

/// A plain napi error (a failed Node-API call, a bad argument napi-rs rejected) as a coded
/// one: `E_INVALID_ARGUMENT` for argument errors, `E_INTERNAL` otherwise.
pub fn from_napi(e: napi::Error) -> napi::Error<Coded> {
    let code = match e.status {
        napi::Status::InvalidArg
        | napi::Status::ObjectExpected
        | napi::Status::StringExpected
        | napi::Status::NumberExpected
        | napi::Status::BooleanExpected
        | napi::Status::ArrayExpected
        | napi::Status::BigintExpected => ErrorCode::InvalidArgument,
        _ => ErrorCode::Internal,
    };
    coded(code, e.reason.clone())
}

/// A [`Coded`] error as a JS error object (for `Task::resolve` and other paths whose
/// signature fixes the status type to `napi::Status`).
pub fn coded_to_napi(env: &Env, e: &napi::Error<Coded>) -> napi::Error {
    to_napi(env, &CoreError::new(e.status.0, e.reason.clone()))
}
