//! Hugging Face sharded checkpoints: `*.index.json` plus shard files, read as one state dict
//! and written the way `transformers`/`huggingface_hub` write them.
//!
//! Index file: `{"metadata": {"total_size": n, ...}, "weight_map": {name: "shard file"}}`.
//! Shards are `.safetensors` or torch `.bin` files beside the index.
//!
//! Reading (what `transformers.modeling_utils.load_sharded_checkpoint` does): the shard files
//! are the distinct values of `weight_map`, loaded in sorted filename order; the state dict
//! is each shard's tensors in the shard's own order. We also check what transformers leaves
//! to chance: every `weight_map` name is in its shard, no name is in two shards, and shard
//! names are plain file names in the index's folder (no absolute paths, no `..`), so an
//! index can never make us read outside its folder.
//!
//! Writing follows `huggingface_hub.split_state_dict_into_shards_factory` (used by
//! `transformers.save_pretrained`): walk the state dict in order; a tensor larger than the
//! limit gets a shard of its own (appended immediately, before the shard being filled); a
//! tensor that would push the current shard over the limit closes it first; tensors sharing a
//! storage with an earlier one join that one's shard and are not counted twice in
//! `total_size`. Files are `{stem}-00001-of-0000N.{ext}` and the index is
//! `{stem}.{ext}.index.json`, JSON with `indent=2, sort_keys=True` plus a newline, as
//! transformers writes it. With a single shard no index is written and the file is
//! `{stem}.{ext}`.

use crate::error::Result;
use crate::graph::Importer;
use crate::options::LoadOptions;
use crate::value::{Graph, Node, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

/// A parsed index.
#[derive(Clone, Debug, PartialEq)]
pub struct HfIndex {
    /// `metadata.total_size`, if present.
    pub total_size: Option<u64>,
    /// `weight_map` in file order.
    pub weight_map: Vec<(String, String)>,
}

impl HfIndex {
    /// Distinct shard file names, sorted (transformers' load order).
    pub fn shard_files(&self) -> Vec<String> {
        self.weight_map
            .iter()
            .map(|(_, f)| f.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// Parses an index file's bytes.
pub fn parse_index(bytes: &[u8]) -> Result<HfIndex> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| crate::err!(BadIndex, "index JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| crate::err!(BadIndex, "index is not a JSON object"))?;
    let wm = obj
        .get("weight_map")
        .and_then(|w| w.as_object())
        .ok_or_else(|| crate::err!(BadIndex, "index has no 'weight_map' object"))?;
    let mut weight_map = Vec::with_capacity(wm.len());
    for (k, f) in wm {
        let f = f
            .as_str()
            .ok_or_else(|| crate::err!(BadIndex, "weight_map['{k}'] is not a file name"))?;
        check_shard_name(f)?;
        weight_map.push((k.clone(), f.to_string()));
    }
    let total_size = match obj.get("metadata").and_then(|m| m.get("total_size")) {
        None | Some(serde_json::Value::Null) => None,
        // transformers has written it as an int; some tools write a float.
        Some(t) => Some(
            t.as_u64()
                .or_else(|| {
                    t.as_f64()
                        .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                        .map(|f| f as u64)
                })
                .ok_or_else(|| crate::err!(BadIndex, "metadata.total_size is {t}"))?,
        ),
    };
    Ok(HfIndex {
        total_size,
        weight_map,
    })
}

/// A shard name must be a plain relative path inside the index's folder.
fn check_shard_name(f: &str) -> Result<()> {
    let p = Path::new(f);
    if f.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        crate::bail!(
            BadIndex,
            "shard '{f}' is not a file name inside the index's folder"
        );
    }
    Ok(())
}

/// True for names ending in `.index.json`.
pub fn is_index_path(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".index.json"))
}

/// A sharded checkpoint as one state dict.
#[derive(Clone, Debug)]
pub struct ShardedLoaded {
    /// Root: `OrderedDict` name -> tensor.
    pub graph: Graph,
    /// Shard files, in load order.
    pub shards: Vec<PathBuf>,
    pub index: HfIndex,
}

/// Loads one shard (safetensors sniffed from its bytes, anything else through the torch
/// reader) and returns its flat state dict.
fn load_shard(path: &Path, opts: &LoadOptions) -> Result<(Graph, Vec<(String, Value)>)> {
    let bytes = crate::container::source::open(path, opts.mmap)
        .map_err(|e| e.in_file(path.display().to_string()))?;
    let named_st = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let graph = if named_st || crate::safetensors::looks_like_safetensors(bytes.as_slice()) {
        crate::safetensors::read_bytes(bytes)
            .map_err(|e| e.in_file(path.display().to_string()))?
            .graph
    } else {
        drop(bytes);
        crate::container::load_file(path, opts)?.graph
    };
    let Some(items) = crate::graph::mapping_items(&graph, graph.root()) else {
        crate::bail!(BadIndex, "shard {} is not a state dict", path.display());
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let Value::Str(name) = k else {
            crate::bail!(BadIndex, "shard {} has a non-string key", path.display());
        };
        out.push((name.clone(), v.clone()));
    }
    Ok((graph, out))
}

/// Reads `index_path` and all its shards into one graph.
pub fn load_sharded(index_path: &Path, opts: &LoadOptions) -> Result<ShardedLoaded> {
    let in_file = |e: crate::Error| e.in_file(index_path.display().to_string());
    let bytes =
        std::fs::read(index_path).map_err(|e| in_file(crate::Error::io(e, "read index")))?;
    let index = parse_index(&bytes).map_err(in_file)?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let expected: HashMap<&str, &str> = index
        .weight_map
        .iter()
        .map(|(k, f)| (k.as_str(), f.as_str()))
        .collect();
    let mut graph = Graph::new();
    let mut items: Vec<(Value, Value)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut shards = Vec::new();
    for f in index.shard_files() {
        let path = dir.join(&f);
        let (g, entries) = load_shard(&path, opts)?;
        let mut imp = Importer::new(&g);
        for (name, v) in entries {
            if !seen.insert(name.clone()) {
                return Err(in_file(crate::err!(
                    BadIndex,
                    "'{name}' is in more than one shard (again in {f})"
                )));
            }
            if let Some(want) = expected.get(name.as_str()) {
                if *want != f {
                    return Err(in_file(crate::err!(
                        BadIndex,
                        "'{name}' is mapped to {want} but found in {f}"
                    )));
                }
            }
            let v = imp.value(&mut graph, &v)?;
            items.push((Value::Str(name), v));
        }
        shards.push(path);
    }
    if let Some((name, f)) = index.weight_map.iter().find(|(k, _)| !seen.contains(k)) {
        return Err(in_file(crate::err!(
            BadIndex,
            "'{name}' is mapped to {f} but that shard does not hold it"
        )));
    }
    let root = graph.add(Node::OrderedDict { items, state: None });
    graph.root = Some(root);
    Ok(ShardedLoaded {
        graph,
        shards,
        index,
    })
}

/// One tensor as the splitter sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitItem {
    pub name: String,
    /// Bytes it will take in a shard.
    pub size: u64,
    /// Tensors with the same storage id go to one shard.
    pub storage: Option<u64>,
}

/// Shards as lists of names, and `total_size`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardPlan {
    pub shards: Vec<Vec<String>>,
    pub total_size: u64,
}

/// huggingface_hub's `split_state_dict_into_shards_factory`, exactly (module docs).
pub fn split_into_shards(items: &[SplitItem], max_shard_size: u64) -> ShardPlan {
    let mut storage_groups: Vec<(u64, Vec<String>)> = Vec::new();
    let mut shards: Vec<Vec<String>> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_size = 0u64;
    let mut total = 0u64;
    for it in items {
        if let Some(sid) = it.storage {
            if let Some((_, g)) = storage_groups.iter_mut().find(|(s, _)| *s == sid) {
                g.push(it.name.clone());
                continue;
            }
            storage_groups.push((sid, vec![it.name.clone()]));
        }
        if it.size > max_shard_size {
            total = total.saturating_add(it.size);
            shards.push(vec![it.name.clone()]);
            continue;
        }
        if current_size.saturating_add(it.size) > max_shard_size {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(it.name.clone());
        current_size = current_size.saturating_add(it.size);
        total = total.saturating_add(it.size);
    }
    if !current.is_empty() {
        shards.push(current);
    }
    for (_, names) in storage_groups {
        let Some(first) = names.first() else { continue };
        if let Some(shard) = shards.iter_mut().find(|s| s.contains(first)) {
            for n in names.iter().skip(1) {
                shard.push(n.clone());
            }
        }
    }
    ShardPlan {
        shards,
        total_size: total,
    }
}

/// `{stem}-00002-of-00005.{ext}` (1-based `idx`), or `{stem}.{ext}` for a single shard.
pub fn shard_file_name(stem: &str, ext: &str, idx: usize, count: usize) -> String {
    if count <= 1 {
        format!("{stem}.{ext}")
    } else {
        format!("{stem}-{idx:05}-of-{count:05}.{ext}")
    }
}

/// The index file's text, as transformers writes it (`json.dumps(index, indent=2,
/// sort_keys=True) + "\n"`; non-ASCII escaped like Python's default `ensure_ascii`).
pub fn index_json(total_size: u64, weight_map: &[(String, String)]) -> String {
    let mut wm: Vec<&(String, String)> = weight_map.iter().collect();
    wm.sort();
    let mut s = format!(
        "{{\n  \"metadata\": {{\n    \"total_size\": {total_size}\n  }},\n  \"weight_map\": {{"
    );
    for (i, (k, f)) in wm.iter().enumerate() {
        s.push_str(if i == 0 { "\n" } else { ",\n" });
        s.push_str(&format!("    {}: {}", py_json_str(k), py_json_str(f)));
    }
    s.push_str(if wm.is_empty() {
        "}\n}\n"
    } else {
        "\n  }\n}\n"
    });
    s
}

/// A JSON string as Python's `json.dumps` writes it (ASCII only).
fn py_json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a shard size like transformers' `convert_file_size_to_int`: a plain byte count,
/// or a number with `KB`/`MB`/`GB`/`TB` (powers of 10) or `KiB`/`MiB`/`GiB`/`TiB` (powers of
/// 2); units are case-insensitive, `b` alone means bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| crate::err!(InvalidArgument, "size '{s}' does not start with a number"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        other => crate::bail!(
            InvalidArgument,
            "size '{s}': unknown unit '{other}' (use KB, MB, GB, KiB, MiB, GiB)"
        ),
    };
    let v = num * mult;
    if !(v.is_finite() && (1.0..1.8e19).contains(&v)) {
        crate::bail!(InvalidArgument, "size '{s}' is out of range");
    }
    Ok(v as u64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("1.5mb").unwrap(), 1_500_000);
        assert_eq!(
            parse_size("5XB").unwrap_err().code,
            crate::ErrorCode::InvalidArgument
        );
        assert_eq!(
            parse_size("GB").unwrap_err().code,
            crate::ErrorCode::InvalidArgument
        );
        assert_eq!(
            parse_size("0").unwrap_err().code,
            crate::ErrorCode::InvalidArgument
        );
    }

    #[test]
    fn shard_names_cannot_escape() {
        for bad in ["../x.bin", "/etc/passwd", "", "a/../../b"] {
            let j = format!(
                "{{\"weight_map\": {{\"a\": {}}}}}",
                serde_json::Value::String(bad.into())
            );
            assert_eq!(
                parse_index(j.as_bytes()).unwrap_err().code,
                crate::ErrorCode::BadIndex,
                "{bad}"
            );
        }
        assert!(parse_index(br#"{"weight_map": {"a": "sub/x.bin"}}"#).is_ok());
        assert_eq!(
            parse_index(b"[]").unwrap_err().code,
            crate::ErrorCode::BadIndex
        );
        assert_eq!(
            parse_index(br#"{"weight_map": {"a": 3}}"#)
                .unwrap_err()
                .code,
            crate::ErrorCode::BadIndex
        );
    }
}
