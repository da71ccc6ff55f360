//! Walking and copying parts of a value graph: the generic primitives the converter, the
//! safetensors writer and the sharded-checkpoint reader share.
//!
//! The converter edits graphs it did not build: it selects a sub-object, renames keys of
//! state dicts, casts storages, merges the shards of a checkpoint into one graph and splits
//! one graph into shards. All of that needs two primitives: visiting every node reachable
//! from a value (once, whatever the sharing or cycles), and importing a value from one graph
//! into another while keeping identity (a node reached twice is copied once; storages are
//! copied once and keep their bytes, which are shared `ByteView`s, never duplicated).

use crate::error::Result;
use crate::value::{Graph, Node, NodeId, StorageId, Value};
use std::collections::HashMap;

/// Every node id reachable from `root`, each once, in depth-first pre-order (children in
/// [`Node::for_each_child`] order).
pub fn reachable(graph: &Graph, root: &Value) -> Vec<NodeId> {
    let mut seen = vec![false; graph.nodes.len()];
    let mut order = Vec::new();
    let mut stack: Vec<NodeId> = Vec::new();
    if let Value::Ref(id) = root {
        stack.push(*id);
    }
    while let Some(id) = stack.pop() {
        match seen.get_mut(id) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        order.push(id);
        if let Some(node) = graph.node(id) {
            // Reverse so the first child is visited first.
            for c in node.children().into_iter().rev() {
                if let Value::Ref(cid) = c {
                    stack.push(*cid);
                }
            }
        }
    }
    order
}

/// Copies values from `src` into `dst`, keeping identity across calls.
pub struct Importer<'a> {
    src: &'a Graph,
    nodes: HashMap<NodeId, NodeId>,
    storages: HashMap<StorageId, StorageId>,
}

impl<'a> Importer<'a> {
    pub fn new(src: &'a Graph) -> Self {
        Importer {
            src,
            nodes: HashMap::new(),
            storages: HashMap::new(),
        }
    }

    /// The `dst` id of an imported storage.
    pub fn storage(&mut self, dst: &mut Graph, sid: StorageId) -> Result<StorageId> {
        if let Some(&d) = self.storages.get(&sid) {
            return Ok(d);
        }
        let st = self
            .src
            .storages
            .get(sid)
            .ok_or_else(|| crate::err!(BadReconstruct, "storage {sid} missing"))?;
        let d = dst.add_storage(st.clone());
        self.storages.insert(sid, d);
        Ok(d)
    }

    /// Imports `v` (and everything it reaches) into `dst`.
    pub fn value(&mut self, dst: &mut Graph, v: &Value) -> Result<Value> {
        let Value::Ref(root) = v else {
            return Ok(v.clone());
        };
        if let Some(&d) = self.nodes.get(root) {
            return Ok(Value::Ref(d));
        }
        // Reserve destination ids first (so cycles resolve), then fill them in. Nodes
        // imported by an earlier call are already in `nodes` and are not touched again.
        let ids: Vec<NodeId> = reachable(self.src, v)
            .into_iter()
            .filter(|id| !self.nodes.contains_key(id))
            .collect();
        for &id in &ids {
            if let Value::Ref(d) = dst.add(Node::List(Vec::new())) {
                self.nodes.insert(id, d);
            }
        }
        for &id in &ids {
            let Some(&d) = self.nodes.get(&id) else {
                continue;
            };
            let node = self
                .src
                .node(id)
                .ok_or_else(|| crate::err!(BadReconstruct, "node {id} missing"))?
                .clone();
            let node = self.remap(dst, node)?;
            if let Some(slot) = dst.node_mut(d) {
                *slot = node;
            }
        }
        self.nodes
            .get(root)
            .map(|&d| Value::Ref(d))
            .ok_or_else(|| crate::err!(BadReconstruct, "node {root} missing"))
    }

    fn map_value(&self, v: &mut Value) {
        if let Value::Ref(id) = v {
            if let Some(&d) = self.nodes.get(id) {
                *id = d;
            }
        }
    }

    fn remap(&mut self, dst: &mut Graph, mut node: Node) -> Result<Node> {
        match &mut node {
            Node::List(v) | Node::Tuple(v) | Node::Set(v) | Node::FrozenSet(v) => {
                v.iter_mut().for_each(|x| self.map_value(x))
            }
            Node::Dict(items) => items.iter_mut().for_each(|(k, v)| {
                self.map_value(k);
                self.map_value(v)
            }),
            Node::OrderedDict { items, state } => {
                items.iter_mut().for_each(|(k, v)| {
                    self.map_value(k);
                    self.map_value(v)
                });
                if let Some(s) = state {
                    self.map_value(s)
                }
            }
            Node::Tensor(t) => {
                if let Some(sid) = t.storage {
                    t.storage = Some(self.storage(dst, sid)?);
                }
                if let Some(s) = &mut t.parameter_state {
                    self.map_value(s)
                }
                if let Some(s) = &mut t.metadata {
                    self.map_value(s)
                }
                if let Some(q) = &mut t.quantizer {
                    q.params.iter_mut().for_each(|x| self.map_value(x))
                }
                if let Some(s) = &mut t.subclass {
                    self.map_value(&mut s.state)
                }
            }
            Node::SparseTensor(s) => s.args.iter_mut().for_each(|x| self.map_value(x)),
            Node::Storage(sid) => *sid = self.storage(dst, *sid)?,
            Node::NdArray(a) => {
                if let Some(i) = &mut a.items {
                    self.map_value(i)
                }
            }
            Node::Object(o) => {
                self.map_value(&mut o.args);
                if let Some(k) = &mut o.kwargs {
                    self.map_value(k)
                }
                if let Some(s) = &mut o.state {
                    self.map_value(s)
                }
                o.list_items.iter_mut().for_each(|x| self.map_value(x));
                o.dict_items.iter_mut().for_each(|(k, v)| {
                    self.map_value(k);
                    self.map_value(v)
                });
            }
            _ => {}
        }
        Ok(node)
    }
}

/// Items of a `Dict`/`OrderedDict` node.
pub fn mapping_items<'g>(graph: &'g Graph, v: &Value) -> Option<&'g [(Value, Value)]> {
    match graph.deref(v)? {
        Node::Dict(items) | Node::OrderedDict { items, .. } => Some(items),
        _ => None,
    }
}

/// The tensor node a value refers to.
pub fn as_tensor<'g>(graph: &'g Graph, v: &Value) -> Option<&'g crate::value::Tensor> {
    match graph.deref(v)? {
        Node::Tensor(t) => Some(t),
        _ => None,
    }
}

/// `name -> tensor node` when `v` is a mapping whose keys are all strings and whose values
/// are all (dense) tensors, like a state dict; `None` otherwise.
pub fn flat_tensor_map(graph: &Graph, v: &Value) -> Option<Vec<(String, NodeId)>> {
    let items = mapping_items(graph, v)?;
    let mut out = Vec::with_capacity(items.len());
    for (k, val) in items {
        let (Value::Str(name), Value::Ref(id)) = (k, val) else {
            return None;
        };
        if !matches!(graph.node(*id), Some(Node::Tensor(_))) {
            return None;
        }
        out.push((name.clone(), *id));
    }
    Some(out)
}

/// Renders a dict key for a path: strings as-is, ints in decimal, other keys by kind.
pub fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Value::None => "None".to_string(),
        Value::Float(f) => f.to_string(),
        _ => "?".to_string(),
    }
}

/// Every tensor reachable from `root` with a path (`/`-joined dict keys, list indices and
/// object-state keys; a bare state-dict root gives just the names). A tensor reached by two
/// paths is listed under both. Cycles are cut; depth is bounded by `max_depth`.
pub fn tensor_paths(
    graph: &Graph,
    root: &Value,
    max_depth: usize,
) -> Result<Vec<(String, NodeId)>> {
    let mut out = Vec::new();
    let mut on_path = vec![false; graph.nodes.len()];
    walk_paths(
        graph,
        root,
        String::new(),
        0,
        max_depth,
        &mut on_path,
        &mut out,
    )?;
    Ok(out)
}

fn join(prefix: &str, seg: &str) -> String {
    if prefix.is_empty() {
        seg.to_string()
    } else {
        format!("{prefix}/{seg}")
    }
}

fn walk_paths(
    graph: &Graph,
    v: &Value,
    path: String,
    depth: usize,
    max_depth: usize,
    on_path: &mut Vec<bool>,
    out: &mut Vec<(String, NodeId)>,
) -> Result<()> {
    let Value::Ref(id) = v else { return Ok(()) };
    let id = *id;
    if depth > max_depth {
        crate::bail!(
            LimitExceeded,
            "value graph deeper than {max_depth} at '{path}'"
        );
    }
    if on_path.get(id).copied().unwrap_or(true) {
        return Ok(());
    }
    let Some(node) = graph.node(id) else {
        return Ok(());
    };
    if let Node::Tensor(_) = node {
        out.push((path, id));
        return Ok(());
    }
    if let Some(flag) = on_path.get_mut(id) {
        *flag = true;
    }
    let visit =
        |seg: String, child: &Value, out: &mut Vec<(String, NodeId)>, on_path: &mut Vec<bool>| {
            walk_paths(
                graph,
                child,
                join(&path, &seg),
                depth + 1,
                max_depth,
                on_path,
                out,
            )
        };
    match node {
        Node::List(items) | Node::Tuple(items) => {
            for (i, c) in items.iter().enumerate() {
                visit(i.to_string(), c, out, on_path)?;
            }
        }
        Node::Dict(items) | Node::OrderedDict { items, .. } => {
            for (k, c) in items {
                visit(key_text(k), c, out, on_path)?;
            }
        }
        Node::Object(o) => {
            if let Some(state) = &o.state {
                match graph.deref(state) {
                    Some(Node::Dict(items)) | Some(Node::OrderedDict { items, .. }) => {
                        for (k, c) in items {
                            visit(key_text(k), c, out, on_path)?;
                        }
                    }
                    _ => visit("state".to_string(), state, out, on_path)?,
                }
            }
            for (i, c) in o.list_items.iter().enumerate() {
                visit(i.to_string(), c, out, on_path)?;
            }
            for (k, c) in &o.dict_items {
                visit(key_text(k), c, out, on_path)?;
            }
        }
        _ => {}
    }
    if let Some(flag) = on_path.get_mut(id) {
        *flag = false;
    }
    Ok(())
}
