//! Dense values for `inspect --sha256`: sparse tensors as `t.to_dense()` holds them, numpy
//! arrays in C order, little-endian.
//!
//! Sparse rules (torch's `sparse_to_dense`: zeros, then `add_` of the sparse tensor):
//! * COO `(indices [sparse_dim, nnz], values [nnz, *dense_dims], size)`: each entry is added
//!   in index order in the values' dtype (f16/bf16 rounded after every addition, integers
//!   wrapping, bool or-ed), so uncoalesced duplicates sum as torch sums them.
//! * CSR/CSC/BSR/BSC `(compressed [*batch, n+1], plain [*batch, nnz], values, size)`:
//!   values are `[*batch, nnz, *dense_dims]`, or `[*batch, nnz, bh, bw, *dense_dims]` for
//!   blocks; the compressed dimension is rows for CSR/BSR and columns for CSC/BSC.
//!
//! Anything that does not fit (an index outside the size, a count that disagrees) gives no
//! digest (`None`) rather than a wrong one; so do dtypes without a defined addition here.

use crate::dtype::DType;
use crate::value::{Graph, NdArray, Node, SparseTensor, Tensor, Value};
use half::{bf16, f16};

/// Largest dense form (bytes) a sparse tensor is expanded to for its digest.
pub const MAX_DENSE_BYTES: u64 = 1 << 32;

fn tensor_of<'g>(graph: &'g Graph, v: Option<&Value>) -> Option<&'g Tensor> {
    match v.and_then(|v| graph.deref(v)) {
        Some(Node::Tensor(t)) => Some(t),
        _ => None,
    }
}

/// An integer index tensor's values (int32 or int64) in C order.
fn indices(graph: &Graph, t: &Tensor) -> Option<Vec<i64>> {
    let b = crate::tensor::contiguous_bytes(graph, t).ok()?;
    match t.dtype {
        DType::Int64 => Some(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        DType::Int32 => Some(
            b.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as i64)
                .collect(),
        ),
        _ => None,
    }
}

fn product(dims: &[i64]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?))
}

/// `dst += src`, one element of `dtype`; `None` for dtypes without an addition here.
fn add_elem(dtype: DType, dst: &mut [u8], src: &[u8]) -> Option<()> {
    macro_rules! num {
        ($t:ty, $n:literal, $op:expr) => {{
            let a = <$t>::from_le_bytes(dst.get(..$n)?.try_into().ok()?);
            let b = <$t>::from_le_bytes(src.get(..$n)?.try_into().ok()?);
            let f: fn($t, $t) -> $t = $op;
            dst.get_mut(..$n)?.copy_from_slice(&f(a, b).to_le_bytes());
        }};
    }
    match dtype {
        DType::Float64 => num!(f64, 8, |a, b| a + b),
        DType::Float32 => num!(f32, 4, |a, b| a + b),
        DType::Float16 => num!(u16, 2, |a, b| {
            f16::from_f32(f16::from_bits(a).to_f32() + f16::from_bits(b).to_f32()).to_bits()
        }),
        DType::BFloat16 => num!(u16, 2, |a, b| {
            bf16::from_f32(bf16::from_bits(a).to_f32() + bf16::from_bits(b).to_f32()).to_bits()
        }),
        DType::Complex64 => {
            let (d0, d1) = dst.split_at_mut(4);
            add_elem(DType::Float32, d0, src.get(..4)?)?;
            add_elem(DType::Float32, d1, src.get(4..)?)?;
        }
        DType::Complex128 => {
            let (d0, d1) = dst.split_at_mut(8);
            add_elem(DType::Float64, d0, src.get(..8)?)?;
            add_elem(DType::Float64, d1, src.get(8..)?)?;
        }
        DType::Int8 => num!(i8, 1, i8::wrapping_add),
        DType::UInt8 => num!(u8, 1, u8::wrapping_add),
        DType::Int16 => num!(i16, 2, i16::wrapping_add),
        DType::UInt16 => num!(u16, 2, u16::wrapping_add),
        DType::Int32 => num!(i32, 4, i32::wrapping_add),
        DType::UInt32 => num!(u32, 4, u32::wrapping_add),
        DType::Int64 => num!(i64, 8, i64::wrapping_add),
        DType::UInt64 => num!(u64, 8, u64::wrapping_add),
        DType::Bool => num!(u8, 1, |a, b| u8::from(a != 0 || b != 0)),
        _ => return None,
    }
    Some(())
}

/// Adds `n` consecutive elements of `src` (from element `from`) onto `out` at element `at`.
fn add_run(dtype: DType, out: &mut [u8], at: u64, src: &[u8], from: u64, n: u64) -> Option<()> {
    let size = dtype.element_size() as u64;
    for j in 0..n {
        let d = usize::try_from((at + j) * size).ok()?;
        let s = usize::try_from((from + j) * size).ok()?;
        let es = size as usize;
        add_elem(
            dtype,
            out.get_mut(d..d.checked_add(es)?)?,
            src.get(s..s.checked_add(es)?)?,
        )?;
    }
    Some(())
}

/// The C-order little-endian bytes of `t.to_dense()`, `shape` being the sparse tensor's size.
pub fn sparse_dense_bytes(graph: &Graph, s: &SparseTensor, shape: &[i64]) -> Option<Vec<u8>> {
    let coo = s.layout == "sparse_coo";
    let values = tensor_of(graph, s.args.get(if coo { 1 } else { 2 }))?;
    let dtype = values.dtype;
    add_elem(dtype, &mut [0u8; 16], &[0u8; 16])?;
    let numel = product(shape)?;
    let nbytes = numel.checked_mul(dtype.element_size() as u64)?;
    if nbytes > MAX_DENSE_BYTES {
        return None;
    }
    let mut out = Vec::new();
    out.try_reserve_exact(usize::try_from(nbytes).ok()?).ok()?;
    out.resize(usize::try_from(nbytes).ok()?, 0);
    let vals = crate::tensor::contiguous_bytes(graph, values).ok()?;
    if coo {
        coo_into(graph, s, shape, values, &vals, &mut out)?;
    } else {
        compressed_into(graph, s, shape, values, &vals, &mut out)?;
    }
    Some(out)
}

fn coo_into(
    graph: &Graph,
    s: &SparseTensor,
    shape: &[i64],
    values: &Tensor,
    vals: &[u8],
    out: &mut [u8],
) -> Option<()> {
    let idx_t = tensor_of(graph, s.args.first())?;
    let idx = indices(graph, idx_t)?;
    let [sparse_dim, nnz] = idx_t.shape.as_slice() else {
        return None;
    };
    let (sd, nnz) = (
        usize::try_from(*sparse_dim).ok()?,
        u64::try_from(*nnz).ok()?,
    );
    let dense_dims = shape.get(sd..)?;
    let per = product(dense_dims)?;
    if values.shape.first().copied() != Some(nnz as i64) || values.shape.get(1..)? != dense_dims {
        return None;
    }
    for k in 0..nnz {
        let mut lin = 0u64;
        for (d, &size) in shape.get(..sd)?.iter().enumerate() {
            let i = *idx.get(d * nnz as usize + k as usize)?;
            if i < 0 || i >= size {
                return None;
            }
            lin = lin * size as u64 + i as u64;
        }
        add_run(values.dtype, out, lin * per, vals, k * per, per)?;
    }
    Some(())
}

fn compressed_into(
    graph: &Graph,
    s: &SparseTensor,
    shape: &[i64],
    values: &Tensor,
    vals: &[u8],
    out: &mut [u8],
) -> Option<()> {
    let comp_t = tensor_of(graph, s.args.first())?;
    let plain_t = tensor_of(graph, s.args.get(1))?;
    let (comp, plain) = (indices(graph, comp_t)?, indices(graph, plain_t)?);
    let nb = comp_t.shape.len().checked_sub(1)?;
    let batch = product(comp_t.shape.get(..nb)?)?;
    let n_comp = u64::try_from(*comp_t.shape.last()?).ok()?.checked_sub(1)?;
    let nnz = u64::try_from(*plain_t.shape.last()?).ok()?;
    let blocked = matches!(s.layout.as_str(), "sparse_bsr" | "sparse_bsc");
    let rows_compressed = matches!(s.layout.as_str(), "sparse_csr" | "sparse_bsr");
    let (bh, bw) = if blocked {
        (*values.shape.get(nb + 1)?, *values.shape.get(nb + 2)?)
    } else {
        (1, 1)
    };
    let dense_dims = shape.get(nb + 2..)?;
    let per = product(dense_dims)?;
    let (rows, cols) = (*shape.get(nb)?, *shape.get(nb + 1)?);
    if bh <= 0 || bw <= 0 || rows % bh != 0 || cols % bw != 0 {
        return None;
    }
    let (bh, bw) = (bh as u64, bw as u64);
    let (rows, cols) = (rows as u64, cols as u64);
    let (brows, bcols) = (rows / bh, cols / bw);
    let block_vals = bh * bw * per;
    // values: [*batch, nnz, (bh, bw,) *dense]
    let want_vals = batch.checked_mul(nnz)?.checked_mul(block_vals)?;
    if product(&values.shape)? != want_vals
        || plain.len() as u64 != batch.checked_mul(nnz)?
        || comp.len() as u64 != batch.checked_mul(n_comp + 1)?
        || n_comp != if rows_compressed { brows } else { bcols }
    {
        return None;
    }
    let plain_limit = if rows_compressed { bcols } else { brows };
    for b in 0..batch {
        let cbase = (b * (n_comp + 1)) as usize;
        for c in 0..n_comp {
            let (lo, hi) = (
                *comp.get(cbase + c as usize)?,
                *comp.get(cbase + c as usize + 1)?,
            );
            if lo < 0 || hi < lo || hi as u64 > nnz {
                return None;
            }
            for k in lo as u64..hi as u64 {
                let p = *plain.get((b * nnz + k) as usize)?;
                if p < 0 || p as u64 >= plain_limit {
                    return None;
                }
                let (br, bc) = if rows_compressed {
                    (c, p as u64)
                } else {
                    (p as u64, c)
                };
                for i in 0..bh {
                    for j in 0..bw {
                        let (r, col) = (br * bh + i, bc * bw + j);
                        let at = ((b * rows + r) * cols + col) * per;
                        let from = ((b * nnz + k) * bh * bw + i * bw + j) * per;
                        add_run(values.dtype, out, at, vals, from, per)?;
                    }
                }
            }
        }
    }
    Some(())
}

/// The array's values in C order, little-endian (numpy's `ascontiguousarray(a).tobytes()`
/// after a big-endian array is converted); `None` when the data does not fit the shape.
pub fn ndarray_c_bytes(a: &NdArray) -> Option<Vec<u8>> {
    let size = crate::pickle::descr_itemsize(&a.descr)?;
    let numel = product(&a.shape)?;
    if numel.checked_mul(size)? != a.data.len() as u64 {
        return None;
    }
    let kind = a
        .descr
        .trim_start_matches(['<', '>', '|', '='])
        .chars()
        .next()?;
    let swap = match kind {
        _ if !a.descr.starts_with('>') => 1,
        'i' | 'u' | 'f' | 'M' | 'm' => size,
        'c' => size / 2,
        'U' => 4,
        _ => 1,
    };
    let mut data: Vec<u8> = if a.fortran_order && a.shape.len() > 1 {
        // Fortran order: element (i0, .., in) at sum(i_k * prod(shape[..k])).
        let mut out = Vec::with_capacity(a.data.len());
        let dims: Vec<u64> = a.shape.iter().map(|&d| d as u64).collect();
        let mut idx = vec![0u64; dims.len()];
        for _ in 0..numel {
            let mut off = 0u64;
            let mut mul = 1u64;
            for (k, &i) in idx.iter().enumerate() {
                off += i * mul;
                mul *= dims.get(k).copied().unwrap_or(1);
            }
            let s = usize::try_from(off * size).ok()?;
            out.extend_from_slice(a.data.get(s..s + size as usize)?);
            // C order: the last index moves fastest.
            for k in (0..idx.len()).rev() {
                let (Some(i), Some(&d)) = (idx.get_mut(k), dims.get(k)) else {
                    break;
                };
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        out
    } else {
        a.data.clone()
    };
    if swap > 1 {
        for c in data.chunks_exact_mut(swap as usize) {
            c.reverse();
        }
    }
    Some(data)
}
