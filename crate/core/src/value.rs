//! The value graph: what a pickle means, as data.
//!
//! Reading produces a `Graph`; writing consumes one. Compound Python objects live in an arena
//! (`Graph::nodes`) and are referenced by `Value::Ref(NodeId)`, which gives them identity:
//! the same object reached twice (a tensor under two keys, a dict referenced from two places,
//! a cycle built through the memo) is one node, exactly as in Python. Immutable scalars
//! (`None`, bools, ints, floats, strings, bytes) are values.
//!
//! Storages are separate (`Graph::storages`): tensors that view one storage hold the same
//! `StorageId`, so views stay views and tied weights stay tied after a round trip.
//!
//! Invariants (checked by `crate::tensor::validate_graph` after every load, and relied on by
//! the writer and the binding):
//! * every `Value::Ref` indexes `nodes`, every `StorageId` indexes `storages`;
//! * every tensor's elements lie inside its storage's bytes;
//! * storage bytes are little-endian (big-endian files are swapped while loading).

use crate::bytes::ByteView;
use crate::dtype::DType;
use num_bigint::BigInt;

pub type NodeId = usize;
pub type StorageId = usize;

/// A Python value. Compound objects are `Ref`s into the graph's arena.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// A Python int that fits in i64.
    Int(i64),
    /// A Python int outside i64.
    BigInt(BigInt),
    Float(f64),
    /// A Python `complex` (`builtins.complex(re, im)`).
    Complex(f64, f64),
    Str(String),
    /// Python 3 `bytes` (`_codecs.encode(s, 'latin1')` in protocol 2, BINBYTES in 3+).
    Bytes(Vec<u8>),
    Ref(NodeId),
}

/// How an opaque object was created in the pickle, so a re-save can do the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// `callable(*args)` via REDUCE.
    Reduce,
    /// `cls.__new__(cls, *args)` via NEWOBJ (copyreg protocol 2 path: modules, Namespace).
    NewObj,
    /// `cls.__new__(cls, *args, **kwargs)` via NEWOBJ_EX (protocol 4); kwargs in `kwargs`.
    NewObjEx,
    /// Old-style `INST`/`OBJ` instance (Python 2).
    Inst,
}

/// An object this library does not interpret: kept as data, never run.
#[derive(Clone, Debug, PartialEq)]
pub struct PyObject {
    /// Module of the callable/class (`argparse`, `__main__`, `torch.nn.modules.linear`).
    pub module: String,
    /// Qualified name (`Namespace`, `Outer.Inner`).
    pub name: String,
    pub kind: ObjectKind,
    /// Positional arguments (normally a `Ref` to a `Tuple`).
    pub args: Value,
    /// Keyword arguments for NEWOBJ_EX.
    pub kwargs: Option<Value>,
    /// What BUILD applied (`__setstate__` / `__dict__` update), if any.
    pub state: Option<Value>,
    /// Items APPENDed to the object (list subclasses).
    pub list_items: Vec<Value>,
    /// Items SETITEM'd on the object (dict subclasses such as `collections.defaultdict`).
    pub dict_items: Vec<(Value, Value)>,
}

/// How a quantized tensor maps integers to reals (`_rebuild_qtensor`'s quantizer_params).
#[derive(Clone, Debug, PartialEq)]
pub struct Quantizer {
    /// `per_tensor_affine`, `per_channel_affine`, `per_channel_affine_float_qparams`, ...
    pub scheme: String,
    /// The remaining quantizer params as pickled: `[scale, zero_point]` or
    /// `[scales_tensor, zero_points_tensor, axis]`.
    pub params: Vec<Value>,
}

/// A tensor subclass or a plain tensor carrying Python attributes
/// (`torch._tensor._rebuild_from_type_v2`).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub module: String,
    pub name: String,
    /// The `__getstate__` result (`None` when empty on Python 3.11+).
    pub state: Value,
}

/// A strided tensor viewing a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// `None` only for meta tensors (no data).
    pub storage: Option<StorageId>,
    pub dtype: DType,
    pub shape: Vec<i64>,
    /// In elements.
    pub stride: Vec<i64>,
    /// In elements.
    pub storage_offset: i64,
    pub requires_grad: bool,
    /// An `nn.Parameter` (`_rebuild_parameter*`).
    pub is_parameter: bool,
    /// `_rebuild_parameter_with_state`'s state.
    pub parameter_state: Option<Value>,
    /// Set for quantized tensors.
    pub quantizer: Option<Quantizer>,
    /// `torch._C._get_tensor_metadata` dict, e.g. `{'conj': True}`.
    pub metadata: Option<Value>,
    /// Tensor subclass / attributes via `_rebuild_from_type_v2`.
    pub subclass: Option<TensorType>,
    /// Device of a meta/storage-less tensor; others take their storage's location.
    pub device: Option<String>,
}

impl Tensor {
    /// A 0-d tensor of `dtype` on `storage` (or none: meta/empty), no grad, not a Parameter,
    /// no extras: the base every other constructor and the unpickler's rebuilds fill in.
    pub fn plain(storage: Option<StorageId>, dtype: DType) -> Tensor {
        Tensor {
            storage,
            dtype,
            shape: Vec::new(),
            stride: Vec::new(),
            storage_offset: 0,
            requires_grad: false,
            is_parameter: false,
            parameter_state: None,
            quantizer: None,
            metadata: None,
            subclass: None,
            device: None,
        }
    }

    /// A plain strided view of `storage` (no grad, not a Parameter, no extras): what most
    /// code building a tensor by hand means.
    pub fn strided(
        storage: StorageId,
        dtype: DType,
        shape: Vec<i64>,
        stride: Vec<i64>,
        storage_offset: i64,
    ) -> Tensor {
        Tensor {
            shape,
            stride,
            storage_offset,
            ..Tensor::plain(Some(storage), dtype)
        }
    }

    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d.max(0) as u64).product()
    }
}

/// A sparse tensor (`_rebuild_sparse_tensor`).
#[derive(Clone, Debug, PartialEq)]
pub struct SparseTensor {
    /// `sparse_coo`, `sparse_csr`, `sparse_csc`, `sparse_bsr`, `sparse_bsc`.
    pub layout: String,
    /// The data tuple as pickled: COO `(indices, values, size[, is_coalesced])`,
    /// compressed `(compressed_indices, plain_indices, values, size)`.
    pub args: Vec<Value>,
    pub requires_grad: bool,
}

/// A numpy array (`numpy.core.multiarray._reconstruct` + BUILD).
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Module the pickle named (`numpy.core.multiarray` or numpy 2's `numpy._core.multiarray`).
    pub module: String,
    /// numpy type string with byte order, e.g. `<f4`, `|b1`, `<i8`, `|O` (object arrays are
    /// kept with `items`).
    pub descr: String,
    pub shape: Vec<i64>,
    pub fortran_order: bool,
    /// Raw element bytes as pickled (C or Fortran order per `fortran_order`).
    pub data: Vec<u8>,
    /// For object arrays (`|O`): the pickled list of items.
    pub items: Option<Value>,
}

/// A numpy scalar (`numpy.core.multiarray.scalar(dtype, bytes)`).
#[derive(Clone, Debug, PartialEq)]
pub struct NpScalar {
    pub module: String,
    pub descr: String,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `collections.OrderedDict`; `state` is the instance `__dict__` restored by BUILD
    /// (`{'_metadata': OrderedDict(...)}` for state dicts).
    OrderedDict {
        items: Vec<(Value, Value)>,
        state: Option<Value>,
    },
    Set(Vec<Value>),
    FrozenSet(Vec<Value>),
    ByteArray(Vec<u8>),
    Tensor(Tensor),
    SparseTensor(SparseTensor),
    /// A bare storage object (`torch.save(t.untyped_storage())`, legacy typed storages).
    Storage(StorageId),
    /// `torch.Size`.
    Size(Vec<i64>),
    /// `torch.device`, normalised to `type` or `type:index`.
    Device(String),
    Dtype(DType),
    /// `torch.serialization._get_layout('torch.sparse_coo')` → `sparse_coo`; also `torch.strided`.
    Layout(String),
    /// A class or function referenced but not called (a qscheme, a class object...).
    Global {
        module: String,
        name: String,
    },
    NdArray(NdArray),
    NpScalar(NpScalar),
    Object(PyObject),
}

impl Node {
    /// Calls `f` on every value the node holds directly, in the one children order of the
    /// crate: list/tuple/set items; dict pairs key then value, then an OrderedDict's state;
    /// a tensor's parameter state, quantizer params, metadata, subclass state; sparse
    /// components; ndarray items; an object's args, kwargs, state, list items, dict pairs.
    ///
    /// It is the order a recursive conversion visits them: `tensor::validate_graph`'s depth
    /// walk, the binding's JS conversion (`crate/node/src/to_js.rs`, which must stay in step)
    /// and every graph walk in [`crate::graph`] follow it.
    pub fn for_each_child<'a>(&'a self, f: &mut dyn FnMut(&'a Value)) {
        match self {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                v.iter().for_each(f)
            }
            Node::Dict(p) => p.iter().for_each(|(k, v)| {
                f(k);
                f(v)
            }),
            Node::OrderedDict { items, state } => {
                items.iter().for_each(|(k, v)| {
                    f(k);
                    f(v)
                });
                state.iter().for_each(f);
            }
            Node::Tensor(t) => {
                t.parameter_state.iter().for_each(&mut *f);
                if let Some(q) = &t.quantizer {
                    q.params.iter().for_each(&mut *f);
                }
                t.metadata.iter().for_each(&mut *f);
                if let Some(s) = &t.subclass {
                    f(&s.state);
                }
            }
            Node::SparseTensor(s) => s.args.iter().for_each(f),
            Node::NdArray(a) => a.items.iter().for_each(f),
            Node::Object(o) => {
                f(&o.args);
                o.kwargs.iter().for_each(&mut *f);
                o.state.iter().for_each(&mut *f);
                o.list_items.iter().for_each(&mut *f);
                o.dict_items.iter().for_each(|(k, v)| {
                    f(k);
                    f(v)
                });
            }
            Node::ByteArray(_)
            | Node::Storage(_)
            | Node::Size(_)
            | Node::Device(_)
            | Node::Dtype(_)
            | Node::Layout(_)
            | Node::Global { .. }
            | Node::NpScalar(_) => {}
        }
    }

    /// [`Node::for_each_child`] collected.
    pub fn children(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        self.for_each_child(&mut |v| out.push(v));
        out
    }
}

/// Raw storage bytes plus what the pickle said about them.
#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    /// The key in the file (`"0"`, or a decimal pointer in legacy files). Opaque.
    pub key: String,
    /// Element type of the storage class (`UInt8` for `UntypedStorage`).
    pub dtype: DType,
    /// Pickled as `torch.storage.UntypedStorage` (new dtypes) rather than a typed class.
    pub untyped: bool,
    /// Element count in units of `dtype`, as the persistent id says.
    pub numel: u64,
    /// Location tag as recorded (`cpu`, `cuda:0`, `mps`). Never rewritten by the core.
    pub location: String,
    /// Exactly `numel * dtype.element_size()` bytes, little-endian.
    pub data: ByteView,
}

impl Storage {
    pub fn nbytes(&self) -> u64 {
        self.numel.saturating_mul(self.dtype.element_size() as u64)
    }
}

/// A whole loaded (or to-be-saved) object.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub storages: Vec<Storage>,
    pub root: Option<Value>,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    /// Adds a node and returns a reference to it.
    pub fn add(&mut self, node: Node) -> Value {
        self.nodes.push(node);
        Value::Ref(self.nodes.len() - 1)
    }

    pub fn add_storage(&mut self, storage: Storage) -> StorageId {
        self.storages.push(storage);
        self.storages.len() - 1
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id)
    }

    /// The node a value refers to, if it is a `Ref`.
    pub fn deref<'a>(&'a self, v: &Value) -> Option<&'a Node> {
        match v {
            Value::Ref(id) => self.nodes.get(*id),
            _ => None,
        }
    }

    pub fn root(&self) -> &Value {
        self.root.as_ref().unwrap_or(&Value::None)
    }
}

/// Which container a file used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// PyTorch >= 1.6 zip archive.
    Zip,
    /// 0.1.10 - 1.5 stream: magic, protocol, sys_info, pickle, keys, raw storages.
    Legacy,
    /// Before 0.1.10: tar with sys_info, pickle, tensors, storages.
    Tar,
    /// A bare pickle with no storages.
    Pickle,
    /// A TorchScript archive (`torch.jit.save`): a zip with `constants.pkl`, `code/`, read as data.
    TorchScript,
    /// A distributed checkpoint folder (`torch.distributed.checkpoint`: `.metadata` and
    /// `*.distcp` files), read as the state dict it describes.
    Dcp,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Legacy => "legacy",
            Format::Tar => "tar",
            Format::Pickle => "pickle",
            Format::TorchScript => "torchscript",
            Format::Dcp => "dcp",
        }
    }
}
