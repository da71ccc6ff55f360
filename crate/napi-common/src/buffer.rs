//! Rust memory handed to JS without a copy, and the copy where the runtime refuses that.
//!
//! Electron >= 21 runs V8 with its memory cage, where `napi_create_external_arraybuffer`
//! fails with `napi_no_external_buffers_allowed`; there the bytes are copied into a JS-owned
//! ArrayBuffer (memory doubles, zero-copy is lost, and JS writes no longer reach the Rust
//! memory: callers must not rely on them). V8 also refuses two ArrayBuffers with one start
//! pointer, so callers expose each allocation at most once.

use napi::{sys, Error, Result, Status};
use std::ffi::c_void;
use std::ptr;

/// What [`external_arraybuffer`] made.
pub enum ArrayBufferOf {
    /// An external ArrayBuffer over the Rust memory (the owner lives until V8 collects it).
    External(sys::napi_value),
    /// A JS-owned copy: the runtime refuses external buffers (the owner was dropped).
    Copied(sys::napi_value),
}

impl ArrayBufferOf {
    pub fn value(&self) -> sys::napi_value {
        match self {
            ArrayBufferOf::External(v) | ArrayBufferOf::Copied(v) => *v,
        }
    }
}

fn check(status: sys::napi_status, what: &str) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::from(status),
            format!("Node-API call {what} failed"),
        ))
    }
}

/// A JS-owned ArrayBuffer holding a copy of `bytes`.
pub fn arraybuffer_copy(env: &napi::Env, bytes: &[u8]) -> Result<sys::napi_value> {
    let env = env.raw();
    let mut out = ptr::null_mut();
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: V8 allocates `len` bytes and gives us a pointer to them.
    check(
        unsafe { sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut out) },
        "napi_create_arraybuffer",
    )?;
    if !bytes.is_empty() {
        if data.is_null() {
            return Err(Error::new(
                Status::GenericFailure,
                "napi_create_arraybuffer returned no memory",
            ));
        }
        // SAFETY: `data` points to `bytes.len()` fresh bytes that nothing else aliases.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
    }
    Ok(out)
}

/// An external ArrayBuffer over `len` bytes at `data`, kept alive by `owner` until V8
/// finalizes the buffer; `None` where the runtime refuses external buffers (then `owner` is
/// dropped at once and the caller copies what it needs).
///
/// # Safety
/// `data` must point to `len` readable and writable bytes that stay valid while `owner`
/// lives, no other ArrayBuffer may start at `data`, and `len` must be non-zero.
pub unsafe fn external_arraybuffer<T: 'static>(
    env: sys::napi_env,
    data: *mut u8,
    len: usize,
    owner: T,
) -> Result<Option<sys::napi_value>> {
    let hint = Box::into_raw(Box::new(owner));
    let mut out = ptr::null_mut();
    // SAFETY: the caller's contract; `hint` is freed by `finalize::<T>` exactly once.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env,
            data.cast(),
            len,
            Some(finalize::<T>),
            hint.cast(),
            &mut out,
        )
    };
    if status == sys::Status::napi_ok {
        return Ok(Some(out));
    }
    // SAFETY: the call failed, so V8 did not take ownership of `hint`.
    drop(unsafe { Box::from_raw(hint) });
    if status == sys::Status::napi_no_external_buffers_allowed {
        return Ok(None);
    }
    check(status, "napi_create_external_arraybuffer")?;
    Ok(Some(out))
}

/// [`external_arraybuffer`], or a JS-owned copy of the same `len` bytes where the runtime
/// refuses external buffers.
///
/// # Safety
/// As [`external_arraybuffer`].
pub unsafe fn external_or_copy<T: 'static>(
    env: sys::napi_env,
    data: *mut u8,
    len: usize,
    owner: T,
) -> Result<ArrayBufferOf> {
    // `data` stays valid while `keep` lives, which outlasts the copy below.
    let keep = std::sync::Arc::new(owner);
    // SAFETY: the caller's contract.
    match unsafe { external_arraybuffer(env, data, len, keep.clone()) }? {
        Some(v) => Ok(ArrayBufferOf::External(v)),
        None => {
            // SAFETY: `len` readable bytes at `data`, alive while `keep` is.
            let bytes = unsafe { std::slice::from_raw_parts(data.cast_const(), len) };
            let copy = arraybuffer_copy(&napi::Env::from_raw(env), bytes)?;
            drop(keep);
            Ok(ArrayBufferOf::Copied(copy))
        }
    }
}

unsafe extern "C" fn finalize<T>(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    if !hint.is_null() {
        // SAFETY: `hint` is the Box<T> leaked by `external_arraybuffer`; V8 finalizes once.
        drop(unsafe { Box::from_raw(hint.cast::<T>()) });
    }
}
