//! FFI declarations for `shim.cpp` (the libtorch calls tch does not expose) and the helpers
//! that turn its `err` strings into Rust errors.
use std::ffi::{c_char, c_void, CStr};

pub type ReleaseFn = unsafe extern "C" fn(ctx: *mut c_void);

extern "C" {
    pub fn ts_from_blob(
        data: *mut c_void,
        sizes: *const i64,
        ndim: usize,
        strides: *const i64,
        scalar_type: i32,
        release: ReleaseFn,
        ctx: *mut c_void,
        err: *mut *mut c_char,
    ) -> *mut c_void;
    pub fn ts_storage_info(
        t: *mut c_void,
        base: *mut u64,
        nbytes: *mut u64,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_tensor_meta(
        t: *mut c_void,
        storage_offset: *mut i64,
        is_leaf: *mut i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_backward(
        t: *mut c_void,
        g: *mut c_void,
        retain_graph: i32,
        create_graph: i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_storage_tensor(t: *mut c_void, err: *mut *mut c_char) -> *mut c_void;
    pub fn ts_set_grad(t: *mut c_void, g: *mut c_void, err: *mut *mut c_char) -> i32;
    pub fn ts_sgd_step(
        param: *mut c_void,
        grad: *mut c_void,
        buf: *mut c_void,
        lr: f64,
        momentum: f64,
        dampening: f64,
        weight_decay: f64,
        nesterov: i32,
        maximize: i32,
        buf_out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_adam_step(
        param: *mut c_void,
        grad: *mut c_void,
        exp_avg: *mut c_void,
        exp_avg_sq: *mut c_void,
        max_exp_avg_sq: *mut c_void,
        step: *mut c_void,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        amsgrad: i32,
        maximize: i32,
        decoupled: i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_rmsprop_step(
        param: *mut c_void,
        grad: *mut c_void,
        square_avg: *mut c_void,
        grad_avg: *mut c_void,
        buf: *mut c_void,
        step: *mut c_void,
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: i32,
        maximize: i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_adagrad_step(
        param: *mut c_void,
        grad: *mut c_void,
        sum: *mut c_void,
        step: *mut c_void,
        lr: f64,
        lr_decay: f64,
        weight_decay: f64,
        eps: f64,
        maximize: i32,
        err: *mut *mut c_char,
    ) -> i32;
    pub fn ts_copy_to_device(
        srcs: *const *const c_void,
        sizes: *const u64,
        n: usize,
        device: *const c_char,
        chunk: u64,
        out: *mut *mut c_void,
        err: *mut *mut c_char,
    ) -> i32;
}

/// Takes ownership of a C++ exception message (malloc'd by strdup) and frees it.
pub fn take_err(err: *mut c_char) -> Option<String> {
    if err.is_null() {
        return None;
    }
    // SAFETY: `err` is a NUL-terminated string from strdup in shim.cpp, freed exactly once here.
    let msg = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: allocated with malloc (strdup).
    unsafe { libc_free(err.cast()) };
    Some(msg)
}

extern "C" {
    #[link_name = "free"]
    fn libc_free(p: *mut c_void);
}
