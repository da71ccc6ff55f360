//! Tensor views against storages: validation after loading, contiguous bytes.
//!
//! A tensor is `(storage, dtype, shape, stride, storage_offset)` with stride and offset in
//! elements of the *tensor's* dtype (FORMAT.md 3.2). It is valid when every element it can
//! address lies inside its storage's bytes: the view rule of [`crate::strided::view_extent`]
//! (checked arithmetic, nothing negative; a tensor with zero elements addresses nothing).
//!
//! `validate_graph` also bounds the graph's depth. It walks the graph with an explicit stack in
//! the exact pre-order a recursive converter would use (children in order, each node entered
//! once, the first time it is reached), so the depth it measures is the deepest recursion the
//! binding's identity-cached conversion can reach. The child order is
//! [`crate::value::Node::for_each_child`]'s, the one the binding's conversion follows too.

use crate::error::Result;
use crate::options::Limits;
use crate::value::{Graph, Node, Tensor, Value};
use std::borrow::Cow;

/// Checks every invariant `value.rs` promises: references and storage ids in range, storage
/// sizes, tensor views inside their storages, dims and depth within `limits`.
pub fn validate_graph(graph: &Graph, limits: &Limits) -> Result<()> {
    for (i, s) in graph.storages.iter().enumerate() {
        let want = s.numel.checked_mul(s.dtype.element_size() as u64);
        if want != Some(s.data.len() as u64) {
            crate::bail!(
                StorageSize,
                "storage '{}' (#{i}) holds {} bytes but {} elements of {} need {}",
                s.key,
                s.data.len(),
                s.numel,
                s.dtype,
                want.map_or_else(|| "more than 2^64".to_string(), |w| w.to_string())
            );
        }
    }
    for node in &graph.nodes {
        match node {
            Node::Tensor(t) => {
                if t.shape.len() > limits.max_dims {
                    crate::bail!(
                        LimitExceeded,
                        "a tensor has {} dimensions, more than Limits::max_dims ({})",
                        t.shape.len(),
                        limits.max_dims
                    );
                }
                check_view(graph, t)?;
            }
            Node::Storage(id) if *id >= graph.storages.len() => {
                crate::bail!(BadPickle, "storage reference #{id} does not exist")
            }
            _ => {}
        }
    }
    check_depth(graph, limits.max_depth)
}

/// A tensor inside its storage ([`crate::strided::check_view`], the one view rule), or a
/// meta tensor / a tensor without elements when it has none.
fn check_view(graph: &Graph, t: &Tensor) -> Result<()> {
    match t.storage {
        Some(id) => {
            let Some(s) = graph.storages.get(id) else {
                crate::bail!(
                    BadPickle,
                    "tensor refers to storage #{id}, which does not exist"
                );
            };
            crate::strided::check_view(t, s).map(|_| ())
        }
        None => {
            if crate::strided::view_extent(t)?.is_some() && t.device.as_deref() != Some("meta") {
                crate::bail!(
                    StorageBounds,
                    "a non-meta tensor with elements has no storage"
                );
            }
            Ok(())
        }
    }
}

/// Iterative pre-order DFS from the root (see the module docs).
fn check_depth(graph: &Graph, max_depth: usize) -> Result<()> {
    let mut visited = vec![false; graph.nodes.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    if let Some(Value::Ref(id)) = &graph.root {
        stack.push((*id, 1));
    }
    let mut kids: Vec<usize> = Vec::new();
    while let Some((id, depth)) = stack.pop() {
        let Some(seen) = visited.get_mut(id) else {
            crate::bail!(BadPickle, "reference to object #{id}, which does not exist");
        };
        if *seen {
            continue;
        }
        *seen = true;
        if depth > max_depth {
            crate::bail!(
                LimitExceeded,
                "objects are nested more than {max_depth} levels deep (Limits::max_depth)"
            );
        }
        let Some(node) = graph.nodes.get(id) else {
            crate::bail!(BadPickle, "reference to object #{id}, which does not exist");
        };
        kids.clear();
        node.for_each_child(&mut |v| {
            if let Value::Ref(c) = v {
                kids.push(*c);
            }
        });
        // Reversed so the first child is popped first: the same order as recursion.
        stack.extend(kids.iter().rev().map(|&c| (c, depth + 1)));
    }
    Ok(())
}

pub use crate::strided::is_contiguous;

/// The tensor's elements as C-order bytes in the storage's (little-endian) byte order:
/// borrowed from the storage when the view is already contiguous, copied otherwise
/// ([`crate::strided::contiguous_bytes`] on the tensor's storage).
pub fn contiguous_bytes<'g>(graph: &'g Graph, t: &Tensor) -> Result<Cow<'g, [u8]>> {
    let Some(id) = t.storage else {
        crate::bail!(
            StorageBounds,
            "tensor has no storage (meta tensors have no data)"
        );
    };
    let Some(s) = graph.storages.get(id) else {
        crate::bail!(
            BadPickle,
            "tensor refers to storage #{id}, which does not exist"
        );
    };
    crate::strided::contiguous_bytes(t, s)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::ByteView;
    use crate::dtype::DType;
    use crate::error::ErrorCode;
    use crate::value::Storage;

    fn graph_with(data: Vec<u8>, dtype: DType) -> Graph {
        let mut g = Graph::new();
        let numel = (data.len() / dtype.element_size()) as u64;
        g.add_storage(Storage {
            key: "0".into(),
            dtype,
            untyped: false,
            numel,
            location: "cpu".into(),
            data: ByteView::from_vec(data),
        });
        g
    }

    fn tensor(shape: &[i64], stride: &[i64], offset: i64, dtype: DType) -> Tensor {
        Tensor::strided(0, dtype, shape.to_vec(), stride.to_vec(), offset)
    }

    fn code(g: &Graph) -> Option<ErrorCode> {
        validate_graph(g, &Limits::default()).err().map(|e| e.code)
    }

    #[test]
    fn bounds() {
        let mut g = graph_with((0u8..24).collect(), DType::Float32); // 6 floats
        let r = g.add(Node::Tensor(tensor(&[2, 3], &[3, 1], 0, DType::Float32)));
        g.root = Some(r);
        assert_eq!(code(&g), None);
        g.nodes
            .push(Node::Tensor(tensor(&[2, 3], &[3, 1], 1, DType::Float32)));
        assert_eq!(code(&g), Some(ErrorCode::StorageBounds));
        g.nodes.pop();
        g.nodes
            .push(Node::Tensor(tensor(&[2], &[-1], 1, DType::Float32)));
        assert_eq!(code(&g), Some(ErrorCode::StorageBounds));
        g.nodes.pop();
        g.nodes.push(Node::Tensor(tensor(
            &[0, 5],
            &[100, 100],
            6,
            DType::Float32,
        )));
        assert_eq!(code(&g), None, "empty tensors address nothing");
        g.nodes.push(Node::Tensor(tensor(
            &[2, i64::MAX],
            &[i64::MAX, 2],
            0,
            DType::Float32,
        )));
        assert_eq!(code(&g), Some(ErrorCode::StorageBounds));
        g.nodes.pop();
        // The tensor's own dtype counts: 3 float64 do not fit in 24 bytes at offset 1.
        g.nodes
            .push(Node::Tensor(tensor(&[3], &[1], 1, DType::Float64)));
        assert_eq!(code(&g), Some(ErrorCode::StorageBounds));
        g.nodes.pop();
        g.nodes.push(Node::Tensor(tensor(
            &vec![1; 65],
            &vec![1; 65],
            0,
            DType::Float32,
        )));
        assert_eq!(code(&g), Some(ErrorCode::LimitExceeded));
        g.nodes.pop();
        g.storages[0].numel = 7;
        assert_eq!(code(&g), Some(ErrorCode::StorageSize));
    }

    #[test]
    fn depth_follows_first_visit() {
        let mut g = Graph::new();
        let mut v = g.add(Node::List(vec![]));
        for _ in 0..9 {
            v = g.add(Node::List(vec![v]));
        }
        g.root = Some(v.clone());
        let lim = |d| Limits {
            max_depth: d,
            ..Limits::default()
        };
        assert!(validate_graph(&g, &lim(10)).is_ok());
        assert_eq!(
            validate_graph(&g, &lim(9)).err().map(|e| e.code),
            Some(ErrorCode::LimitExceeded)
        );
        // A cycle is visited once.
        if let Some(Node::List(items)) = g.nodes.get_mut(0) {
            items.push(v);
        }
        assert!(validate_graph(&g, &lim(10)).is_ok());
    }

    #[test]
    fn contiguous() {
        let g = graph_with((0u8..6).collect(), DType::UInt8);
        let t = tensor(&[2, 3], &[3, 1], 0, DType::UInt8);
        assert!(
            matches!(contiguous_bytes(&g, &t).ok(), Some(Cow::Borrowed(b)) if b == [0, 1, 2, 3, 4, 5])
        );
        let tt = tensor(&[3, 2], &[1, 3], 0, DType::UInt8);
        assert_eq!(
            contiguous_bytes(&g, &tt).ok().as_deref(),
            Some(&[0u8, 3, 1, 4, 2, 5][..])
        );
        let g2 = graph_with((0u8..8).collect(), DType::Int16);
        let s = tensor(&[2], &[2], 1, DType::Int16);
        assert_eq!(
            contiguous_bytes(&g2, &s).ok().as_deref(),
            Some(&[2u8, 3, 6, 7][..])
        );
    }
}
