//! Python-ish names of value and node kinds, for error messages and policy decisions.
//!
//! Shared by the VM, the interpreter and the policy (it sits below all three, so none of
//! them imports another for these names).

use crate::value::{Graph, Node, Value};

/// The Python type name of a scalar value (`Ref` is "object": look the node up for more).
pub(crate) fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Complex(..) => "complex",
        Value::Str(_) => "str",
        Value::Bytes(_) => "bytes",
        Value::Ref(_) => "object",
    }
}

/// The Python type name of a node.
pub(crate) fn kind_name(n: &Node) -> &'static str {
    match n {
        Node::List(_) => "list",
        Node::Tuple(_) => "tuple",
        Node::Dict(_) => "dict",
        Node::OrderedDict { .. } => "OrderedDict",
        Node::Set(_) => "set",
        Node::FrozenSet(_) => "frozenset",
        Node::ByteArray(_) => "bytearray",
        Node::Tensor(_) => "tensor",
        Node::SparseTensor(_) => "sparse tensor",
        Node::Storage(_) => "storage",
        Node::Size(_) => "torch.Size",
        Node::Device(_) => "torch.device",
        Node::Dtype(_) => "torch.dtype",
        Node::Layout(_) => "torch.layout",
        Node::Global { .. } => "global",
        Node::NdArray(_) => "numpy array",
        Node::NpScalar(_) => "numpy scalar",
        Node::Object(_) => "object",
    }
}

/// The kind of any value: the node's kind for a reference, else the scalar's.
pub(crate) fn any_kind(graph: &Graph, v: &Value) -> &'static str {
    match graph.deref(v) {
        Some(n) => kind_name(n),
        None => value_kind(v),
    }
}
