//! JS raw tree → Graph, for saving.
//!
//! The TS layer (ts/serialization.ts) produces the same tagged format `to_js` emits, with
//! two additions for identity, since the binding cannot cheaply ask JS "is this the same
//! object": every compound tagged node may carry a numeric `id`, and a later occurrence of
//! the same object is `{t:'ref', id}`. A node is registered under its id *before* its
//! children are read, so cycles close. A plain JS array is a list without identity; a
//! `Uint8Array` is `bytes`; an integral number within ±2^53 is an int (the TS layer sends
//! integral Python floats as `{t:'float', v}`).
//!
//! Storages arrive separately as `Uint8Array`s. Their bytes are NOT copied: each becomes a
//! `ByteView` over a [`JsBytes`] backing that holds the JS reference, which napi-rs keeps
//! valid across threads (its drop is routed back to the JS thread), so `saveAsync` can write
//! them from the thread pool.

use crate::error::{core, to_napi_js};
use crate::js::{Js, MAX_SAFE, V};
use napi::bindgen_prelude::Uint8Array;
use napi::{sys, Result};
use num_bigint::{BigInt, Sign};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::Arc;
use torchsave_core::bytes::Backing;
use torchsave_core::value::{
    NdArray, Node, NpScalar, ObjectKind, PyObject, Quantizer, SparseTensor, Tensor, TensorType,
};
use torchsave_core::{ByteView, DType, ErrorCode, Graph, Storage, Value};

/// A JS `Uint8Array` as core memory (no copy).
pub struct JsBytes(pub Uint8Array);

impl Backing for JsBytes {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// One storage for saving: bytes plus what the pickle should say about them.
pub struct StorageIn {
    pub data: Uint8Array,
    pub dtype: String,
    pub location: String,
    pub key: Option<String>,
}

pub struct FromJs {
    js: Js,
    graph: Graph,
    ids: HashMap<u32, usize>,
    depth: usize,
    max_depth: usize,
    /// Property-key strings made once per save (by the key literal's address): thousands of
    /// tensors read the same dozen fields.
    keys: RefCell<Vec<(usize, V)>>,
}

type R<T> = Result<T>;

impl FromJs {
    pub fn new(js: Js, max_depth: usize) -> Self {
        FromJs {
            js,
            graph: Graph::new(),
            ids: HashMap::new(),
            depth: 0,
            max_depth,
            keys: RefCell::new(Vec::new()),
        }
    }

    /// `obj[key]`, or `None` when undefined, through the cached key string.
    fn get_opt(&self, obj: V, key: &'static CStr) -> R<Option<V>> {
        let at = key.as_ptr() as usize;
        let cached = self
            .keys
            .borrow()
            .iter()
            .find(|(p, _)| *p == at)
            .map(|(_, v)| *v);
        let k = match cached {
            Some(k) => k,
            None => {
                let k = self.js.string(&key.to_string_lossy())?;
                self.keys.borrow_mut().push((at, k));
                k
            }
        };
        self.js.get_opt_by(obj, k)
    }

    fn bad(&self, msg: impl Into<String>) -> napi::Error {
        to_napi_js(self.js, &core(ErrorCode::Unserializable, msg))
    }

    /// Builds the graph: storages first (tensors refer to them by index), then the root.
    pub fn build(mut self, root: V, storages: Vec<StorageIn>) -> R<Graph> {
        for (i, s) in storages.into_iter().enumerate() {
            let dtype = DType::from_name(&s.dtype)
                .ok_or_else(|| self.bad(format!("storage {i}: unknown dtype '{}'", s.dtype)))?;
            let nbytes = s.data.len() as u64;
            let es = dtype.element_size() as u64;
            if nbytes.checked_rem(es) != Some(0) {
                return Err(self.bad(format!(
                    "storage {i}: {nbytes} bytes is not a whole number of {} elements",
                    s.dtype
                )));
            }
            let data = if s.data.is_empty() {
                ByteView::empty()
            } else {
                ByteView::new(Arc::new(JsBytes(s.data)))
            };
            self.graph.add_storage(Storage {
                key: s.key.unwrap_or_else(|| i.to_string()),
                dtype,
                untyped: dtype.storage_class().is_none(),
                numel: nbytes / es,
                location: s.location,
                data,
            });
        }
        let root = self.value(root)?;
        self.graph.root = Some(root);
        Ok(self.graph)
    }

    fn value(&mut self, v: V) -> R<Value> {
        let js = self.js;
        match js.type_of(v)? {
            sys::ValueType::napi_null => Ok(Value::None),
            sys::ValueType::napi_boolean => Ok(Value::Bool(js.get_bool(v)?)),
            sys::ValueType::napi_number => Ok(number(js.get_f64(v)?)),
            sys::ValueType::napi_bigint => {
                let (neg, words) = js.get_bigint(v)?;
                Ok(bigint(neg, &words))
            }
            sys::ValueType::napi_string => Ok(Value::Str(js.get_string(v)?)),
            sys::ValueType::napi_object => {
                if js.is_array(v)? {
                    return self.enter(None, |me| Ok(Node::List(me.items(v)?)));
                }
                if js.is_typedarray(v)? {
                    return Ok(Value::Bytes(js.typedarray_bytes(v)?));
                }
                self.tagged(v)
            }
            sys::ValueType::napi_undefined => Err(self.bad("undefined cannot be saved (raw tree)")),
            other => Err(self.bad(format!(
                "a JS value of type {other} cannot be saved (raw tree)"
            ))),
        }
    }

    /// Reserves a node (registered under `id` before its children, so cycles close), fills it.
    fn enter(&mut self, id: Option<u32>, f: impl FnOnce(&mut Self) -> R<Node>) -> R<Value> {
        if self.depth >= self.max_depth {
            return Err(to_napi_js(
                self.js,
                &core(
                    ErrorCode::LimitExceeded,
                    format!("value nesting deeper than {} levels", self.max_depth),
                ),
            ));
        }
        let r = self.graph.add(Node::List(Vec::new()));
        let Value::Ref(node_id) = r else {
            return Err(self.bad("internal: add() returned a non-ref"));
        };
        if let Some(id) = id {
            self.ids.insert(id, node_id);
        }
        self.depth += 1;
        let node = f(self);
        self.depth -= 1;
        let node = node?;
        if let Some(slot) = self.graph.node_mut(node_id) {
            *slot = node;
        }
        Ok(Value::Ref(node_id))
    }

    fn items(&mut self, arr: V) -> R<Vec<Value>> {
        let n = self.js.array_len(arr)?;
        let mut out = Vec::with_capacity(n.min(1 << 20));
        for i in 0..n {
            let e = self.js.get_index(arr, i)?;
            out.push(self.value(e)?);
        }
        Ok(out)
    }

    fn pairs(&mut self, arr: V) -> R<Vec<(Value, Value)>> {
        let flat = self.items(arr)?;
        if flat.len() & 1 == 1 {
            return Err(self.bad("dict items must be a flat [k0, v0, k1, v1, ...] array"));
        }
        let mut out = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn field(&self, obj: V, key: &'static CStr) -> R<V> {
        self.get_opt(obj, key)?
            .ok_or_else(|| self.bad(format!("raw node is missing '{}'", key.to_string_lossy())))
    }

    fn str_field(&self, obj: V, key: &'static CStr) -> R<String> {
        let v = self.field(obj, key)?;
        self.js.get_string(v)
    }

    fn opt_value(&mut self, obj: V, key: &'static CStr) -> R<Option<Value>> {
        match self.get_opt(obj, key)? {
            Some(v) => Ok(Some(self.value(v)?)),
            None => Ok(None),
        }
    }

    fn ints_field(&self, obj: V, key: &'static CStr) -> R<Vec<i64>> {
        let arr = self.field(obj, key)?;
        if !self.js.is_array(arr)? {
            return Err(self.bad(format!(
                "'{}' must be an array of ints",
                key.to_string_lossy()
            )));
        }
        let n = self.js.array_len(arr)?;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for i in 0..n {
            let e = self.js.get_index(arr, i)?;
            let x = match self.js.type_of(e)? {
                sys::ValueType::napi_bigint => match bigint_from(self.js.get_bigint(e)?) {
                    Some(x) => x,
                    None => return Err(self.bad("dimension outside int64")),
                },
                _ => {
                    let f = self.js.get_f64(e)?;
                    if f.fract() != 0.0 || f.abs() > MAX_SAFE as f64 {
                        return Err(
                            self.bad(format!("'{}' holds {f}, not an int", key.to_string_lossy()))
                        );
                    }
                    f as i64
                }
            };
            out.push(x);
        }
        Ok(out)
    }

    fn bytes_field(&self, obj: V, key: &'static CStr) -> R<Vec<u8>> {
        let v = self.field(obj, key)?;
        if !self.js.is_typedarray(v)? {
            return Err(self.bad(format!("'{}' must be a Uint8Array", key.to_string_lossy())));
        }
        self.js.typedarray_bytes(v)
    }

    fn bool_field(&self, obj: V, key: &'static CStr) -> R<bool> {
        match self.get_opt(obj, key)? {
            Some(v) => self.js.get_bool(v),
            None => Ok(false),
        }
    }

    fn tagged(&mut self, obj: V) -> R<Value> {
        let js = self.js;
        let tag = self.str_field(obj, c"t")?;
        let id = match self.get_opt(obj, c"id")? {
            Some(v) => {
                let f = js.get_f64(v)?;
                if f.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&f) {
                    return Err(self.bad("raw node id must be a u32"));
                }
                Some(f as u32)
            }
            None => None,
        };
        match tag.as_str() {
            "ref" => {
                let id = id.ok_or_else(|| self.bad("{t:'ref'} without id"))?;
                let node = *self
                    .ids
                    .get(&id)
                    .ok_or_else(|| self.bad(format!("{{t:'ref', id:{id}}} before its object")))?;
                Ok(Value::Ref(node))
            }
            "float" => {
                let v = self.field(obj, c"v")?;
                Ok(Value::Float(js.get_f64(v)?))
            }
            "complex" => {
                let re = js.get_f64(self.field(obj, c"re")?)?;
                let im = js.get_f64(self.field(obj, c"im")?)?;
                Ok(Value::Complex(re, im))
            }
            "list" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                Ok(Node::List(me.items(a)?))
            }),
            "tuple" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                Ok(Node::Tuple(me.items(a)?))
            }),
            "set" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                Ok(Node::Set(me.items(a)?))
            }),
            "frozenset" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                Ok(Node::FrozenSet(me.items(a)?))
            }),
            "dict" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                Ok(Node::Dict(me.pairs(a)?))
            }),
            "odict" => self.enter(id, |me| {
                let a = me.field(obj, c"items")?;
                let items = me.pairs(a)?;
                let state = me.opt_value(obj, c"state")?;
                Ok(Node::OrderedDict { items, state })
            }),
            "bytearray" => self.enter(id, |me| Ok(Node::ByteArray(me.bytes_field(obj, c"data")?))),
            "tensor" => self.enter(id, |me| Ok(Node::Tensor(me.tensor(obj)?))),
            "sparse" => self.enter(id, |me| {
                let layout = me.str_field(obj, c"layout")?;
                let a = me.field(obj, c"args")?;
                let args = me.items(a)?;
                let requires_grad = me.bool_field(obj, c"requiresGrad")?;
                Ok(Node::SparseTensor(SparseTensor {
                    layout,
                    args,
                    requires_grad,
                }))
            }),
            "storage" => self.enter(id, |me| {
                let s = me
                    .storage_index(obj)?
                    .ok_or_else(|| me.bad("{t:'storage'} needs a storage index"))?;
                Ok(Node::Storage(s))
            }),
            "size" => self.enter(id, |me| Ok(Node::Size(me.ints_field(obj, c"dims")?))),
            "device" => self.enter(id, |me| Ok(Node::Device(me.str_field(obj, c"v")?))),
            "dtype" => self.enter(id, |me| {
                let name = me.str_field(obj, c"v")?;
                let d = DType::from_name(&name)
                    .ok_or_else(|| me.bad(format!("unknown dtype '{name}'")))?;
                Ok(Node::Dtype(d))
            }),
            "layout" => self.enter(id, |me| Ok(Node::Layout(me.str_field(obj, c"v")?))),
            "global" => self.enter(id, |me| {
                Ok(Node::Global {
                    module: me.str_field(obj, c"module")?,
                    name: me.str_field(obj, c"name")?,
                })
            }),
            "ndarray" => self.enter(id, |me| {
                let items = me.opt_value(obj, c"items")?;
                Ok(Node::NdArray(NdArray {
                    module: me.str_field(obj, c"module")?,
                    descr: me.str_field(obj, c"descr")?,
                    shape: me.ints_field(obj, c"shape")?,
                    fortran_order: me.bool_field(obj, c"fortran")?,
                    data: me.bytes_field(obj, c"data")?,
                    items,
                }))
            }),
            "npscalar" => self.enter(id, |me| {
                Ok(Node::NpScalar(NpScalar {
                    module: me.str_field(obj, c"module")?,
                    descr: me.str_field(obj, c"descr")?,
                    data: me.bytes_field(obj, c"data")?,
                }))
            }),
            "object" => self.enter(id, |me| Ok(Node::Object(me.object(obj)?))),
            other => Err(self.bad(format!("unknown raw node tag '{other}'"))),
        }
    }

    fn storage_index(&self, obj: V) -> R<Option<usize>> {
        let Some(v) = self.get_opt(obj, c"storage")? else {
            return Ok(None);
        };
        if self.js.type_of(v)? == sys::ValueType::napi_null {
            return Ok(None);
        }
        let f = self.js.get_f64(v)?;
        if f.fract() != 0.0 || f < 0.0 || f >= self.graph.storages.len() as f64 {
            return Err(self.bad(format!(
                "storage index {f} is not one of the {} storages passed",
                self.graph.storages.len()
            )));
        }
        Ok(Some(f as usize))
    }

    fn tensor(&mut self, obj: V) -> R<Tensor> {
        let js = self.js;
        let dtype_name = self.str_field(obj, c"dtype")?;
        let dtype = DType::from_name(&dtype_name)
            .ok_or_else(|| self.bad(format!("unknown dtype '{dtype_name}'")))?;
        let storage = self.storage_index(obj)?;
        let shape = self.ints_field(obj, c"shape")?;
        let stride = self.ints_field(obj, c"stride")?;
        let offset = match self.get_opt(obj, c"offset")? {
            Some(v) => js.get_f64(v)? as i64,
            None => 0,
        };
        let quantizer = match self.get_opt(obj, c"quantizer")? {
            Some(q) => {
                let scheme = self.str_field(q, c"scheme")?;
                let p = self.field(q, c"params")?;
                Some(Quantizer {
                    scheme,
                    params: self.items(p)?,
                })
            }
            None => None,
        };
        let subclass = match self.get_opt(obj, c"subclass")? {
            Some(s) => {
                let st = self.field(s, c"state")?;
                Some(TensorType {
                    module: self.str_field(s, c"module")?,
                    name: self.str_field(s, c"name")?,
                    state: self.value(st)?,
                })
            }
            None => None,
        };
        let device = match self.get_opt(obj, c"device")? {
            Some(v) => Some(js.get_string(v)?),
            None => None,
        };
        Ok(Tensor {
            storage,
            dtype,
            shape,
            stride,
            storage_offset: offset,
            requires_grad: self.bool_field(obj, c"requiresGrad")?,
            is_parameter: self.bool_field(obj, c"parameter")?,
            parameter_state: self.opt_value(obj, c"parameterState")?,
            quantizer,
            metadata: self.opt_value(obj, c"metadata")?,
            subclass,
            device,
        })
    }

    fn object(&mut self, obj: V) -> R<PyObject> {
        let kind = match self.str_field(obj, c"kind")?.as_str() {
            "reduce" => ObjectKind::Reduce,
            "newobj" => ObjectKind::NewObj,
            "newobj_ex" => ObjectKind::NewObjEx,
            "inst" => ObjectKind::Inst,
            other => return Err(self.bad(format!("unknown object kind '{other}'"))),
        };
        let args_v = self.field(obj, c"args")?;
        let args = self.value(args_v)?;
        let kwargs = self.opt_value(obj, c"kwargs")?;
        let state = self.opt_value(obj, c"state")?;
        let list_items = match self.get_opt(obj, c"listItems")? {
            Some(a) => self.items(a)?,
            None => Vec::new(),
        };
        let dict_items = match self.get_opt(obj, c"dictItems")? {
            Some(a) => self.pairs(a)?,
            None => Vec::new(),
        };
        Ok(PyObject {
            module: self.str_field(obj, c"module")?,
            name: self.str_field(obj, c"name")?,
            kind,
            args,
            kwargs,
            state,
            list_items,
            dict_items,
        })
    }
}

/// A JS number: an int when integral and exact (and not -0), else a float.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() <= MAX_SAFE as f64 && !(x == 0.0 && x.is_sign_negative()) {
        Value::Int(x as i64)
    } else {
        Value::Float(x)
    }
}

fn bigint_from((neg, words): (bool, Vec<u64>)) -> Option<i64> {
    match bigint(neg, &words) {
        Value::Int(i) => Some(i),
        _ => None,
    }
}

fn bigint(neg: bool, words: &[u64]) -> Value {
    let b = BigInt::from_slice(
        if neg { Sign::Minus } else { Sign::Plus },
        &words
            .iter()
            .flat_map(|w| [(*w & 0xffff_ffff) as u32, (*w >> 32) as u32])
            .collect::<Vec<u32>>(),
    );
    match i64::try_from(&b) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(b),
    }
}
