//! Distributed checkpoints (`torch.distributed.checkpoint`, DCP): a folder holding a
//! `.metadata` pickle and `__<rank>_<n>.distcp` data files, read as the state dict it describes.
//!
//! Source of truth: torch 2.11's `torch/distributed/checkpoint/{metadata,filesystem,
//! _traverse,default_planner}.py`.
//!
//! - `.metadata` is `pickle.dump(Metadata)` (protocol 4). It is run by our VM under
//!   [`Policy::for_dcp_metadata`]: its dataclasses are known data types (inert objects whose
//!   state is read here), anything else is judged as in a torch.save pickle. Nothing runs.
//! - `Metadata.state_dict_metadata`: flattened key -> `TensorStorageMetadata` (dtype in
//!   `TensorProperties`, the whole size, and chunks: `offsets`/`sizes` boxes) or
//!   `BytesStorageMetadata` (any other value).
//! - `Metadata.storage_data`: `MetadataIndex(fqn, offset)` -> `_StorageInfo(relative_path,
//!   offset, length[, transform_descriptors])`: where each chunk's bytes are.
//! - In a `.distcp` file each item is a `torch.save` zip of its own (the default
//!   `SerializationFormat.TORCH_SAVE`, no stream transforms): a chunk is a tensor of the chunk's
//!   sizes, a bytes item is `torch.save(obj)` of the value.
//! - `Metadata.planner_data` (the default planner's flatten mapping): key -> object path
//!   (str keys, int list indices); the nested state dict is rebuilt as `_traverse.set_element`
//!   does (`dcp_to_torch_save` returns that). Without it the keys stay flat.
//!
//! A tensor stored as one whole chunk views its record in the mapped file (nothing is copied
//! until read); a tensor in several chunks (ShardedTensor / DTensor shards) is assembled into
//! one contiguous buffer from the chunk boxes. Only the byte ranges the metadata names are read.

use super::{LoadInfo, Loaded};
use crate::bytes::{ByteView, Tile, Tiled};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::Importer;
use crate::options::LoadOptions;
use crate::pickle::policy::Policy;
use crate::pickle::{self, UnpickleOptions};
use crate::value::{Format, Graph, Node, PyObject, Storage, Tensor, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metadata file's name inside the folder.
pub const METADATA_FILE: &str = ".metadata";
/// The data files' suffix.
pub const DATA_SUFFIX: &str = ".distcp";

/// True when `path` is a folder holding a DCP `.metadata` file.
pub fn is_dcp_dir(path: &Path) -> bool {
    path.is_dir() && path.join(METADATA_FILE).is_file()
}

/// Where one item's bytes are: `_StorageInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemLocation {
    /// The data file, relative to the folder.
    pub file: String,
    pub offset: u64,
    pub length: u64,
}

/// One chunk (a box of the whole tensor) and where it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub offsets: Vec<i64>,
    pub sizes: Vec<i64>,
    pub location: ItemLocation,
}

/// What one flattened key holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Tensor {
        dtype: DType,
        size: Vec<i64>,
        chunks: Vec<Chunk>,
    },
    /// A non-tensor value: `torch.save(value)` at `location`.
    Bytes(ItemLocation),
}

/// One step of an object path (`planner_data`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathKey {
    Key(String),
    Index(usize),
}

/// One flattened key of the checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The flattened key (`model.layer.weight`).
    pub fqn: String,
    /// Its path in the nested state dict (planner_data); `None`: a top-level key.
    pub path: Option<Vec<PathKey>>,
    pub item: Item,
}

/// The parsed `.metadata`.
#[derive(Clone, Debug)]
pub struct Metadata {
    /// In `state_dict_metadata` order.
    pub entries: Vec<Entry>,
    /// `Metadata.version` (`1.0.0` in torch 2.11).
    pub version: Option<String>,
    /// Globals the pickle named.
    pub globals: Vec<String>,
    pub protocol: u8,
    pub refusal: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    crate::err!(BadDcp, "{}", msg.into())
}

/// Reads and interprets `dir/.metadata`.
pub fn read_metadata(dir: &Path, opts: &LoadOptions) -> Result<Metadata> {
    let path = dir.join(METADATA_FILE);
    let in_file = |e: Error| e.in_file(path.display().to_string());
    let bytes = std::fs::read(&path).map_err(|e| in_file(Error::io(e, "cannot read .metadata")))?;
    parse_metadata(&bytes, opts).map_err(in_file)
}

/// Interprets the bytes of a `.metadata` pickle.
pub fn parse_metadata(bytes: &[u8], opts: &LoadOptions) -> Result<Metadata> {
    let uopts = UnpickleOptions {
        weights_only: opts.weights_only,
        safe_globals: opts.safe_globals.clone(),
        encoding: opts.encoding,
        limits: opts.limits.clone(),
    };
    let mut graph = Graph::new();
    let policy = Policy::for_dcp_metadata(opts.weights_only, &opts.safe_globals);
    let out = pickle::unpickle_with_policy(
        bytes,
        &mut graph,
        &uopts,
        &mut super::torch_pickle::NoPersistentIds,
        policy,
    )?;
    let g = &graph;
    let md = object(g, &out.root, "Metadata")?;
    let fields = state_dict(g, md, "Metadata")?;
    let sdm = field(fields, "state_dict_metadata")?
        .ok_or_else(|| bad("Metadata has no state_dict_metadata"))?;
    let planner: HashMap<String, Vec<PathKey>> = match field(fields, "planner_data")? {
        Some(v) => planner_paths(g, v)?,
        None => HashMap::new(),
    };
    let storage = match field(fields, "storage_data")? {
        Some(v) => storage_locations(g, v)?,
        None => HashMap::new(),
    };
    let version = match field(fields, "version")? {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    };
    let items = dict_items(g, sdm).ok_or_else(|| bad("state_dict_metadata is not a dict"))?;
    let mut entries = Vec::with_capacity(items.len());
    for (k, v) in items {
        let Value::Str(fqn) = k else {
            return Err(bad("a state_dict_metadata key is not a str"));
        };
        let o = g
            .deref(v)
            .and_then(|n| match n {
                Node::Object(o) => Some(o),
                _ => None,
            })
            .ok_or_else(|| bad(format!("'{fqn}': storage metadata is not an object")))?;
        let locate = |offset: Option<&[i64]>| -> Result<ItemLocation> {
            storage
                .get(&(fqn.clone(), offset.map(|o| o.to_vec())))
                .cloned()
                .ok_or_else(|| bad(format!("'{fqn}' has no storage_data entry")))
        };
        let item = match o.name.as_str() {
            "BytesStorageMetadata" => Item::Bytes(locate(None)?),
            "TensorStorageMetadata" => {
                let f = state_dict(g, o, "TensorStorageMetadata")?;
                let props = field(f, "properties")?
                    .ok_or_else(|| bad(format!("'{fqn}': no tensor properties")))?;
                let dtype = tensor_dtype(g, props)?;
                let size = sizes(g, field(f, "size")?)?;
                let chunk_list = field(f, "chunks")?
                    .and_then(|c| match g.deref(c) {
                        Some(Node::List(l)) => Some(l),
                        _ => None,
                    })
                    .ok_or_else(|| bad(format!("'{fqn}': chunks is not a list")))?;
                let mut chunks = Vec::with_capacity(chunk_list.len());
                for c in chunk_list {
                    let co = object(g, c, "ChunkStorageMetadata")?;
                    let cf = state_dict(g, co, "ChunkStorageMetadata")?;
                    let offsets = sizes(g, field(cf, "offsets")?)?;
                    let csizes = sizes(g, field(cf, "sizes")?)?;
                    let location = locate(Some(&offsets))?;
                    chunks.push(Chunk {
                        offsets,
                        sizes: csizes,
                        location,
                    });
                }
                Item::Tensor {
                    dtype,
                    size,
                    chunks,
                }
            }
            other => return Err(bad(format!("'{fqn}': unknown storage metadata {other}"))),
        };
        entries.push(Entry {
            path: planner.get(fqn).cloned(),
            fqn: fqn.clone(),
            item,
        });
    }
    Ok(Metadata {
        entries,
        version,
        globals: out.globals,
        protocol: out.protocol,
        refusal: out.weights_only_refusal,
    })
}

fn object<'g>(g: &'g Graph, v: &Value, name: &str) -> Result<&'g PyObject> {
    match g.deref(v) {
        Some(Node::Object(o)) if o.name == name => Ok(o),
        _ => Err(bad(format!("expected a {name}"))),
    }
}

fn dict_items<'g>(g: &'g Graph, v: &Value) -> Option<&'g [(Value, Value)]> {
    crate::graph::mapping_items(g, v)
}

/// A dataclass's `__dict__` state (BUILD with a dict, or `(None, slots)`).
fn state_dict<'g>(g: &'g Graph, o: &'g PyObject, name: &str) -> Result<&'g [(Value, Value)]> {
    let Some(state) = &o.state else {
        return Ok(&[]);
    };
    if let Some(items) = dict_items(g, state) {
        return Ok(items);
    }
    if let Some(Node::Tuple(t)) = g.deref(state) {
        if let [_, slots] = t.as_slice() {
            if let Some(items) = dict_items(g, slots) {
                return Ok(items);
            }
        }
    }
    Err(bad(format!("{name} state is not a dict")))
}

fn field<'g>(fields: &'g [(Value, Value)], name: &str) -> Result<Option<&'g Value>> {
    Ok(fields
        .iter()
        .find(|(k, _)| matches!(k, Value::Str(s) if s == name))
        .map(|(_, v)| v)
        .filter(|v| !matches!(v, Value::None)))
}

fn sizes(g: &Graph, v: Option<&Value>) -> Result<Vec<i64>> {
    match v.and_then(|v| g.deref(v)) {
        Some(Node::Size(s)) => Ok(s.clone()),
        Some(Node::Tuple(t)) | Some(Node::List(t)) => t
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i),
                _ => Err(bad("a size is not a non-negative int")),
            })
            .collect(),
        _ => Err(bad("expected a torch.Size")),
    }
}

/// `TensorProperties`' dtype: its state is `(dtype, layout, requires_grad, memory_format,
/// pin_memory)` (its `__getstate__`), or a field dict.
fn tensor_dtype(g: &Graph, props: &Value) -> Result<DType> {
    let o = object(g, props, "TensorProperties")?;
    let dt = match o.state.as_ref().and_then(|s| g.deref(s)) {
        Some(Node::Tuple(t)) => t.first().cloned(),
        Some(Node::Dict(items)) => items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == "dtype"))
            .map(|(_, v)| v.clone()),
        _ => None,
    };
    match dt.as_ref().and_then(|v| g.deref(v)) {
        Some(Node::Dtype(d)) => Ok(*d),
        _ => Err(bad("TensorProperties has no dtype")),
    }
}

fn planner_paths(g: &Graph, v: &Value) -> Result<HashMap<String, Vec<PathKey>>> {
    let Some(items) = dict_items(g, v) else {
        // Another planner's data: keep the keys flat.
        return Ok(HashMap::new());
    };
    let mut out = HashMap::new();
    for (k, p) in items {
        let Value::Str(fqn) = k else { continue };
        let Some(Node::Tuple(parts)) = g.deref(p) else {
            continue;
        };
        let mut path = Vec::with_capacity(parts.len());
        for part in parts {
            path.push(match part {
                Value::Str(s) => PathKey::Key(s.clone()),
                // A list index beyond the entry count cannot be a state dict's (and would
                // make a huge list of Nones).
                Value::Int(i) if *i >= 0 && (*i as usize) < items.len() => {
                    PathKey::Index(*i as usize)
                }
                _ => return Err(bad(format!("'{fqn}': bad planner_data path"))),
            });
        }
        if path.is_empty() {
            return Err(bad(format!("'{fqn}': empty planner_data path")));
        }
        out.insert(fqn.clone(), path);
    }
    Ok(out)
}

type LocationKey = (String, Option<Vec<i64>>);

fn storage_locations(g: &Graph, v: &Value) -> Result<HashMap<LocationKey, ItemLocation>> {
    let items = dict_items(g, v).ok_or_else(|| bad("storage_data is not a dict"))?;
    let mut out = HashMap::new();
    for (k, info) in items {
        let idx = object(g, k, "MetadataIndex")?;
        let f = state_dict(g, idx, "MetadataIndex")?;
        let Some(Value::Str(fqn)) = field(f, "fqn")? else {
            return Err(bad("MetadataIndex has no fqn"));
        };
        let offset = match field(f, "offset")? {
            Some(o) => Some(sizes(g, Some(o))?),
            None => None,
        };
        let si = object(g, info, "_StorageInfo")?;
        let sf = state_dict(g, si, "_StorageInfo")?;
        let Some(Value::Str(file)) = field(sf, "relative_path")? else {
            return Err(bad(format!("'{fqn}': _StorageInfo has no relative_path")));
        };
        let int = |name: &str| -> Result<u64> {
            match field(sf, name)? {
                Some(Value::Int(i)) if *i >= 0 => Ok(*i as u64),
                _ => Err(bad(format!("'{fqn}': _StorageInfo.{name} is not an int"))),
            }
        };
        if let Some(t) = field(sf, "transform_descriptors")? {
            let empty =
                matches!(g.deref(t), Some(Node::List(l)) | Some(Node::Tuple(l)) if l.is_empty());
            if !empty {
                return Err(bad(format!(
                    "'{fqn}' is stored with stream transforms (torch's experimental _extensions), \
                     which this reader does not apply"
                )));
            }
        }
        if file.contains('/') || file.contains('\\') || file == ".." || file.starts_with('.') {
            return Err(bad(format!(
                "'{fqn}': data file name {file:?} leaves the folder"
            )));
        }
        out.insert(
            (fqn.clone(), offset),
            ItemLocation {
                file: file.clone(),
                offset: int("offset")?,
                length: int("length")?,
            },
        );
    }
    Ok(out)
}

/// The mapped data files of one folder, opened on first use.
pub struct DataFiles {
    dir: PathBuf,
    mmap: bool,
    files: HashMap<String, ByteView>,
}

impl DataFiles {
    pub fn new(dir: &Path, mmap: bool) -> Self {
        DataFiles {
            dir: dir.to_path_buf(),
            mmap,
            files: HashMap::new(),
        }
    }

    /// The bytes of one item.
    pub fn item(&mut self, loc: &ItemLocation) -> Result<ByteView> {
        if !self.files.contains_key(&loc.file) {
            let p = self.dir.join(&loc.file);
            let b = super::source::open(&p, self.mmap)
                .map_err(|e| e.in_file(p.display().to_string()))?;
            self.files.insert(loc.file.clone(), b);
        }
        let b = self
            .files
            .get(&loc.file)
            .ok_or_else(|| crate::err!(Internal, "{} was just opened", loc.file))?;
        let end = loc.offset.checked_add(loc.length);
        end.and_then(|e| usize::try_from(e).ok())
            .and_then(|e| b.slice(loc.offset as usize..e))
            .ok_or_else(|| {
                crate::err!(
                    Truncated,
                    "{}: item at {}+{} ends past the file's {} bytes",
                    loc.file,
                    loc.offset,
                    loc.length,
                    b.len()
                )
            })
    }

    /// Every file opened so far (for change checks and eager copies).
    pub fn opened(&self) -> impl Iterator<Item = &ByteView> {
        self.files.values()
    }
}

/// Loads one item's `torch.save` record.
fn load_record(files: &mut DataFiles, loc: &ItemLocation, opts: &LoadOptions) -> Result<Loaded> {
    let bytes = files.item(loc)?;
    super::detect::load(bytes, opts, true)
        .map_err(|e| e.in_record(format!("{}@{}", loc.file, loc.offset)))
}

/// Loads the whole folder as one state dict.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<Loaded> {
    load_dir_with_maps(dir, opts).map(|(l, _)| l)
}

/// [`load_dir`], plus the data files it opened and their maps (storages of single-chunk
/// tensors view them when `opts.mmap`), for readers that `pread` instead of faulting pages in.
pub fn load_dir_with_maps(
    dir: &Path,
    opts: &LoadOptions,
) -> Result<(Loaded, Vec<(PathBuf, ByteView)>)> {
    let md = read_metadata(dir, opts)?;
    let in_dir = |e: Error| {
        if e.path.is_some() {
            e
        } else {
            e.in_file(dir.display().to_string())
        }
    };
    let mut files = DataFiles::new(dir, true);
    let mut graph = Graph::new();
    let mut refusal = md.refusal.clone();
    let mut values: Vec<(Option<Vec<PathKey>>, String, Value)> = Vec::new();
    for e in &md.entries {
        let v = item_value(&mut graph, &mut files, e, opts, &mut refusal).map_err(in_dir)?;
        values.push((e.path.clone(), e.fqn.clone(), v));
    }
    for b in files.opened() {
        b.check().map_err(in_dir)?;
    }
    if !opts.mmap {
        for b in files.opened() {
            super::eager::own_storages(&mut graph, b);
        }
    }
    let root = nest(&mut graph, values).map_err(in_dir)?;
    graph.root = Some(root);
    crate::tensor::validate_graph(&graph, &opts.limits).map_err(in_dir)?;
    let maps = if opts.mmap {
        files
            .files
            .iter()
            .map(|(name, view)| (dir.join(name), view.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let loaded = Loaded {
        graph,
        info: LoadInfo {
            format: Format::Dcp,
            globals: md.globals,
            big_endian: false,
            pickle_protocol: md.protocol,
            archive_name: None,
            version: md.version,
            weights_only_refusal: refusal,
        },
    };
    Ok((loaded, maps))
}

/// The value of one entry, imported into `graph`.
pub fn item_value(
    graph: &mut Graph,
    files: &mut DataFiles,
    e: &Entry,
    opts: &LoadOptions,
    refusal: &mut Option<String>,
) -> Result<Value> {
    match &e.item {
        Item::Bytes(loc) => {
            let l = load_record(files, loc, opts)?;
            if refusal.is_none() {
                refusal.clone_from(&l.info.weights_only_refusal);
            }
            Importer::new(&l.graph).value(graph, l.graph.root())
        }
        Item::Tensor {
            dtype,
            size,
            chunks,
        } => {
            if let [c] = chunks.as_slice() {
                if c.sizes == *size && c.offsets.iter().all(|&o| o == 0) {
                    let l = load_record(files, &c.location, opts)?;
                    chunk_tensor(&l, c, *dtype, &e.fqn)?;
                    return Importer::new(&l.graph).value(graph, l.graph.root());
                }
            }
            assemble(graph, files, e, *dtype, size, chunks, opts)
        }
    }
}

/// The chunk record's tensor, checked against the chunk's box.
fn chunk_tensor<'l>(l: &'l Loaded, c: &Chunk, dtype: DType, fqn: &str) -> Result<&'l Tensor> {
    let Some(Node::Tensor(t)) = l.graph.deref(l.graph.root()) else {
        return Err(bad(format!(
            "'{fqn}': a chunk record does not hold a tensor"
        )));
    };
    if t.dtype != dtype || t.shape != c.sizes {
        return Err(bad(format!(
            "'{fqn}': chunk at {:?} holds {} {:?}, the metadata says {} {:?}",
            c.offsets,
            t.dtype.name(),
            t.shape,
            dtype.name(),
            c.sizes
        )));
    }
    Ok(t)
}

/// Row-major strides in elements.
fn c_strides(shape: &[i64]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (st, &d) in s.iter_mut().zip(shape).rev() {
        *st = acc;
        acc *= d.max(0) as usize;
    }
    s
}

fn assemble(
    graph: &mut Graph,
    files: &mut DataFiles,
    e: &Entry,
    dtype: DType,
    size: &[i64],
    chunks: &[Chunk],
    opts: &LoadOptions,
) -> Result<Value> {
    let elem = dtype.element_size();
    let numel = size
        .iter()
        .try_fold(1u64, |a, &s| a.checked_mul(s as u64))
        .ok_or_else(|| bad(format!("'{}': size overflows", e.fqn)))?;
    let nbytes = numel
        .checked_mul(elem as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| bad(format!("'{}': size overflows", e.fqn)))?;
    let mut covered: u64 = 0;
    let mut tiles = Vec::with_capacity(chunks.len());
    for c in chunks {
        if c.offsets.len() != size.len()
            || c.sizes.len() != size.len()
            || c.offsets
                .iter()
                .zip(&c.sizes)
                .zip(size)
                .any(|((&o, &s), &w)| o < 0 || s < 0 || o + s > w)
        {
            return Err(bad(format!(
                "'{}': chunk at {:?} of sizes {:?} is outside the tensor's {:?}",
                e.fqn, c.offsets, c.sizes, size
            )));
        }
        let l = load_record(files, &c.location, opts)?;
        let t = chunk_tensor(&l, c, dtype, &e.fqn)?;
        // A contiguous chunk is a slice of its record (of the mapped file); others are
        // gathered into a buffer of their own.
        let data = match t.storage.and_then(|sid| l.graph.storages.get(sid)) {
            Some(st) if crate::strided::is_contiguous(t) => {
                let range = crate::strided::reached_range(t, st)?;
                st.data
                    .slice(range.start as usize..range.end as usize)
                    .ok_or_else(|| bad(format!("'{}': a chunk is outside its record", e.fqn)))?
            }
            _ => ByteView::from_vec(crate::tensor::contiguous_bytes(&l.graph, t)?.into_owned()),
        };
        covered += c.sizes.iter().map(|&s| s as u64).product::<u64>();
        tiles.push(Tile {
            offsets: c.offsets.clone(),
            sizes: c.sizes.clone(),
            data,
        });
    }
    if covered != numel {
        return Err(bad(format!(
            "'{}': its chunks cover {covered} of {numel} elements",
            e.fqn
        )));
    }
    let tiled = ByteView::new(Arc::new(Tiled::new(size.to_vec(), elem, tiles)));
    // Mapped loads keep the tiles in the map until the bytes are asked for (a streamed
    // conversion never asks); eager loads assemble now.
    let data = if opts.mmap {
        tiled
    } else {
        ByteView::from_vec(tiled.as_slice().to_vec())
    };
    let _ = nbytes;
    let sid = graph.add_storage(Storage {
        key: e.fqn.clone(),
        dtype,
        untyped: false,
        numel,
        location: "cpu".to_string(),
        data,
    });
    let mut t = Tensor::plain(Some(sid), dtype);
    t.shape = size.to_vec();
    t.stride = c_strides(size).into_iter().map(|s| s as i64).collect();
    Ok(graph.add(Node::Tensor(t)))
}

/// A container being rebuilt (`_traverse.set_element`).
enum Slot {
    Leaf(Value),
    Dict(Vec<(String, Slot)>),
    List(Vec<Slot>),
    Empty,
}

impl Slot {
    fn child(&mut self, key: &PathKey, next_is_key: bool) -> Result<&mut Slot> {
        let fresh = || {
            if next_is_key {
                Slot::Dict(Vec::new())
            } else {
                Slot::List(Vec::new())
            }
        };
        match (self, key) {
            (Slot::Dict(items), PathKey::Key(k)) => {
                let i = match items.iter().position(|(n, _)| n == k) {
                    Some(i) => i,
                    None => {
                        items.push((k.clone(), fresh()));
                        items.len() - 1
                    }
                };
                let Some((_, slot)) = items.get_mut(i) else {
                    return Err(crate::err!(Internal, "a slot just pushed is missing"));
                };
                if matches!(slot, Slot::Empty) {
                    *slot = fresh();
                }
                Ok(slot)
            }
            (Slot::List(items), PathKey::Index(i)) => {
                while items.len() <= *i {
                    items.push(Slot::Empty);
                }
                let Some(slot) = items.get_mut(*i) else {
                    return Err(crate::err!(Internal, "a slot just pushed is missing"));
                };
                if matches!(slot, Slot::Empty) {
                    *slot = fresh();
                }
                Ok(slot)
            }
            _ => Err(bad("planner_data paths disagree about a container's kind")),
        }
    }

    fn set(&mut self, key: &PathKey, v: Value) -> Result<()> {
        match (self, key) {
            (Slot::Dict(items), PathKey::Key(k)) => {
                match items.iter_mut().find(|(n, _)| n == k) {
                    Some((_, s)) => *s = Slot::Leaf(v),
                    None => items.push((k.clone(), Slot::Leaf(v))),
                }
                Ok(())
            }
            (Slot::List(items), PathKey::Index(i)) => {
                while items.len() <= *i {
                    items.push(Slot::Empty);
                }
                if let Some(slot) = items.get_mut(*i) {
                    *slot = Slot::Leaf(v);
                }
                Ok(())
            }
            _ => Err(bad("planner_data paths disagree about a container's kind")),
        }
    }

    fn into_value(self, graph: &mut Graph) -> Value {
        match self {
            Slot::Leaf(v) => v,
            Slot::Empty => Value::None,
            Slot::Dict(items) => {
                let items = items
                    .into_iter()
                    .map(|(k, s)| (Value::Str(k), s.into_value(graph)))
                    .collect();
                graph.add(Node::Dict(items))
            }
            Slot::List(items) => {
                let items = items.into_iter().map(|s| s.into_value(graph)).collect();
                graph.add(Node::List(items))
            }
        }
    }
}

/// The nested state dict from `(path, fqn, value)` in metadata order.
fn nest(graph: &mut Graph, values: Vec<(Option<Vec<PathKey>>, String, Value)>) -> Result<Value> {
    let mut root = Slot::Dict(Vec::new());
    for (path, fqn, v) in values {
        let path = path.unwrap_or_else(|| vec![PathKey::Key(fqn)]);
        let mut cur = &mut root;
        for w in path.windows(2) {
            if let [a, b] = w {
                cur = cur.child(a, matches!(b, PathKey::Key(_)))?;
            }
        }
        match path.last() {
            Some(last) => cur.set(last, v)?,
            None => return Err(bad("empty planner_data path")),
        }
    }
    Ok(root.into_value(graph))
}
