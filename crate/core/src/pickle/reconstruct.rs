//! Torch's tensor reconstructors as data: `_rebuild_tensor[_v2|_v3]`, `_rebuild_parameter`,
//! `Parameter(...)`, `_rebuild_qtensor`, `_rebuild_sparse_tensor`, `_rebuild_meta_tensor_no_storage`,
//! `_rebuild_device_tensor_from_cpu_tensor`, the pre-0.4 `torch.<X>Tensor()` + BUILD `set_`,
//! and `collections.OrderedDict`. Each checks its argument shapes (`E_BAD_RECONSTRUCT`) and
//! adds one typed node; the interpreter ([`super::interpret`]) decides which one runs.

use super::args::{
    bad, boolean, dtype_arg, global_name, int, ints, iterable_items, tensor_node, tuple_items,
};
use super::policy::Policy;
use super::PersistentLoad;
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Graph, Node, NodeId, Quantizer, SparseTensor, StorageId, Tensor, Value};

/// What the interpreter needs from the VM for one call.
pub(crate) struct Ctx<'g> {
    pub graph: &'g mut Graph,
    pub loader: &'g mut dyn PersistentLoad,
    /// The run's weights-only policy (every decision asks it).
    pub policy: &'g mut Policy,
}

/// Dense tensor classes (`torch.FloatTensor`, `torch.cuda.LongTensor`, ...) → (dtype, device).
pub(crate) fn tensor_class(module: &str, name: &str) -> Option<(DType, Option<&'static str>)> {
    let device = match module {
        "torch" => None,
        "torch.cuda" => Some("cuda"),
        _ => return None,
    };
    let d = match name {
        "Tensor" if device.is_none() => DType::Float32,
        _ => DType::from_tensor_class(name)?,
    };
    Some((d, device))
}

/// `(StorageId, dtype of this persistent id)` from a persistent-load result.
fn storage_arg(ctx: &Ctx<'_>, v: &Value, what: &str) -> Result<(StorageId, DType)> {
    let Value::Ref(node) = v else {
        return bad(what, "storage argument is not a storage");
    };
    match ctx.graph.node(*node) {
        Some(Node::Storage(id)) => {
            let declared = ctx.graph.storages.get(*id).map(|s| s.dtype);
            let Some(declared) = declared else {
                return bad(what, "storage id out of range");
            };
            Ok((*id, ctx.loader.storage_dtype(*node).unwrap_or(declared)))
        }
        _ => bad(what, "storage argument is not a storage"),
    }
}

pub(crate) fn empty_tensor(graph: &mut Graph, dtype: DType, device: Option<&str>) -> Value {
    // `torch.FloatTensor()`: a 1-d empty tensor, waiting for a legacy BUILD `set_`.
    let mut t = Tensor::plain(None, dtype);
    t.shape = vec![0];
    t.stride = vec![1];
    t.device = device.map(str::to_string);
    graph.add(Node::Tensor(t))
}

/// `_rebuild_tensor` (v1), `_rebuild_tensor_v2`, `_rebuild_tensor_v3`.
pub(crate) fn rebuild_tensor(
    ctx: &mut Ctx<'_>,
    args: &Value,
    what: &str,
    version: u8,
) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let (fixed, max) = match version {
        1 => (4, 4),
        2 => (6, 7),
        _ => (7, 8),
    };
    if a.len() < fixed || a.len() > max {
        return bad(
            what,
            &format!("expected {fixed} arguments, got {}", a.len()),
        );
    }
    let get = |i: usize| a.get(i).cloned().unwrap_or(Value::None);
    let (storage, mut dtype) = storage_arg(ctx, &get(0), what)?;
    if version == 3 {
        dtype = dtype_arg(ctx.graph, &get(6), what)?;
    }
    let mut t = Tensor::plain(Some(storage), dtype);
    t.storage_offset = int(&get(1), what, "storage_offset")?;
    t.shape = ints(ctx.graph, &get(2), what)?;
    t.stride = ints(ctx.graph, &get(3), what)?;
    if t.shape.len() != t.stride.len() {
        return bad(what, "size and stride have different lengths");
    }
    if version >= 2 {
        t.requires_grad = boolean(&get(4), what, "requires_grad")?;
        let meta = a.get(fixed).cloned();
        t.metadata = meta.filter(|m| !matches!(m, Value::None));
    }
    Ok(ctx.graph.add(Node::Tensor(t)))
}

pub(crate) fn rebuild_parameter(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let with_state = what.ends_with("_with_state");
    let want = if with_state { 4 } else { 3 };
    if a.len() != want {
        return bad(what, &format!("expected {want} arguments, got {}", a.len()));
    }
    let get = |i: usize| a.get(i).cloned().unwrap_or(Value::None);
    let mut t = tensor_node(ctx.graph, &get(0), what)?;
    t.is_parameter = true;
    t.requires_grad = boolean(&get(1), what, "requires_grad")?;
    if with_state {
        t.parameter_state = Some(get(3));
    }
    Ok(ctx.graph.add(Node::Tensor(t)))
}

/// `torch.nn.Parameter(data, requires_grad=True)` via NEWOBJ (FORMAT.md 6.2).
pub(crate) fn new_parameter(ctx: &mut Ctx<'_>, args: &Value) -> Result<Value> {
    let what = "torch.nn.parameter.Parameter";
    let a = tuple_items(ctx.graph, args, what)?;
    let (data, rg) = match a.as_slice() {
        [d] => (d, true),
        [d, rg] => (d, boolean(rg, what, "requires_grad")?),
        _ => return bad(what, "expected (data[, requires_grad])"),
    };
    let mut t = tensor_node(ctx.graph, data, what)?;
    t.is_parameter = true;
    t.requires_grad = rg;
    Ok(ctx.graph.add(Node::Tensor(t)))
}

pub(crate) fn rebuild_qtensor(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    if a.len() != 7 {
        return bad(what, &format!("expected 7 arguments, got {}", a.len()));
    }
    let get = |i: usize| a.get(i).cloned().unwrap_or(Value::None);
    let (storage, dtype) = storage_arg(ctx, &get(0), what)?;
    let mut t = Tensor::plain(Some(storage), dtype);
    t.storage_offset = int(&get(1), what, "storage_offset")?;
    t.shape = ints(ctx.graph, &get(2), what)?;
    t.stride = ints(ctx.graph, &get(3), what)?;
    if t.shape.len() != t.stride.len() {
        return bad(what, "size and stride have different lengths");
    }
    let q = tuple_items(ctx.graph, &get(4), what)?;
    let Some((_, scheme)) = q.first().and_then(|s| global_name(ctx.graph, s)) else {
        return bad(what, "quantizer_params must start with a qscheme");
    };
    let want = match scheme.as_str() {
        "per_tensor_affine" | "per_tensor_symmetric" => 3,
        "per_channel_affine" | "per_channel_symmetric" | "per_channel_affine_float_qparams" => 4,
        _ => return bad(what, &format!("unknown qscheme {scheme}")),
    };
    if q.len() != want {
        return bad(
            what,
            &format!(
                "{scheme} takes {} quantizer params, got {}",
                want - 1,
                q.len() - 1
            ),
        );
    }
    t.quantizer = Some(Quantizer {
        scheme,
        params: q.get(1..).unwrap_or(&[]).to_vec(),
    });
    t.requires_grad = boolean(&get(5), what, "requires_grad")?;
    Ok(ctx.graph.add(Node::Tensor(t)))
}

pub(crate) fn rebuild_sparse(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let [layout, data] = a.as_slice() else {
        return bad(what, "expected (layout, data)");
    };
    let layout = match ctx.graph.deref(layout) {
        Some(Node::Layout(l)) => l.clone(),
        _ => return bad(what, "first argument must be a layout"),
    };
    let items = tuple_items(ctx.graph, data, what)?;
    let ok = match layout.as_str() {
        "sparse_coo" => items.len() == 3 || items.len() == 4,
        "sparse_csr" | "sparse_csc" | "sparse_bsr" | "sparse_bsc" => items.len() == 4,
        _ => return bad(what, &format!("unknown sparse layout {layout}")),
    };
    if !ok {
        return bad(
            what,
            &format!("wrong number of {layout} components ({})", items.len()),
        );
    }
    Ok(ctx.graph.add(Node::SparseTensor(SparseTensor {
        layout,
        args: items,
        requires_grad: false,
    })))
}

pub(crate) fn rebuild_meta(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let [dtype, size, stride, rg] = a.as_slice() else {
        return bad(what, "expected (dtype, size, stride, requires_grad)");
    };
    let mut t = Tensor::plain(None, dtype_arg(ctx.graph, dtype, what)?);
    t.shape = ints(ctx.graph, size, what)?;
    t.stride = ints(ctx.graph, stride, what)?;
    t.requires_grad = boolean(rg, what, "requires_grad")?;
    t.device = Some("meta".to_string());
    Ok(ctx.graph.add(Node::Tensor(t)))
}

pub(crate) fn rebuild_device(ctx: &mut Ctx<'_>, args: &Value, what: &str) -> Result<Value> {
    let a = tuple_items(ctx.graph, args, what)?;
    let [data, dtype, device, rg] = a.as_slice() else {
        return bad(what, "expected (cpu_tensor, dtype, device, requires_grad)");
    };
    let mut t = tensor_node(ctx.graph, data, what)?;
    let d = dtype_arg(ctx.graph, dtype, what)?;
    if d != t.dtype {
        return bad(
            what,
            &format!("dtype {d} differs from the CPU tensor's {}", t.dtype),
        );
    }
    let Value::Str(dev) = device else {
        return bad(what, "device must be a str");
    };
    t.device = Some(dev.clone());
    t.requires_grad = boolean(rg, what, "requires_grad")?;
    Ok(ctx.graph.add(Node::Tensor(t)))
}

pub(crate) fn ordered_dict(graph: &mut Graph, args: &Value) -> Result<Value> {
    let what = "collections.OrderedDict";
    let a = tuple_items(graph, args, what)?;
    let items = match a.as_slice() {
        [] => Vec::new(),
        [v] => {
            let pairs = iterable_items(graph, v, what)?;
            let mut out = Vec::with_capacity(pairs.len());
            for p in pairs {
                match graph.deref(&p) {
                    Some(Node::Tuple(kv) | Node::List(kv)) if kv.len() == 2 => out.push((
                        kv.first().cloned().unwrap_or(Value::None),
                        kv.get(1).cloned().unwrap_or(Value::None),
                    )),
                    _ => return bad(what, "items must be (key, value) pairs"),
                }
            }
            out
        }
        _ => return bad(what, "expected at most one list of pairs"),
    };
    Ok(graph.add(Node::OrderedDict { items, state: None }))
}

/// Legacy `Tensor.__setstate__`: `(storage, offset, size, stride)` → `set_`;
/// `(data, _, hooks, requires_grad, hooks)` (Variable) and `(requires_grad, _, hooks)`.
pub(crate) fn build_tensor(ctx: &mut Ctx<'_>, id: NodeId, state: Value) -> Result<()> {
    let what = "BUILD on a tensor";
    let s = tuple_items(ctx.graph, &state, what)?;
    let get = |i: usize| s.get(i).cloned().unwrap_or(Value::None);
    let mut t = match ctx.graph.node(id) {
        Some(Node::Tensor(t)) => t.clone(),
        _ => return bad(what, "not a tensor"),
    };
    match s.len() {
        4 => {
            let (storage, dtype) = storage_arg(ctx, &get(0), what)?;
            t.storage = Some(storage);
            t.dtype = dtype;
            t.storage_offset = int(&get(1), what, "storage_offset")?;
            t.shape = ints(ctx.graph, &get(2), what)?;
            t.stride = ints(ctx.graph, &get(3), what)?;
            if t.shape.len() != t.stride.len() {
                return bad(what, "size and stride have different lengths");
            }
        }
        5 => {
            let data = tensor_node(ctx.graph, &get(0), what)?;
            let (is_param, sub) = (t.is_parameter, t.subclass.take());
            t = data;
            t.is_parameter = is_param;
            t.subclass = sub;
            t.requires_grad = boolean(&get(3), what, "requires_grad")?;
        }
        3 => t.requires_grad = boolean(&get(0), what, "requires_grad")?,
        n => return bad(what, &format!("unexpected state of {n} items")),
    }
    if let Some(n) = ctx.graph.node_mut(id) {
        *n = Node::Tensor(t);
    }
    Ok(())
}
