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

/// Buffers up to this size come from `napi_create_buffer` (uninitialised memory: the caller
/// overwrites every byte); larger ones from `napi_create_arraybuffer` (zeroed), because
/// Node 20's `buffer.constants.MAX_LENGTH` is 2^32.
const MAX_UNINIT_BUFFER: usize = (1 << 32) - 1;

/// A JS-owned ArrayBuffer of `len` bytes and its data pointer. V8 allocates it, counts it in
/// its external memory and frees it when the garbage collector finds it dead (during the
/// collection, not on a later event-loop turn as for external buffers), so a synchronous
/// loop of loads gets its memory back. The bytes are uninitialised when `len` fits a Node
/// `Buffer`: the caller must overwrite all of them before JS sees the buffer.
pub fn js_owned_uninit(env: &napi::Env, len: usize) -> Result<(sys::napi_value, *mut u8)> {
    let env = env.raw();
    let mut data: *mut c_void = ptr::null_mut();
    if len != 0 && len <= MAX_UNINIT_BUFFER {
        let mut buf = ptr::null_mut();
        // SAFETY: Node allocates `len` bytes (not zeroed, not from its small-buffer pool).
        let status = unsafe { sys::napi_create_buffer(env, len, &mut data, &mut buf) };
        if status == sys::Status::napi_ok && !data.is_null() {
            let mut ab = ptr::null_mut();
            let mut offset = 0usize;
            // SAFETY: `buf` is the Buffer (a Uint8Array) just made.
            check(
                unsafe {
                    sys::napi_get_typedarray_info(
                        env,
                        buf,
                        ptr::null_mut(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        &mut ab,
                        &mut offset,
                    )
                },
                "napi_get_typedarray_info",
            )?;
            if offset == 0 {
                return Ok((ab, data.cast()));
            }
        }
        clear_exception(env);
    }
    let mut ab = ptr::null_mut();
    // SAFETY: V8 allocates `len` zeroed bytes.
    check(
        unsafe { sys::napi_create_arraybuffer(env, len, &mut data, &mut ab) },
        "napi_create_arraybuffer",
    )?;
    if len != 0 && data.is_null() {
        return Err(Error::new(
            Status::GenericFailure,
            "napi_create_arraybuffer returned no memory",
        ));
    }
    Ok((ab, data.cast()))
}

fn clear_exception(env: sys::napi_env) {
    let mut pending = false;
    // SAFETY: plain queries on the live env.
    unsafe {
        if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
            let mut e = ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut e);
        }
    }
}

/// Detaches `ab` (every view of it reads as empty from now on). For a JS-owned buffer V8
/// frees the memory now; for an external one Node schedules its finalizer. `false` when it
/// was already detached or is not detachable.
pub(crate) fn detach(env: &napi::Env, ab: sys::napi_value) -> Result<bool> {
    let env = env.raw();
    let mut detached = false;
    // SAFETY: `ab` is a handle of this call.
    check(
        unsafe { sys::napi_is_detached_arraybuffer(env, ab, &mut detached) },
        "napi_is_detached_arraybuffer",
    )?;
    if detached {
        return Ok(false);
    }
    // SAFETY: as above; fails (status, no crash) for a non-detachable buffer.
    let status = unsafe { sys::napi_detach_arraybuffer(env, ab) };
    if status != sys::Status::napi_ok {
        clear_exception(env);
        return Ok(false);
    }
    Ok(true)
}

/// The data pointer and length of an ArrayBuffer.
pub(crate) fn arraybuffer_info(env: &napi::Env, ab: sys::napi_value) -> Result<(*mut u8, usize)> {
    let env = env.raw();
    let mut data: *mut c_void = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: fails with napi_invalid_arg when `ab` is not an ArrayBuffer.
    check(
        unsafe { sys::napi_get_arraybuffer_info(env, ab, &mut data, &mut len) },
        "napi_get_arraybuffer_info (expected an ArrayBuffer)",
    )?;
    Ok((data.cast(), len))
}

/// Runs `f` inside a fresh handle scope of `env`, so the handles it makes die when it returns.
/// Why: a handle made from a weak reference is a strong root for as long as its scope lives,
/// and the scope of a Node-API call lives until the call returns.
fn in_handle_scope<R>(env: sys::napi_env, f: impl FnOnce() -> R) -> R {
    let mut scope = ptr::null_mut();
    // SAFETY: scopes are opened and closed in strict nesting on this env's thread.
    let opened = unsafe { sys::napi_open_handle_scope(env, &mut scope) } == sys::Status::napi_ok;
    let out = f();
    if opened {
        // SAFETY: the scope opened above, closed once.
        unsafe { sys::napi_close_handle_scope(env, scope) };
    }
    out
}

/// What a weak reference reads as now.
pub(crate) enum Referenced {
    /// The value is alive: its handle, valid only inside the closure it is given to.
    Live(sys::napi_value),
    /// V8 has collected the value.
    Collected,
    /// The Node-API call failed (the caller decides what that means).
    Failed,
}

/// Reads the weak reference `weak` of `env` and gives `f` what it finds, inside its own handle
/// scope (see [`in_handle_scope`]): the one place the addon looks through a weak reference.
pub(crate) fn with_referenced<R>(
    env: sys::napi_env,
    weak: sys::napi_ref,
    f: impl FnOnce(Referenced) -> R,
) -> R {
    in_handle_scope(env, || {
        let mut v = ptr::null_mut();
        // SAFETY: `weak` is a reference of this env; a collected value reads as NULL.
        let status = unsafe { sys::napi_get_reference_value(env, weak, &mut v) };
        f(if status != sys::Status::napi_ok {
            Referenced::Failed
        } else if v.is_null() {
            Referenced::Collected
        } else {
            Referenced::Live(v)
        })
    })
}
