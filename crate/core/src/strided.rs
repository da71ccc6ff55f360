//! Strided views as bytes: C-order traversal of a tensor's elements, its contiguous bytes,
//! and digests. The one implementation every consumer uses (the zip writer's compact mode,
//! safetensors output, `--verify`, `diff`, `inspect --sha256`, the binding's tests).
//!
//! A tensor in the graph is a strided view onto a storage (`value.rs`): its elements in C
//! order are exactly the storage bytes when the view is contiguous, and a gather otherwise.
//! The traversal validates the view against the storage first (checked arithmetic, no
//! negative strides), so a hostile graph can never make it read outside the storage, and a
//! copy that cannot be allocated is an error, never an abort.

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

/// The view rule, the one every consumer applies (the loader's `validate_graph`, the
/// pickler, every traversal here): the byte range `[start, end)` a tensor's elements address
/// in its storage, `(storage_offset + Σ (size_i - 1) * stride_i + 1) * element_size` bytes
/// from the start, in the *tensor's* dtype. `None` when it has no elements (it addresses
/// nothing). Sizes and strides must pair up and nothing may be negative (PyTorch never
/// pickles negative strides); all arithmetic is checked. Errors are `E_STORAGE_BOUNDS`.
pub fn view_extent(t: &Tensor) -> Result<Option<std::ops::Range<u64>>> {
    if t.shape.len() != t.stride.len() {
        crate::bail!(
            StorageBounds,
            "tensor has {} sizes but {} strides",
            t.shape.len(),
            t.stride.len()
        );
    }
    if t.storage_offset < 0 {
        crate::bail!(
            StorageBounds,
            "tensor has a negative storage offset ({})",
            t.storage_offset
        );
    }
    if let Some(s) = t.shape.iter().find(|&&s| s < 0) {
        crate::bail!(StorageBounds, "tensor has a negative size ({s})");
    }
    if let Some(s) = t.stride.iter().find(|&&s| s < 0) {
        crate::bail!(StorageBounds, "tensor has a negative stride ({s})");
    }
    if t.shape.contains(&0) {
        return Ok(None);
    }
    let overflow = || {
        crate::err!(
            StorageBounds,
            "tensor extent overflows (shape {:?}, stride {:?})",
            t.shape,
            t.stride
        )
    };
    let mut last = t.storage_offset as u64;
    for (&size, &stride) in t.shape.iter().zip(&t.stride) {
        let step = ((size - 1) as u64)
            .checked_mul(stride as u64)
            .ok_or_else(overflow)?;
        last = last.checked_add(step).ok_or_else(overflow)?;
    }
    let es = t.dtype.element_size() as u64;
    let start = (t.storage_offset as u64)
        .checked_mul(es)
        .ok_or_else(overflow)?;
    let end = last
        .checked_add(1)
        .and_then(|n| n.checked_mul(es))
        .ok_or_else(overflow)?;
    Ok(Some(start..end))
}

/// [`view_extent`], checked against the storage the tensor views: every byte it addresses
/// lies inside `st`.
pub fn check_view(t: &Tensor, st: &Storage) -> Result<Option<std::ops::Range<u64>>> {
    let extent = view_extent(t)?;
    if let Some(r) = &extent {
        if r.end > st.data.len() as u64 {
            crate::bail!(
                StorageBounds,
                "tensor (shape {:?}, stride {:?}, offset {}, {}) reaches byte {} of storage '{}', \
                 which has {} bytes",
                t.shape,
                t.stride,
                t.storage_offset,
                t.dtype,
                r.end,
                st.key,
                st.data.len()
            );
        }
    }
    Ok(extent)
}

/// Byte range of the storage the view reaches (`start..end`; empty tensors reach nothing),
/// after [`check_view`]; the element count must fit in 64 bits too, as the traversals count
/// elements.
pub fn reached_range(t: &Tensor, st: &Storage) -> Result<std::ops::Range<u64>> {
    numel(t)?;
    Ok(check_view(t, st)?.unwrap_or(0..0))
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::ByteView;
    use crate::dtype::DType;

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
        Tensor::strided(0, DType::UInt8, shape.to_vec(), stride.to_vec(), offset)
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
