//! Edits the converter applies to a loaded graph, in this order: select a sub-object, drop
//! optimizer state, rename state-dict keys, cast floating tensors.
//!
//! Key edits apply to every state-dict-like mapping reachable from the root: a dict or
//! OrderedDict whose keys are all strings and that holds at least one tensor (so optimizer
//! `state` dicts, keyed by ints, are never touched). Keys keep their positions; an edit that
//! makes two keys equal is an error rather than PyTorch's silent overwrite. The
//! OrderedDict's `_metadata` (module prefixes without the trailing dot) is edited alongside,
//! as `consume_prefix_in_state_dict_if_present` does (FORMAT.md 9): `module` becomes `''`,
//! replacing the root entry in place.
//!
//! Casts rewrite whole storages, so views and tied weights stay views and stay tied.

use crate::cast;
use crate::dtype::DType;
use crate::error::Result;
use crate::graph::{mapping_items, reachable};
use crate::value::{Graph, Node, NodeId, Value};
use regex::Regex;
use std::collections::{BTreeMap, HashSet};

/// Follows `path` from `root`: `/`-separated segments, each a string key of a dict, an
/// integer key, a list/tuple index, or a key of an object's state. A path that is itself a
/// key of the root mapping is taken whole (state-dict keys contain dots, never slashes, but
/// be generous).
pub fn select_path(graph: &Graph, root: &Value, path: &str) -> Result<Value> {
    if let Some(v) = lookup(graph, root, path) {
        return Ok(v);
    }
    let mut cur = root.clone();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        cur = lookup(graph, &cur, seg).ok_or_else(|| {
            crate::err!(
                InvalidArgument,
                "select '{path}': no '{seg}' here (keys: {})",
                key_list(graph, &cur)
            )
        })?;
    }
    Ok(cur)
}

fn lookup(graph: &Graph, v: &Value, seg: &str) -> Option<Value> {
    match graph.deref(v)? {
        Node::Dict(items) | Node::OrderedDict { items, .. } => items
            .iter()
            .find(|(k, _)| match k {
                Value::Str(s) => s == seg,
                Value::Int(i) => i.to_string() == seg,
                _ => false,
            })
            .map(|(_, v)| v.clone()),
        Node::List(items) | Node::Tuple(items) => items.get(seg.parse::<usize>().ok()?).cloned(),
        Node::Object(o) => o.state.as_ref().and_then(|s| lookup(graph, s, seg)),
        _ => None,
    }
}

fn key_list(graph: &Graph, v: &Value) -> String {
    match mapping_items(graph, v) {
        Some(items) => {
            let keys: Vec<String> = items
                .iter()
                .take(12)
                .map(|(k, _)| crate::graph::key_text(k))
                .collect();
            keys.join(", ")
        }
        None => "not a mapping".to_string(),
    }
}

/// Keys that commonly hold the model's weights in a training checkpoint, tried in order by
/// [`auto_select`].
pub const STATE_DICT_KEYS: [&str; 6] = [
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "weights",
];

/// When `root` is not a flat `name -> tensor` mapping, the first of [`STATE_DICT_KEYS`] that
/// is one. Used when writing safetensors without an explicit `select`.
pub fn auto_select(graph: &Graph, root: &Value) -> Option<(String, Value)> {
    if crate::graph::flat_tensor_map(graph, root).is_some() {
        return None;
    }
    STATE_DICT_KEYS.iter().find_map(|k| {
        let v = lookup(graph, root, k)?;
        crate::graph::flat_tensor_map(graph, &v).map(|_| (k.to_string(), v))
    })
}

/// Keys [`drop_optimizer`] removes; it also removes any value that is an optimizer state
/// dict (a dict with exactly the keys `state` and `param_groups`).
pub const OPTIMIZER_KEYS: [&str; 8] = [
    "optimizer",
    "optimizer_state_dict",
    "optimizers",
    "optimizer_states",
    "optim",
    "optim_state_dict",
    "opt",
    "opt_state_dict",
];

fn is_optimizer_state(graph: &Graph, v: &Value) -> bool {
    match mapping_items(graph, v) {
        Some(items) if items.len() == 2 => items
            .iter()
            .all(|(k, _)| matches!(k, Value::Str(s) if s == "state" || s == "param_groups")),
        _ => false,
    }
}

/// Removes optimizer state from the root mapping; returns the removed keys.
pub fn drop_optimizer(graph: &mut Graph, root: &Value) -> Vec<String> {
    let Value::Ref(id) = root else {
        return Vec::new();
    };
    let doomed: HashSet<usize> = match mapping_items(graph, root) {
        Some(items) => items
            .iter()
            .enumerate()
            .filter(|(_, (k, v))| {
                matches!(k, Value::Str(s) if OPTIMIZER_KEYS.contains(&s.as_str()))
                    || is_optimizer_state(graph, v)
            })
            .map(|(i, _)| i)
            .collect(),
        None => return Vec::new(),
    };
    let mut removed = Vec::new();
    if let Some(Node::Dict(items) | Node::OrderedDict { items, .. }) = graph.node_mut(*id) {
        let mut i = 0;
        items.retain(|(k, _)| {
            let keep = !doomed.contains(&i);
            if !keep {
                removed.push(crate::graph::key_text(k));
            }
            i += 1;
            keep
        });
    }
    removed
}

/// How keys are rewritten: prefixes stripped (each at most once, in order), then every
/// leading `module.` (DataParallel, nested), then regex replacements (all matches, in
/// order; `$1`/`${name}` refer to groups).
#[derive(Clone, Debug, Default)]
pub struct KeyEdits {
    pub strip_prefixes: Vec<String>,
    pub strip_dataparallel: bool,
    pub renames: Vec<(Regex, String)>,
}

impl KeyEdits {
    pub fn is_empty(&self) -> bool {
        self.strip_prefixes.is_empty() && !self.strip_dataparallel && self.renames.is_empty()
    }

    pub fn apply(&self, key: &str) -> String {
        let mut k = key.to_string();
        for p in &self.strip_prefixes {
            if let Some(rest) = k.strip_prefix(p.as_str()) {
                k = rest.to_string();
            }
        }
        if self.strip_dataparallel {
            while let Some(rest) = k.strip_prefix("module.") {
                k = rest.to_string();
            }
        }
        for (re, to) in &self.renames {
            k = re.replace_all(&k, to.as_str()).into_owned();
        }
        k
    }

    /// `_metadata` keys are module paths without the trailing dot; `''` is the root.
    fn apply_module_path(&self, key: &str) -> String {
        if key.is_empty() {
            return String::new();
        }
        let e = self.apply(&format!("{key}."));
        e.strip_suffix('.').map(str::to_string).unwrap_or(e)
    }
}

/// Applies `edits` to every state-dict-like mapping reachable from `root`; returns how many
/// keys changed.
pub fn edit_keys(graph: &mut Graph, root: &Value, edits: &KeyEdits) -> Result<usize> {
    if edits.is_empty() {
        return Ok(0);
    }
    let targets: Vec<NodeId> = reachable(graph, root)
        .into_iter()
        .filter(|&id| {
            let v = Value::Ref(id);
            mapping_items(graph, &v).is_some_and(|items| {
                !items.is_empty()
                    && items.iter().all(|(k, _)| matches!(k, Value::Str(_)))
                    && items
                        .iter()
                        .any(|(_, v)| matches!(graph.deref(v), Some(Node::Tensor(_))))
            })
        })
        .collect();
    let mut changed = 0;
    for id in targets {
        let mut meta: Option<Value> = None;
        if let Some(Node::Dict(items) | Node::OrderedDict { items, .. }) = graph.node_mut(id) {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (k, _) in items.iter_mut() {
                let Value::Str(s) = k else { continue };
                let new = edits.apply(s);
                if let Some(prev) = seen.insert(new.clone(), s.clone()) {
                    crate::bail!(
                        InvalidArgument,
                        "renaming makes '{prev}' and '{s}' both '{new}'"
                    );
                }
                if new != *s {
                    *s = new;
                    changed += 1;
                }
            }
        }
        if let Some(Node::OrderedDict {
            state: Some(state), ..
        }) = graph.node(id)
        {
            meta = lookup(graph, state, "_metadata");
        }
        if let Some(Value::Ref(mid)) = meta {
            if let Some(Node::Dict(items) | Node::OrderedDict { items, .. }) = graph.node_mut(mid) {
                let old = std::mem::take(items);
                for (k, v) in old {
                    let k = match k {
                        Value::Str(s) => Value::Str(edits.apply_module_path(&s)),
                        other => other,
                    };
                    match items.iter_mut().find(|(ek, _)| *ek == k) {
                        Some(slot) => slot.1 = v,
                        None => items.push((k, v)),
                    }
                }
            }
        }
    }
    Ok(changed)
}

/// What a cast did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CastReport {
    /// Tensors now of the target dtype that were not before.
    pub cast: usize,
    /// Floating tensors left alone (float8 and other dtypes the cast does not cover).
    pub skipped: Vec<String>,
}

/// Which tensors a cast to `to` changes, and what it would report, without casting.
#[derive(Clone, Debug, Default)]
pub struct CastPlan {
    /// Tensors whose storage is cast (their dtype is not `to` yet).
    pub tensors: HashSet<NodeId>,
    /// `storage -> (its dtype, the tensors viewing it)` for those storages.
    pub storages: BTreeMap<usize, (DType, Vec<NodeId>)>,
    pub report: CastReport,
}

/// Decides a cast of every floating tensor reachable from `root` (float64/32/16, bfloat16)
/// to `to`, storage by storage, the rules [`cast_floats`] applies. The streamed conversion
/// uses it to cast while writing instead of materialising new storages.
pub fn plan_cast(graph: &Graph, root: &Value, to: DType) -> Result<CastPlan> {
    cast::check_cast_target(to)?;
    // storage -> (dtype, tensor ids)
    let mut by_storage: BTreeMap<usize, (DType, Vec<NodeId>)> = BTreeMap::new();
    let mut plan = CastPlan::default();
    for id in reachable(graph, root) {
        let Some(Node::Tensor(t)) = graph.node(id) else {
            continue;
        };
        if !t.dtype.is_floating_point() || t.quantizer.is_some() {
            continue;
        }
        if !cast::is_castable_float(t.dtype) {
            plan.report.skipped.push(t.dtype.name().to_string());
            continue;
        }
        let Some(sid) = t.storage else { continue };
        let entry = by_storage.entry(sid).or_insert((t.dtype, Vec::new()));
        if entry.0 != t.dtype {
            crate::bail!(
                Unserializable,
                "storage {sid} is viewed as both {} and {}",
                entry.0,
                t.dtype
            );
        }
        entry.1.push(id);
    }
    for (sid, (from, ids)) in by_storage {
        if from == to {
            continue;
        }
        if graph.storages.get(sid).is_none() {
            crate::bail!(StorageBounds, "storage {sid} missing");
        }
        for &id in &ids {
            if plan.tensors.insert(id) {
                plan.report.cast += 1;
            }
        }
        plan.storages.insert(sid, (from, ids));
    }
    Ok(plan)
}

/// Casts every floating tensor reachable from `root` (float64/32/16, bfloat16) to `to`,
/// storage by storage.
pub fn cast_floats(graph: &mut Graph, root: &Value, to: DType) -> Result<CastReport> {
    let plan = plan_cast(graph, root, to)?;
    for (sid, (from, ids)) in plan.storages {
        let st = graph
            .storages
            .get(sid)
            .ok_or_else(|| crate::err!(StorageBounds, "storage {sid} missing"))?;
        let new = cast::cast_storage(st, from, to)?;
        if let Some(slot) = graph.storages.get_mut(sid) {
            *slot = new;
        }
        for id in ids {
            if let Some(Node::Tensor(t)) = graph.node_mut(id) {
                t.dtype = to;
            }
        }
    }
    Ok(plan.report)
}
