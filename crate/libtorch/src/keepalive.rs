//! Keeping JS memory alive while libtorch borrows it.
//!
//! A CPU tensor made from a JS ArrayBuffer (`from_blob`) holds a strong napi reference to that
//! ArrayBuffer. libtorch calls the deleter when its last tensor on that memory dies, on
//! whichever thread that happens, but a napi reference may only be released on its JS thread.
//! So the deleter only queues the reference, and the JS thread releases queued references on
//! its next call into the addon (every `fromStorage` and `drainReleased`).
use crate::errors::{self, Result};
use napi::sys;
use std::ffi::c_void;
use std::sync::Mutex;

struct Pending {
    env: usize,
    reference: usize,
}

static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

/// The deleter context: which env owns the reference.
pub struct Ctx {
    env: usize,
    reference: usize,
}

/// Takes a strong reference to `value` (an ArrayBuffer) for a tensor that borrows its bytes.
pub fn hold(env: sys::napi_env, value: sys::napi_value) -> Result<*mut c_void> {
    let mut reference = std::ptr::null_mut();
    // SAFETY: `value` is a live handle in this call's scope; refcount 1 keeps it alive.
    let status = unsafe { sys::napi_create_reference(env, value, 1, &mut reference) };
    if status != sys::Status::napi_ok {
        return Err(errors::internal("napi_create_reference failed"));
    }
    let ctx = Box::new(Ctx {
        env: env as usize,
        reference: reference as usize,
    });
    Ok(Box::into_raw(ctx).cast())
}

/// Called by libtorch (any thread) when the borrowing storage dies.
pub unsafe extern "C" fn release(ctx: *mut c_void) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: `ctx` is the Box<Ctx> leaked by `hold`; libtorch calls its deleter exactly once.
    let ctx = unsafe { Box::from_raw(ctx.cast::<Ctx>()) };
    if let Ok(mut q) = PENDING.lock() {
        q.push(Pending {
            env: ctx.env,
            reference: ctx.reference,
        });
    }
}

/// Releases the queued references that belong to `env`. Returns how many.
pub fn drain(env: sys::napi_env) -> u32 {
    let mine: Vec<Pending> = match PENDING.lock() {
        Ok(mut q) => {
            let (mine, others): (Vec<_>, Vec<_>) = q.drain(..).partition(|p| p.env == env as usize);
            *q = others;
            mine
        }
        Err(_) => return 0,
    };
    for p in &mine {
        // SAFETY: each queued reference was created by `hold` in this env and is deleted once.
        unsafe { sys::napi_delete_reference(env, p.reference as sys::napi_ref) };
    }
    mine.len() as u32
}
