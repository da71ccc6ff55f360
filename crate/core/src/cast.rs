//! Float casts between float64, float32, float16 and bfloat16, and element values as f64.
//!
//! Casts follow PyTorch's CPU kernels bit for bit: `double -> half/bfloat16` goes through
//! `float` first (c10's `Half(float)`/`BFloat16(float)` constructors, so a double rounds
//! twice), rounding is round-to-nearest-even, and NaNs come out as torch's vectorised kernels
//! write them (checked bit for bit against torch 2.11 by `tests/convert/st_oracle.py casts`).
//! The one cast implementation of the crate: the converter (`--dtype`), its streamed writer
//! and `diff` all call it.

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::value::Storage;

/// Dtypes `cast` converts between.
pub fn is_castable_float(d: DType) -> bool {
    matches!(
        d,
        DType::Float64 | DType::Float32 | DType::Float16 | DType::BFloat16
    )
}

/// `to` as the target of a cast of floating tensors (`convert`'s `dtype`): one of
/// [`is_castable_float`], else `E_INVALID_ARGUMENT`.
pub fn check_cast_target(to: DType) -> Result<()> {
    if !is_castable_float(to) {
        crate::bail!(
            InvalidArgument,
            "dtype must be float16, bfloat16, float32 or float64, not {to}"
        );
    }
    Ok(())
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
    let mut out = Vec::new();
    cast_into(src, from, to, &mut out)?;
    Ok(out)
}

/// [`cast_buffer`] appending to `out`.
pub fn cast_into(src: &[u8], from: DType, to: DType, out: &mut Vec<u8>) -> Result<()> {
    let n = cast_len(src.len(), from, to)?;
    let at = out.len();
    out.try_reserve(n)
        .map_err(|_| crate::err!(LimitExceeded, "a {n}-byte cast cannot be allocated"))?;
    out.resize(at + n, 0);
    match out.get_mut(at..) {
        Some(dst) => cast_slice(src, from, to, dst),
        None => Ok(()),
    }
}

/// Bytes `src` (elements of `from`) takes once cast to `to`; checks both dtypes and that
/// `src` is whole elements.
pub fn cast_len(src_len: usize, from: DType, to: DType) -> Result<usize> {
    if !is_castable_float(from) || !is_castable_float(to) {
        crate::bail!(
            UnsupportedDtype,
            "cannot cast {from} to {to}: only float64/32/16 and bfloat16 are cast"
        );
    }
    let fs = from.element_size();
    if !src_len.is_multiple_of(fs) {
        crate::bail!(
            StorageSize,
            "a {src_len}-byte buffer is not a whole number of {from} elements"
        );
    }
    (src_len / fs)
        .checked_mul(to.element_size())
        .ok_or_else(|| crate::err!(LimitExceeded, "cast size overflows"))
}

/// [`cast_buffer`] into `dst`, which must hold exactly [`cast_len`] bytes (the streamed
/// conversion casts into a buffer each worker reuses, so casting touches no fresh memory).
pub fn cast_slice(src: &[u8], from: DType, to: DType, dst: &mut [u8]) -> Result<()> {
    if cast_len(src.len(), from, to)? != dst.len() {
        crate::bail!(
            StorageSize,
            "cast of {} bytes of {from} into {} bytes of {to}",
            src.len(),
            dst.len()
        );
    }
    if from == DType::Float32 && to == DType::Float16 {
        f32_to_f16_fast(src, dst);
        return Ok(());
    }
    let bf16_nan = if from == DType::Float16 {
        0x7FC0
    } else {
        0xFFFF
    };
    // float32 -> bfloat16 (`--dtype bfloat16`) on typed views: the byte-chunk loop below
    // costs several times the rounding itself.
    #[cfg(target_endian = "little")]
    if from == DType::Float32 && to == DType::BFloat16 {
        if let (Ok(s), Ok(d)) = (
            bytemuck::try_cast_slice::<u8, f32>(src),
            bytemuck::try_cast_slice_mut::<u8, u16>(dst),
        ) {
            d.iter_mut()
                .zip(s)
                .for_each(|(d, &x)| *d = f32_to_bf16_bits(x, bf16_nan));
            return Ok(());
        }
    }
    let (fs, ts) = (from.element_size(), to.element_size());
    for (e, d) in src.chunks_exact(fs).zip(dst.chunks_exact_mut(ts)) {
        match to {
            DType::Float64 => {
                // Widening is exact; NaNs are quieted like the CPU's cvtss2sd.
                let v = if from == DType::Float64 {
                    f64::from_le_bytes(arr8(e))
                } else {
                    read_f32(from, e) as f64
                };
                d.copy_from_slice(&v.to_le_bytes());
            }
            DType::Float32 => d.copy_from_slice(&read_f32(from, e).to_le_bytes()),
            DType::Float16 => d.copy_from_slice(&f32_to_f16_bits(read_f32(from, e)).to_le_bytes()),
            _ => d.copy_from_slice(&f32_to_bf16_bits(read_f32(from, e), bf16_nan).to_le_bytes()),
        }
    }
    Ok(())
}

/// float32 -> float16, the converter's hot path (`--dtype float16`): chunks through
/// `half`'s slice conversion, which uses the CPU's F16C instructions where present (the same
/// instructions torch's vectorised kernel uses, so NaN bits match too), and the scalar
/// round-to-nearest-even elsewhere. Several times faster than the element loop. `dst` holds
/// exactly half as many bytes as `src`.
fn f32_to_f16_fast(src: &[u8], dst: &mut [u8]) {
    use half::slice::HalfFloatSliceExt;
    // Aligned little-endian buffers (the converter's always are) convert in place: no
    // staging through `wide`/`narrow`, which cost three times the F16C work itself.
    #[cfg(target_endian = "little")]
    if let (Ok(s), Ok(d)) = (
        bytemuck::try_cast_slice::<u8, f32>(src),
        bytemuck::try_cast_slice_mut::<u8, half::f16>(dst),
    ) {
        if s.len() == d.len() {
            d.convert_from_f32_slice(s);
            return;
        }
    }
    const CHUNK: usize = 4096;
    let mut wide = [0f32; CHUNK];
    let mut narrow = [half::f16::ZERO; CHUNK];
    for (sc, oc) in src.chunks(CHUNK * 4).zip(dst.chunks_mut(CHUNK * 2)) {
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

    /// The typed fast paths (aligned buffers) and the byte paths (misaligned ones) agree bit
    /// for bit with the per-element conversion, NaNs, infinities, subnormals and ties included.
    #[test]
    fn float32_casts_are_the_same_aligned_or_not() {
        let mut vals: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -2.5,
            65504.0,
            65520.0,
            1e-8,
            6.0e-5,
            1.0 + f32::EPSILON,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0x3f80_8000),
            f32::MIN_POSITIVE / 3.0,
        ];
        vals.extend((0..10_000).map(|i| ((i as f32) * 0.37).sin() * 1000.0));
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        for (to, one) in [
            (DType::Float16, f32_to_f16_bits as fn(f32) -> u16),
            (DType::BFloat16, |x| f32_to_bf16_bits(x, 0xFFFF)),
        ] {
            let want: Vec<u8> = vals.iter().flat_map(|&v| one(v).to_le_bytes()).collect();
            // Aligned: Vec<u8> from the allocator, so 4-byte aligned.
            let mut dst = vec![0u8; want.len()];
            cast_slice(&bytes, DType::Float32, to, &mut dst).unwrap();
            assert_eq!(dst, want, "aligned {to}");
            // Misaligned source and destination: the byte paths.
            let mut src1 = vec![0u8; bytes.len() + 1];
            src1[1..].copy_from_slice(&bytes);
            let mut dst1 = vec![0u8; want.len() + 1];
            cast_slice(&src1[1..], DType::Float32, to, &mut dst1[1..]).unwrap();
            assert_eq!(&dst1[1..], &want[..], "misaligned {to}");
        }
    }
}
