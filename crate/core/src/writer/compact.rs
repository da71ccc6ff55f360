//! `SaveOptions::compact`: write only the bytes tensors reach.
//!
//! Rule: a tensor that views its whole storage contiguously (offset 0, C-contiguous strides,
//! `numel × element_size == storage bytes`) keeps that storage. Every other view (a slice, a
//! transposed or strided view, a view of part of a bigger buffer) gets a compact clone: a new
//! storage holding just its elements in C order, offset 0, contiguous strides. Tensors with the
//! *same* view of the same storage (same dtype, shape, stride, offset — tied weights) share one
//! clone, so they stay tied; views that merely overlap do not (that sharing is what compacting
//! gives up). Bare storage objects and storages no tensor views partially are untouched.
//!
//! Only the copied views allocate; full views are never copied.

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Graph, Node, Storage, StorageId};
use std::collections::HashMap;

fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d.max(1));
    }
    strides
}

fn is_full_view(shape: &[i64], stride: &[i64], offset: i64, dtype: DType, st: &Storage) -> bool {
    let numel: i128 = shape.iter().map(|&d| d as i128).product();
    if offset != 0 || numel * dtype.element_size() as i128 != st.data.len() as i128 {
        return false;
    }
    // Dimensions of size 1 may carry any stride.
    let want = contiguous_strides(shape);
    shape
        .iter()
        .zip(stride)
        .zip(&want)
        .all(|((&d, &s), &w)| d == 1 || s == w)
}

/// Returns a copy of `graph` whose partial views have their own compact storages, or `None`
/// when nothing needs compacting.
pub fn compact_graph(graph: &Graph) -> Result<Option<Graph>> {
    type ViewKey = (StorageId, DType, Vec<i64>, Vec<i64>, i64);
    let mut clones: HashMap<ViewKey, StorageId> = HashMap::new();
    let mut out: Option<Graph> = None;
    for id in 0..graph.nodes.len() {
        let Some(Node::Tensor(t)) = graph.nodes.get(id) else {
            continue;
        };
        let Some(sid) = t.storage else { continue };
        if t.quantizer.is_some() {
            continue; // keep quantized storages as they are
        }
        let Some(st) = graph.storages.get(sid) else {
            continue;
        };
        if is_full_view(&t.shape, &t.stride, t.storage_offset, t.dtype, st) {
            continue;
        }
        let g = out.get_or_insert_with(|| graph.clone());
        let key: ViewKey = (
            sid,
            t.dtype,
            t.shape.clone(),
            t.stride.clone(),
            t.storage_offset,
        );
        let new_sid = match clones.get(&key) {
            Some(&s) => s,
            None => {
                let bytes = crate::strided::contiguous_bytes(t, st)?.into_owned();
                let numel = (bytes.len() / st.dtype.element_size().max(1)) as u64;
                let exact = bytes.len() % st.dtype.element_size().max(1) == 0;
                let (dtype, numel, untyped) = if exact {
                    (st.dtype, numel, st.untyped)
                } else {
                    (DType::UInt8, bytes.len() as u64, true)
                };
                let s = g.add_storage(Storage {
                    key: String::new(),
                    dtype,
                    untyped,
                    numel,
                    location: st.location.clone(),
                    data: ByteView::from_vec(bytes),
                });
                clones.insert(key, s);
                s
            }
        };
        if let Some(Node::Tensor(nt)) = g.nodes.get_mut(id) {
            nt.storage = Some(new_sid);
            nt.storage_offset = 0;
            nt.stride = contiguous_strides(&nt.shape);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The compact writer's gather: [`crate::strided::contiguous_bytes`] over raw bytes.
    fn gather(
        data: &[u8],
        _elsize: usize,
        shape: &[i64],
        stride: &[i64],
        offset: i64,
    ) -> Result<Vec<u8>> {
        let st = Storage {
            key: "0".into(),
            dtype: DType::Int8,
            untyped: false,
            numel: data.len() as u64,
            location: "cpu".into(),
            data: crate::bytes::ByteView::from_vec(data.to_vec()),
        };
        let t =
            crate::value::Tensor::strided(0, DType::Int8, shape.to_vec(), stride.to_vec(), offset);
        Ok(crate::strided::contiguous_bytes(&t, &st)?.into_owned())
    }

    #[test]
    fn gathers_transposed_view() {
        // 2x3 int8 [[0,1,2],[3,4,5]] viewed transposed (3x2, strides (1,3)).
        let data = [0u8, 1, 2, 3, 4, 5];
        assert_eq!(
            gather(&data, 1, &[3, 2], &[1, 3], 0).ok(),
            Some(vec![0, 3, 1, 4, 2, 5])
        );
        assert_eq!(gather(&data, 1, &[2], &[2], 1).ok(), Some(vec![1, 3]));
        assert!(gather(&data, 1, &[4], &[2], 0).is_err());
    }
}
