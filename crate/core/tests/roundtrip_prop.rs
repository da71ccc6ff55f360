//! Property test: any graph the writer accepts reads back as the same graph.
//!
//! Random graphs (nested dict/list/tuple/OrderedDict with `_metadata`-like state, ints and
//! bigints, floats including NaN payloads/inf/-0.0, non-ASCII strings, bytes, bools, None,
//! shared nodes, and strided tensor views into shared storages) are saved with `save_to_vec`
//! in the zip format and, when every dtype has a legacy storage class, the legacy format,
//! then loaded with `load_bytes` and compared structurally: container kinds, key order,
//! scalars (floats by bits), tensor metadata and bytes, and the identity pattern of nodes
//! and storages (a bijection between the two graphs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use num_bigint::BigInt;
use proptest::prelude::*;
use std::collections::HashMap;
use torchsave_core::tensor::contiguous_bytes;
use torchsave_core::value::{Node, NodeId, StorageId, Tensor};
use torchsave_core::{
    load_bytes, save_to_vec, ByteView, DType, ErrorCode, Graph, LoadOptions, SaveFormat,
    SaveOptions, Storage, Value,
};

// ----- what proptest generates (shrinkable), and how it becomes a Graph -------------------

const DTYPES: [DType; 9] = [
    DType::Float32,
    DType::Float64,
    DType::Float16,
    DType::BFloat16,
    DType::Int64,
    DType::Int8,
    DType::UInt8,
    DType::Bool,
    // No legacy storage class: zip only, and the legacy writer must refuse it.
    DType::UInt16,
];

#[derive(Clone, Debug)]
struct TensorSpec {
    /// Index into the storage specs (modulo their count).
    storage: usize,
    shape: Vec<i64>,
    /// `None`: contiguous; else per-dimension strides (0 allowed: expanded views).
    stride: Option<Vec<i64>>,
    offset: i64,
    requires_grad: bool,
    parameter: bool,
}

#[derive(Clone, Debug)]
enum Spec {
    None,
    Bool(bool),
    Int(i64),
    Big(i128, u8),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tensor(TensorSpec),
    /// The `n`-th compound node built so far (modulo), referenced again: identity.
    Again(usize),
    List(Vec<Spec>),
    Tuple(Vec<Spec>),
    Dict(Vec<(Key, Spec)>),
    OrderedDict(Vec<(Key, Spec)>, bool),
}

#[derive(Clone, Debug, PartialEq)]
enum Key {
    Str(String),
    Int(i64),
}

#[derive(Clone, Debug)]
struct Case {
    /// Dtype index and a seed for the bytes of each storage.
    storages: Vec<(usize, u64)>,
    root: Spec,
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(0.0),
        // Any bit pattern: NaN payloads, subnormals.
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z._]{0,8}",
        // Any Unicode scalar: non-ASCII, astral, controls.
        any::<Vec<char>>().prop_map(|c| c.into_iter().take(6).collect()),
        Just("ünïcødé 🔥 数据".to_string()),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![3 => text().prop_map(Key::Str), 1 => any::<i64>().prop_map(Key::Int)]
}

fn tensor() -> impl Strategy<Value = TensorSpec> {
    (
        0usize..4,
        prop::collection::vec(0i64..4, 0..4),
        prop::option::of(prop::collection::vec(0i64..5, 3)),
        0i64..5,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(storage, shape, stride, offset, requires_grad, parameter)| TensorSpec {
                storage,
                stride: stride.map(|s| s.into_iter().take(shape.len()).collect()),
                shape,
                offset,
                requires_grad,
                parameter,
            },
        )
}

fn spec() -> impl Strategy<Value = Spec> {
    let leaf = prop_oneof![
        1 => Just(Spec::None),
        1 => any::<bool>().prop_map(Spec::Bool),
        1 => prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            -300i64..300
        ]
        .prop_map(Spec::Int),
        1 => (any::<i128>(), 0u8..3).prop_map(|(v, shift)| Spec::Big(v, shift)),
        1 => float().prop_map(Spec::Float),
        1 => text().prop_map(Spec::Str),
        1 => prop::collection::vec(any::<u8>(), 0..12).prop_map(Spec::Bytes),
        3 => tensor().prop_map(Spec::Tensor),
        1 => any::<usize>().prop_map(Spec::Again),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Spec::List),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Spec::Tuple),
            prop::collection::vec((key(), inner.clone()), 0..5).prop_map(Spec::Dict),
            (prop::collection::vec((key(), inner), 0..5), any::<bool>())
                .prop_map(|(items, md)| Spec::OrderedDict(items, md)),
        ]
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((0..DTYPES.len(), any::<u64>()), 1..4),
        spec(),
    )
        .prop_map(|(storages, root)| Case { storages, root })
}

fn contiguous(shape: &[i64]) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for (st, &d) in s.iter_mut().zip(shape).rev() {
        *st = acc;
        acc *= d.max(1);
    }
    s
}

struct Builder {
    graph: Graph,
    /// Element count each storage must reach, raised as tensors are built.
    extent: Vec<i64>,
    compound: Vec<Value>,
}

impl Builder {
    fn build(&mut self, case: &Case, spec: &Spec) -> Value {
        match spec {
            Spec::None => Value::None,
            Spec::Bool(b) => Value::Bool(*b),
            Spec::Int(i) => Value::Int(*i),
            Spec::Big(v, shift) => {
                let b = BigInt::from(*v) << (64 * *shift as usize);
                match i64::try_from(&b) {
                    // The reader gives Int for what fits: so must the graph we compare with.
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(b),
                }
            }
            Spec::Float(f) => Value::Float(*f),
            Spec::Str(s) => Value::Str(s.clone()),
            Spec::Bytes(b) => Value::Bytes(b.clone()),
            Spec::Again(n) => {
                if self.compound.is_empty() {
                    Value::None
                } else {
                    self.compound[n % self.compound.len()].clone()
                }
            }
            Spec::Tensor(t) => {
                let sid = t.storage % case.storages.len();
                let dtype = DTYPES[case.storages[sid].0];
                let stride = t.stride.clone().unwrap_or_else(|| contiguous(&t.shape));
                let numel: i64 = t.shape.iter().product();
                let end = if numel == 0 {
                    t.offset
                } else {
                    t.offset
                        + t.shape
                            .iter()
                            .zip(&stride)
                            .map(|(d, s)| (d - 1) * s)
                            .sum::<i64>()
                        + 1
                };
                self.extent[sid] = self.extent[sid].max(end);
                let v = self.graph.add(Node::Tensor(Tensor {
                    storage: Some(sid),
                    dtype,
                    shape: t.shape.clone(),
                    stride,
                    storage_offset: t.offset,
                    requires_grad: t.requires_grad,
                    is_parameter: t.parameter,
                    parameter_state: None,
                    quantizer: None,
                    metadata: None,
                    subclass: None,
                    device: None,
                }));
                self.compound.push(v.clone());
                v
            }
            Spec::List(items) | Spec::Tuple(items) => {
                let vals: Vec<Value> = items.iter().map(|s| self.build(case, s)).collect();
                let node = match spec {
                    Spec::List(_) => Node::List(vals),
                    _ => Node::Tuple(vals),
                };
                let v = self.graph.add(node);
                self.compound.push(v.clone());
                v
            }
            Spec::Dict(items) | Spec::OrderedDict(items, _) => {
                let mut seen: Vec<&Key> = Vec::new();
                let mut out = Vec::new();
                for (k, s) in items {
                    // Python dicts have unique keys.
                    if seen.contains(&k) {
                        continue;
                    }
                    seen.push(k);
                    let kv = match k {
                        Key::Str(s) => Value::Str(s.clone()),
                        Key::Int(i) => Value::Int(*i),
                    };
                    out.push((kv, self.build(case, s)));
                }
                let node = match spec {
                    Spec::OrderedDict(_, true) => {
                        // What nn.Module.state_dict() attaches: _metadata = {prefix: {version}}.
                        let version = self.graph.add(Node::Dict(vec![(
                            Value::Str("version".into()),
                            Value::Int(1),
                        )]));
                        let md = self.graph.add(Node::OrderedDict {
                            items: vec![(Value::Str(String::new()), version)],
                            state: None,
                        });
                        let state = self
                            .graph
                            .add(Node::Dict(vec![(Value::Str("_metadata".into()), md)]));
                        Node::OrderedDict {
                            items: out,
                            state: Some(state),
                        }
                    }
                    Spec::OrderedDict(_, false) => Node::OrderedDict {
                        items: out,
                        state: None,
                    },
                    _ => Node::Dict(out),
                };
                let v = self.graph.add(node);
                self.compound.push(v.clone());
                v
            }
        }
    }
}

fn storage_bytes(dtype: DType, numel: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let n = numel as usize * dtype.element_size();
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if dtype == DType::Bool {
                (x & 1) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

fn make_graph(case: &Case) -> Graph {
    let mut b = Builder {
        graph: Graph::new(),
        extent: vec![0; case.storages.len()],
        compound: Vec::new(),
    };
    let root = b.build(case, &case.root);
    b.graph.root = Some(root);
    for (i, &(d, seed)) in case.storages.iter().enumerate() {
        let dtype = DTYPES[d];
        // Some slack past the furthest view, as real storages have.
        let numel = (b.extent[i] + (seed % 3) as i64) as u64;
        b.graph.storages.push(Storage {
            key: i.to_string(),
            dtype,
            untyped: dtype.storage_class().is_none(),
            numel,
            location: "cpu".into(),
            data: ByteView::from_vec(storage_bytes(dtype, numel, seed)),
        });
    }
    b.graph
}

// ----- structural comparison -----------------------------------------------------------------

/// Walks two graphs in step; the node and storage maps must be bijections.
struct Cmp<'a> {
    a: &'a Graph,
    b: &'a Graph,
    nodes: HashMap<NodeId, NodeId>,
    nodes_back: HashMap<NodeId, NodeId>,
    storages: HashMap<StorageId, StorageId>,
    storages_back: HashMap<StorageId, StorageId>,
}

fn biject(
    fwd: &mut HashMap<usize, usize>,
    back: &mut HashMap<usize, usize>,
    x: usize,
    y: usize,
    what: &str,
) -> Result<bool, String> {
    match (fwd.get(&x), back.get(&y)) {
        (None, None) => {
            fwd.insert(x, y);
            back.insert(y, x);
            Ok(true)
        }
        (Some(&y2), Some(&x2)) if y2 == y && x2 == x => Ok(false),
        _ => Err(format!(
            "{what} identity differs: saved {x} read back as {y}, but the maps say {:?} / {:?}",
            fwd.get(&x),
            back.get(&y)
        )),
    }
}

impl Cmp<'_> {
    fn value(&mut self, path: &str, x: &Value, y: &Value) -> Result<(), String> {
        match (x, y) {
            (Value::Float(p), Value::Float(q)) if p.to_bits() == q.to_bits() => Ok(()),
            (Value::Float(p), Value::Float(q)) => Err(format!(
                "{path}: float {p:?} ({:#x}) read back as {q:?} ({:#x})",
                p.to_bits(),
                q.to_bits()
            )),
            (Value::Ref(p), Value::Ref(q)) => self.node(path, *p, *q),
            (Value::Ref(_), _) | (_, Value::Ref(_)) => {
                Err(format!("{path}: {x:?} read back as {y:?}"))
            }
            _ if x == y => Ok(()),
            _ => Err(format!("{path}: {x:?} read back as {y:?}")),
        }
    }

    fn items(&mut self, path: &str, x: &[Value], y: &[Value]) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!(
                "{path}: {} items read back as {}",
                x.len(),
                y.len()
            ));
        }
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            self.value(&format!("{path}[{i}]"), p, q)?;
        }
        Ok(())
    }

    fn pairs(
        &mut self,
        path: &str,
        x: &[(Value, Value)],
        y: &[(Value, Value)],
    ) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!(
                "{path}: {} entries read back as {}",
                x.len(),
                y.len()
            ));
        }
        for (i, ((k1, v1), (k2, v2))) in x.iter().zip(y).enumerate() {
            self.value(&format!("{path}.key#{i}"), k1, k2)?;
            self.value(&format!("{path}[{k1:?}]"), v1, v2)?;
        }
        Ok(())
    }

    fn node(&mut self, path: &str, p: NodeId, q: NodeId) -> Result<(), String> {
        let (x, y) = (&self.a.nodes[p], &self.b.nodes[q]);
        // CPython does not memoize the empty tuple (it is a singleton), so two references
        // to one empty tuple read back as two: identity is not observable there.
        let empty_tuple = matches!(x, Node::Tuple(v) if v.is_empty());
        if !empty_tuple
            && !biject(&mut self.nodes, &mut self.nodes_back, p, q, "node")
                .map_err(|e| format!("{path}: {e}"))?
        {
            return Ok(());
        }
        match (x, y) {
            (Node::List(u), Node::List(v)) | (Node::Tuple(u), Node::Tuple(v)) => {
                self.items(path, u, v)
            }
            (Node::Dict(u), Node::Dict(v)) => self.pairs(path, u, v),
            (
                Node::OrderedDict { items: u, state: s },
                Node::OrderedDict { items: v, state: t },
            ) => {
                self.pairs(path, u, v)?;
                match (s, t) {
                    (None, None) => Ok(()),
                    (Some(s), Some(t)) => self.value(&format!("{path}.__dict__"), s, t),
                    _ => Err(format!(
                        "{path}: OrderedDict state {s:?} read back as {t:?}"
                    )),
                }
            }
            (Node::Tensor(u), Node::Tensor(v)) => self.tensor(path, u, v),
            _ => Err(format!("{path}: {x:?} read back as {y:?}")),
        }
    }

    fn tensor(&mut self, path: &str, u: &Tensor, v: &Tensor) -> Result<(), String> {
        let meta = |t: &Tensor| {
            (
                t.dtype,
                t.shape.clone(),
                t.stride.clone(),
                t.storage_offset,
                t.requires_grad,
                t.is_parameter,
            )
        };
        if meta(u) != meta(v) {
            return Err(format!(
                "{path}: tensor (dtype, shape, stride, offset, requires_grad, parameter) {:?} read back as {:?}",
                meta(u),
                meta(v)
            ));
        }
        let (Some(su), Some(sv)) = (u.storage, v.storage) else {
            return Err(format!(
                "{path}: storage {:?} read back as {:?}",
                u.storage, v.storage
            ));
        };
        if biject(
            &mut self.storages,
            &mut self.storages_back,
            su,
            sv,
            "storage",
        )
        .map_err(|e| format!("{path}: {e}"))?
        {
            let (x, y) = (&self.a.storages[su], &self.b.storages[sv]);
            // Untyped storages are pickled as `UntypedStorage` of bytes, and read back so
            // (FORMAT.md 3.1): the dtype lives on the tensors that view them.
            let facts = |s: &Storage| {
                let dtype = if s.untyped { DType::UInt8 } else { s.dtype };
                (dtype, s.nbytes(), s.untyped, s.location.clone())
            };
            if facts(x) != facts(y) {
                return Err(format!(
                    "{path}: storage (dtype, nbytes, untyped, location) {:?} read back as {:?}",
                    facts(x),
                    facts(y)
                ));
            }
            if x.data.as_slice() != y.data.as_slice() {
                return Err(format!("{path}: storage bytes differ"));
            }
        }
        let cu = contiguous_bytes(self.a, u).map_err(|e| format!("{path}: saved view: {e}"))?;
        let cv = contiguous_bytes(self.b, v).map_err(|e| format!("{path}: loaded view: {e}"))?;
        if cu != cv {
            return Err(format!("{path}: contiguous bytes differ"));
        }
        Ok(())
    }
}

fn compare(a: &Graph, b: &Graph) -> Result<(), String> {
    let mut c = Cmp {
        a,
        b,
        nodes: HashMap::new(),
        nodes_back: HashMap::new(),
        storages: HashMap::new(),
        storages_back: HashMap::new(),
    };
    c.value("root", a.root(), b.root())?;
    // Storages no tensor reaches are not written (torch only saves what it pickles).
    let reached = c.storages.len();
    if b.storages.len() != reached {
        return Err(format!(
            "{} storages read back, {reached} reachable from the saved graph",
            b.storages.len()
        ));
    }
    Ok(())
}

fn roundtrip(graph: &Graph, format: SaveFormat) -> Result<(), String> {
    let opts = SaveOptions {
        format,
        ..SaveOptions::default()
    };
    let bytes = save_to_vec(graph, &opts).map_err(|e| format!("{format:?} save: {e}"))?;
    let load = LoadOptions {
        weights_only: false,
        mmap: false,
        ..LoadOptions::default()
    };
    let loaded = load_bytes(ByteView::from_vec(bytes), &load)
        .map_err(|e| format!("{format:?} load: {e}"))?;
    compare(graph, &loaded.graph).map_err(|e| format!("{format:?}: {e}"))
}

fn check(case: &Case) -> Result<(), String> {
    let graph = make_graph(case);
    roundtrip(&graph, SaveFormat::Zip)?;
    if !reaches_untyped(&graph) {
        roundtrip(&graph, SaveFormat::Legacy)?;
    } else {
        // A reachable storage without a legacy class: torch cannot load such a file, so the
        // writer must refuse rather than write it.
        let opts = SaveOptions {
            format: SaveFormat::Legacy,
            ..SaveOptions::default()
        };
        match save_to_vec(&graph, &opts) {
            Err(e) if e.code == ErrorCode::Unserializable => {}
            other => return Err(format!("legacy save of an untyped storage: {other:?}")),
        }
    }
    Ok(())
}

fn reaches_untyped(graph: &Graph) -> bool {
    // Every tensor node is reachable (built from the root), so this is the tensors' dtypes.
    graph
        .nodes
        .iter()
        .any(|n| matches!(n, Node::Tensor(t) if t.dtype.storage_class().is_none()))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn save_then_load_is_identity(case in case()) {
        if let Err(e) = check(&case) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// The generator must reach what the property is about; a strategy that never produced a
/// shared storage or an untyped dtype would make the test above vacuous.
#[test]
fn generator_covers_views_sharing_and_specials() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut shared, mut strided, mut nan, mut big, mut untyped, mut metadata) =
        (false, false, false, false, false, false);
    for _ in 0..400 {
        let case = case().new_tree(&mut runner).unwrap().current();
        let g = make_graph(&case);
        let tensors: Vec<&Tensor> = g
            .nodes
            .iter()
            .filter_map(|n| match n {
                Node::Tensor(t) => Some(t),
                _ => None,
            })
            .collect();
        let mut per_storage = HashMap::new();
        for t in &tensors {
            *per_storage.entry(t.storage).or_insert(0) += 1;
            strided |= !torchsave_core::tensor::is_contiguous(t) || t.storage_offset > 0;
            untyped |= t.dtype.storage_class().is_none();
        }
        shared |= per_storage.values().any(|&n| n > 1);
        for n in &g.nodes {
            let items: Vec<&Value> = match n {
                Node::List(v) | Node::Tuple(v) => v.iter().collect(),
                Node::Dict(kv) => kv.iter().map(|(_, v)| v).collect(),
                Node::OrderedDict { items, state } => {
                    metadata |= state.is_some();
                    items.iter().map(|(_, v)| v).collect()
                }
                _ => Vec::new(),
            };
            for v in items.into_iter().chain(g.root.iter()) {
                nan |= matches!(v, Value::Float(f) if f.is_nan());
                big |= matches!(v, Value::BigInt(_));
            }
        }
    }
    assert!(shared && strided && nan && big && untyped && metadata, "shared {shared} strided {strided} nan {nan} big {big} untyped {untyped} metadata {metadata}");
}
