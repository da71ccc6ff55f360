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
//! Tensors and storages arrive as tables beside the tree (`RawSaveTree` in ts/raw.ts): a
//! tensor node is `{t:'tensor', id, m}` where `m` indexes `tensorMeta`, a Float64Array of
//! `[storage, dtype, ndim, offset, flags, ...shape, ...stride]` entries; storages are
//! `storageData` (Uint8Arrays) with `[dtype, location, key]` rows in `storageMeta`. Why:
//! reading a dozen properties and two arrays of every tensor through napi cost more than
//! pickling and writing a state dict of small tensors; a table is read in one call.
//!
//! Storage bytes are NOT copied: each becomes a `ByteView` over a [`JsBytes`] backing that
//! holds the JS reference, which napi-rs keeps valid across threads (its drop is routed back
//! to the JS thread), so `saveAsync` can write them from the thread pool.

use crate::error::{core, to_napi_js};
use crate::js::{Js, MAX_SAFE, V};
use napi::bindgen_prelude::{FromNapiValue, Uint8Array};
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
    /// The bytes may be a view into a loaded file's mapping (saving what was loaded): the
    /// writer asks whether that file changed (`E_FILE_CHANGED`) before committing.
    fn check(&self) -> torchsave_core::Result<()> {
        torchsave_core::mapguard::check_addr(self.0.as_ptr())
    }
}

// Flag bits of a tensor table entry (TENSOR_FLAGS in ts/raw.ts).
const FLAG_REQUIRES_GRAD: u32 = 1;
const FLAG_PARAMETER: u32 = 2;
const FLAG_META_DEVICE: u32 = 4;
const FLAG_PARAMETER_STATE: u32 = 8;
const FLAG_QUANTIZER: u32 = 16;
const FLAG_METADATA: u32 = 32;
const FLAG_SUBCLASS: u32 = 64;

pub struct FromJs {
    js: Js,
    graph: Graph,
    ids: HashMap<u32, usize>,
    depth: usize,
    max_depth: usize,
    /// The tree's tensor table (`RawSaveTree.tensorMeta`, see ts/raw.ts) and its dtypes.
    meta: Vec<f64>,
    dtypes: Vec<DType>,
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
            meta: Vec::new(),
            dtypes: Vec::new(),
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

    /// Builds the graph from a `RawSaveTree` (ts/raw.ts): the dtype and string tables, the
    /// storages (tensors refer to them by index), the tensor table, then the root.
    pub fn build(mut self, tree: V) -> R<Graph> {
        let names = self.field(tree, c"dtypes")?;
        for name in self.strings_of(names)? {
            let d = DType::from_name(&name)
                .ok_or_else(|| self.bad(format!("unknown dtype '{name}'")))?;
            self.dtypes.push(d);
        }
        let strings = self.field(tree, c"strings")?;
        let strings = self.strings_of(strings)?;
        let smeta = self.field(tree, c"storageMeta")?;
        let smeta = self
            .js
            .f64_array(smeta)?
            .ok_or_else(|| self.bad("storageMeta must be a Float64Array"))?;
        let datas = self.field(tree, c"storageData")?;
        let n = self.js.array_len(datas)?;
        if smeta.len() != 3 * n {
            return Err(self.bad("storageMeta must hold 3 numbers per storage"));
        }
        for i in 0..n {
            let v = self.js.get_index(datas, i)?;
            if !self.js.is_typedarray(v)? {
                return Err(self.bad(format!("storage {i}: its data must be a Uint8Array")));
            }
            // SAFETY: `v` is a live typed-array handle of this callback.
            let data = unsafe { Uint8Array::from_napi_value(self.js.raw_env(), v) }?;
            let row: [f64; 3] = smeta
                .get(3 * i..3 * i + 3)
                .and_then(|r| r.try_into().ok())
                .ok_or_else(|| self.bad("storageMeta cut short"))?;
            let dtype = self.dtype_at(row[0])?;
            let location = self.string_at(&strings, row[1], "storage location")?;
            let key = if row[2] == -1.0 {
                i.to_string()
            } else {
                self.string_at(&strings, row[2], "storage key")?
            };
            let nbytes = data.len() as u64;
            let es = dtype.element_size() as u64;
            if nbytes.checked_rem(es) != Some(0) {
                return Err(self.bad(format!(
                    "storage {i}: {nbytes} bytes is not a whole number of {dtype} elements"
                )));
            }
            let data = if data.is_empty() {
                ByteView::empty()
            } else {
                ByteView::new(Arc::new(JsBytes(data)))
            };
            self.graph.add_storage(Storage {
                key,
                dtype,
                untyped: dtype.storage_class().is_none(),
                numel: nbytes / es,
                location,
                data,
            });
        }
        let meta = self.field(tree, c"tensorMeta")?;
        self.meta = self
            .js
            .f64_array(meta)?
            .ok_or_else(|| self.bad("tensorMeta must be a Float64Array"))?;
        let root = self.field(tree, c"root")?;
        let root = self.value(root)?;
        self.graph.root = Some(root);
        Ok(self.graph)
    }

    /// The dtype table's entry `x`.
    fn dtype_at(&self, x: f64) -> R<DType> {
        let i = self.int_in(x, 0, self.dtypes.len() as i64, "dtype index")?;
        self.dtypes
            .get(i as usize)
            .copied()
            .ok_or_else(|| self.bad("dtype index"))
    }

    /// The string table's entry `x`.
    fn string_at(&self, strings: &[String], x: f64, what: &str) -> R<String> {
        let i = self.int_in(x, 0, strings.len() as i64, what)?;
        strings
            .get(i as usize)
            .cloned()
            .ok_or_else(|| self.bad(what.to_string()))
    }

    /// A JS array of strings.
    fn strings_of(&self, arr: V) -> R<Vec<String>> {
        if !self.js.is_array(arr)? {
            return Err(self.bad("expected an array of strings"));
        }
        let n = self.js.array_len(arr)?;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for i in 0..n {
            let v = self.js.get_index(arr, i)?;
            out.push(self.js.get_string(v)?);
        }
        Ok(out)
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

    /// `x` as an integer in `lo..hi`, or a clear error naming `what`.
    fn int_in(&self, x: f64, lo: i64, hi: i64, what: &str) -> R<i64> {
        if x.fract() != 0.0 || x < lo as f64 || x >= hi as f64 {
            return Err(self.bad(format!(
                "tensor table: {what} {x} is not an integer in {lo}..{hi}"
            )));
        }
        Ok(x as i64)
    }

    fn tensor(&mut self, obj: V) -> R<Tensor> {
        let mv = self.field(obj, c"m")?;
        let len = self.meta.len() as i64;
        let at = self.int_in(self.js.get_f64(mv)?, 0, len, "entry")? as usize;
        let head: [f64; 5] = self
            .meta
            .get(at..at + 5)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| self.bad("tensor table: entry cut short"))?;
        let storages = self.graph.storages.len() as i64;
        let storage = match self.int_in(head[0], -1, storages, "storage index")? {
            -1 => None,
            i => Some(i as usize),
        };
        let dtype = self.dtype_at(head[1])?;
        let ndim = self.int_in(head[2], 0, 65, "dimension count")? as usize;
        let storage_offset = self.int_in(head[3], 0, MAX_SAFE, "storage offset")?;
        let flags = self.int_in(head[4], 0, 128, "flags")? as u32;
        let dims = self
            .meta
            .get(at + 5..at + 5 + 2 * ndim)
            .ok_or_else(|| self.bad("tensor table: entry cut short"))?;
        let mut shape = Vec::with_capacity(ndim);
        let mut stride = Vec::with_capacity(ndim);
        for (i, &x) in dims.iter().enumerate() {
            let v = self.int_in(
                x,
                -MAX_SAFE,
                MAX_SAFE,
                if i < ndim { "size" } else { "stride" },
            )?;
            if i < ndim {
                shape.push(v);
            } else {
                stride.push(v);
            }
        }
        let has = |bit: u32| flags & bit != 0;
        let quantizer = if has(FLAG_QUANTIZER) {
            let q = self.field(obj, c"quantizer")?;
            let scheme = self.str_field(q, c"scheme")?;
            let p = self.field(q, c"params")?;
            Some(Quantizer {
                scheme,
                params: self.items(p)?,
            })
        } else {
            None
        };
        let subclass = if has(FLAG_SUBCLASS) {
            let s = self.field(obj, c"subclass")?;
            let st = self.field(s, c"state")?;
            Some(TensorType {
                module: self.str_field(s, c"module")?,
                name: self.str_field(s, c"name")?,
                state: self.value(st)?,
            })
        } else {
            None
        };
        let parameter_state = if has(FLAG_PARAMETER_STATE) {
            self.opt_value(obj, c"parameterState")?
        } else {
            None
        };
        let metadata = if has(FLAG_METADATA) {
            self.opt_value(obj, c"metadata")?
        } else {
            None
        };
        Ok(Tensor {
            storage,
            dtype,
            shape,
            stride,
            storage_offset,
            requires_grad: has(FLAG_REQUIRES_GRAD),
            is_parameter: has(FLAG_PARAMETER),
            parameter_state,
            quantizer,
            metadata,
            subclass,
            device: has(FLAG_META_DEVICE).then(|| "meta".to_string()),
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
