//! Tensor values as bytes: C-order traversal of strided views, digests, and float casts.
//!
//! A tensor in the graph is a strided view onto a storage (`value.rs`). Every consumer here
//! (the safetensors writer, `--verify`, `diff`) needs the view's elements in C order, which
//! is exactly the storage bytes when the view is contiguous and a gather otherwise. The
//! traversal validates the view against the storage first (checked arithmetic, no negative
//! strides) so a hostile graph can never make us read outside the storage.
//!
//! Casts follow PyTorch's CPU kernels bit for bit: `double -> half/bfloat16` goes through
//! `float` first (c10's `Half(float)`/`BFloat16(float)` constructors, so a double rounds
//! twice), rounding is round-to-nearest-even, and NaNs come out as torch's vectorised kernels
//! write them (checked bit for bit against torch 2.11 by `tests/convert/st_oracle.py casts`).

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Storage, Tensor};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Chunks smaller than this are gathered into one buffer before reaching the sink, so a
/// transposed matrix does not cost one sink call per element.
const GATHER_BYTES: usize = 64 * 1024;

/// Number of elements, checked.
pub fn numel(t: &Tensor) -> Result<u64> {
    let mut n: u64 = 1;
    for &d in &t.shape {
        let d = u64::try_from(d)
            .map_err(|_| crate::err!(StorageBounds, "negative size {d} in shape {:?}", t.shape))?;
        n = n
            .checked_mul(d)
            .ok_or_else(|| crate::err!(StorageBounds, "shape {:?} overflows", t.shape))?;
    }
    Ok(n)
}

/// Bytes the tensor's values take when contiguous.
pub fn nbytes(t: &Tensor) -> Result<u64> {
    numel(t)?
        .checked_mul(t.dtype.element_size() as u64)
        .ok_or_else(|| crate::err!(StorageBounds, "shape {:?} overflows", t.shape))
}

/// True when the view's elements are laid out in C order with no gaps (size-1 dims ignored).
pub fn is_contiguous(t: &Tensor) -> bool {
    if t.stride.len() != t.shape.len() {
        return false;
    }
    let mut expected: i64 = 1;
    for (&size, &stride) in t.shape.iter().zip(&t.stride).rev() {
        if size == 0 {
            return true;
        }
        if size != 1 && stride != expected {
            return false;
        }
        expected = match expected.checked_mul(size) {
            Some(e) => e,
            None => return false,
        };
    }
    true
}

/// Byte range of the storage the view reaches (`start..end`), after checking every index
/// stays inside the storage's bytes. Empty tensors reach nothing.
pub fn reached_range(t: &Tensor, st: &Storage) -> Result<std::ops::Range<u64>> {
    if t.stride.len() != t.shape.len() {
        crate::bail!(
            StorageBounds,
            "shape {:?} and stride {:?} differ in length",
            t.shape,
            t.stride
        );
    }
    if numel(t)? == 0 {
        return Ok(0..0);
    }
    let offset = u64::try_from(t.storage_offset).map_err(|_| {
        crate::err!(
            StorageBounds,
            "negative storage offset {}",
            t.storage_offset
        )
    })?;
    let mut last = offset;
    for (&size, &stride) in t.shape.iter().zip(&t.stride) {
        let stride = u64::try_from(stride)
            .map_err(|_| crate::err!(StorageBounds, "negative stride in {:?}", t.stride))?;
        let span = (size as u64 - 1)
            .checked_mul(stride)
            .and_then(|s| last.checked_add(s))
            .ok_or_else(|| {
                crate::err!(StorageBounds, "view {:?}/{:?} overflows", t.shape, t.stride)
            })?;
        last = span;
    }
    let el = t.dtype.element_size() as u64;
    let start = offset
        .checked_mul(el)
        .ok_or_else(|| crate::err!(StorageBounds, "offset overflows"))?;
    let end = last
        .checked_add(1)
        .and_then(|x| x.checked_mul(el))
        .ok_or_else(|| crate::err!(StorageBounds, "view overflows"))?;
    if end > st.data.len() as u64 {
        crate::bail!(
            StorageBounds,
            "tensor of shape {:?} stride {:?} offset {} reaches byte {end} of a {}-byte storage",
            t.shape,
            t.stride,
            t.storage_offset,
            st.data.len()
        );
    }
    Ok(start..end)
}

/// Calls `sink` with the tensor's values in C order, little-endian, as few slices as the
/// layout allows (one slice for a contiguous view).
pub fn for_each_chunk(
    t: &Tensor,
    st: &Storage,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let range = reached_range(t, st)?;
    if range.is_empty() {
        return Ok(());
    }
    let data = st.data.as_slice();
    let el = t.dtype.element_size();
    if is_contiguous(t) {
        let total = nbytes(t)? as usize;
        let start = range.start as usize;
        let bytes = data
            .get(start..start + total)
            .ok_or_else(|| crate::err!(StorageBounds, "view outside storage"))?;
        return sink(bytes);
    }
    // Innermost dims that are contiguous among themselves form one run; the outer dims are
    // walked with an odometer.
    let mut k = t.shape.len();
    let mut run: u64 = 1;
    for (&size, &stride) in t.shape.iter().zip(&t.stride).rev() {
        if size == 1 || stride as u64 == run {
            // No overflow: `reached_range` bounded the whole view by the storage length.
            run *= size as u64;
            k -= 1;
        } else {
            break;
        }
    }
    let run_bytes = run as usize * el;
    let outer: Vec<(i64, i64)> = t
        .shape
        .iter()
        .copied()
        .zip(t.stride.iter().copied())
        .take(k)
        .collect();
    let mut idx = vec![0i64; k];
    let mut buf: Vec<u8> = Vec::new();
    let gather = run_bytes < GATHER_BYTES;
    loop {
        let mut off = t.storage_offset;
        for (i, (_, s)) in idx.iter().zip(&outer) {
            off += i * s;
        }
        let b = off as usize * el;
        let chunk = data
            .get(b..b + run_bytes)
            .ok_or_else(|| crate::err!(StorageBounds, "view outside storage"))?;
        if gather {
            buf.extend_from_slice(chunk);
            if buf.len() >= GATHER_BYTES {
                sink(&buf)?;
                buf.clear();
            }
        } else {
            sink(chunk)?;
        }
        // Advance the odometer, last outer dim fastest.
        let mut carried = true;
        for (i, (size, _)) in idx.iter_mut().zip(&outer).rev() {
            *i += 1;
            if *i < *size {
                carried = false;
                break;
            }
            *i = 0;
        }
        if carried {
            if !buf.is_empty() {
                sink(&buf)?;
            }
            return Ok(());
        }
    }
}

/// The tensor's values as one contiguous buffer (borrowed when the view is contiguous).
pub fn contiguous_bytes<'a>(t: &Tensor, st: &'a Storage) -> Result<Cow<'a, [u8]>> {
    if is_contiguous(t) {
        let range = reached_range(t, st)?;
        let total = nbytes(t)? as usize;
        if total == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        let start = range.start as usize;
        return st
            .data
            .as_slice()
            .get(start..start + total)
            .map(Cow::Borrowed)
            .ok_or_else(|| crate::err!(StorageBounds, "view outside storage"));
    }
    reached_range(t, st)?;
    let n = nbytes(t)?;
    let mut out = Vec::new();
    // A broadcast view (stride 0) may be far larger than its storage: fail, never abort.
    out.try_reserve_exact(usize::try_from(n).unwrap_or(usize::MAX))
        .map_err(|_| {
            crate::err!(
                LimitExceeded,
                "a contiguous copy of {n} bytes cannot be allocated"
            )
        })?;
    for_each_chunk(t, st, &mut |c| {
        out.extend_from_slice(c);
        Ok(())
    })?;
    Ok(Cow::Owned(out))
}

/// sha256 of the values as a contiguous C-order little-endian buffer (the `inspect --sha256`
/// rule in ARCHITECTURE.md), lowercase hex.
pub fn sha256_hex(t: &Tensor, st: &Storage) -> Result<String> {
    let mut h = Sha256::new();
    for_each_chunk(t, st, &mut |c| {
        h.update(c);
        Ok(())
    })?;
    Ok(hex(&h.finalize()))
}

/// sha256 of a byte slice, lowercase hex.
pub fn sha256_bytes_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn hex(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        for nib in [x >> 4, x & 15] {
            s.push(HEX.get(nib as usize).copied().unwrap_or(b'0') as char);
        }
    }
    s
}

/// Dtypes `cast` converts between.
pub fn is_castable_float(d: DType) -> bool {
    matches!(
        d,
        DType::Float64 | DType::Float32 | DType::Float16 | DType::BFloat16
    )
}

/// f32 -> f16: round to nearest even; a NaN keeps its sign and the top of its payload with
/// the quiet bit set (what `vcvtps2ph`, c10 and `half` all do).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// f32 -> bf16: round to nearest even; NaN -> `nan` (see [`cast_buffer`] for which).
pub fn f32_to_bf16_bits(x: f32, nan: u16) -> u16 {
    if x.is_nan() {
        return nan;
    }
    half::bf16::from_f32(x).to_bits()
}

fn read_f32(from: DType, b: &[u8]) -> f32 {
    match from {
        DType::Float64 => f64::from_le_bytes(arr8(b)) as f32,
        DType::Float32 => f32::from_le_bytes(arr4(b)),
        DType::Float16 => half::f16::from_bits(u16::from_le_bytes(arr2(b))).to_f32(),
        // bfloat16 is the top half of a float32: widening is a shift (keeps signalling NaNs,
        // as c10 does; `half` would quiet them).
        _ => f32::from_bits((u16::from_le_bytes(arr2(b)) as u32) << 16),
    }
}

fn arr8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
    a
}
fn arr4(b: &[u8]) -> [u8; 4] {
    let mut a = [0u8; 4];
    a.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
    a
}
fn arr2(b: &[u8]) -> [u8; 2] {
    let mut a = [0u8; 2];
    a.iter_mut().zip(b).for_each(|(d, s)| *d = *s);
    a
}

/// Converts a buffer of `from` elements to `to` elements (both in [`is_castable_float`]).
///
/// Finite values and infinities are exact on every platform. NaN bit patterns follow what
/// torch 2.11's CPU kernels write on x86-64 (AVX2/AVX-512) in their vectorised body, which
/// differ per pair: `float32/float64 -> bfloat16` give 0xFFFF, `float16 -> bfloat16` gives
/// 0x7FC0 (c10's scalar constructor); every other pair keeps the sign and payload with the
/// quiet bit set, as the hardware conversions do. (For `float16 -> float32` and
/// `float64 -> bfloat16` torch writes other NaN bits in a loop tail, 0x7FFFFFFF and 0x7FC0,
/// so there a NaN's bits depend on its position in the tensor; we always write the former.)
pub fn cast_buffer(src: &[u8], from: DType, to: DType) -> Result<Vec<u8>> {
    if from == DType::Float32 && to == DType::Float16 && src.len().is_multiple_of(4) {
        return Ok(f32_to_f16_fast(src));
    }
    if !is_castable_float(from) || !is_castable_float(to) {
        crate::bail!(
            UnsupportedDtype,
            "cannot cast {from} to {to}: only float64/32/16 and bfloat16 are cast"
        );
    }
    let fs = from.element_size();
    if !src.len().is_multiple_of(fs) {
        crate::bail!(
            StorageSize,
            "a {}-byte buffer is not a whole number of {from} elements",
            src.len()
        );
    }
    let bf16_nan = if from == DType::Float16 {
        0x7FC0
    } else {
        0xFFFF
    };
    let n = src.len() / fs;
    let mut out = Vec::with_capacity(n * to.element_size());
    for e in src.chunks_exact(fs) {
        match to {
            DType::Float64 => {
                // Widening is exact; NaNs are quieted like the CPU's cvtss2sd.
                let v = if from == DType::Float64 {
                    f64::from_le_bytes(arr8(e))
                } else {
                    read_f32(from, e) as f64
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
            DType::Float32 => out.extend_from_slice(&read_f32(from, e).to_le_bytes()),
            DType::Float16 => {
                out.extend_from_slice(&f32_to_f16_bits(read_f32(from, e)).to_le_bytes())
            }
            _ => {
                out.extend_from_slice(&f32_to_bf16_bits(read_f32(from, e), bf16_nan).to_le_bytes())
            }
        }
    }
    Ok(out)
}

/// float32 -> float16, the converter's hot path (`--dtype float16`): chunks through
/// `half`'s slice conversion, which uses the CPU's F16C instructions where present (the same
/// instructions torch's vectorised kernel uses, so NaN bits match too), and the scalar
/// round-to-nearest-even elsewhere. Several times faster than the element loop.
fn f32_to_f16_fast(src: &[u8]) -> Vec<u8> {
    use half::slice::HalfFloatSliceExt;
    const CHUNK: usize = 4096;
    let mut out = vec![0u8; src.len() / 2];
    let mut wide = [0f32; CHUNK];
    let mut narrow = [half::f16::ZERO; CHUNK];
    for (sc, oc) in src.chunks(CHUNK * 4).zip(out.chunks_mut(CHUNK * 2)) {
        let m = sc.len() / 4;
        let (Some(w), Some(h)) = (wide.get_mut(..m), narrow.get_mut(..m)) else {
            break;
        };
        for (d, s) in w.iter_mut().zip(sc.chunks_exact(4)) {
            *d = f32::from_le_bytes(arr4(s));
        }
        h.convert_from_f32_slice(w);
        for (d, s) in oc.chunks_exact_mut(2).zip(h.iter()) {
            d.copy_from_slice(&s.to_bits().to_le_bytes());
        }
    }
    out
}

/// A storage converted element by element to `to` (same element count).
pub fn cast_storage(st: &Storage, from: DType, to: DType) -> Result<Storage> {
    let data = cast_buffer(st.data.as_slice(), from, to)?;
    let numel = (data.len() / to.element_size()) as u64;
    Ok(Storage {
        key: st.key.clone(),
        dtype: to,
        untyped: to.storage_class().is_none(),
        numel,
        location: st.location.clone(),
        data: ByteView::from_vec(data),
    })
}

/// A value of a real-numbered element as f64 (for `diff`'s max-abs-diff); `None` for
/// complex, quantized and packed types.
pub fn element_as_f64(d: DType, b: &[u8]) -> Option<f64> {
    Some(match d {
        DType::Float64 => f64::from_le_bytes(arr8(b)),
        DType::Float32 | DType::Float16 | DType::BFloat16 => read_f32(d, b) as f64,
        DType::Int64 => i64::from_le_bytes(arr8(b)) as f64,
        DType::Int32 => i32::from_le_bytes(arr4(b)) as f64,
        DType::Int16 => i16::from_le_bytes(arr2(b)) as f64,
        DType::Int8 => *b.first()? as i8 as f64,
        DType::UInt64 => u64::from_le_bytes(arr8(b)) as f64,
        DType::UInt32 => u32::from_le_bytes(arr4(b)) as f64,
        DType::UInt16 => u16::from_le_bytes(arr2(b)) as f64,
        DType::UInt8 | DType::Bool => *b.first()? as f64,
        _ => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn storage(dtype: DType, bytes: Vec<u8>) -> Storage {
        let numel = (bytes.len() / dtype.element_size()) as u64;
        Storage {
            key: "0".into(),
            dtype,
            untyped: false,
            numel,
            location: "cpu".into(),
            data: ByteView::from_vec(bytes),
        }
    }

    fn tensor(shape: &[i64], stride: &[i64], offset: i64) -> Tensor {
        Tensor {
            storage: Some(0),
            dtype: DType::UInt8,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
            storage_offset: offset,
            requires_grad: false,
            is_parameter: false,
            parameter_state: None,
            quantizer: None,
            metadata: None,
            subclass: None,
            device: None,
        }
    }

    #[test]
    fn transposed_view_is_gathered_in_c_order() {
        let st = storage(DType::UInt8, (0u8..6).collect());
        // base is 2x3 [[0,1,2],[3,4,5]]; its transpose is 3x2 [[0,3],[1,4],[2,5]].
        let t = tensor(&[3, 2], &[1, 3], 0);
        assert!(!is_contiguous(&t));
        assert_eq!(
            contiguous_bytes(&t, &st).unwrap().as_ref(),
            &[0, 3, 1, 4, 2, 5]
        );
        // A strided slice with an offset: base[1:, ::2] of a 2x3 -> [3, 5].
        let t = tensor(&[1, 2], &[3, 2], 3);
        assert_eq!(contiguous_bytes(&t, &st).unwrap().as_ref(), &[3, 5]);
    }

    #[test]
    fn out_of_bounds_views_are_rejected_with_a_code() {
        let st = storage(DType::UInt8, vec![0; 6]);
        let t = tensor(&[2, 3], &[3, 1], 1);
        assert_eq!(
            contiguous_bytes(&t, &st).unwrap_err().code,
            crate::ErrorCode::StorageBounds
        );
        let t = tensor(&[2], &[-1], 1);
        assert_eq!(
            contiguous_bytes(&t, &st).unwrap_err().code,
            crate::ErrorCode::StorageBounds
        );
        let t = tensor(&[i64::MAX, 2], &[i64::MAX, 1], 0);
        assert_eq!(
            contiguous_bytes(&t, &st).unwrap_err().code,
            crate::ErrorCode::StorageBounds
        );
    }

    #[test]
    fn empty_and_scalar_views() {
        let st = storage(DType::UInt8, vec![7; 4]);
        assert!(contiguous_bytes(&tensor(&[0, 5], &[5, 1], 0), &st)
            .unwrap()
            .is_empty());
        assert_eq!(
            contiguous_bytes(&tensor(&[], &[], 2), &st)
                .unwrap()
                .as_ref(),
            &[7]
        );
    }
}
