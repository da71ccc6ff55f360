//! numpy values inside pickles, as data: `numpy.core.multiarray._reconstruct(numpy.ndarray,
//! ...)` + BUILD (also `numpy._core`) becomes an `NdArray` whose dtype comes from the pickled
//! `numpy.dtype` and its BUILD byte order; `numpy.core.multiarray.scalar(dtype, bytes)` an
//! `NpScalar`. Anything else numpy pickles stays an inert object.
//!
//! Python 2 payloads: numpy under Python 2 pickled an array's bytes as a `str`, which Python 3
//! reads with `encoding='latin1'` into a text whose code points are the bytes, and numpy's
//! `__setstate__` turns back into bytes with `str.encode('latin1')`. Our VM decodes such a
//! Python 2 `str` per [`crate::options::StrEncoding`] (UTF-8 when it is valid UTF-8, else
//! latin-1), so the bytes are recovered as the one encoding of the text — latin-1 or UTF-8 —
//! whose length is what the shape and dtype need (the two can only differ when the text is not
//! ASCII, and then exactly one of them is the original). Every array's and scalar's byte
//! length is checked against shape x itemsize: a mismatch is `E_ARRAY_SIZE`, never wrong values.

use super::args::{ascii, bad, boolean, global_name, ints, object, tuple_items};
use crate::error::Result;
use crate::value::{Graph, NdArray, Node, NodeId, NpScalar, ObjectKind, Value};

/// Bytes per element of a numpy type string (`<f8` 8, `<U3` 12, `|S5` 5, `|b1` 1, `<M8` 8);
/// `None` for object dtypes (their data is a list) and strings that do not parse.
pub fn descr_itemsize(descr: &str) -> Option<u64> {
    let body = descr.trim_start_matches(['<', '>', '|', '=']);
    let mut chars = body.chars();
    let kind = chars.next()?;
    let digits: String = chars.take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    match kind {
        'U' => n.checked_mul(4),
        'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' | 'M' | 'm' => Some(n),
        _ => None,
    }
}

/// numpy's name for a type string (`dtype.name`: `float64`, `int16`, `bool`, `str96`,
/// `bytes40`, `void64`, `complex128`, `datetime64`, `object`); the type string itself when it
/// does not parse.
pub fn descr_name(descr: &str) -> String {
    let body = descr.trim_start_matches(['<', '>', '|', '=']);
    let kind = body.chars().next().unwrap_or('?');
    if kind == 'O' {
        return "object".into();
    }
    let Some(size) = descr_itemsize(descr) else {
        return descr.to_string();
    };
    let bits = size * 8;
    match kind {
        'b' => "bool".into(),
        'i' => format!("int{bits}"),
        'u' => format!("uint{bits}"),
        'f' => format!("float{bits}"),
        'c' => format!("complex{bits}"),
        'U' => format!("str{bits}"),
        'S' | 'a' => format!("bytes{bits}"),
        'V' => format!("void{bits}"),
        'M' => "datetime64".into(),
        'm' => "timedelta64".into(),
        _ => descr.to_string(),
    }
}

/// Bytes of `numel` elements of `descr`; `None` when the itemsize is unknown, or on overflow.
fn expected_nbytes(shape: &[i64], descr: &str) -> Option<u64> {
    let mut n = descr_itemsize(descr)?;
    for &d in shape {
        n = n.checked_mul(u64::try_from(d).ok()?)?;
    }
    Some(n)
}

/// The bytes a Python 2 `str` payload stood for (module docs): its latin-1 encoding (numpy's
/// own rule) unless only its UTF-8 encoding has the length `want` asks for.
fn py2_str_payload(s: &str, want: Option<u64>) -> Vec<u8> {
    let latin1: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c as u32).ok()).collect();
    match (latin1, want) {
        (Some(l), Some(n)) if l.len() as u64 != n && s.len() as u64 == n => s.as_bytes().to_vec(),
        (Some(l), _) => l,
        (None, _) => s.as_bytes().to_vec(),
    }
}

fn check_nbytes(what: &str, descr: &str, shape: &[i64], have: usize) -> Result<()> {
    match expected_nbytes(shape, descr) {
        Some(want) if want != have as u64 => crate::bail!(
            ArraySize,
            "{what}: the data holds {have} bytes but shape {shape:?} of dtype {descr} needs {want}; \
             the file is corrupt (or a Python 2 payload was decoded with the wrong encoding)"
        ),
        _ => Ok(()),
    }
}

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
) -> Result<Value> {
    let full = format!("{module}.{name}");
    let a = tuple_items(graph, &args, &full)?;
    let descr = a.first().and_then(|d| numpy_descr(graph, d));
    let want = descr.as_deref().and_then(|d| expected_nbytes(&[], d));
    let raw = match a.get(1) {
        Some(Value::Bytes(b)) => Some(b.clone()),
        Some(Value::Str(s)) => Some(py2_str_payload(s, want)),
        _ => None,
    };
    match (descr, raw) {
        (Some(descr), Some(data)) if a.len() == 2 => {
            check_nbytes(&full, &descr, &[], data.len())?;
            Ok(graph.add(Node::NpScalar(NpScalar {
                module: module.to_string(),
                descr,
                data,
            })))
        }
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
    // Python 2 `str`s loaded with encoding='bytes' are ASCII bytes here; numpy takes them too.
    let code = match graph.deref(&o.args) {
        Some(Node::Tuple(a)) => ascii(a.first()?)?,
        _ => return None,
    };
    let order = match o.state.as_ref().and_then(|s| graph.deref(s)) {
        Some(Node::Tuple(st)) => st.get(1).and_then(ascii).unwrap_or_else(|| "|".to_string()),
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
pub(crate) fn build_ndarray(graph: &mut Graph, id: NodeId, state: Value) -> Result<()> {
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
    let want = expected_nbytes(&shape, &descr);
    let (bytes, items) = match data {
        Value::Bytes(b) => (b.clone(), None),
        Value::Str(st) => (py2_str_payload(st, want), None),
        v @ Value::Ref(_) => match graph.deref(v) {
            Some(Node::List(_)) => (Vec::new(), Some(v.clone())),
            Some(Node::ByteArray(b)) => (b.clone(), None),
            _ => return bad(what, "data must be bytes or a list"),
        },
        _ => return bad(what, "data must be bytes or a list"),
    };
    match &items {
        None => check_nbytes(what, &descr, &shape, bytes.len())?,
        Some(list) => {
            let n = match graph.deref(list) {
                Some(Node::List(l)) => l.len() as u64,
                _ => 0,
            };
            let numel = shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(u64::try_from(d).ok()?));
            if numel != Some(n) {
                crate::bail!(
                    ArraySize,
                    "{what}: an object array of shape {shape:?} holds {n} items"
                );
            }
        }
    }
    if let Some(Node::NdArray(a)) = graph.node_mut(id) {
        a.shape = shape;
        a.descr = descr;
        a.fortran_order = fortran;
        a.data = bytes;
        a.items = items;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_size_and_name_like_numpy() {
        let cases = [
            ("<f8", Some(8), "float64"),
            ("|b1", Some(1), "bool"),
            (">i2", Some(2), "int16"),
            ("|u1", Some(1), "uint8"),
            ("<c16", Some(16), "complex128"),
            ("<U3", Some(12), "str96"),
            ("|S5", Some(5), "bytes40"),
            ("|V8", Some(8), "void64"),
            ("|O8", None, "object"),
        ];
        for (descr, size, name) in cases {
            assert_eq!(descr_itemsize(descr), size, "{descr}");
            assert_eq!(descr_name(descr), name, "{descr}");
        }
    }

    #[test]
    fn python2_payloads_pick_the_encoding_that_fits() {
        // bytes 0xE9 0x41 decoded as latin-1 (invalid UTF-8): 2 bytes wanted.
        assert_eq!(py2_str_payload("\u{e9}A", Some(2)), vec![0xE9, 0x41]);
        // bytes C3 A9 (valid UTF-8 'é') decoded as UTF-8: 2 bytes wanted, latin-1 gives 1.
        assert_eq!(py2_str_payload("\u{e9}", Some(2)), vec![0xC3, 0xA9]);
        // Beyond latin-1: only UTF-8 can be meant.
        assert_eq!(py2_str_payload("\u{20ac}", Some(3)), "\u{20ac}".as_bytes());
        // Neither fits: numpy's latin-1, and the length check refuses it.
        assert_eq!(py2_str_payload("\u{e9}", Some(5)), vec![0xE9]);
        let e = check_nbytes("t", "<f8", &[2], 15).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::ArraySize);
        assert!(check_nbytes("t", "<f8", &[2], 16).is_ok());
    }
}
