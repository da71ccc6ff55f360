//! The standard torch persistent loader: `('storage', ...)` persistent ids become storages,
//! deduplicated by key, with their bytes from the container's [`StorageSource`].
//!
//! Legacy storage views (`view_metadata`, torch before 1.0) are the legacy container's
//! business: `container::legacy` rewrites them to plain ids before they get here.

use super::args::{ascii, bad, global_name};
use super::kinds::value_kind;
use super::{PersistentLoad, StorageSource};
use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::value::{Graph, Node, NodeId, Storage, StorageId, Value};
use std::collections::HashMap;

/// The standard torch persistent loader (`torch.serialization` `persistent_load`).
///
/// Handles:
/// * `('storage', storage_type, key, location, numel)` (zip) and the legacy 6-tuple whose
///   `view_metadata` is `None` (the legacy container rewrites real views before this);
/// * legacy `('module', cls, source_file, source)` → the class value itself;
/// * Python 2 byte strings inside ids (ASCII-decoded, like `_maybe_decode_ascii`).
///
/// Storages are deduplicated by key into `Graph::storages` (same key → same `StorageId`);
/// each persistent-load result is a `Node::Storage(id)` node remembering the storage type
/// *its* id named (`PersistentLoad::storage_dtype`), so a tensor takes its dtype from its
/// own id while the bytes are shared. Ids naming the same key and storage type get the same
/// node: torch's `persistent_load` returns its cached storage object for a key, so a bare
/// storage pickled twice is one object after `torch.load` (`d['a'] is d['b']`), and one
/// node here. Storage bytes come from the [`StorageSource`]
/// (`nbytes = numel * element_size`, checked; a returned view must be exactly `nbytes` long,
/// else `E_STORAGE_SIZE`). When the source answers `Ok(None)` (legacy/tar: bytes follow the
/// pickle), the storage is created with empty data and its id is listed by
/// [`pending`](Self::pending): the container sets `graph.storages[id].data` afterwards.
/// Plain-string/int ids (tar era) are not torch storage ids: the container supplies its own
/// `PersistentLoad` for those.
pub struct TorchPersistentLoader<'a> {
    pub source: &'a mut dyn StorageSource,
    by_key: HashMap<String, StorageId>,
    /// The node each `(key, dtype, untyped)` became, for identity (see above).
    nodes: HashMap<(String, DType, bool), Value>,
    node_dtypes: HashMap<NodeId, DType>,
    pending: Vec<StorageId>,
}

impl<'a> TorchPersistentLoader<'a> {
    pub fn new(source: &'a mut dyn StorageSource) -> Self {
        TorchPersistentLoader {
            source,
            by_key: HashMap::new(),
            nodes: HashMap::new(),
            node_dtypes: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Root storages created with empty data because the source answered `Ok(None)`, in
    /// first-seen order. Their `key`, `dtype`, `numel` tell the container what to read.
    pub fn pending(&self) -> &[StorageId] {
        &self.pending
    }

    /// The storage loaded for `key`, if any.
    pub fn storage_id(&self, key: &str) -> Option<StorageId> {
        self.by_key.get(key).copied()
    }

    fn load_storage(&mut self, graph: &mut Graph, items: &[Value]) -> Result<Value> {
        let what = "persistent id ('storage', ...)";
        if items.len() != 5 && items.len() != 6 {
            return bad(
                what,
                &format!("expected 5 or 6 fields, got {}", items.len()),
            );
        }
        let get = |i: usize| items.get(i).cloned().unwrap_or(Value::None);
        let (dtype, untyped) = storage_type(graph, &get(1))?;
        let key = ascii(&get(2)).or_else(|| match get(2) {
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        });
        let Some(key) = key else {
            return bad(what, "key must be a str");
        };
        let Some(location) = ascii(&get(3)) else {
            return bad(what, "location must be a str");
        };
        let numel = match get(4) {
            Value::Int(n) if n >= 0 => n as u64,
            _ => return bad(what, "numel must be a non-negative int"),
        };
        let es = dtype.element_size() as u64;
        let nbytes = numel.checked_mul(es).ok_or_else(|| {
            crate::err!(
                StorageSize,
                "storage '{key}': {numel} elements overflow a byte size"
            )
        })?;
        let root = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                let data = match self.source.storage(&key, dtype, nbytes)? {
                    Some(view) => {
                        if view.len() as u64 != nbytes {
                            crate::bail!(
                                StorageSize,
                                "storage '{key}' has {} bytes but its persistent id says {nbytes} \
                                 ({numel} elements * {es} bytes/element of {dtype})",
                                view.len()
                            );
                        }
                        Some(view)
                    }
                    None => None,
                };
                let pending = data.is_none();
                let id = graph.add_storage(Storage {
                    key: key.clone(),
                    dtype,
                    untyped,
                    numel,
                    location: location.clone(),
                    data: data.unwrap_or_else(ByteView::empty),
                });
                if pending {
                    self.pending.push(id);
                }
                self.by_key.insert(key.clone(), id);
                id
            }
        };
        let id =
            match get(5) {
                Value::None => root,
                _ => return bad(
                    what,
                    "view_metadata must be None (storage views exist only in legacy-format files)",
                ),
            };
        if let Some(node) = self.nodes.get(&(key.clone(), dtype, untyped)) {
            return Ok(node.clone());
        }
        let node = graph.add(Node::Storage(id));
        if let Value::Ref(n) = node {
            self.node_dtypes.insert(n, dtype);
        }
        self.nodes.insert((key, dtype, untyped), node.clone());
        Ok(node)
    }
}

/// `torch.FloatStorage`, `torch.cuda.FloatStorage`, `torch.storage.UntypedStorage`, ...
fn storage_type(graph: &Graph, v: &Value) -> Result<(DType, bool)> {
    let Some((module, name)) = global_name(graph, v) else {
        return bad(
            "persistent id ('storage', ...)",
            "storage type must be a storage class",
        );
    };
    if !(module == "torch" || module == "torch.cuda" || module == "torch.storage") {
        crate::bail!(UnsupportedDtype, "unknown storage type {module}.{name}");
    }
    if name == "UntypedStorage" {
        return Ok((DType::UInt8, true));
    }
    DType::from_storage_class(&name)
        .map(|d| (d, false))
        .ok_or_else(|| crate::err!(UnsupportedDtype, "unknown storage type {module}.{name}"))
}

impl PersistentLoad for TorchPersistentLoader<'_> {
    fn persistent_load(&mut self, graph: &mut Graph, pid: Value) -> Result<Value> {
        let items = match graph.deref(&pid) {
            Some(Node::Tuple(items)) => items.clone(),
            _ => crate::bail!(
                BadPickle,
                "persistent id {} is not a torch storage tuple (tar-era ids need the container's loader)",
                value_kind(&pid)
            ),
        };
        match items.first().and_then(ascii).as_deref() {
            Some("storage") => self.load_storage(graph, &items),
            Some("module") => match items.get(1) {
                Some(cls) if global_name(graph, cls).is_some() => Ok(cls.clone()),
                _ => bad("persistent id ('module', ...)", "expected a class"),
            },
            _ => crate::bail!(
                BadPickle,
                "unsupported persistent id (only ('storage', ...) and ('module', ...))"
            ),
        }
    }

    fn storage_dtype(&self, node: NodeId) -> Option<DType> {
        self.node_dtypes.get(&node).copied()
    }
}
