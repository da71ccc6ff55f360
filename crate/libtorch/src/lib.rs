//! torchsave's optional libtorch addon: a thin napi-rs layer over `tch` (libtorch 2.11).
//!
//! It gives the TypeScript facade (ts/libtorch/) a `NativeTensor` class whose methods are
//! libtorch's own ops, so forward passes, autograd and optimizer updates compute exactly what
//! PyTorch computes. Memory crosses without copies on the CPU: a JS storage becomes a libtorch
//! tensor through `from_blob` (the tensor keeps the JS ArrayBuffer alive, see [`keepalive`]),
//! and a libtorch storage becomes an external ArrayBuffer whose finalizer keeps the tensor.
//!
//! It speaks torchsave-core's vocabulary: dtypes are the core's [`torchsave_core::DType`]
//! ([`dtype`] maps them to tch's `Kind` in one match), and every failure is a JS Error whose
//! `.code` is a core [`torchsave_core::ErrorCode`] (`E_COMPUTE` for an error libtorch raised,
//! with libtorch's message; `E_INVALID_ARGUMENT` for a call on a freed handle; ...), thrown
//! through the shared `torchsave-napi-common` crate (also the default addon's), which owns
//! the panic text and the external-ArrayBuffer copy fallback. No entry point panics into
//! Node: handles are checked before use and tch's panicking accessors run under
//! `catch_unwind` ([`errors::no_panic`]).
#![allow(clippy::too_many_arguments)]

mod device;
mod dtype;
mod errors;
mod jit;
mod keepalive;
mod native;
mod nn_ops;
mod ops;
mod optim;
mod shim;

use napi_derive::napi;

/// What this build of the addon links against and can do.
#[napi(object)]
pub struct BuildInfo {
    /// The libtorch version the crate was built for (tch 0.24 -> 2.11).
    pub libtorch: String,
    pub cuda_available: bool,
    pub cuda_device_count: i64,
    pub cudnn_available: bool,
    /// Threads libtorch uses for one op on the CPU.
    pub num_threads: i64,
}

#[napi]
pub fn build_info() -> BuildInfo {
    BuildInfo {
        libtorch: "2.11".to_string(),
        cuda_available: tch::Cuda::is_available(),
        cuda_device_count: tch::Cuda::device_count(),
        cudnn_available: tch::Cuda::cudnn_is_available(),
        num_threads: tch::get_num_threads() as i64,
    }
}

#[napi]
pub fn set_num_threads(n: i32) {
    tch::set_num_threads(n);
}

/// `torch.manual_seed`: seeds libtorch's CPU and CUDA generators (dropout masks, randn).
#[napi]
pub fn manual_seed(seed: i64) {
    tch::manual_seed(seed);
}

/// `torch.set_grad_enabled(b)`; returns the previous mode.
#[napi]
pub fn set_grad_enabled(enabled: bool) -> bool {
    // SAFETY: a plain C call that flips libtorch's thread-local grad mode.
    unsafe { torch_sys::at_grad_set_enabled(i32::from(enabled)) != 0 }
}

/// `torch.cuda.synchronize(device)`.
#[napi]
pub fn cuda_synchronize(device: i64) {
    if tch::Cuda::is_available() {
        tch::Cuda::synchronize(device);
    }
}
