//! Writing a distributed checkpoint folder (`torch.distributed.checkpoint`) as torch 2.11's
//! `dcp.save(sd, checkpoint_id=dir, no_dist=True)` with `FileSystemWriter(thread_count=N)`
//! lays it out, so that `torch.distributed.checkpoint.load` (and `dcp_to_torch_save`) read it.
//!
//! - The state dict is flattened as `_nested_dict.flatten_state_dict` /
//!   `_traverse.traverse_state_dict` do: mappings are walked with `str(key)`, lists are
//!   walked with int indices when they hold a tensor, a mapping or a walked list, everything
//!   else is a leaf; the flattened key is the path joined by `.`, the path goes to
//!   `planner_data`.
//! - Leaves are split into `writers` files `__0_<i>.distcp` as `_split_by_size_and_type`
//!   does: non-tensor values round-robin, tensors largest first into the lightest file. In a
//!   file the non-tensor items come first, then the tensors. Each item is a `torch.save`
//!   record of its own (a tensor: the tensor alone, detached, compact; a value: the value).
//! - `.metadata` is the pickled `Metadata` (protocol 4): `state_dict_metadata`,
//!   `planner_data`, `storage_data` (`MetadataIndex` -> `_StorageInfo`), version `1.0.0`.
//! - The folder is atomic: everything is written (and fsynced) into a temporary sibling
//!   folder that is renamed to `dir` at the end; an existing `dir` is replaced only with
//!   `overwrite`, and moved aside first so no reader ever sees a half-written checkpoint.

use crate::container::dcp::{DATA_SUFFIX, METADATA_FILE};
use crate::error::{Error, Result};
use crate::graph::Importer;
use crate::options::SaveOptions;
use crate::value::{Graph, Node, ObjectKind, PyObject, Tensor, Value};
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Options of one DCP save.
#[derive(Clone, Debug)]
pub struct DcpSaveOptions {
    /// Data files to split the items over (`FileSystemWriter(thread_count=N)`); also the
    /// threads that write them. Default 1.
    pub writers: usize,
    /// Replace an existing folder (torch's `FileSystemWriter(overwrite=True)`, its default).
    pub overwrite: bool,
    /// fsync every file and the folders before returning.
    pub durable: bool,
}

impl Default for DcpSaveOptions {
    fn default() -> Self {
        DcpSaveOptions {
            writers: 1,
            overwrite: true,
            durable: true,
        }
    }
}

/// What a save wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcpWritten {
    /// Data file names, in order.
    pub files: Vec<String>,
    /// Flattened keys, in metadata order.
    pub keys: Vec<String>,
    /// Bytes of all files.
    pub bytes: u64,
}

/// One step of an object path.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// One flattened leaf.
struct Leaf {
    fqn: String,
    path: Vec<Step>,
    value: Value,
    /// The tensor node, for tensor leaves.
    tensor: Option<usize>,
    nbytes: u64,
}

fn key_str(k: &Value) -> Result<String> {
    Ok(match k {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => crate::bail!(
            Unserializable,
            "a distributed checkpoint's keys are str(key): cannot write a {} key",
            crate::graph::key_text(other)
        ),
    })
}

fn is_mapping(g: &Graph, v: &Value) -> bool {
    matches!(
        g.deref(v),
        Some(Node::Dict(_)) | Some(Node::OrderedDict { .. })
    )
}

fn is_tensor(g: &Graph, v: &Value) -> bool {
    matches!(
        g.deref(v),
        Some(Node::Tensor(_)) | Some(Node::SparseTensor(_))
    )
}

/// `_traverse.traverse_state_dict`'s `_is_terminal`.
fn is_terminal(g: &Graph, v: &Value) -> bool {
    match g.deref(v) {
        Some(Node::Dict(_)) | Some(Node::OrderedDict { .. }) => false,
        Some(Node::List(items)) => items.iter().all(|e| {
            let container = is_mapping(g, e) || matches!(g.deref(e), Some(Node::List(_)));
            (!container || is_terminal(g, e)) && !is_tensor(g, e)
        }),
        _ => true,
    }
}

fn flatten(g: &Graph, path: &mut Vec<Step>, v: &Value, out: &mut Vec<Leaf>) -> Result<()> {
    if let Some(items) = crate::graph::mapping_items(g, v) {
        for (k, x) in items {
            path.push(Step::Key(key_str(k)?));
            flatten(g, path, x, out)?;
            path.pop();
        }
        return Ok(());
    }
    if !is_terminal(g, v) {
        if let Some(Node::List(items)) = g.deref(v) {
            for (i, x) in items.iter().enumerate() {
                path.push(Step::Index(i));
                flatten(g, path, x, out)?;
                path.pop();
            }
            return Ok(());
        }
    }
    let fqn = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.clone(),
            Step::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".");
    if out.iter().any(|l| l.fqn == fqn) {
        crate::bail!(Unserializable, "duplicated flatten key {fqn}");
    }
    let (tensor, nbytes) = match (v, g.deref(v)) {
        (Value::Ref(id), Some(Node::Tensor(t))) => {
            if t.quantizer.is_some() || t.storage.is_none() {
                crate::bail!(
                    Unserializable,
                    "'{fqn}': torch.distributed.checkpoint writes dense tensors with data only"
                );
            }
            let numel: u64 = t.shape.iter().map(|&s| s.max(0) as u64).product();
            (Some(*id), numel * t.dtype.element_size() as u64)
        }
        (_, Some(Node::SparseTensor(_))) => crate::bail!(
            Unserializable,
            "'{fqn}': torch.distributed.checkpoint cannot write sparse tensors"
        ),
        _ => (None, 0),
    };
    out.push(Leaf {
        fqn,
        path: path.clone(),
        value: v.clone(),
        tensor,
        nbytes,
    });
    Ok(())
}

/// `_split_by_size_and_type`: indices of `leaves` per file.
fn split(leaves: &[Leaf], bins: usize) -> Vec<Vec<usize>> {
    if bins == 1 {
        return vec![(0..leaves.len()).collect()];
    }
    let mut buckets: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); bins];
    let values = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| l.tensor.is_none());
    for ((i, _), b) in values.zip((0..bins).cycle()) {
        if let Some((_, items)) = buckets.get_mut(b) {
            items.push(i);
        }
    }
    let mut tensors: Vec<(usize, u64)> = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| l.tensor.is_some())
        .map(|(i, l)| (i, l.nbytes))
        .collect();
    // Python's sort is stable: equal sizes keep their order.
    tensors.sort_by_key(|t| std::cmp::Reverse(t.1));
    for (i, nbytes) in tensors {
        // `min(enumerate(sizes), key=...)`: the first of the lightest.
        let lightest = buckets
            .iter_mut()
            .reduce(|best, b| if b.0 < best.0 { b } else { best });
        if let Some((size, items)) = lightest {
            items.push(i);
            *size += nbytes;
        }
    }
    buckets.into_iter().map(|(_, items)| items).collect()
}

/// The graph of one record: the leaf alone (a tensor detached and plain).
fn record_graph(g: &Graph, leaf: &Leaf) -> Result<Graph> {
    let mut sub = Graph::new();
    let root = Importer::new(g).value(&mut sub, &leaf.value)?;
    if leaf.tensor.is_some() {
        if let Value::Ref(id) = root {
            if let Some(Node::Tensor(t)) = sub.node_mut(id) {
                let mut plain = Tensor::plain(t.storage, t.dtype);
                plain.shape = t.shape.clone();
                plain.stride = t.stride.clone();
                plain.storage_offset = t.storage_offset;
                plain.metadata = t.metadata.clone();
                *t = plain;
            }
        }
    }
    sub.root = Some(root);
    Ok(sub)
}

struct Counting<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `(offset, length)` of each item, in the order written.
fn write_file(
    g: &Graph,
    leaves: &[Leaf],
    items: &[usize],
    path: &Path,
    durable: bool,
) -> Result<Vec<(usize, u64, u64)>> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(e, "create a .distcp file"))?;
    let mut w = Counting {
        inner: std::io::BufWriter::with_capacity(1 << 20, &f),
        pos: 0,
    };
    let rec = SaveOptions {
        compact: true,
        ..SaveOptions::default()
    };
    let mut out = Vec::with_capacity(items.len());
    // Values first, then tensors (`_write_files_from_queue`).
    let mine: Vec<(usize, &Leaf)> = items
        .iter()
        .filter_map(|&i| leaves.get(i).map(|l| (i, l)))
        .collect();
    let order = mine
        .iter()
        .filter(|(_, l)| l.tensor.is_none())
        .chain(mine.iter().filter(|(_, l)| l.tensor.is_some()));
    for &(i, leaf) in order {
        let start = w.pos;
        let sub = record_graph(g, leaf)?;
        super::save_to_writer(&sub, &mut w, &rec).map_err(|e| e.in_record(leaf.fqn.clone()))?;
        out.push((i, start, w.pos - start));
    }
    w.flush()
        .map_err(|e| Error::io(e, "write a .distcp file"))?;
    drop(w);
    if durable {
        f.sync_all()
            .map_err(|e| Error::io(e, "fsync a .distcp file"))?;
    }
    Ok(out)
}

fn obj(
    g: &mut Graph,
    module: &str,
    name: &str,
    kind: ObjectKind,
    args: Value,
    state: Option<Value>,
) -> Value {
    g.add(Node::Object(PyObject {
        module: module.to_string(),
        name: name.to_string(),
        kind,
        args,
        kwargs: None,
        state,
        list_items: Vec::new(),
        dict_items: Vec::new(),
    }))
}

const MD: &str = "torch.distributed.checkpoint.metadata";

fn new_obj(g: &mut Graph, name: &str, fields: Vec<(&str, Value)>) -> Value {
    let args = g.add(Node::Tuple(Vec::new()));
    let state = if fields.is_empty() {
        None
    } else {
        let items = fields
            .into_iter()
            .map(|(k, v)| (Value::Str(k.to_string()), v))
            .collect();
        Some(g.add(Node::Dict(items)))
    };
    let module = if name == "_StorageInfo" {
        "torch.distributed.checkpoint.filesystem"
    } else {
        MD
    };
    obj(g, module, name, ObjectKind::NewObj, args, state)
}

/// The `.metadata` pickle.
fn metadata_pickle(
    g: &Graph,
    leaves: &[Leaf],
    places: &[(String, usize, u64, u64)],
) -> Result<Vec<u8>> {
    let mut m = Graph::new();
    let mut sdm = Vec::with_capacity(leaves.len());
    let mut planner = Vec::with_capacity(leaves.len());
    let mut storage = Vec::with_capacity(leaves.len());
    let place_of: std::collections::HashMap<usize, (String, u64, u64)> = places
        .iter()
        .map(|(file, i, off, len)| (*i, (file.clone(), *off, *len)))
        .collect();
    for (i, leaf) in leaves.iter().enumerate() {
        let (meta, offset) = match leaf.tensor.and_then(|id| match g.node(id) {
            Some(Node::Tensor(t)) => Some(t),
            _ => None,
        }) {
            Some(t) => {
                let enc_args = m.add(Node::Tuple(vec![Value::Int(0)]));
                let enc = obj(
                    &mut m,
                    MD,
                    "_MEM_FORMAT_ENCODING",
                    ObjectKind::Reduce,
                    enc_args,
                    None,
                );
                let dtype = m.add(Node::Dtype(t.dtype));
                let layout = m.add(Node::Layout("strided".to_string()));
                let pstate = m.add(Node::Tuple(vec![
                    dtype,
                    layout,
                    Value::Bool(false),
                    enc,
                    Value::Bool(false),
                ]));
                let pargs = m.add(Node::Tuple(Vec::new()));
                let props = obj(
                    &mut m,
                    MD,
                    "TensorProperties",
                    ObjectKind::NewObj,
                    pargs,
                    Some(pstate),
                );
                let size = m.add(Node::Size(t.shape.clone()));
                let zeros = m.add(Node::Size(vec![0; t.shape.len()]));
                let csize = m.add(Node::Size(t.shape.clone()));
                let chunk = new_obj(
                    &mut m,
                    "ChunkStorageMetadata",
                    vec![("offsets", zeros), ("sizes", csize)],
                );
                let chunks = m.add(Node::List(vec![chunk]));
                let meta = new_obj(
                    &mut m,
                    "TensorStorageMetadata",
                    vec![("properties", props), ("size", size), ("chunks", chunks)],
                );
                let offset = m.add(Node::Size(vec![0; t.shape.len()]));
                (meta, Some(offset))
            }
            None => (new_obj(&mut m, "BytesStorageMetadata", Vec::new()), None),
        };
        sdm.push((Value::Str(leaf.fqn.clone()), meta));
        let path = leaf
            .path
            .iter()
            .map(|s| match s {
                Step::Key(k) => Value::Str(k.clone()),
                Step::Index(i) => Value::Int(*i as i64),
            })
            .collect();
        let path = m.add(Node::Tuple(path));
        planner.push((Value::Str(leaf.fqn.clone()), path));
        let (file, off, len) = place_of
            .get(&i)
            .cloned()
            .ok_or_else(|| crate::err!(Internal, "'{}' was not written", leaf.fqn))?;
        let index = match offset {
            Some(o) => new_obj(
                &mut m,
                "MetadataIndex",
                vec![
                    ("fqn", Value::Str(leaf.fqn.clone())),
                    ("offset", o),
                    ("index", Value::Int(0)),
                ],
            ),
            None => new_obj(
                &mut m,
                "MetadataIndex",
                vec![
                    ("fqn", Value::Str(leaf.fqn.clone())),
                    ("offset", Value::None),
                    ("index", Value::None),
                ],
            ),
        };
        let info = new_obj(
            &mut m,
            "_StorageInfo",
            vec![
                ("relative_path", Value::Str(file)),
                ("offset", Value::Int(off as i64)),
                ("length", Value::Int(len as i64)),
            ],
        );
        storage.push((index, info));
    }
    let sdm = m.add(Node::Dict(sdm));
    let planner = m.add(Node::Dict(planner));
    let storage = m.add(Node::Dict(storage));
    let root = new_obj(
        &mut m,
        "Metadata",
        vec![
            ("state_dict_metadata", sdm),
            ("planner_data", planner),
            ("storage_data", storage),
            ("storage_meta", Value::None),
            ("version", Value::Str("1.0.0".to_string())),
        ],
    );
    m.root = Some(root);
    let p = super::pickler::pickle_graph(&m, 4, super::pickler::PidStyle::Zip)?;
    if !p.storages.is_empty() {
        crate::bail!(Internal, "DCP metadata cannot carry storages");
    }
    Ok(p.bytes)
}

fn sync_dir(p: &Path) {
    if let Ok(d) = std::fs::File::open(p) {
        let _ = d.sync_all();
    }
}

/// A sibling of `dir` named for this process.
fn sibling(dir: &Path, what: &str) -> Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| {
        crate::err!(
            InvalidArgument,
            "'{}' does not name a folder",
            dir.display()
        )
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    Ok(dir.with_file_name(format!(
        ".{}.torchsave-{}-{nanos:08x}.{what}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Removes the temporary folder unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

/// Writes `graph.root()` (a state dict: a mapping with str keys) as a DCP folder at `dir`.
pub fn save_dcp(graph: &Graph, dir: &Path, opts: &DcpSaveOptions) -> Result<DcpWritten> {
    let at = |e: Error| e.in_file(dir.display().to_string());
    if opts.writers == 0 {
        return Err(at(crate::err!(
            InvalidArgument,
            "writers must be at least 1"
        )));
    }
    if crate::graph::mapping_items(graph, graph.root()).is_none() {
        return Err(at(crate::err!(
            Unserializable,
            "torch.distributed.checkpoint.save takes a state dict (a dict)"
        )));
    }
    if dir.exists() && !opts.overwrite {
        return Err(at(crate::err!(
            OutputExists,
            "'{}' exists (pass overwrite: true to replace it)",
            dir.display()
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(at(crate::err!(
            OutputExists,
            "'{}' exists and is not a folder",
            dir.display()
        )));
    }
    let mut leaves = Vec::new();
    flatten(graph, &mut Vec::new(), graph.root(), &mut leaves).map_err(at)?;
    let buckets = split(&leaves, opts.writers);
    let tmp = sibling(dir, "tmp").map_err(at)?;
    std::fs::create_dir(&tmp).map_err(|e| at(Error::io(e, "create the temporary folder")))?;
    let mut cleanup = Cleanup(Some(tmp.clone()));
    let files: Vec<String> = (0..buckets.len())
        .map(|i| format!("__0_{i}{DATA_SUFFIX}"))
        .collect();
    let written: Vec<Result<Vec<(usize, u64, u64)>>> = buckets
        .par_iter()
        .zip(files.par_iter())
        .map(|(items, name)| write_file(graph, &leaves, items, &tmp.join(name), opts.durable))
        .collect();
    let mut places = Vec::new();
    for (r, name) in written.into_iter().zip(&files) {
        for (i, off, len) in r.map_err(at)? {
            places.push((name.clone(), i, off, len));
        }
    }
    let md = metadata_pickle(graph, &leaves, &places).map_err(at)?;
    let mdp = tmp.join(METADATA_FILE);
    let mut f = std::fs::File::create(&mdp).map_err(|e| at(Error::io(e, "create .metadata")))?;
    f.write_all(&md)
        .map_err(|e| at(Error::io(e, "write .metadata")))?;
    if opts.durable {
        f.sync_all()
            .map_err(|e| at(Error::io(e, "fsync .metadata")))?;
        sync_dir(&tmp);
    }
    drop(f);
    let bytes = files
        .iter()
        .chain(std::iter::once(&METADATA_FILE.to_string()))
        .map(|n| std::fs::metadata(tmp.join(n)).map(|m| m.len()).unwrap_or(0))
        .sum();
    // Swap in: an old folder is moved aside first (rename over a non-empty folder fails),
    // then removed once the new one has its name.
    let old = if dir.exists() {
        let old = sibling(dir, "old").map_err(at)?;
        std::fs::rename(dir, &old).map_err(|e| at(Error::io(e, "move the old folder aside")))?;
        Some(old)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, dir);
        }
        return Err(at(Error::io(e, "rename the new folder into place")));
    }
    cleanup.0 = None;
    if opts.durable {
        if let Some(parent) = dir.parent() {
            sync_dir(if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            });
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(DcpWritten {
        files,
        keys: leaves.into_iter().map(|l| l.fqn).collect(),
        bytes,
    })
}
