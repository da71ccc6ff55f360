//! A small, checked wrapper over the raw Node-API calls the converters need.
//!
//! The raw-tree converters make many tiny calls (create an object, set a property, read an
//! element); going through `napi::sys` directly keeps each one a single FFI call and keeps
//! every `unsafe` block in this file. Each method checks the status and turns a failure into
//! a `napi::Error` naming the call.
//!
//! Values (`V`) are handles that stay valid for the current handle scope, i.e. until the
//! `#[napi]` function or the task's `resolve` returns; the converters never keep them longer.

use napi::{sys, Env, Error, Result, Status};
use std::ffi::CStr;
use std::os::raw::c_void;
use std::ptr;
use std::sync::Arc;
use torchsave_core::bytes::Backing;

pub type V = sys::napi_value;

/// Largest integer a JS number holds exactly (2^53).
pub const MAX_SAFE: i64 = 9_007_199_254_740_992;

#[derive(Clone, Copy)]
pub struct Js {
    env: sys::napi_env,
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

/// What `arraybuffer_external` did.
pub enum External {
    Created(V),
    /// The runtime refuses external buffers (Electron's V8 sandbox): copy instead.
    NotAllowed,
}

impl Js {
    pub fn new(env: &Env) -> Self {
        Js { env: env.raw() }
    }

    pub fn raw_env(&self) -> sys::napi_env {
        self.env
    }

    // --- creating values ---

    pub fn object(&self) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: env is the live env of the current call; out is a valid out-pointer.
        check(
            unsafe { sys::napi_create_object(self.env, &mut out) },
            "napi_create_object",
        )?;
        Ok(out)
    }

    pub fn array(&self, len: usize) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: as above.
        check(
            unsafe { sys::napi_create_array_with_length(self.env, len, &mut out) },
            "napi_create_array_with_length",
        )?;
        Ok(out)
    }

    pub fn set(&self, obj: V, key: &CStr, val: V) -> Result<()> {
        // SAFETY: key is NUL-terminated; obj and val are handles from this scope.
        check(
            unsafe { sys::napi_set_named_property(self.env, obj, key.as_ptr(), val) },
            "napi_set_named_property",
        )
    }

    pub fn set_index(&self, arr: V, index: usize, val: V) -> Result<()> {
        let index = u32::try_from(index)
            .map_err(|_| Error::new(Status::InvalidArg, "array index beyond 2^32"))?;
        // SAFETY: arr and val are handles from this scope.
        check(
            unsafe { sys::napi_set_element(self.env, arr, index, val) },
            "napi_set_element",
        )
    }

    pub fn string(&self, s: &str) -> Result<V> {
        let mut out = ptr::null_mut();
        let len = isize::try_from(s.len())
            .map_err(|_| Error::new(Status::InvalidArg, "string too long"))?;
        // SAFETY: ptr/len describe valid UTF-8 bytes owned by `s` for the duration of the call.
        check(
            unsafe { sys::napi_create_string_utf8(self.env, s.as_ptr().cast(), len, &mut out) },
            "napi_create_string_utf8",
        )?;
        Ok(out)
    }

    pub fn f64(&self, x: f64) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: plain value creation.
        check(
            unsafe { sys::napi_create_double(self.env, x, &mut out) },
            "napi_create_double",
        )?;
        Ok(out)
    }

    pub fn bool(&self, b: bool) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: plain value creation.
        check(
            unsafe { sys::napi_get_boolean(self.env, b, &mut out) },
            "napi_get_boolean",
        )?;
        Ok(out)
    }

    pub fn null(&self) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: plain value creation.
        check(
            unsafe { sys::napi_get_null(self.env, &mut out) },
            "napi_get_null",
        )?;
        Ok(out)
    }

    /// A BigInt from sign and little-endian 64-bit words.
    pub fn bigint_words(&self, negative: bool, words: &[u64]) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: words is a valid slice for the duration of the call.
        check(
            unsafe {
                sys::napi_create_bigint_words(
                    self.env,
                    i32::from(negative),
                    words.len(),
                    words.as_ptr(),
                    &mut out,
                )
            },
            "napi_create_bigint_words",
        )?;
        Ok(out)
    }

    /// A Python int: a number when exact in a double, else a BigInt.
    pub fn int(&self, x: i64) -> Result<V> {
        if (-MAX_SAFE..=MAX_SAFE).contains(&x) {
            self.f64(x as f64)
        } else {
            self.bigint_words(x < 0, &[x.unsigned_abs()])
        }
    }

    /// A JS-owned ArrayBuffer holding a copy of `bytes`.
    pub fn arraybuffer_copy(&self, bytes: &[u8]) -> Result<V> {
        torchsave_napi_common::buffer::arraybuffer_copy(&Env::from_raw(self.env), bytes)
    }

    /// A `Uint8Array` over a fresh copy of `bytes`.
    pub fn uint8array_copy(&self, bytes: &[u8]) -> Result<V> {
        let ab = self.arraybuffer_copy(bytes)?;
        self.uint8array(ab, 0, bytes.len())
    }

    pub fn uint8array(&self, arraybuffer: V, byte_offset: usize, len: usize) -> Result<V> {
        let mut out = ptr::null_mut();
        // SAFETY: the caller passes an ArrayBuffer whose length covers offset..offset+len.
        check(
            unsafe {
                sys::napi_create_typedarray(
                    self.env,
                    sys::TypedarrayType::uint8_array,
                    len,
                    arraybuffer,
                    byte_offset,
                    &mut out,
                )
            },
            "napi_create_typedarray",
        )?;
        Ok(out)
    }

    /// One external ArrayBuffer over the whole of `backing`; the finalizer drops an `Arc`
    /// clone, so the memory (an mmap) lives as long as any JS view of it. The clone can go
    /// earlier: once V8 has collected the buffer (`release::reap`, run at each load) or when
    /// `torch.dispose` detaches it (`release::release`); see napi-common's `release`.
    ///
    /// The caller must expose each backing at most once (V8 refuses two ArrayBuffers with
    /// one start pointer) and never call this for an empty backing.
    pub fn arraybuffer_external(&self, backing: &Arc<dyn Backing>) -> Result<External> {
        let len = backing.bytes().len();
        if len == 0 {
            return Err(Error::new(
                Status::InvalidArg,
                "empty backing cannot be external",
            ));
        }
        // SAFETY: `as_mut_ptr` points to `len` bytes kept alive by the Arc clone (the
        // owner) until no JS value can reach them; the core's backings are writable private
        // memory (copy-on-write mmap or heap), so JS writes never reach a file; the caller
        // exposes each backing once.
        let made = unsafe {
            torchsave_napi_common::release::external_releasable(
                self.env,
                backing.as_mut_ptr(),
                len,
                backing.clone(),
            )
        }?;
        Ok(match made {
            Some(ab) => External::Created(ab),
            None => External::NotAllowed,
        })
    }

    /// An external ArrayBuffer of `len` (non-zero) bytes of pooled memory for the caller to
    /// fill (napi-common's `pool`: reused across loads, back in the pool once no JS value
    /// reaches it), and its data pointer; `None` where the runtime refuses external buffers.
    pub fn arraybuffer_pooled(&self, len: usize) -> Result<Option<(V, *mut u8)>> {
        let mut block = torchsave_napi_common::pool::take(len).map_err(|e| {
            Error::new(
                Status::GenericFailure,
                format!("cannot map {len} bytes: {e}"),
            )
        })?;
        let ptr = block.as_mut_ptr();
        // SAFETY: `ptr` points to the block's `>= len` writable bytes, which live
        // while the owner (the block) does; a fresh mapping starts no other ArrayBuffer.
        let made = unsafe {
            torchsave_napi_common::release::external_releasable(self.env, ptr, len, block)
        }?;
        Ok(made.map(|ab| (ab, ptr)))
    }

    /// A JS-owned ArrayBuffer of `len` bytes for the caller to fill, and its data pointer
    /// (see napi-common's `js_owned_uninit`: V8 frees it inside a collection).
    pub fn arraybuffer_uninit(&self, len: usize) -> Result<(V, *mut u8)> {
        torchsave_napi_common::buffer::js_owned_uninit(&Env::from_raw(self.env), len)
    }

    /// A JS Error with `code` set, plus any extra string/number properties.
    pub fn error(&self, code: &str, message: &str) -> Result<V> {
        let code_v = self.string(code)?;
        let msg_v = self.string(message)?;
        let mut out = ptr::null_mut();
        // SAFETY: both are string handles from this scope.
        check(
            unsafe { sys::napi_create_error(self.env, code_v, msg_v, &mut out) },
            "napi_create_error",
        )?;
        Ok(out)
    }

    // --- reading values ---

    pub fn type_of(&self, v: V) -> Result<sys::napi_valuetype> {
        let mut t = 0;
        // SAFETY: v is a handle from this scope.
        check(
            unsafe { sys::napi_typeof(self.env, v, &mut t) },
            "napi_typeof",
        )?;
        Ok(t)
    }

    pub fn is_array(&self, v: V) -> Result<bool> {
        let mut b = false;
        // SAFETY: v is a handle from this scope.
        check(
            unsafe { sys::napi_is_array(self.env, v, &mut b) },
            "napi_is_array",
        )?;
        Ok(b)
    }

    pub fn is_typedarray(&self, v: V) -> Result<bool> {
        let mut b = false;
        // SAFETY: v is a handle from this scope.
        check(
            unsafe { sys::napi_is_typedarray(self.env, v, &mut b) },
            "napi_is_typedarray",
        )?;
        Ok(b)
    }

    pub fn array_len(&self, v: V) -> Result<usize> {
        let mut n = 0u32;
        // SAFETY: v is an array handle (checked by the caller).
        check(
            unsafe { sys::napi_get_array_length(self.env, v, &mut n) },
            "napi_get_array_length",
        )?;
        Ok(n as usize)
    }

    pub fn get_index(&self, arr: V, index: usize) -> Result<V> {
        let index = u32::try_from(index)
            .map_err(|_| Error::new(Status::InvalidArg, "array index beyond 2^32"))?;
        let mut out = ptr::null_mut();
        // SAFETY: arr is a handle from this scope.
        check(
            unsafe { sys::napi_get_element(self.env, arr, index, &mut out) },
            "napi_get_element",
        )?;
        Ok(out)
    }

    /// The property named by a key string made earlier in this call ([`Js::string`]): V8
    /// internalizes that string once, where `napi_get_named_property` makes and looks up a
    /// new one on every read.
    pub fn get_opt_by(&self, obj: V, key: V) -> Result<Option<V>> {
        let mut out = ptr::null_mut();
        // SAFETY: obj is an object handle, key a string handle, both of this callback.
        check(
            unsafe { sys::napi_get_property(self.env, obj, key, &mut out) },
            "napi_get_property",
        )?;
        self.defined(out)
    }

    fn defined(&self, v: V) -> Result<Option<V>> {
        Ok(if self.type_of(v)? == sys::ValueType::napi_undefined {
            None
        } else {
            Some(v)
        })
    }

    pub fn get_f64(&self, v: V) -> Result<f64> {
        let mut x = 0.0;
        // SAFETY: fails with napi_number_expected on non-numbers, which we report.
        check(
            unsafe { sys::napi_get_value_double(self.env, v, &mut x) },
            "napi_get_value_double (expected a number)",
        )?;
        Ok(x)
    }

    pub fn get_bool(&self, v: V) -> Result<bool> {
        let mut b = false;
        // SAFETY: fails with napi_boolean_expected on non-booleans.
        check(
            unsafe { sys::napi_get_value_bool(self.env, v, &mut b) },
            "napi_get_value_bool (expected a boolean)",
        )?;
        Ok(b)
    }

    pub fn get_string(&self, v: V) -> Result<String> {
        let mut len = 0usize;
        // SAFETY: a null buffer asks for the length only.
        check(
            unsafe { sys::napi_get_value_string_utf8(self.env, v, ptr::null_mut(), 0, &mut len) },
            "napi_get_value_string_utf8 (expected a string)",
        )?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0usize;
        // SAFETY: buf holds len + 1 bytes (room for the NUL napi writes).
        check(
            unsafe {
                sys::napi_get_value_string_utf8(
                    self.env,
                    v,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut written,
                )
            },
            "napi_get_value_string_utf8",
        )?;
        buf.truncate(written);
        String::from_utf8(buf)
            .map_err(|_| Error::new(Status::InvalidArg, "string is not valid UTF-8"))
    }

    /// (negative, little-endian words) of a BigInt.
    pub fn get_bigint(&self, v: V) -> Result<(bool, Vec<u64>)> {
        let mut sign = 0i32;
        let mut count = 0usize;
        // SAFETY: null sign and words pointers ask for the word count only (Node-API docs).
        check(
            unsafe {
                sys::napi_get_value_bigint_words(
                    self.env,
                    v,
                    ptr::null_mut(),
                    &mut count,
                    ptr::null_mut(),
                )
            },
            "napi_get_value_bigint_words (expected a bigint)",
        )?;
        let mut words = vec![0u64; count];
        // SAFETY: words has room for `count` words.
        check(
            unsafe {
                sys::napi_get_value_bigint_words(
                    self.env,
                    v,
                    &mut sign,
                    &mut count,
                    words.as_mut_ptr(),
                )
            },
            "napi_get_value_bigint_words",
        )?;
        words.truncate(count);
        Ok((sign != 0, words))
    }

    /// A copy of the bytes a typed array views (any element type).
    /// A typed array's element type, length and data pointer (offset applied).
    fn typedarray_info(&self, v: V) -> Result<(sys::napi_typedarray_type, usize, *mut c_void)> {
        let mut ty = 0;
        let mut length = 0usize;
        let mut data: *mut c_void = ptr::null_mut();
        let mut ab = ptr::null_mut();
        let mut offset = 0usize;
        // SAFETY: v is a typed array (checked by the callers); `data` already includes the offset.
        check(
            unsafe {
                sys::napi_get_typedarray_info(
                    self.env,
                    v,
                    &mut ty,
                    &mut length,
                    &mut data,
                    &mut ab,
                    &mut offset,
                )
            },
            "napi_get_typedarray_info",
        )?;
        Ok((ty, length, data))
    }

    /// A `Float64Array`'s values (copied); `None` when `v` is another kind of value.
    pub fn f64_array(&self, v: V) -> Result<Option<Vec<f64>>> {
        if !self.is_typedarray(v)? {
            return Ok(None);
        }
        let (ty, length, data) = self.typedarray_info(v)?;
        if ty != sys::TypedarrayType::float64_array {
            return Ok(None);
        }
        if length == 0 || data.is_null() {
            return Ok(Some(Vec::new()));
        }
        // SAFETY: a Float64Array's data is `length` aligned f64s, readable while `v` is alive.
        Ok(Some(
            unsafe { std::slice::from_raw_parts(data.cast::<f64>(), length) }.to_vec(),
        ))
    }

    pub fn typedarray_bytes(&self, v: V) -> Result<Vec<u8>> {
        let (ty, length, data) = self.typedarray_info(v)?;
        let elem = match ty {
            sys::TypedarrayType::int8_array
            | sys::TypedarrayType::uint8_array
            | sys::TypedarrayType::uint8_clamped_array => 1,
            sys::TypedarrayType::int16_array | sys::TypedarrayType::uint16_array => 2,
            sys::TypedarrayType::int32_array
            | sys::TypedarrayType::uint32_array
            | sys::TypedarrayType::float32_array => 4,
            _ => 8,
        };
        let nbytes = length
            .checked_mul(elem)
            .ok_or_else(|| Error::new(Status::InvalidArg, "typed array too large"))?;
        if nbytes == 0 || data.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: V8 guarantees `data` points to `nbytes` readable bytes while `v` is alive.
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), nbytes) }.to_vec())
    }
}

/// A raw handle returned from a `#[napi]` function or task (typed in the generated `.d.ts`
/// through `ts_return_type`).
pub struct RawValue(pub V);

// SAFETY: a RawValue is only ever created and consumed on the JS thread; it travels inside
// a task's `Output` never (outputs are plain Rust data).
unsafe impl Send for RawValue {}

impl napi::bindgen_prelude::ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

impl napi::bindgen_prelude::TypeName for RawValue {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> napi::ValueType {
        napi::ValueType::Unknown
    }
}
