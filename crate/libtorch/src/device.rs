//! Moving a loaded checkpoint's storages onto a device off the JS thread.
//!
//! `torch.load(path, { mapLocation: 'cuda:0' })` loads through the default addon (mmap, no
//! copy), then hands every storage's bytes here at once: a worker thread streams them through
//! two pinned buffers into device memory (shim.cpp `ts_copy_to_device`), so reading the file
//! and the host-to-device transfer overlap and no full host copy of the checkpoint is made.
use crate::errors::{self, Result};
use crate::native::{from_shim, shim_call, NativeTensor};
use crate::shim;
use napi::bindgen_prelude::{AsyncTask, Uint8Array};
use napi::{Env, Task};
use napi_derive::napi;
use std::ffi::{c_void, CString};

pub struct CopyToDevice {
    /// (address, length) of each storage. The JS caller keeps the Uint8Arrays (and so the
    /// memory) alive until the promise settles; only plain addresses cross to the worker.
    ranges: Vec<(usize, u64)>,
    device: CString,
    chunk: u64,
}

impl Task for CopyToDevice {
    /// The tensors, or the coded error (thrown from `resolve`, which has the env to build it).
    type Output = Result<Vec<tch::Tensor>>;
    type JsValue = Vec<NativeTensor>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        Ok(self.copy())
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Self::JsValue> {
        match output {
            Ok(tensors) => Ok(tensors.into_iter().map(NativeTensor::wrap).collect()),
            Err(e) => Err(torchsave_napi_common::error::coded_to_napi(&env, &e)),
        }
    }
}

impl CopyToDevice {
    fn copy(&self) -> Result<Vec<tch::Tensor>> {
        let srcs: Vec<*const c_void> = self.ranges.iter().map(|r| r.0 as *const c_void).collect();
        let sizes: Vec<u64> = self.ranges.iter().map(|r| r.1).collect();
        let mut out = vec![std::ptr::null_mut::<c_void>(); srcs.len()];
        let res = shim_call(|err| unsafe {
            shim::ts_copy_to_device(
                srcs.as_ptr(),
                sizes.as_ptr(),
                srcs.len(),
                self.device.as_ptr(),
                self.chunk,
                out.as_mut_ptr(),
                err,
            )
        });
        // Take ownership of whatever was allocated, also on failure (dropped then).
        let tensors: Vec<tch::Tensor> = out.into_iter().filter_map(from_shim).collect();
        res?;
        Ok(tensors)
    }
}

/// Copies each byte range to `device` as a uint8 storage tensor, staged through pinned
/// buffers of `chunkBytes` (default 16 MiB) on CUDA.
#[napi(ts_return_type = "Promise<NativeTensor[]>")]
pub fn copy_to_device(
    storages: Vec<Uint8Array>,
    device: String,
    chunk_bytes: Option<f64>,
) -> Result<AsyncTask<CopyToDevice>> {
    crate::dtype::device(&device)?;
    let ranges = storages
        .iter()
        .map(|s| (s.as_ptr() as usize, s.len() as u64))
        .collect();
    let device = CString::new(device).map_err(|_| errors::invalid("device name has a NUL"))?;
    let chunk = chunk_bytes.unwrap_or(16.0 * 1024.0 * 1024.0).max(4096.0) as u64;
    Ok(AsyncTask::new(CopyToDevice {
        ranges,
        device,
        chunk,
    }))
}
