//! Argument coercion for the interpreter: what a reconstructor's argument tuple must hold
//! (ints, bools, size tuples, dtypes, byte strings, class globals), each failure an
//! `E_BAD_RECONSTRUCT` naming the reconstructor, and the inert-object node every unknown call
//! becomes.

use super::kinds::{any_kind, value_kind};
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Graph, Node, ObjectKind, PyObject, Tensor, Value};

/// `(module, qualname)` when `v` is a class or function global.
pub(crate) fn global_name(graph: &Graph, v: &Value) -> Option<(String, String)> {
    match graph.deref(v) {
        Some(Node::Global { module, name }) => Some((module.clone(), name.clone())),
        _ => None,
    }
}

/// An inert `PyObject`: what any call the interpreter does not know becomes.
pub(crate) fn object(
    graph: &mut Graph,
    module: &str,
    name: &str,
    kind: ObjectKind,
    args: Value,
    kwargs: Option<Value>,
) -> Value {
    graph.add(Node::Object(PyObject {
        module: module.to_string(),
        name: name.to_string(),
        kind,
        args,
        kwargs,
        state: None,
        list_items: Vec::new(),
        dict_items: Vec::new(),
    }))
}

pub(crate) fn bad<T>(what: &str, msg: &str) -> Result<T> {
    Err(bad_err(what, msg))
}

pub(crate) fn bad_err(what: &str, msg: &str) -> crate::Error {
    crate::err!(BadReconstruct, "{what}: {msg}")
}

/// The items of a tuple argument (REDUCE's argument tuple, a size tuple).
pub(crate) fn tuple_items(graph: &Graph, v: &Value, what: &str) -> Result<Vec<Value>> {
    match graph.deref(v) {
        Some(Node::Tuple(items)) => Ok(items.clone()),
        _ => bad(
            what,
            &format!("expected an argument tuple, got {}", any_kind(graph, v)),
        ),
    }
}

pub(crate) fn iterable_items(graph: &Graph, v: &Value, what: &str) -> Result<Vec<Value>> {
    match graph.deref(v) {
        Some(
            Node::Tuple(items) | Node::List(items) | Node::Set(items) | Node::FrozenSet(items),
        ) => Ok(items.clone()),
        _ => bad(what, "expected a list, tuple or set"),
    }
}

pub(crate) fn int(v: &Value, what: &str, field: &str) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        _ => bad(
            what,
            &format!("{field} must be an int, got {}", value_kind(v)),
        ),
    }
}

pub(crate) fn boolean(v: &Value, what: &str, field: &str) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Int(i) => Ok(*i != 0),
        _ => bad(
            what,
            &format!("{field} must be a bool, got {}", value_kind(v)),
        ),
    }
}

pub(crate) fn ints(graph: &Graph, v: &Value, what: &str) -> Result<Vec<i64>> {
    let items = match graph.deref(v) {
        Some(Node::Tuple(items) | Node::List(items)) => items.clone(),
        Some(Node::Size(d)) => return Ok(d.clone()),
        _ => return bad(what, "size/stride must be a tuple of ints"),
    };
    items
        .iter()
        .map(|x| int(x, what, "size/stride entry"))
        .collect()
}

pub(crate) fn dtype_arg(graph: &Graph, v: &Value, what: &str) -> Result<DType> {
    match graph.deref(v) {
        Some(Node::Dtype(d)) => Ok(*d),
        Some(Node::Global { module, name }) if module == "torch" => {
            crate::bail!(
                UnsupportedDtype,
                "{what}: dtype torch.{name} cannot be represented"
            )
        }
        _ => bad(what, "expected a torch dtype"),
    }
}

pub(crate) fn tensor_node(graph: &Graph, v: &Value, what: &str) -> Result<Tensor> {
    match graph.deref(v) {
        Some(Node::Tensor(t)) => Ok(t.clone()),
        _ => bad(what, "expected a tensor argument"),
    }
}

pub(crate) fn encode_str(s: &str, enc: &str, what: &str) -> Result<Vec<u8>> {
    match enc.to_ascii_lowercase().replace('_', "-").as_str() {
        "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "l1" => s
            .chars()
            .map(|c| u8::try_from(c as u32).map_err(|_| bad_err(what, "character outside latin-1")))
            .collect(),
        "ascii" => {
            if s.is_ascii() {
                Ok(s.as_bytes().to_vec())
            } else {
                bad(what, "character outside ascii")
            }
        }
        "utf-8" | "utf8" => Ok(s.as_bytes().to_vec()),
        other => bad(what, &format!("unsupported encoding {other}")),
    }
}

/// `bytes(...)` / `bytearray(...)` arguments: `()`, `(bytes,)`, `(str, encoding)`, `(list of ints,)`.
pub(crate) fn bytes_from_args(graph: &Graph, args: &Value, what: &str) -> Result<Vec<u8>> {
    let a = tuple_items(graph, args, what)?;
    match a.as_slice() {
        [] => Ok(Vec::new()),
        [Value::Bytes(b)] => Ok(b.clone()),
        [Value::Str(s), Value::Str(enc)] => encode_str(s, enc, what),
        [Value::Int(n)] if *n >= 0 && *n <= 1 << 20 => Ok(vec![0; *n as usize]),
        [v @ Value::Ref(_)] => match graph.deref(v) {
            Some(Node::ByteArray(b)) => Ok(b.clone()),
            Some(Node::List(items) | Node::Tuple(items)) => items
                .iter()
                .map(|x| match x {
                    Value::Int(i) => {
                        u8::try_from(*i).map_err(|_| bad_err(what, "byte out of range"))
                    }
                    _ => bad(what, "expected ints"),
                })
                .collect(),
            _ => bad(what, "unsupported argument"),
        },
        _ => bad(what, "unsupported arguments"),
    }
}

/// A str, or Python 2 bytes decoded as ASCII (`_maybe_decode_ascii`).
pub(crate) fn ascii(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) if b.is_ascii() => std::str::from_utf8(b).ok().map(str::to_string),
        _ => None,
    }
}
