//! A summary of a loaded file: the CLI's `torchsave inspect FILE --json [--sha256]`.
//!
//! JSON schema (ARCHITECTURE.md), one object:
//! `{"format", "tensors": [{"path", "dtype", "shape", "stride", "storage_offset",
//! "requires_grad"[, "layout"][, "sha256"]}], "arrays": [{"kind": "numpy", "path", "dtype",
//! "shape"[, "sha256"]}], "globals", "weights_only_ok"}`.
//!
//! * `path` walks from the root: dict / OrderedDict keys (a JSON string, number, boolean or
//!   null as the key was; other keys as their Python-ish text), list / tuple / set indices,
//!   and for opaque objects the keys of their pickled state (a `(dict, slots)` state walks
//!   both), their SETITEM'd keys and APPENDed indices. Positional arguments of opaque objects
//!   are not walked (the schema has no path element for them).
//! * A tensor reached under several keys (tied weights: `{'a': t, 'b': t}`) is listed at
//!   EVERY path, because the keys are what `load_state_dict` matches. A container reached
//!   twice is expanded only the first time, so shared sub-trees (and cycles) cannot blow the
//!   listing up exponentially; its tensors appear under the first path only.
//! * `sha256` (only with `InspectOptions::sha256`) is over the tensor's values as a contiguous
//!   C-order little-endian buffer; quantized tensors hash their integer representation.
//!   Sparse tensors (listed with `layout`, `stride`/`storage_offset` null) hash their dense
//!   values, `t.to_dense()`: COO duplicates are summed in index order in the values' dtype as
//!   torch's `to_dense` adds them; CSR/CSC/BSR/BSC (batched and hybrid too) are scattered
//!   into zeros. It is `null` where there are no values to hash: meta tensors, sparse
//!   tensors of dtypes this reader cannot add (quantized, float8, bits) or whose dense form
//!   would exceed [`MAX_DENSE_BYTES`], and components that do not fit their sizes.
//! * `arrays` lists numpy arrays (`numpy.ndarray` values, anywhere a tensor could be found,
//!   by the same walk and paths, DFS order), each `"kind": "numpy"`; they are not tensors:
//!   `dtype` is numpy's name (`float64`, `int16`, `bool`, `str96`, `object`), there is no
//!   stride / offset / requires_grad, and `sha256` is over the values in C order,
//!   little-endian (`np.ascontiguousarray(a).tobytes()` after a big-endian array is
//!   byte-swapped); `null` for object arrays. numpy scalars are not listed.
//! * `weights_only_ok`: the verdict of the load's weights-only policy
//!   (`pickle::policy::Policy`, kept in `LoadInfo::weights_only_refusal`): true when torch
//!   2.11's default policy accepts every construct of the file (container, opcodes, globals,
//!   calls, BUILD, APPEND/SETITEM targets, persistent ids), whatever options the load used.

use crate::container::Loaded;
use crate::value::{Format, Graph, Node, Tensor, Value};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use std::collections::HashSet;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// Compute a SHA-256 per tensor (reads every byte).
    pub sha256: bool,
}

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
pub enum PathKey {
    Str(String),
    Int(i64),
    /// Any other key, already rendered as JSON (`true`, `null`, `1.5`, a big int, or a string
    /// holding a Python-ish rendering of a tuple key).
    Json(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    pub path: Vec<PathKey>,
    /// PyTorch's name without `torch.` (`float32`, `qint8`).
    pub dtype: String,
    pub shape: Vec<i64>,
    /// `None` for sparse tensors.
    pub stride: Option<Vec<i64>>,
    /// `None` for sparse tensors.
    pub storage_offset: Option<i64>,
    pub requires_grad: bool,
    /// `sparse_coo`, `sparse_csr`, ... for sparse tensors; `None` for strided ones.
    pub layout: Option<String>,
    /// Lower-case hex; `None` when not requested or not computable.
    pub sha256: Option<String>,
}

/// A numpy array, as `inspect` lists it (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ArrayReport {
    pub path: Vec<PathKey>,
    /// numpy's dtype name (`float64`, `str96`, `object`).
    pub dtype: String,
    pub shape: Vec<i64>,
    /// Lower-case hex; `None` when not requested or for object arrays.
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InspectReport {
    pub format: Format,
    pub tensors: Vec<TensorReport>,
    pub arrays: Vec<ArrayReport>,
    pub globals: Vec<String>,
    pub weights_only_ok: bool,
    /// Whether `sha256` was requested (decides whether the key is written).
    pub with_sha256: bool,
}

/// Summarises a loaded file.
pub fn inspect(loaded: &Loaded, opts: &InspectOptions) -> InspectReport {
    let graph = &loaded.graph;
    let mut tensors = Vec::new();
    let mut arrays = Vec::new();
    let mut expanded: HashSet<usize> = HashSet::new();
    // Depth-first, children in order: a stack of (value, path), pushed in reverse.
    let mut stack: Vec<(Value, Vec<PathKey>)> = vec![(graph.root().clone(), Vec::new())];
    while let Some((value, path)) = stack.pop() {
        let Value::Ref(id) = value else { continue };
        let Some(node) = graph.node(id) else { continue };
        match node {
            Node::Tensor(t) => tensors.push(tensor_report(graph, t, path, opts.sha256)),
            Node::SparseTensor(s) => tensors.push(sparse_report(graph, s, path, opts.sha256)),
            Node::NdArray(a) => arrays.push(array_report(a, path, opts.sha256)),
            _ => {
                if !expanded.insert(id) {
                    continue;
                }
                let mut children: Vec<(Value, PathKey)> = Vec::new();
                push_children(graph, node, &mut children);
                for (v, k) in children.into_iter().rev() {
                    if matches!(v, Value::Ref(_)) {
                        let mut p = path.clone();
                        p.push(k);
                        stack.push((v, p));
                    }
                }
            }
        }
    }
    let globals = loaded.info.globals.clone();
    let weights_only_ok = loaded.info.weights_only_refusal.is_none();
    InspectReport {
        format: loaded.info.format,
        tensors,
        arrays,
        globals,
        weights_only_ok,
        with_sha256: opts.sha256,
    }
}

fn index_key(i: usize) -> PathKey {
    PathKey::Int(i64::try_from(i).unwrap_or(i64::MAX))
}

/// The `path` contract of `inspect --json` (ARCHITECTURE.md): values only, each with the key
/// that reaches it (dict key, list index, an object's state keys). This is not the graph's
/// children order ([`Node::for_each_child`], which also visits keys, call arguments and tensor
/// metadata): it is the projection the JSON paths name, and it owns only that.
fn push_children(graph: &Graph, node: &Node, out: &mut Vec<(Value, PathKey)>) {
    match node {
        Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
            out.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), index_key(i))),
            );
        }
        Node::Dict(items) | Node::OrderedDict { items, .. } => {
            out.extend(items.iter().map(|(k, v)| (v.clone(), key_of(graph, k))));
        }
        Node::Object(o) => {
            if let Some(state) = &o.state {
                push_state(graph, state, out);
            }
            out.extend(
                o.dict_items
                    .iter()
                    .map(|(k, v)| (v.clone(), key_of(graph, k))),
            );
            out.extend(
                o.list_items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.clone(), index_key(i))),
            );
        }
        _ => {}
    }
}

/// An object's state: a dict (its keys), or a `(dict, slots)` tuple (both dicts' keys).
fn push_state(graph: &Graph, state: &Value, out: &mut Vec<(Value, PathKey)>) {
    match graph.deref(state) {
        Some(Node::Dict(items)) | Some(Node::OrderedDict { items, .. }) => {
            out.extend(items.iter().map(|(k, v)| (v.clone(), key_of(graph, k))));
        }
        Some(Node::Tuple(parts)) if parts.len() == 2 => {
            for p in parts {
                if let Some(Node::Dict(items)) = graph.deref(p) {
                    out.extend(items.iter().map(|(k, v)| (v.clone(), key_of(graph, k))));
                }
            }
        }
        _ => {}
    }
}

fn key_of(graph: &Graph, k: &Value) -> PathKey {
    match k {
        Value::Str(s) => PathKey::Str(s.clone()),
        Value::Int(i) => PathKey::Int(*i),
        other => PathKey::Json(scalar_json(graph, other)),
    }
}

fn scalar_json(graph: &Graph, v: &Value) -> String {
    match v {
        Value::None => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Float(f) if f.is_finite() => format!("{f:?}"),
        other => json_string(&python_text(graph, other, 0)),
    }
}

/// A short Python-like rendering of a non-string key (`(1, 'a')`, `b'..'`).
fn python_text(graph: &Graph, v: &Value, depth: usize) -> String {
    match v {
        Value::None => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Complex(r, i) => format!("({r:?}+{i:?}j)"),
        Value::Str(s) => format!("'{s}'"),
        Value::Bytes(b) => format!("b'{}'", b.escape_ascii()),
        Value::Ref(_) if depth > 8 => "...".into(),
        Value::Ref(_) => match graph.deref(v) {
            Some(Node::Tuple(items)) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|x| python_text(graph, x, depth + 1))
                    .collect();
                if parts.len() == 1 {
                    format!("({},)", parts.join(""))
                } else {
                    format!("({})", parts.join(", "))
                }
            }
            Some(Node::Dtype(d)) => format!("torch.{d}"),
            Some(Node::Device(d)) => format!("device('{d}')"),
            Some(Node::Global { module, name }) => format!("{module}.{name}"),
            _ => "<object>".into(),
        },
    }
}

fn tensor_report(graph: &Graph, t: &Tensor, path: Vec<PathKey>, sha: bool) -> TensorReport {
    TensorReport {
        path,
        dtype: t.dtype.name().to_string(),
        shape: t.shape.clone(),
        stride: Some(t.stride.clone()),
        storage_offset: Some(t.storage_offset),
        requires_grad: t.requires_grad,
        layout: None,
        sha256: if sha { tensor_sha256(graph, t) } else { None },
    }
}

fn sparse_report(
    graph: &Graph,
    s: &crate::value::SparseTensor,
    path: Vec<PathKey>,
    sha: bool,
) -> TensorReport {
    // COO: (indices, values, size[, coalesced]); compressed: (compressed, plain, values, size).
    let (values, size) = if s.layout == "sparse_coo" {
        (s.args.get(1), s.args.get(2))
    } else {
        (s.args.get(2), s.args.get(3))
    };
    let dtype = match values.and_then(|v| graph.deref(v)) {
        Some(Node::Tensor(t)) => t.dtype.name().to_string(),
        _ => "unknown".to_string(),
    };
    let shape = match size.and_then(|v| graph.deref(v)) {
        Some(Node::Size(d)) => d.clone(),
        Some(Node::Tuple(items)) | Some(Node::List(items)) => items
            .iter()
            .filter_map(|x| {
                if let Value::Int(i) = x {
                    Some(*i)
                } else {
                    None
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    let sha256 = if sha {
        dense::sparse_dense_bytes(graph, s, &shape).map(|b| crate::strided::sha256_bytes_hex(&b))
    } else {
        None
    };
    TensorReport {
        path,
        dtype,
        shape,
        stride: None,
        storage_offset: None,
        requires_grad: s.requires_grad,
        layout: Some(s.layout.clone()),
        sha256,
    }
}

fn array_report(a: &crate::value::NdArray, path: Vec<PathKey>, sha: bool) -> ArrayReport {
    ArrayReport {
        path,
        dtype: crate::pickle::descr_name(&a.descr),
        shape: a.shape.clone(),
        sha256: if sha && a.items.is_none() {
            dense::ndarray_c_bytes(a).map(|b| crate::strided::sha256_bytes_hex(&b))
        } else {
            None
        },
    }
}

pub use dense::MAX_DENSE_BYTES;

/// SHA-256 over the tensor's elements in C order, little-endian; `None` without data or when
/// the view does not fit its storage (validation normally rules that out).
pub fn tensor_sha256(graph: &Graph, t: &Tensor) -> Option<String> {
    let storage = graph.storages.get(t.storage?)?;
    crate::strided::sha256_hex(t, storage).ok()
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The `inspect --json` document: a serde view of the report, keys in schema order.
struct JsonDoc<'a>(&'a InspectReport);
struct JsonTensor<'a> {
    t: &'a TensorReport,
    with_sha256: bool,
}
struct JsonKey<'a>(&'a PathKey);
struct JsonArray<'a> {
    a: &'a ArrayReport,
    with_sha256: bool,
}

impl Serialize for JsonArray<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let a = self.a;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", "numpy")?;
        let path: Vec<JsonKey<'_>> = a.path.iter().map(JsonKey).collect();
        m.serialize_entry("path", &path)?;
        m.serialize_entry("dtype", &a.dtype)?;
        m.serialize_entry("shape", &a.shape)?;
        if self.with_sha256 {
            m.serialize_entry("sha256", &a.sha256)?;
        }
        m.end()
    }
}

impl Serialize for JsonKey<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            PathKey::Str(x) => s.serialize_str(x),
            PathKey::Int(n) => s.serialize_i64(*n),
            // Already JSON (a big int keeps every digit, a float its Rust rendering).
            PathKey::Json(j) => match RawValue::from_string(j.clone()) {
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(j),
            },
        }
    }
}

impl Serialize for JsonTensor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let t = self.t;
        let mut m = s.serialize_map(None)?;
        let path: Vec<JsonKey<'_>> = t.path.iter().map(JsonKey).collect();
        m.serialize_entry("path", &path)?;
        m.serialize_entry("dtype", &t.dtype)?;
        m.serialize_entry("shape", &t.shape)?;
        m.serialize_entry("stride", &t.stride)?;
        m.serialize_entry("storage_offset", &t.storage_offset)?;
        m.serialize_entry("requires_grad", &t.requires_grad)?;
        if let Some(l) = &t.layout {
            m.serialize_entry("layout", l)?;
        }
        if self.with_sha256 {
            m.serialize_entry("sha256", &t.sha256)?;
        }
        m.end()
    }
}

impl Serialize for JsonDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("format", r.format.as_str())?;
        let tensors: Vec<JsonTensor<'_>> = r
            .tensors
            .iter()
            .map(|t| JsonTensor {
                t,
                with_sha256: r.with_sha256,
            })
            .collect();
        m.serialize_entry("tensors", &tensors)?;
        let arrays: Vec<JsonArray<'_>> = r
            .arrays
            .iter()
            .map(|a| JsonArray {
                a,
                with_sha256: r.with_sha256,
            })
            .collect();
        m.serialize_entry("arrays", &arrays)?;
        m.serialize_entry("globals", &r.globals)?;
        m.serialize_entry("weights_only_ok", &r.weights_only_ok)?;
        m.end()
    }
}

impl InspectReport {
    /// The `inspect --json` object (compact, keys in schema order).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&JsonDoc(self)).unwrap_or_default()
    }
}

mod dense;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::bytes::ByteView;
    use crate::container::LoadInfo;
    use crate::dtype::DType;
    use crate::value::Storage;
    use sha2::{Digest, Sha256};

    fn tensor(storage: usize, shape: Vec<i64>, stride: Vec<i64>, offset: i64) -> Node {
        Node::Tensor(Tensor::strided(
            storage,
            DType::Int16,
            shape,
            stride,
            offset,
        ))
    }

    fn sha_hex(b: &[u8]) -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    }

    #[test]
    fn paths_shared_tensors_and_strided_hash() {
        let mut g = Graph::new();
        // int16 values 0..6 as a 2x3 storage.
        let bytes: Vec<u8> = (0i16..6).flat_map(|x| x.to_le_bytes()).collect();
        let sid = g.add_storage(Storage {
            key: "0".into(),
            dtype: DType::Int16,
            untyped: false,
            numel: 6,
            location: "cpu".into(),
            data: ByteView::from_vec(bytes),
        });
        let t = g.add(tensor(sid, vec![2, 3], vec![3, 1], 0));
        let tt = g.add(tensor(sid, vec![3, 2], vec![1, 3], 0)); // transpose
        let list = g.add(Node::List(vec![Value::Int(5), tt.clone()]));
        let inner = g.add(Node::Dict(vec![(Value::Int(7), t.clone())]));
        let root = g.add(Node::OrderedDict {
            items: vec![
                (Value::Str("a".into()), t.clone()),
                (Value::Str("b\"".into()), t.clone()),
                (Value::Str("l".into()), list),
                (Value::Bool(true), inner.clone()),
                (Value::Str("again".into()), inner),
            ],
            state: None,
        });
        g.root = Some(root);
        let loaded = Loaded {
            graph: g,
            info: LoadInfo {
                format: Format::Zip,
                globals: vec!["collections.OrderedDict".into(), "__main__.Net".into()],
                big_endian: false,
                pickle_protocol: 2,
                archive_name: None,
                version: None,
                weights_only_refusal: Some("GLOBAL __main__.Net is not allowed".into()),
            },
        };
        let r = inspect(&loaded, &InspectOptions { sha256: true });
        let paths: Vec<_> = r.tensors.iter().map(|t| t.path.clone()).collect();
        assert_eq!(
            paths,
            vec![
                vec![PathKey::Str("a".into())],
                vec![PathKey::Str("b\"".into())],
                vec![PathKey::Str("l".into()), PathKey::Int(1)],
                vec![PathKey::Json("true".into()), PathKey::Int(7)],
            ]
        );
        let contiguous: Vec<u8> = (0i16..6).flat_map(|x| x.to_le_bytes()).collect();
        let transposed: Vec<u8> = [0i16, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(
            r.tensors[0].sha256.as_deref(),
            Some(sha_hex(&contiguous).as_str())
        );
        assert_eq!(
            r.tensors[2].sha256.as_deref(),
            Some(sha_hex(&transposed).as_str())
        );
        let json = r.to_json();
        assert!(json.starts_with("{\"format\":\"zip\",\"tensors\":[{\"path\":[\"a\"],\"dtype\":\"int16\",\"shape\":[2,3],\"stride\":[3,1],\"storage_offset\":0,\"requires_grad\":false,\"sha256\":\""));
        assert!(json.contains("\"path\":[\"b\\\"\"]"));
        assert!(json.contains("\"path\":[true,7]"));
        assert!(json
            .ends_with("],\"arrays\":[],\"globals\":[\"collections.OrderedDict\",\"__main__.Net\"],\"weights_only_ok\":false}"));
        let no_sha = inspect(&loaded, &InspectOptions { sha256: false }).to_json();
        assert!(!no_sha.contains("sha256"));
    }
}
