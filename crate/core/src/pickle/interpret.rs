//! Interpretation: what GLOBAL, REDUCE, NEWOBJ, BUILD, APPEND, SETITEM and persistent ids
//! *mean*, as data. Nothing is imported or called.
//!
//! Known reconstructors become typed nodes (`value.rs`):
//!
//! | Callable (after Python 2 mapping) | Node |
//! | --- | --- |
//! | `torch._utils._rebuild_tensor` / `_v2` / `_v3` | `Tensor` (dtype from the storage's persistent id; v3 from its dtype argument) |
//! | `torch._utils._rebuild_parameter[_with_state]`, NEWOBJ `torch.nn.parameter.Parameter` | `Tensor` with `is_parameter` |
//! | `torch._utils._rebuild_qtensor` | `Tensor` with `Quantizer { scheme, params }` |
//! | `torch._utils._rebuild_sparse_tensor` (+ `torch.serialization._get_layout`) | `SparseTensor` (+ `Layout`) |
//! | `torch._utils._rebuild_meta_tensor_no_storage` | `Tensor` without storage, device `meta` |
//! | `torch._utils._rebuild_device_tensor_from_cpu_tensor` | the CPU `Tensor` with `device` set |
//! | `torch._tensor._rebuild_from_type_v2` | the inner tensor with `subclass` (class + state) |
//! | `torch.<X>Tensor` / `torch.Tensor` called with `()` then BUILD `(storage, offset, size, stride)` | `Tensor` (pre-0.4 legacy `set_`) |
//! | `collections.OrderedDict` (+ BUILD → `state`, how `_metadata` arrives) | `OrderedDict` |
//! | `torch.Size`, `torch.device` (`('cuda', 0)` and `('cuda:0',)`) | `Size`, `Device` |
//! | bare `torch.<dtype>` GLOBAL | `Dtype` (`torch.uint1..7`/`int1..7`: `Global`, not representable) |
//! | `numpy.core.multiarray._reconstruct(numpy.ndarray, ...)` + BUILD (also `numpy._core`) | `NdArray` (dtype from `numpy.dtype` + its BUILD byte order) |
//! | `numpy.core.multiarray.scalar(dtype, bytes)` | `NpScalar` |
//! | `_codecs.encode(str, 'latin1')`, `builtins.bytes` | `Value::Bytes` |
//! | `builtins.set` / `frozenset` / `bytearray` / `complex` | `Set` / `FrozenSet` / `ByteArray` / `Value::Complex` |
//! | `builtins.getattr(<class>, 'Inner')` | `Global` with dotted qualname |
//!
//! Everything else (including `numpy.dtype`, `builtins.slice`, `collections.Counter`,
//! `argparse.Namespace`, modules) is a `PyObject` keeping module, name, kind, args, state and
//! appended items, so a re-save can reproduce it. Known reconstructors called with arguments of
//! the wrong shape fail with `E_BAD_RECONSTRUCT` naming the reconstructor.
//!
//! Every call, BUILD, APPEND and SETITEM asks the run's [`Policy`] first, which follows torch
//! 2.11's weights-only rules (calls only on allowed globals, BUILD only on tensors, Parameters,
//! OrderedDicts and allowed classes, APPEND only on lists, SETITEM only on
//! dict/OrderedDict/Counter).
//!
//! The work is split by job: this module dispatches; [`super::reconstruct`] holds torch's
//! tensor reconstructors, [`super::numpy`] numpy's, [`super::args`] the argument coercion and
//! [`super::persistent`] the `('storage', ...)` persistent loader
//! ([`TorchPersistentLoader`](super::TorchPersistentLoader)).

use super::args::{
    bad, bad_err, bytes_from_args, encode_str, global_name, ints, iterable_items, object,
    tuple_items,
};
use super::kinds::{any_kind, kind_name, value_kind};
use super::numpy::{self, is_numpy_multiarray};
use super::policy::{Callee, Policy};
use super::reconstruct::{self as rec, tensor_class, Ctx};
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Graph, Node, ObjectKind, PyObject, TensorType, Value};

/// The node a GLOBAL pushes.
pub(crate) fn global(graph: &mut Graph, module: &str, name: &str) -> Value {
    if module == "torch" {
        if let Some(d) = DType::from_name(name) {
            return graph.add(Node::Dtype(d));
        }
    }
    graph.add(Node::Global {
        module: module.to_string(),
        name: name.to_string(),
    })
}

/// REDUCE / NEWOBJ / NEWOBJ_EX / INST / OBJ.
pub(crate) fn call(
    ctx: &mut Ctx<'_>,
    kind: ObjectKind,
    callable: Value,
    args: Value,
    kwargs: Option<Value>,
) -> Result<Value> {
    let Some((module, name)) = global_name(ctx.graph, &callable) else {
        ctx.policy
            .call(Callee::Other(any_kind(ctx.graph, &callable)))?;
        if let Some(Node::Dtype(_)) = ctx.graph.deref(&callable) {
            crate::bail!(BadReconstruct, "a torch.dtype is not callable");
        }
        // A callable built by the pickle itself (e.g. `getattr(obj, 'method')`): keep both.
        let both = ctx.graph.add(Node::Tuple(vec![callable, args]));
        return Ok(object(ctx.graph, "", "", kind, both, kwargs));
    };
    let full = format!("{module}.{name}");
    ctx.policy.call(Callee::Global(&full))?;
    if matches!(kind, ObjectKind::NewObj | ObjectKind::NewObjEx) {
        match full.as_str() {
            "torch.nn.parameter.Parameter" => return rec::new_parameter(ctx, &args),
            "collections.OrderedDict" => return rec::ordered_dict(ctx.graph, &args),
            _ => {
                if let Some((dtype, device)) = tensor_class(&module, &name) {
                    if tuple_items(ctx.graph, &args, &full)?.is_empty() {
                        return Ok(rec::empty_tensor(ctx.graph, dtype, device));
                    }
                }
                return Ok(object(ctx.graph, &module, &name, kind, args, kwargs));
            }
        }
    }
    if let Some((dtype, device)) = tensor_class(&module, &name) {
        if matches!(ctx.graph.deref(&args), Some(Node::Tuple(t)) if t.is_empty()) {
            return Ok(rec::empty_tensor(ctx.graph, dtype, device));
        }
    }
    match full.as_str() {
        "torch._utils._rebuild_tensor" => rec::rebuild_tensor(ctx, &args, &full, 1),
        "torch._utils._rebuild_tensor_v2" => rec::rebuild_tensor(ctx, &args, &full, 2),
        "torch._utils._rebuild_tensor_v3" => rec::rebuild_tensor(ctx, &args, &full, 3),
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
            rec::rebuild_parameter(ctx, &args, &full)
        }
        "torch.nn.parameter.Parameter" => rec::new_parameter(ctx, &args),
        "torch._utils._rebuild_qtensor" => rec::rebuild_qtensor(ctx, &args, &full),
        "torch._utils._rebuild_sparse_tensor" => rec::rebuild_sparse(ctx, &args, &full),
        "torch._utils._rebuild_meta_tensor_no_storage" => rec::rebuild_meta(ctx, &args, &full),
        "torch._utils._rebuild_device_tensor_from_cpu_tensor" => {
            rec::rebuild_device(ctx, &args, &full)
        }
        "torch._tensor._rebuild_from_type_v2" => rebuild_from_type(ctx, &args, &full),
        "torch.serialization._get_layout" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            match a.as_slice() {
                [Value::Str(s)] => {
                    let l = s.strip_prefix("torch.").unwrap_or(s).to_string();
                    Ok(ctx.graph.add(Node::Layout(l)))
                }
                _ => bad(&full, "expected one str argument"),
            }
        }
        "collections.OrderedDict" => rec::ordered_dict(ctx.graph, &args),
        "torch.Size" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            let dims = match a.as_slice() {
                [] => Vec::new(),
                [v] => ints(ctx.graph, v, &full)?,
                _ => return bad(&full, "expected one tuple of ints"),
            };
            Ok(ctx.graph.add(Node::Size(dims)))
        }
        "torch.device" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            let dev = match a.as_slice() {
                [Value::Str(s)] => s.clone(),
                [Value::Str(s), Value::None] => s.clone(),
                [Value::Str(s), Value::Int(i)] if *i >= 0 && !s.contains(':') => format!("{s}:{i}"),
                _ => return bad(&full, "expected (type[, index]) or ('type:index',)"),
            };
            Ok(ctx.graph.add(Node::Device(dev)))
        }
        "_codecs.encode" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            match a.as_slice() {
                [Value::Str(s), Value::Str(enc)] => Ok(Value::Bytes(encode_str(s, enc, &full)?)),
                [Value::Str(s)] => Ok(Value::Bytes(s.as_bytes().to_vec())),
                [Value::Bytes(b), ..] => Ok(Value::Bytes(b.clone())),
                _ => bad(&full, "expected (str, encoding)"),
            }
        }
        "builtins.bytes" => {
            let b = bytes_from_args(ctx.graph, &args, &full)?;
            Ok(Value::Bytes(b))
        }
        "builtins.bytearray" => {
            let b = bytes_from_args(ctx.graph, &args, &full)?;
            Ok(ctx.graph.add(Node::ByteArray(b)))
        }
        "builtins.set" | "builtins.frozenset" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            let items = match a.as_slice() {
                [] => Vec::new(),
                [v] => iterable_items(ctx.graph, v, &full)?,
                _ => return bad(&full, "expected at most one iterable"),
            };
            let node = if name == "set" {
                Node::Set(items)
            } else {
                Node::FrozenSet(items)
            };
            Ok(ctx.graph.add(node))
        }
        "builtins.complex" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            let f = |v: &Value| match v {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                Value::Bool(b) => Some(*b as i64 as f64),
                _ => None,
            };
            match a.as_slice() {
                [] => Ok(Value::Complex(0.0, 0.0)),
                [re] => f(re)
                    .map(|r| Value::Complex(r, 0.0))
                    .ok_or_else(|| bad_err(&full, "expected numbers")),
                [re, im] => match (f(re), f(im)) {
                    (Some(r), Some(i)) => Ok(Value::Complex(r, i)),
                    _ => bad(&full, "expected numbers"),
                },
                _ => bad(&full, "expected (real, imag)"),
            }
        }
        "builtins.getattr" => {
            let a = tuple_items(ctx.graph, &args, &full)?;
            if let [owner, Value::Str(attr)] = a.as_slice() {
                if let Some((m, n)) = global_name(ctx.graph, owner) {
                    return Ok(ctx.graph.add(Node::Global {
                        module: m,
                        name: format!("{n}.{attr}"),
                    }));
                }
            }
            Ok(object(ctx.graph, &module, &name, kind, args, kwargs))
        }
        _ if is_numpy_multiarray(&module) && name == "_reconstruct" => {
            numpy::reconstruct(ctx.graph, &module, &name, kind, args, kwargs)
        }
        _ if is_numpy_multiarray(&module) && name == "scalar" => {
            numpy::scalar(ctx.graph, &module, &name, kind, args, kwargs)
        }
        _ => Ok(object(ctx.graph, &module, &name, kind, args, kwargs)),
    }
}

fn rebuild_from_type(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let [func, new_type, inner_args, state] = a.as_slice() else {
        return bad(what, "expected (func, new_type, args, state)");
    };
    let Some((module, name)) = global_name(ctx.graph, new_type) else {
        return bad(what, "new_type must be a class");
    };
    let result = call(
        ctx,
        ObjectKind::Reduce,
        func.clone(),
        inner_args.clone(),
        None,
    )?;
    let plain = module == "torch" && name == "Tensor" && matches!(state, Value::None);
    match &result {
        Value::Ref(id) => match ctx.graph.node_mut(*id) {
            Some(Node::Tensor(t)) => {
                if !plain {
                    t.subclass = Some(TensorType {
                        module,
                        name,
                        state: state.clone(),
                    });
                }
            }
            _ => return bad(what, "func did not produce a tensor"),
        },
        _ => return bad(what, "func did not produce a tensor"),
    }
    Ok(result)
}

/// BUILD.
pub(crate) fn build(ctx: &mut Ctx<'_>, inst: &Value, state: Value) -> Result<()> {
    let Value::Ref(id) = inst else {
        crate::bail!(BadPickle, "BUILD on a {}", value_kind(inst));
    };
    let id = *id;
    let kind = ctx.graph.node(id).map(kind_name).unwrap_or("object");
    let is_tensor = matches!(ctx.graph.node(id), Some(Node::Tensor(_)));
    if is_tensor {
        return rec::build_tensor(ctx, id, state);
    }
    if matches!(ctx.graph.node(id), Some(Node::NdArray(_))) {
        return numpy::build_ndarray(ctx.graph, id, state);
    }
    match ctx.graph.node_mut(id) {
        Some(Node::OrderedDict { state: s, .. }) => {
            *s = Some(state);
            Ok(())
        }
        Some(Node::Object(o)) => {
            ctx.policy.build(&class_name(o))?;
            o.state = Some(state);
            Ok(())
        }
        _ => crate::bail!(
            BadPickle,
            "BUILD on a {kind} (only objects, tensors and OrderedDicts take state)"
        ),
    }
}

/// APPEND / APPENDS.
pub(crate) fn append(
    graph: &mut Graph,
    target: &Value,
    items: Vec<Value>,
    policy: &mut Policy,
) -> Result<()> {
    let Value::Ref(id) = target else {
        crate::bail!(BadPickle, "APPEND to a {}", value_kind(target));
    };
    match graph.node_mut(*id) {
        Some(Node::List(l)) => {
            l.extend(items);
            Ok(())
        }
        Some(Node::Object(o)) => {
            policy.append(&class_name(o))?;
            o.list_items.extend(items);
            Ok(())
        }
        Some(n) => crate::bail!(
            BadPickle,
            "can only append to lists, but got a {}",
            kind_name(n)
        ),
        None => crate::bail!(BadPickle, "dangling reference"),
    }
}

/// SETITEM / SETITEMS.
pub(crate) fn set_items(
    graph: &mut Graph,
    target: &Value,
    pairs: Vec<(Value, Value)>,
    policy: &mut Policy,
) -> Result<()> {
    let Value::Ref(id) = target else {
        crate::bail!(BadPickle, "SETITEM on a {}", value_kind(target));
    };
    match graph.node_mut(*id) {
        Some(Node::Dict(d)) | Some(Node::OrderedDict { items: d, .. }) => {
            d.extend(pairs);
            Ok(())
        }
        Some(Node::Object(o)) => {
            policy.set_item(&class_name(o))?;
            o.dict_items.extend(pairs);
            Ok(())
        }
        Some(n) => crate::bail!(
            BadPickle,
            "can only SETITEM on dict, collections.OrderedDict, collections.Counter, but got a {}",
            kind_name(n)
        ),
        None => crate::bail!(BadPickle, "dangling reference"),
    }
}

/// `module.qualname` of an object's class, for the policy ("object" when the pickle built
/// the callable itself).
fn class_name(o: &PyObject) -> String {
    if o.module.is_empty() && o.name.is_empty() {
        "object".to_string()
    } else {
        format!("{}.{}", o.module, o.name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    //! Hand-built pickles for forms modern torch no longer writes (`module` persistent ids, pre-0.4 `set_` state, `_rebuild_tensor` v1). The real-torch fixtures
    //! live in `tests/pickle_torch.rs`.
    use crate::bytes::ByteView;
    use crate::dtype::DType;
    use crate::error::{ErrorCode, Result};
    use crate::pickle::{unpickle, StorageSource, TorchPersistentLoader, UnpickleOptions};
    use crate::value::{Graph, Node, StorageId, Value};

    fn g(m: &str, n: &str) -> Vec<u8> {
        format!("c{m}\n{n}\n").into_bytes()
    }
    fn s(x: &str) -> Vec<u8> {
        let mut v = vec![b'X'];
        v.extend((x.len() as u32).to_le_bytes());
        v.extend(x.as_bytes());
        v
    }
    fn k(i: u8) -> Vec<u8> {
        vec![b'K', i]
    }
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![0x80, 2];
        for p in parts {
            v.extend_from_slice(p);
        }
        v.push(b'.');
        v
    }

    struct Src(Option<Vec<u8>>);
    impl StorageSource for Src {
        fn storage(&mut self, _: &str, _: DType, n: u64) -> Result<Option<ByteView>> {
            Ok(self
                .0
                .as_ref()
                .map(|d| ByteView::from_vec(d[..n as usize].to_vec())))
        }
    }

    fn run(data: &[u8], src: &mut Src, wo: bool) -> Result<(Graph, Value, Vec<StorageId>)> {
        let mut loader = TorchPersistentLoader::new(src);
        let mut graph = Graph::new();
        let opts = UnpickleOptions {
            weights_only: wo,
            ..Default::default()
        };
        let out = unpickle(data, &mut graph, &opts, &mut loader)?;
        Ok((graph, out.root, loader.pending().to_vec()))
    }

    /// `('storage', torch.FloatStorage, key, 'cpu', numel, view)` then BINPERSID.
    fn pid(key: &str, numel: u8, view: &[u8]) -> Vec<u8> {
        let mut v = vec![b'('];
        v.extend(s("storage"));
        v.extend(g("torch", "FloatStorage"));
        v.extend(s(key));
        v.extend(s("cpu"));
        v.extend(k(numel));
        v.extend_from_slice(view);
        v.extend(b"tQ");
        v
    }

    #[test]
    fn legacy_set_state_and_storage_dedup() {
        // t = torch.FloatTensor(); t.__setstate__((storage, 1, (2,), (1,))), twice the same key.
        let mut state = vec![b'('];
        state.extend(pid("k", 4, b"N"));
        state.extend(k(1));
        state.extend(k(2));
        state.push(0x85);
        state.extend(k(1));
        state.push(0x85);
        state.push(b't');
        let data = cat(&[
            b"(",
            &g("torch", "FloatTensor"),
            b")R",
            &state,
            b"b",
            &pid("k", 4, b"N"),
            b"t",
        ]);
        let (graph, root, ..) = run(&data, &mut Src(Some(vec![0; 16])), true).unwrap();
        let Some(Node::Tuple(items)) = graph.deref(&root) else {
            panic!()
        };
        let Some(Node::Tensor(t)) = graph.deref(&items[0]) else {
            panic!()
        };
        assert_eq!(
            (t.storage, t.storage_offset, t.shape.clone()),
            (Some(0), 1, vec![2])
        );
        assert_eq!(
            graph.deref(&items[1]),
            Some(&Node::Storage(0)),
            "same key, same storage"
        );
        assert_eq!(graph.storages.len(), 1);
    }

    #[test]
    fn module_pids_devices_and_parameters() {
        // ('module', torch.nn.modules.linear.Linear, 'f.py', 'src') → the class.
        let mut m = vec![b'('];
        m.extend(s("module"));
        m.extend(g("torch.nn.modules.linear", "Linear"));
        m.extend(s("f.py"));
        m.extend(s("class Linear"));
        m.extend(b"tQ");
        let (graph, root, ..) = run(&cat(&[&m]), &mut Src(None), false).unwrap();
        assert_eq!(
            graph.deref(&root),
            Some(&Node::Global {
                module: "torch.nn.modules.linear".into(),
                name: "Linear".into()
            })
        );
        for (args, want) in [
            (
                cat(&[&g("torch", "device"), &s("cuda:1"), &[0x85], b"R"]),
                "cuda:1",
            ),
            (
                cat(&[&g("torch", "device"), &s("cuda"), &k(1), &[0x86], b"R"]),
                "cuda:1",
            ),
            (
                cat(&[&g("torch", "device"), &s("cpu"), &[0x85], b"R"]),
                "cpu",
            ),
        ] {
            let (graph, root, ..) = run(&args, &mut Src(None), true).unwrap();
            assert_eq!(graph.deref(&root), Some(&Node::Device(want.into())));
        }
        // Parameter via NEWOBJ (FORMAT 6.2), with requires_grad False.
        let t = cat(&[
            &g("torch.nn.parameter", "Parameter"),
            &g("torch._utils", "_rebuild_tensor_v2"),
            b"(",
            &pid("0", 2, b""),
            &k(0),
            &k(2),
            &[0x85],
            &k(1),
            &[0x85],
            &[0x89],
            &g("collections", "OrderedDict"),
            b")Rt",
            b"R",
            &[0x89, 0x86, 0x81],
        ]);
        let (graph, root, ..) = run(&t, &mut Src(Some(vec![0; 8])), true).unwrap();
        let Some(Node::Tensor(p)) = graph.deref(&root) else {
            panic!()
        };
        assert!(p.is_parameter && !p.requires_grad);
        // Wrong argument shapes name the reconstructor.
        let bad = cat(&[&g("torch", "Size"), &s("x"), &[0x85], b"R"]);
        let e = run(&bad, &mut Src(None), true).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadReconstruct);
        assert!(e.message.contains("torch.Size"));
    }

    #[test]
    fn opcodes_torch_never_writes() {
        // EXT1 → inert object without weights_only, rejected with it.
        let ext = cat(&[&[0x82, 7]]);
        let (graph, root, ..) = run(&ext, &mut Src(None), false).unwrap();
        assert!(matches!(graph.deref(&root), Some(Node::Object(o)) if o.args == Value::Int(7)));
        assert_eq!(
            run(&ext, &mut Src(None), true).unwrap_err().code,
            ErrorCode::UnsafeGlobal
        );
        // Out-of-band buffers are unsupported.
        let buf = vec![0x80, 5, 0x97, b'.'];
        assert_eq!(
            run(&buf, &mut Src(None), false).unwrap_err().code,
            ErrorCode::BadPickle
        );
        // uint1..7 stay globals; a tensor of one is an unsupported dtype.
        let (graph, root, ..) = run(&cat(&[&g("torch", "uint3")]), &mut Src(None), true).unwrap();
        assert!(matches!(graph.deref(&root), Some(Node::Global { .. })));
        // A non-storage persistent id under weights_only.
        let p = cat(&[&s("x"), &[0x85], b"Q"]);
        assert_eq!(
            run(&p, &mut Src(None), true).unwrap_err().code,
            ErrorCode::UnsafeGlobal
        );
        // py2 byte strings inside a pid are ASCII-decoded.
        let mut v = vec![b'('];
        v.extend(b"U\x07storage");
        v.extend(g("torch", "LongStorage"));
        v.extend(b"U\x010U\x03cpu");
        v.extend(k(1));
        v.extend(b"tQ");
        let (graph, ..) = run(&cat(&[&v]), &mut Src(Some(vec![0; 8])), true).unwrap();
        assert_eq!(
            (graph.storages[0].key.as_str(), graph.storages[0].dtype),
            ("0", DType::Int64)
        );
    }
}
