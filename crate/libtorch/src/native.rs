//! `NativeTensor`: a libtorch tensor held by JS, and the zero-copy crossings of its memory.
use crate::dtype;
use crate::errors::{self, OrCompute, Result};
use crate::keepalive;
use crate::shim;
use napi::bindgen_prelude::{BigInt, ClassInstance};
use napi::{sys, Env, JsValue, Unknown};
use napi_derive::napi;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use tch::Tensor;

static EXTERNAL_REFUSED: AtomicBool = AtomicBool::new(false);

#[napi]
pub struct NativeTensor {
    pub(crate) inner: Tensor,
    /// Bytes reported to V8 as external memory for this handle (see `track`).
    reported: i64,
}

/// Bytes of dropped handles not yet taken back from V8's external-memory count (a drop has no
/// env; the next `track` settles it).
static OWED: AtomicI64 = AtomicI64::new(0);

impl Drop for NativeTensor {
    fn drop(&mut self) {
        if self.reported != 0 {
            OWED.fetch_add(self.reported, Ordering::Relaxed);
        }
    }
}

impl NativeTensor {
    fn meta(&self) -> Result<(i64, bool)> {
        let (mut off, mut leaf) = (0i64, 0i32);
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| unsafe { shim::ts_tensor_meta(self.raw(), &mut off, &mut leaf, err) })?;
        Ok((off, leaf != 0))
    }
    /// The libtorch tensor, or `E_INVALID_ARGUMENT` once [`NativeTensor::dispose`] freed it
    /// (an undefined tensor makes tch's infallible accessors panic and its ops fail with
    /// libtorch's "undefined Tensor").
    pub(crate) fn t(&self) -> Result<&Tensor> {
        if self.inner.defined() {
            Ok(&self.inner)
        } else {
            Err(freed())
        }
    }
    pub(crate) fn t_mut(&mut self) -> Result<&mut Tensor> {
        if self.inner.defined() {
            Ok(&mut self.inner)
        } else {
            Err(freed())
        }
    }
    pub fn wrap(t: Tensor) -> Self {
        Self {
            inner: t,
            reported: 0,
        }
    }
    pub(crate) fn raw(&self) -> *mut c_void {
        self.inner.as_ptr() as *mut c_void
    }
}

/// The error for any use of a disposed handle.
pub(crate) fn freed() -> errors::Error {
    errors::invalid(
        "this tensor was freed (dispose() or a torch.tidy scope ended); keep it with torch.keep() or clone it before",
    )
}

/// Wraps a `*mut at::Tensor` the shim allocated (null -> None).
pub(crate) fn from_shim(p: *mut c_void) -> Option<Tensor> {
    if p.is_null() {
        None
    } else {
        // SAFETY: the shim returns `new at::Tensor(...)`, which is exactly tch's C_tensor.
        Some(unsafe { Tensor::from_ptr(p.cast()) })
    }
}

pub(crate) fn shim_call(f: impl FnOnce(*mut *mut std::ffi::c_char) -> i32) -> Result<()> {
    let mut err = ptr::null_mut();
    let rc = f(&mut err);
    match shim::take_err(err) {
        Some(msg) => Err(errors::compute(msg)),
        None if rc != 0 => Err(errors::compute("libtorch call failed")),
        None => Ok(()),
    }
}

/// A result's dtype, shape, strides and storage offset ([`NativeTensor::track`]). Only ever
/// returned to JS.
#[napi(object, object_from_js = false)]
pub struct TrackedMeta {
    pub dtype: &'static str,
    pub shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub storage_offset: i64,
}

/// Facts about a tensor's storage, for the facade's storage identity and views.
#[napi(object)]
pub struct StorageInfo {
    /// The storage's base address: equal for tensors that share a storage.
    pub id: BigInt,
    pub nbytes: f64,
    pub device: String,
}

#[napi]
impl NativeTensor {
    /// A 1-D uint8 tensor over `nbytes` bytes of `buffer` (an ArrayBuffer) from `byteOffset`,
    /// borrowing them: writes on either side are seen by the other, and the ArrayBuffer stays
    /// alive while any libtorch tensor uses the memory.
    #[napi(factory)]
    pub fn from_storage(
        env: Env,
        buffer: Unknown,
        byte_offset: f64,
        nbytes: f64,
    ) -> Result<NativeTensor> {
        keepalive::drain(env.raw());
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: `buffer` is a live handle; napi checks that it is an ArrayBuffer.
        let status =
            unsafe { sys::napi_get_arraybuffer_info(env.raw(), buffer.raw(), &mut data, &mut len) };
        if status != sys::Status::napi_ok {
            return Err(errors::invalid("fromStorage expects an ArrayBuffer"));
        }
        let (off, n) = (byte_offset as usize, nbytes as usize);
        if byte_offset < 0.0 || nbytes < 0.0 || off.checked_add(n).is_none_or(|end| end > len) {
            return Err(errors::invalid(format!(
                "storage range {off}+{n} outside an ArrayBuffer of {len} bytes"
            )));
        }
        // An empty storage may have no memory at all; libtorch still wants a pointer.
        static EMPTY: u64 = 0;
        let base = if n == 0 || data.is_null() {
            (&EMPTY as *const u64).cast::<u8>().cast_mut()
        } else {
            // SAFETY: off + n <= len, checked above.
            unsafe { data.cast::<u8>().add(off) }
        };
        let ctx = keepalive::hold(env.raw(), buffer.raw())?;
        let sizes = [n as i64];
        let strides = [1i64];
        let mut err = ptr::null_mut();
        // SAFETY: `base` points to `n` bytes that stay alive until `release(ctx)` runs.
        let p = unsafe {
            shim::ts_from_blob(
                base.cast(),
                sizes.as_ptr(),
                1,
                strides.as_ptr(),
                0,
                keepalive::release,
                ctx,
                &mut err,
            )
        };
        if let Some(msg) = shim::take_err(err) {
            // SAFETY: from_blob failed, so libtorch will never call the deleter.
            unsafe { keepalive::release(ctx) };
            keepalive::drain(env.raw());
            return Err(errors::compute(msg));
        }
        from_shim(p)
            .map(NativeTensor::wrap)
            .ok_or_else(|| errors::compute("from_blob returned nothing"))
    }

    /// True once the runtime refused an external ArrayBuffer (Electron's V8 sandbox): from
    /// then on `storageBuffer` returns copies, which the facade must not keep as the storage.
    #[napi]
    pub fn external_refused() -> bool {
        EXTERNAL_REFUSED.load(Ordering::Relaxed)
    }

    /// Tells V8 this handle holds libtorch memory (its elements' bytes), so garbage collection
    /// runs as memory grows and drops results JS no longer references; settles what dropped
    /// handles reported before. Returns what the facade's wrapper of a result reads: one call
    /// instead of four getters, which cost more than a small op itself (about 4 us).
    #[napi]
    pub fn track(&mut self, env: Env) -> Result<TrackedMeta> {
        let t = self.t()?;
        let (numel, kind, shape, strides) =
            errors::no_panic(|| Ok((t.numel(), t.f_kind().or_compute()?, t.size(), t.stride())))?;
        let bytes = (numel * kind.elt_size_in_bytes()) as i64;
        let delta = bytes - self.reported - OWED.swap(0, Ordering::Relaxed);
        self.reported = bytes;
        let mut total = 0i64;
        // SAFETY: a plain counter update on the JS thread.
        unsafe { sys::napi_adjust_external_memory(env.raw(), delta, &mut total) };
        Ok(TrackedMeta {
            dtype: dtype::name(kind),
            shape,
            strides,
            storage_offset: self.meta()?.0,
        })
    }

    /// Drops this handle's reference to libtorch's memory now, without waiting for the
    /// garbage collector (memory still used by other tensors or JS views stays alive). Any
    /// later op on this handle fails with E_INVALID_ARGUMENT.
    #[napi]
    pub fn dispose(&mut self) {
        self.inner = Tensor::new();
        if self.reported != 0 {
            OWED.fetch_add(self.reported, Ordering::Relaxed);
            self.reported = 0;
        }
    }

    /// Releases references to JS memory that libtorch no longer uses (see keepalive.rs).
    #[napi]
    pub fn drain_released(env: Env) -> u32 {
        keepalive::drain(env.raw())
    }

    /// A strided view of this (uint8 storage) tensor as `dtype` elements:
    /// `storage.view(dtype).as_strided(shape, stride, offset)`.
    #[napi]
    pub fn view_as(
        &self,
        dtype_name: String,
        shape: Vec<i64>,
        stride: Vec<i64>,
        offset: i64,
    ) -> Result<NativeTensor> {
        let kind = dtype::kind(&dtype_name)?;
        let es = dtype::element_size(kind) as i64;
        let nbytes = self.t()?.numel() as i64;
        let flat = if es == 1 {
            self.t()?.f_view_dtype(kind).or_compute()?
        } else {
            // view_dtype needs a byte count divisible by the element size: trim the tail.
            self.t()?
                .f_narrow(0, 0, nbytes - nbytes % es)
                .or_compute()?
                .f_view_dtype(kind)
                .or_compute()?
        };
        flat.f_as_strided(shape.as_slice(), stride.as_slice(), offset)
            .or_compute()
            .map(NativeTensor::wrap)
    }

    // Getters: tch's accessors unwrap libtorch errors (a panic would abort Node), so each runs
    // on a live handle and under `no_panic`.
    #[napi(getter)]
    pub fn dtype(&self) -> Result<&'static str> {
        let t = self.t()?;
        Ok(dtype::name(t.f_kind().or_compute()?))
    }
    #[napi(getter)]
    pub fn shape(&self) -> Result<Vec<i64>> {
        let t = self.t()?;
        errors::no_panic(|| Ok(t.size()))
    }
    #[napi(getter)]
    pub fn strides(&self) -> Result<Vec<i64>> {
        let t = self.t()?;
        errors::no_panic(|| Ok(t.stride()))
    }
    #[napi(getter)]
    pub fn storage_offset(&self) -> Result<i64> {
        Ok(self.meta()?.0)
    }
    #[napi(getter)]
    pub fn device(&self) -> Result<String> {
        let t = self.t()?;
        errors::no_panic(|| Ok(dtype::device_name(t.device())))
    }
    #[napi(getter)]
    pub fn requires_grad(&self) -> Result<bool> {
        let t = self.t()?;
        errors::no_panic(|| Ok(t.requires_grad()))
    }
    #[napi(getter)]
    pub fn is_leaf(&self) -> Result<bool> {
        Ok(self.meta()?.1)
    }

    #[napi]
    pub fn storage_info(&self) -> Result<StorageInfo> {
        let (mut base, mut nbytes) = (0u64, 0u64);
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| unsafe { shim::ts_storage_info(self.raw(), &mut base, &mut nbytes, err) })?;
        Ok(StorageInfo {
            id: BigInt::from(base),
            nbytes: nbytes as f64,
            device: self.device()?,
        })
    }

    /// A 1-D uint8 tensor over this tensor's whole storage (same memory, same device).
    #[napi]
    pub fn storage_tensor(&self) -> Result<NativeTensor> {
        let mut out = ptr::null_mut();
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| {
            // SAFETY: a live tensor; the shim returns a new at::Tensor or sets err.
            out = unsafe { shim::ts_storage_tensor(self.raw(), err) };
            0
        })?;
        from_shim(out)
            .map(NativeTensor::wrap)
            .ok_or_else(|| errors::compute("no storage"))
    }

    /// The whole storage as an ArrayBuffer without a copy (CPU only): an external ArrayBuffer
    /// whose finalizer keeps the libtorch storage alive. Where the runtime refuses external
    /// memory (Electron's V8 sandbox) or `copy` is set, a JS-owned copy instead.
    #[napi(ts_return_type = "ArrayBuffer")]
    pub fn storage_buffer(&self, env: Env, copy: Option<bool>) -> Result<Unknown<'_>> {
        let t = self.t()?;
        if errors::no_panic(|| Ok(t.device()))? != tch::Device::Cpu {
            return Err(errors::device("a CUDA tensor's bytes need .cpu() first"));
        }
        let (mut base, mut nbytes) = (0u64, 0u64);
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| unsafe { shim::ts_storage_info(self.raw(), &mut base, &mut nbytes, err) })?;
        let len = nbytes as usize;
        if len > 0 && copy != Some(true) {
            let keep = errors::no_panic(|| Ok(t.shallow_clone()))?;
            // SAFETY: `base` is the storage's memory, `len` bytes, kept alive by `keep` (a
            // handle on the same storage) until the finalizer drops it; a storage is exposed
            // once per call and the facade keeps that ArrayBuffer as the storage.
            let made = unsafe {
                torchsave_napi_common::buffer::external_arraybuffer(
                    env.raw(),
                    base as *mut u8,
                    len,
                    keep,
                )
            }
            .map_err(torchsave_napi_common::error::from_napi)?;
            match made {
                // SAFETY: `ab` is a fresh handle in this scope.
                Some(ab) => return Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), ab) }),
                None => EXTERNAL_REFUSED.store(true, Ordering::Relaxed),
            }
        }
        let bytes: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the storage's `len` bytes at `base`, alive while `self` holds the tensor.
            unsafe { std::slice::from_raw_parts(base as *const u8, len) }
        };
        let out = torchsave_napi_common::buffer::arraybuffer_copy(&env, bytes)
            .map_err(torchsave_napi_common::error::from_napi)?;
        // SAFETY: as above.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), out) })
    }

    // ---- autograd ----

    #[napi]
    pub fn set_requires_grad(&self, requires_grad: bool) -> Result<NativeTensor> {
        // requires_grad_ works in place; the returned handle shares the tensor.
        self.t()?
            .f_set_requires_grad(requires_grad)
            .or_compute()
            .map(NativeTensor::wrap)
    }

    /// `.grad`, or null.
    #[napi]
    pub fn grad(&self) -> Result<Option<NativeTensor>> {
        let g = self.t()?.f_grad().or_compute()?;
        Ok(g.defined().then(|| NativeTensor::wrap(g)))
    }

    /// `t.grad = g` / `t.grad = None`.
    #[napi]
    pub fn set_grad(&self, grad: Option<&NativeTensor>) -> Result<()> {
        let g = grad.map_or(ptr::null_mut(), |g| g.raw());
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| unsafe { shim::ts_set_grad(self.raw(), g, err) })
    }

    /// `t.backward(gradient, retain_graph, create_graph)`.
    #[napi]
    pub fn backward(
        &self,
        gradient: Option<&NativeTensor>,
        retain_graph: Option<bool>,
        create_graph: Option<bool>,
    ) -> Result<()> {
        let g = gradient.map_or(ptr::null_mut(), |g| g.raw());
        let (keep, create) = (retain_graph.unwrap_or(false), create_graph.unwrap_or(false));
        self.t()?; // a freed handle is E_INVALID_ARGUMENT, not a libtorch error
        shim_call(|err| unsafe {
            shim::ts_backward(self.raw(), g, i32::from(keep), i32::from(create), err)
        })
    }

    /// `torch.autograd.grad(outputs=[self], inputs, grad_outputs=None)`.
    #[napi]
    pub fn autograd_grad(
        &self,
        inputs: Vec<ClassInstance<NativeTensor>>,
        retain_graph: Option<bool>,
        create_graph: Option<bool>,
    ) -> Result<Vec<NativeTensor>> {
        let ins: Vec<&Tensor> = inputs.iter().map(|i| i.t()).collect::<Result<_>>()?;
        let out = Tensor::f_run_backward(
            &[self.t()?],
            &ins,
            retain_graph.unwrap_or(false),
            create_graph.unwrap_or(false),
        )
        .or_compute()?;
        Ok(out.into_iter().map(NativeTensor::wrap).collect())
    }
}
