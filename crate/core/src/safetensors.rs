//! Hugging Face safetensors: read and write, byte-compatible with the `safetensors` package.
//!
//! Layout: 8 bytes little-endian `N`, then `N` bytes of UTF-8 JSON, then the data buffer.
//! The JSON object maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
//! (offsets relative to the data buffer) plus an optional `"__metadata__"` map of strings.
//!
//! Reading validates before trusting, like upstream `SafeTensors::read_metadata`/`validate`
//! (safetensors 0.4-0.8): a named header cap ([`MAX_HEADER_SIZE`]), checked arithmetic on
//! every size, offsets sorted and contiguous from 0 with no gap or overlap, each tensor's
//! `numel x bits / 8` equal to its byte length, and the last offset equal to the buffer's
//! length. We are stricter in two places: duplicate names are an error (serde silently keeps
//! the last), and the header must start with `{`. A read graph has an `OrderedDict` root in
//! data-offset order (what `safetensors.torch.load_file` returns in 0.8) and one storage per
//! tensor, each a zero-copy window onto the file's `ByteView`.
//!
//! Writing reproduces upstream's `serialize` byte for byte: tensors sorted by descending
//! dtype rank (the order of upstream's `Dtype` enum, which is by alignment) then by name,
//! compact JSON with `__metadata__` first, the header padded with spaces to a multiple of
//! 8, data contiguous. Tensors that share memory are handled as `safetensors.torch.save_model`
//! does (`_remove_duplicate_names`): one name is kept, the others are dropped and recorded in
//! the metadata as `dropped -> kept`, so bytes are never written twice. Non-contiguous views
//! are written contiguously. Dtype rank, names and sizes must change together in
//! [`ST_DTYPES`].

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::strided;
use crate::value::{Graph, Node, NodeId, Storage, Tensor, Value};
use serde::de::{Deserializer, MapAccess, Visitor};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::Path;

/// Largest JSON header accepted (upstream's `MAX_HEADER_SIZE`).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// `(safetensors name, rank in upstream's Dtype enum, bits per element, PyTorch dtype)`.
/// `None` dtypes exist in the format but not in PyTorch; reading them fails with a code.
/// F4 elements are 4 bits: PyTorch's `float4_e2m1fn_x2` packs two per byte, so its shapes
/// differ from the file's in the last dimension (halved).
const ST_DTYPES: [(&str, u8, u8, Option<DType>); 22] = [
    ("BOOL", 0, 8, Some(DType::Bool)),
    ("F4", 1, 4, Some(DType::Float4E2M1FnX2)),
    ("F6_E2M3", 2, 6, None),
    ("F6_E3M2", 3, 6, None),
    ("U8", 4, 8, Some(DType::UInt8)),
    ("I8", 5, 8, Some(DType::Int8)),
    ("F8_E5M2", 6, 8, Some(DType::Float8E5M2)),
    ("F8_E4M3", 7, 8, Some(DType::Float8E4M3Fn)),
    ("F8_E8M0", 8, 8, Some(DType::Float8E8M0Fnu)),
    ("F8_E4M3FNUZ", 9, 8, Some(DType::Float8E4M3Fnuz)),
    ("F8_E5M2FNUZ", 10, 8, Some(DType::Float8E5M2Fnuz)),
    ("I16", 11, 16, Some(DType::Int16)),
    ("U16", 12, 16, Some(DType::UInt16)),
    ("F16", 13, 16, Some(DType::Float16)),
    ("BF16", 14, 16, Some(DType::BFloat16)),
    ("I32", 15, 32, Some(DType::Int32)),
    ("U32", 16, 32, Some(DType::UInt32)),
    ("F32", 17, 32, Some(DType::Float32)),
    ("C64", 18, 64, Some(DType::Complex64)),
    ("F64", 19, 64, Some(DType::Float64)),
    ("I64", 20, 64, Some(DType::Int64)),
    ("U64", 21, 64, Some(DType::UInt64)),
];

/// The safetensors name and rank of a PyTorch dtype, if the format can hold it.
pub fn st_dtype(d: DType) -> Option<(&'static str, u8)> {
    ST_DTYPES
        .iter()
        .find(|e| e.3 == Some(d))
        .map(|e| (e.0, e.1))
}

fn st_lookup(name: &str) -> Option<&'static (&'static str, u8, u8, Option<DType>)> {
    ST_DTYPES.iter().find(|e| e.0 == name)
}

/// Cheap sniff: 8-byte size, then a header that starts with `{"` or `{}`. Used by format
/// detection (pt files start with `PK` or a pickle opcode).
pub fn looks_like_safetensors(prefix: &[u8]) -> bool {
    let (Some(n), Some(&b'{')) = (prefix.get(..8), prefix.get(8)) else {
        return false;
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(n);
    let n = u64::from_le_bytes(a);
    (2..=MAX_HEADER_SIZE).contains(&n)
        && matches!(
            prefix.get(9),
            Some(b'"') | Some(b'}') | Some(b' ') | Some(b'\n')
        )
}

/// One tensor as the header describes it, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderEntry {
    pub name: String,
    pub dtype: DType,
    /// PyTorch's shape (for F4, the file's last dimension halved).
    pub shape: Vec<i64>,
    /// Byte range in the data buffer.
    pub begin: u64,
    pub end: u64,
}

/// A validated header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Sorted by `data_offsets`.
    pub entries: Vec<HeaderEntry>,
    /// `__metadata__`, in the file's order.
    pub metadata: Vec<(String, String)>,
    /// `N`, the JSON header's length; data starts at `8 + N`.
    pub header_len: u64,
}

/// A JSON object as ordered entries, rejecting duplicate keys.
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Entries, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if !seen.insert(k.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key '{k}'")));
                    }
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn as_u64_list(v: Option<&serde_json::Value>, what: &str, name: &str) -> Result<Vec<u64>> {
    let arr = v.and_then(|v| v.as_array()).ok_or_else(|| {
        crate::err!(
            BadSafetensors,
            "tensor '{name}': '{what}' must be an array of integers"
        )
    })?;
    arr.iter()
        .map(|x| {
            x.as_u64()
                .ok_or_else(|| crate::err!(BadSafetensors, "tensor '{name}': '{what}' holds {x}"))
        })
        .collect()
}

/// Parses and validates the header of a whole safetensors file.
pub fn parse_header(file: &[u8]) -> Result<Header> {
    let Some(prefix) = file.get(..8) else {
        crate::bail!(
            Truncated,
            "a safetensors file needs at least 8 bytes, this one has {}",
            file.len()
        );
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(prefix);
    let n = u64::from_le_bytes(a);
    if n > MAX_HEADER_SIZE {
        crate::bail!(
            LimitExceeded,
            "safetensors header of {n} bytes is over the {MAX_HEADER_SIZE}-byte limit"
        );
    }
    let stop = 8 + n as usize; // n <= 1e8: no overflow.
    let Some(raw) = file.get(8..stop) else {
        crate::bail!(
            Truncated,
            "header announces {n} bytes but the file has {} after the size",
            file.len() - 8
        );
    };
    let text = std::str::from_utf8(raw)
        .map_err(|e| crate::err!(BadSafetensors, "header is not UTF-8: {e}").at(8))?;
    if !text.starts_with('{') {
        crate::bail!(BadSafetensors, "header does not start with '{{'");
    }
    let entries: Entries = serde_json::from_str(text)
        .map_err(|e| crate::err!(BadSafetensors, "header JSON: {e}").at(8))?;
    let mut metadata = Vec::new();
    let mut tensors = Vec::with_capacity(entries.0.len());
    for (name, v) in entries.0 {
        if name == "__metadata__" {
            let obj = v
                .as_object()
                .ok_or_else(|| crate::err!(BadSafetensors, "__metadata__ must be an object"))?;
            for (k, val) in obj {
                let s = val.as_str().ok_or_else(|| {
                    crate::err!(
                        BadSafetensors,
                        "__metadata__ value for '{k}' is not a string"
                    )
                })?;
                metadata.push((k.clone(), s.to_string()));
            }
            continue;
        }
        let obj = v
            .as_object()
            .ok_or_else(|| crate::err!(BadSafetensors, "tensor '{name}' is not an object"))?;
        let dt = obj
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| crate::err!(BadSafetensors, "tensor '{name}' has no dtype string"))?;
        let shape = as_u64_list(obj.get("shape"), "shape", &name)?;
        let offs = as_u64_list(obj.get("data_offsets"), "data_offsets", &name)?;
        let [begin, end] = offs[..] else {
            crate::bail!(
                BadSafetensors,
                "tensor '{name}': data_offsets must hold 2 integers"
            );
        };
        tensors.push((name, dt.to_string(), shape, begin, end));
    }
    tensors.sort_by_key(|t| (t.3, t.4));
    let data_len = (file.len() - stop) as u64;
    let mut cursor = 0u64;
    let mut out = Vec::with_capacity(tensors.len());
    for (name, dt, shape, begin, end) in tensors {
        if begin != cursor || end < begin {
            crate::bail!(
                BadSafetensors,
                "tensor '{name}' has data_offsets [{begin}, {end}] but the previous tensor ends at {cursor} (gap or overlap)"
            );
        }
        let info = st_lookup(&dt).ok_or_else(|| {
            crate::err!(UnsupportedDtype, "tensor '{name}': unknown dtype '{dt}'")
        })?;
        let numel = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| {
                crate::err!(BadSafetensors, "tensor '{name}': shape {shape:?} overflows")
            })?;
        let bits = numel
            .checked_mul(info.2 as u64)
            .ok_or_else(|| crate::err!(BadSafetensors, "tensor '{name}': size overflows"))?;
        if bits % 8 != 0 || bits / 8 != end - begin {
            crate::bail!(
                BadSafetensors,
                "tensor '{name}': {dt} {shape:?} needs {bits} bits but data_offsets span {} bytes",
                end - begin
            );
        }
        let Some(dtype) = info.3 else {
            crate::bail!(
                UnsupportedDtype,
                "tensor '{name}': dtype {dt} has no PyTorch equivalent"
            );
        };
        let mut tshape = Vec::with_capacity(shape.len());
        for &d in &shape {
            tshape
                .push(i64::try_from(d).map_err(|_| {
                    crate::err!(BadSafetensors, "tensor '{name}': dim {d} too big")
                })?);
        }
        if dtype == DType::Float4E2M1FnX2 {
            // Two 4-bit elements per PyTorch element.
            match tshape.last_mut() {
                Some(last) if *last % 2 == 0 => *last /= 2,
                _ => crate::bail!(
                    UnsupportedDtype,
                    "tensor '{name}': F4 with an odd last dimension {shape:?}"
                ),
            }
        }
        cursor = end;
        out.push(HeaderEntry {
            name,
            dtype,
            shape: tshape,
            begin,
            end,
        });
    }
    if cursor > data_len {
        crate::bail!(
            Truncated,
            "tensors need {cursor} data bytes but the file holds {data_len}"
        );
    }
    if cursor < data_len {
        crate::bail!(
            BadSafetensors,
            "tensors cover {cursor} data bytes but the file holds {data_len}"
        );
    }
    Ok(Header {
        entries: out,
        metadata,
        header_len: n,
    })
}

/// A safetensors file as a value graph.
#[derive(Clone, Debug)]
pub struct SafetensorsLoaded {
    /// Root: `OrderedDict` name -> tensor, in data-offset order.
    pub graph: Graph,
    /// `__metadata__`, in the file's order.
    pub metadata: Vec<(String, String)>,
}

fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![0i64; shape.len()];
    let mut acc: i64 = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(d.max(1));
    }
    strides
}

/// A plain CPU tensor of `shape` viewing all of storage `sid`.
pub fn dense_tensor(sid: usize, dtype: DType, shape: Vec<i64>) -> Tensor {
    let stride = contiguous_strides(&shape);
    Tensor::strided(sid, dtype, shape, stride, 0)
}

/// Reads safetensors bytes (the whole file) into a graph; storages are windows onto `bytes`.
pub fn read_bytes(bytes: ByteView) -> Result<SafetensorsLoaded> {
    let header = parse_header(bytes.as_slice())?;
    let base = 8 + header.header_len as usize;
    let mut graph = Graph::new();
    let mut items = Vec::with_capacity(header.entries.len());
    for (i, e) in header.entries.into_iter().enumerate() {
        let data = bytes
            .slice(base + e.begin as usize..base + e.end as usize)
            .ok_or_else(|| crate::err!(Truncated, "tensor '{}' outside the file", e.name))?;
        let numel = (data.len() / e.dtype.element_size()) as u64;
        let sid = graph.add_storage(Storage {
            key: i.to_string(),
            dtype: e.dtype,
            untyped: e.dtype.storage_class().is_none(),
            numel,
            location: "cpu".to_string(),
            data,
        });
        let t = graph.add(Node::Tensor(dense_tensor(sid, e.dtype, e.shape)));
        items.push((Value::Str(e.name), t));
    }
    let root = graph.add(Node::OrderedDict { items, state: None });
    graph.root = Some(root);
    Ok(SafetensorsLoaded {
        graph,
        metadata: header.metadata,
    })
}

/// Reads a safetensors file, mmapped when `mmap` is true.
pub fn read_file(path: &Path, mmap: bool) -> Result<SafetensorsLoaded> {
    let bytes = crate::container::source::open(path, mmap)
        .map_err(|e| e.in_file(path.display().to_string()))?;
    read_bytes(bytes).map_err(|e| e.in_file(path.display().to_string()))
}

/// Re-adds names that a writer dropped as aliases (`__metadata__` entries `dropped -> kept`
/// where `kept` is a tensor and `dropped` is not): each becomes a second key for the kept
/// tensor node, appended at the end. Returns how many were restored.
pub fn restore_aliases(loaded: &mut SafetensorsLoaded) -> usize {
    let Some(Value::Ref(root)) = loaded.graph.root.clone() else {
        return 0;
    };
    let Some(Node::OrderedDict { items, .. }) = loaded.graph.node_mut(root) else {
        return 0;
    };
    let mut restored = 0;
    for (dropped, kept) in &loaded.metadata {
        if dropped == "format"
            || items
                .iter()
                .any(|(k, _)| matches!(k, Value::Str(s) if s == dropped))
        {
            continue;
        }
        let target = items
            .iter()
            .find(|(k, _)| matches!(k, Value::Str(s) if s == kept))
            .map(|(_, v)| v.clone());
        if let Some(v) = target {
            items.push((Value::Str(dropped.clone()), v));
            restored += 1;
        }
    }
    restored
}

/// `name -> tensor node` of a flat state dict at `root`, or `E_UNSERIALIZABLE` naming the
/// first value that is not a tensor.
pub fn state_dict_entries(graph: &Graph, root: &Value) -> Result<Vec<(String, NodeId)>> {
    let Some(items) = crate::graph::mapping_items(graph, root) else {
        crate::bail!(
            Unserializable,
            "safetensors holds a flat mapping name -> tensor; the object is not a dict"
        );
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let Value::Str(name) = k else {
            crate::bail!(
                Unserializable,
                "safetensors names are strings; found key {k:?}"
            );
        };
        match v {
            Value::Ref(id) if matches!(graph.node(*id), Some(Node::Tensor(_))) => out.push((name.clone(), *id)),
            _ => crate::bail!(
                Unserializable,
                "'{name}' is not a tensor; safetensors holds only tensors (select a state dict with `select`)"
            ),
        }
    }
    Ok(out)
}

pub(crate) fn tensor_and_storage<'g>(
    graph: &'g Graph,
    name: &str,
    id: NodeId,
) -> Result<(&'g Tensor, &'g Storage)> {
    let Some(Node::Tensor(t)) = graph.node(id) else {
        crate::bail!(Unserializable, "'{name}' is not a tensor");
    };
    if t.quantizer.is_some() {
        crate::bail!(
            Unserializable,
            "'{name}' is quantized ({}); safetensors has no quantizer fields",
            t.dtype
        );
    }
    let sid = t
        .storage
        .ok_or_else(|| crate::err!(Unserializable, "'{name}' has no data (meta tensor)"))?;
    let st = graph
        .storages
        .get(sid)
        .ok_or_else(|| crate::err!(StorageBounds, "'{name}': storage {sid} missing"))?;
    Ok((t, st))
}

/// What `_remove_duplicate_names` decides: the names to write, and `(dropped, kept)` pairs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Deduped {
    pub kept: Vec<(String, NodeId)>,
    pub removed: Vec<(String, String)>,
}

/// Drops names whose tensors share memory, like `safetensors.torch._remove_duplicate_names`:
/// tensors on one storage whose byte ranges overlap form a group; the group keeps the
/// alphabetically first name whose tensor covers the whole storage. A group with no such
/// tensor is kept only if all its names are the same view (then the first name is kept);
/// otherwise writing would duplicate or lose bytes, and it is `E_UNSERIALIZABLE` (upstream
/// raises too). Kept names stay in their original order.
pub fn dedupe_shared(graph: &Graph, entries: &[(String, NodeId)]) -> Result<Deduped> {
    // storage id -> [(start, end, name, node)]
    let mut by_storage: BTreeMap<usize, Vec<(u64, u64, String, NodeId)>> = BTreeMap::new();
    for (name, id) in entries {
        let (t, st) = tensor_and_storage(graph, name, *id)?;
        if st.data.is_empty() {
            continue;
        }
        let r = strided::reached_range(t, st)?;
        let sid = t.storage.unwrap_or_default();
        by_storage
            .entry(sid)
            .or_default()
            .push((r.start, r.end, name.clone(), *id));
    }
    let mut drop: HashSet<String> = HashSet::new();
    let mut removed = Vec::new();
    for (sid, mut areas) in by_storage {
        if areas.len() < 2 {
            continue;
        }
        let storage_bytes = graph
            .storages
            .get(sid)
            .map(|s| s.data.len() as u64)
            .unwrap_or(0);
        areas.sort();
        let mut groups: Vec<Vec<(String, NodeId)>> = Vec::new();
        let mut last_stop = 0u64;
        for (i, (start, stop, name, id)) in areas.into_iter().enumerate() {
            match groups.last_mut() {
                Some(g) if i > 0 && start < last_stop => g.push((name, id)),
                _ => groups.push(vec![(name, id)]),
            }
            // Upstream takes the last area's stop, not the running maximum.
            last_stop = stop;
        }
        for mut g in groups.into_iter().filter(|g| g.len() > 1) {
            g.sort();
            let complete = |id: NodeId| -> bool {
                match graph.node(id) {
                    Some(Node::Tensor(t)) => {
                        t.storage_offset == 0
                            && strided::nbytes(t)
                                .map(|n| n == storage_bytes)
                                .unwrap_or(false)
                    }
                    _ => false,
                }
            };
            let keep = match g.iter().find(|(_, id)| complete(*id)) {
                Some((n, _)) => n.clone(),
                None => {
                    let first = graph.node(g.first().map(|x| x.1).unwrap_or_default());
                    if g.iter().all(|(_, id)| same_view(graph.node(*id), first)) {
                        g.first().map(|x| x.0.clone()).unwrap_or_default()
                    } else {
                        let names: Vec<&str> = g.iter().map(|x| x.0.as_str()).collect();
                        crate::bail!(
                            Unserializable,
                            "tensors {names:?} share memory and none covers the whole storage; safetensors cannot hold them without duplicating bytes (save them as .pt, or clone them first)"
                        );
                    }
                }
            };
            for (name, _) in g {
                if name != keep {
                    drop.insert(name.clone());
                    removed.push((name, keep.clone()));
                }
            }
        }
    }
    let kept = entries
        .iter()
        .filter(|(n, _)| !drop.contains(n))
        .cloned()
        .collect();
    Ok(Deduped { kept, removed })
}

fn same_view(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (Some(Node::Tensor(a)), Some(Node::Tensor(b))) => {
            a.storage == b.storage
                && a.dtype == b.dtype
                && a.shape == b.shape
                && a.stride == b.stride
                && a.storage_offset == b.storage_offset
        }
        _ => false,
    }
}

/// A file ready to be streamed: the header bytes and the tensors in file order.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The 8-byte size plus the padded JSON header.
    pub header: Vec<u8>,
    /// `(name, node, nbytes)` in file order.
    pub tensors: Vec<(String, NodeId, u64)>,
    /// Total file length.
    pub file_len: u64,
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Orders the tensors and builds the header, as upstream's `prepare` does. `entries` must
/// not share memory (see [`dedupe_shared`]); names must be unique.
pub fn plan(
    graph: &Graph,
    entries: &[(String, NodeId)],
    metadata: &[(String, String)],
) -> Result<Plan> {
    plan_with(graph, entries, metadata, &|_, t| t.dtype)
}

/// [`plan`] for a file whose tensors are written as `out_dtype(id, tensor)` (the converter's
/// streamed casts): the views are checked against their storages with their own dtype, while
/// the header's dtypes, sizes and order use the written one.
pub fn plan_with(
    graph: &Graph,
    entries: &[(String, NodeId)],
    metadata: &[(String, String)],
    out_dtype: &dyn Fn(NodeId, &Tensor) -> DType,
) -> Result<Plan> {
    let mut rows = Vec::with_capacity(entries.len());
    let mut names = HashSet::new();
    for (name, id) in entries {
        if !names.insert(name.as_str()) {
            crate::bail!(Unserializable, "name '{name}' appears twice");
        }
        let (t, st) = tensor_and_storage(graph, name, *id)?;
        let dtype = out_dtype(*id, t);
        let (stname, rank) = st_dtype(dtype).ok_or_else(|| {
            crate::err!(
                UnsupportedDtype,
                "'{name}': safetensors cannot hold dtype {dtype}"
            )
        })?;
        strided::reached_range(t, st)?;
        let nbytes = strided::numel(t)?
            .checked_mul(dtype.element_size() as u64)
            .ok_or_else(|| crate::err!(StorageBounds, "shape {:?} overflows", t.shape))?;
        let mut shape = t.shape.clone();
        if dtype == DType::Float4E2M1FnX2 {
            match shape.last_mut() {
                Some(last) => {
                    *last = last
                        .checked_mul(2)
                        .ok_or_else(|| crate::err!(StorageBounds, "shape overflows"))?
                }
                None => crate::bail!(
                    Unserializable,
                    "'{name}': a 0-d float4_e2m1fn_x2 has no safetensors shape"
                ),
            }
        }
        rows.push((rank, name.clone(), stname, shape, *id, nbytes));
    }
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut json = String::from("{");
    let mut first = true;
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&format!("{}:{}", json_str(k), json_str(v)));
        }
        json.push('}');
        first = false;
    }
    let mut offset = 0u64;
    let mut tensors = Vec::with_capacity(rows.len());
    for (_, name, stname, shape, id, nbytes) in rows {
        if !first {
            json.push(',');
        }
        first = false;
        let end = offset
            .checked_add(nbytes)
            .ok_or_else(|| crate::err!(StorageBounds, "file size overflows"))?;
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            "{}:{{\"dtype\":\"{stname}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json_str(&name),
            dims.join(",")
        ));
        tensors.push((name, id, nbytes));
        offset = end;
    }
    json.push('}');
    let mut header = json.into_bytes();
    let pad = (8 - header.len() % 8) % 8;
    header.extend(std::iter::repeat_n(b' ', pad));
    if header.len() as u64 > MAX_HEADER_SIZE {
        crate::bail!(LimitExceeded, "safetensors header would be {} bytes, over the {MAX_HEADER_SIZE}-byte limit readers accept", header.len());
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    let file_len = (out.len() as u64)
        .checked_add(offset)
        .ok_or_else(|| crate::err!(StorageBounds, "file size overflows"))?;
    Ok(Plan {
        header: out,
        tensors,
        file_len,
    })
}

/// Streams a planned file to `w` (tensor bytes straight from their storages).
pub fn write_plan(graph: &Graph, plan: &Plan, w: &mut dyn Write) -> Result<()> {
    w.write_all(&plan.header)
        .map_err(|e| crate::error::Error::io(e, "write"))?;
    for (name, id, _) in &plan.tensors {
        let (t, st) = tensor_and_storage(graph, name, *id)?;
        strided::for_each_chunk(t, st, &mut |c| {
            w.write_all(c)
                .map_err(|e| crate::error::Error::io(e, "write"))
        })?;
    }
    Ok(())
}

/// What a write did.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Names written, in file order.
    pub names: Vec<String>,
    /// `(dropped, kept)` aliases recorded in the metadata.
    pub removed: Vec<(String, String)>,
    pub bytes: u64,
}

/// Metadata written with a file: `{"format": "pt"}`, then the caller's pairs, then one
/// `dropped -> kept` entry per alias (not overriding the caller's, like `save_model`).
pub fn file_metadata(
    extra: &[(String, String)],
    removed: &[(String, String)],
) -> Vec<(String, String)> {
    let mut md: Vec<(String, String)> = vec![("format".to_string(), "pt".to_string())];
    for (k, v) in extra.iter().chain(removed) {
        if !md.iter().any(|(m, _)| m == k) {
            md.push((k.clone(), v.clone()));
        }
    }
    md
}

/// Serialises a flat `name -> tensor` list (aliases removed first) to bytes in memory.
pub fn to_bytes(
    graph: &Graph,
    entries: &[(String, NodeId)],
    extra_metadata: &[(String, String)],
) -> Result<Vec<u8>> {
    let d = dedupe_shared(graph, entries)?;
    let p = plan(graph, &d.kept, &file_metadata(extra_metadata, &d.removed))?;
    let mut out = Vec::with_capacity(p.file_len as usize);
    write_plan(graph, &p, &mut out)?;
    Ok(out)
}

/// Writes a flat `name -> tensor` list to `path` atomically (temp file, fsync, rename).
pub fn write_file(
    graph: &Graph,
    entries: &[(String, NodeId)],
    extra_metadata: &[(String, String)],
    path: &Path,
) -> Result<Written> {
    let d = dedupe_shared(graph, entries)?;
    let p = plan(graph, &d.kept, &file_metadata(extra_metadata, &d.removed))?;
    let bytes = crate::writer::atomic::write_atomic(path, true, &mut |w| write_plan(graph, &p, w))?;
    Ok(Written {
        names: p.tensors.iter().map(|t| t.0.clone()).collect(),
        removed: d.removed,
        bytes,
    })
}

/// Writes the flat state dict at the graph's root (see [`state_dict_entries`]).
pub fn save_graph(graph: &Graph, path: &Path) -> Result<Written> {
    let entries = state_dict_entries(graph, graph.root())?;
    write_file(graph, &entries, &[], path)
}
