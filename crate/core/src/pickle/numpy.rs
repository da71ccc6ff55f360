//! numpy values inside pickles, as data: `numpy.core.multiarray._reconstruct(numpy.ndarray,
//! ...)` + BUILD (also `numpy._core`) becomes an `NdArray` whose dtype comes from the pickled
//! `numpy.dtype` and its BUILD byte order; `numpy.core.multiarray.scalar(dtype, bytes)` an
//! `NpScalar`. Anything else numpy pickles stays an inert object.

use super::args::{bad, boolean, global_name, ints, object, str_back_to_bytes, tuple_items};
use crate::error::Result;
use crate::options::StrEncoding;
use crate::value::{Graph, NdArray, Node, NodeId, NpScalar, ObjectKind, Value};

/// `numpy.core.multiarray` or its numpy 2 name `numpy._core.multiarray`.
pub(crate) fn is_numpy_multiarray(module: &str) -> bool {
    module == "numpy.core.multiarray" || module == "numpy._core.multiarray"
}

/// `_reconstruct(numpy.ndarray, shape, dtype)`: an empty `NdArray` that BUILD fills.
pub(crate) fn reconstruct(
    graph: &mut Graph,
    module: &str,
    name: &str,
    kind: ObjectKind,
    args: Value,
    kwargs: Option<Value>,
) -> Result<Value> {
    let full = format!("{module}.{name}");
    let a = tuple_items(graph, &args, &full)?;
    let is_ndarray = a
        .first()
        .and_then(|v| global_name(graph, v))
        .is_some_and(|(m, n)| (m == "numpy" || m.starts_with("numpy.")) && n == "ndarray");
    if !is_ndarray {
        return Ok(object(graph, module, name, kind, args, kwargs));
    }
    Ok(graph.add(Node::NdArray(NdArray {
        module: module.to_string(),
        descr: String::new(),
        shape: Vec::new(),
        fortran_order: false,
        data: Vec::new(),
        items: None,
    })))
}

/// `scalar(dtype, bytes)`: an `NpScalar` (object scalars carry a Python object: inert).
pub(crate) fn scalar(
    graph: &mut Graph,
    module: &str,
    name: &str,
    kind: ObjectKind,
    args: Value,
    kwargs: Option<Value>,
    encoding: StrEncoding,
) -> Result<Value> {
    let full = format!("{module}.{name}");
    let a = tuple_items(graph, &args, &full)?;
    let raw = match a.get(1) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(Value::Str(s)) => Some(str_back_to_bytes(s, encoding)),
        _ => None,
    };
    match (a.first().and_then(|d| numpy_descr(graph, d)), raw) {
        (Some(descr), Some(data)) if a.len() == 2 => Ok(graph.add(Node::NpScalar(NpScalar {
            module: module.to_string(),
            descr,
            data,
        }))),
        _ => Ok(object(graph, module, name, kind, args, kwargs)),
    }
}

/// The numpy type string (`<f4`, `|b1`, `<U3`) of a pickled `numpy.dtype(code, False, True)`
/// with BUILD state `(version, byteorder, ...)`.
fn numpy_descr(graph: &Graph, v: &Value) -> Option<String> {
    let Some(Node::Object(o)) = graph.deref(v) else {
        return None;
    };
    if o.module != "numpy" || o.name != "dtype" {
        return None;
    }
    let code = match graph.deref(&o.args) {
        Some(Node::Tuple(a)) => match a.first() {
            Some(Value::Str(s)) => s.clone(),
            _ => return None,
        },
        _ => return None,
    };
    let order = match o.state.as_ref().and_then(|s| graph.deref(s)) {
        Some(Node::Tuple(st)) => match st.get(1) {
            Some(Value::Str(s)) => s.clone(),
            _ => "|".to_string(),
        },
        _ => "|".to_string(),
    };
    let order = if order == "=" { "<".to_string() } else { order };
    // numpy pickles unicode itemsize in bytes (`U12`); its type string counts characters.
    let code = match code.strip_prefix('U').and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => format!("U{}", n / 4),
        None => code,
    };
    Some(format!("{order}{code}"))
}

/// ndarray `__setstate__`: `(version, shape, dtype, is_fortran, data)` (or without version).
pub(crate) fn build_ndarray(
    graph: &mut Graph,
    id: NodeId,
    state: Value,
    encoding: StrEncoding,
) -> Result<()> {
    let what = "numpy.ndarray.__setstate__";
    let s = tuple_items(graph, &state, what)?;
    let s = match s.len() {
        5 => s.get(1..).unwrap_or(&[]).to_vec(),
        4 => s,
        n => return bad(what, &format!("unexpected state of {n} items")),
    };
    let [shape, dtype, fortran, data] = s.as_slice() else {
        return bad(what, "unexpected state");
    };
    let shape = ints(graph, shape, what)?;
    let Some(descr) = numpy_descr(graph, dtype) else {
        return bad(what, "dtype must be a numpy.dtype");
    };
    let fortran = boolean(fortran, what, "is_fortran")?;
    let (bytes, items) = match data {
        Value::Bytes(b) => (b.clone(), None),
        Value::Str(st) => (str_back_to_bytes(st, encoding), None),
        v @ Value::Ref(_) => match graph.deref(v) {
            Some(Node::List(_)) => (Vec::new(), Some(v.clone())),
            Some(Node::ByteArray(b)) => (b.clone(), None),
            _ => return bad(what, "data must be bytes or a list"),
        },
        _ => return bad(what, "data must be bytes or a list"),
    };
    if let Some(Node::NdArray(a)) = graph.node_mut(id) {
        a.shape = shape;
        a.descr = descr;
        a.fortran_order = fortran;
        a.data = bytes;
        a.items = items;
    }
    Ok(())
}
