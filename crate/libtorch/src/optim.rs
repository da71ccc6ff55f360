//! Optimizer updates for one parameter each (shim.cpp has the math, op for op as
//! torch/optim's `_single_tensor_*`); the state tensors live on the JS side in PyTorch's
//! state_dict layout and are passed in.
use crate::errors::Result;
use crate::native::{from_shim, shim_call, NativeTensor};
use crate::shim;
use napi_derive::napi;
use std::ffi::c_void;
use std::ptr;

fn p(t: Option<&NativeTensor>) -> *mut c_void {
    t.map_or(ptr::null_mut(), |t| t.raw())
}

/// SGD; returns the momentum buffer (new on the first step) or null when momentum is 0.
#[napi]
pub fn sgd_step(
    param: &NativeTensor,
    grad: &NativeTensor,
    momentum_buffer: Option<&NativeTensor>,
    lr: f64,
    momentum: f64,
    dampening: f64,
    weight_decay: f64,
    nesterov: bool,
    maximize: bool,
) -> Result<Option<NativeTensor>> {
    param.t()?;
    grad.t()?;
    let mut out = ptr::null_mut();
    shim_call(|err| unsafe {
        shim::ts_sgd_step(
            param.raw(),
            grad.raw(),
            p(momentum_buffer),
            lr,
            momentum,
            dampening,
            weight_decay,
            i32::from(nesterov),
            i32::from(maximize),
            &mut out,
            err,
        )
    })?;
    Ok(from_shim(out).map(NativeTensor::wrap))
}

#[napi]
pub fn adam_step(
    param: &NativeTensor,
    grad: &NativeTensor,
    exp_avg: &NativeTensor,
    exp_avg_sq: &NativeTensor,
    max_exp_avg_sq: Option<&NativeTensor>,
    step: &NativeTensor,
    lr: f64,
    beta1: f64,
    beta2: f64,
    weight_decay: f64,
    eps: f64,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
) -> Result<()> {
    param.t()?;
    grad.t()?;
    shim_call(|err| unsafe {
        shim::ts_adam_step(
            param.raw(),
            grad.raw(),
            exp_avg.raw(),
            exp_avg_sq.raw(),
            p(max_exp_avg_sq),
            step.raw(),
            lr,
            beta1,
            beta2,
            weight_decay,
            eps,
            i32::from(amsgrad),
            i32::from(maximize),
            i32::from(decoupled_weight_decay),
            err,
        )
    })
}

#[napi]
pub fn rmsprop_step(
    param: &NativeTensor,
    grad: &NativeTensor,
    square_avg: &NativeTensor,
    grad_avg: Option<&NativeTensor>,
    momentum_buffer: Option<&NativeTensor>,
    step: &NativeTensor,
    lr: f64,
    alpha: f64,
    eps: f64,
    weight_decay: f64,
    momentum: f64,
    centered: bool,
    maximize: bool,
) -> Result<()> {
    param.t()?;
    grad.t()?;
    shim_call(|err| unsafe {
        shim::ts_rmsprop_step(
            param.raw(),
            grad.raw(),
            square_avg.raw(),
            p(grad_avg),
            p(momentum_buffer),
            step.raw(),
            lr,
            alpha,
            eps,
            weight_decay,
            momentum,
            i32::from(centered),
            i32::from(maximize),
            err,
        )
    })
}

#[napi]
pub fn adagrad_step(
    param: &NativeTensor,
    grad: &NativeTensor,
    sum: &NativeTensor,
    step: &NativeTensor,
    lr: f64,
    lr_decay: f64,
    weight_decay: f64,
    eps: f64,
    maximize: bool,
) -> Result<()> {
    param.t()?;
    grad.t()?;
    shim_call(|err| unsafe {
        shim::ts_adagrad_step(
            param.raw(),
            grad.raw(),
            sum.raw(),
            step.raw(),
            lr,
            lr_decay,
            weight_decay,
            eps,
            i32::from(maximize),
            err,
        )
    })
}
