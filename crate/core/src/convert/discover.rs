//! Input discovery: files, folders and globs expanded into the sorted list of inputs, and a
//! worker's share of it.

use crate::error::{Error, Result};
use crate::hf_index;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Extensions [`discover_inputs`] picks up in folders (plus names ending `.index.json`).
pub const INPUT_EXTENSIONS: [&str; 5] = ["pt", "pth", "bin", "ckpt", "safetensors"];

fn is_input_name(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') {
        // Hidden files, including our own `.NAME.tmp-*` temporaries.
        return false;
    }
    hf_index::is_index_path(p)
        || p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| INPUT_EXTENSIONS.contains(&e))
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    // A distributed checkpoint folder is one input (its `.distcp` files are not).
    if crate::container::dcp::is_dcp_dir(dir) {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(e, &format!("read folder {}", dir.display())))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let mut files = Vec::new();
    for p in entries {
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if is_input_name(&p) {
            files.push(p);
        }
    }
    // Shards listed by an index in this folder are converted through the index, not alone.
    let mut shard_names: BTreeSet<PathBuf> = BTreeSet::new();
    for p in files.iter().filter(|p| hf_index::is_index_path(p)) {
        if let Ok(idx) = std::fs::read(p)
            .map_err(|e| Error::io(e, "read"))
            .and_then(|b| hf_index::parse_index(&b))
        {
            for f in idx.shard_files() {
                shard_names.insert(dir.join(f));
            }
        }
    }
    out.extend(files.into_iter().filter(|p| !shard_names.contains(p)));
    Ok(())
}

/// Expands files, folders (recursively: [`INPUT_EXTENSIONS`] and `*.index.json`, minus the
/// shards an index in the same folder lists; a distributed checkpoint folder, one holding a
/// DCP `.metadata`, is one input) and glob patterns into a sorted, deduplicated
/// list. A name that is neither an existing path nor a matching glob is `E_IO`.
pub fn discover_inputs(specs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for spec in specs {
        let p = Path::new(spec);
        if p.is_dir() {
            walk_dir(p, &mut out)?;
        } else if p.exists() {
            out.push(p.to_path_buf());
        } else if spec.contains(['*', '?', '[']) {
            let paths = glob::glob(spec)
                .map_err(|e| crate::err!(InvalidArgument, "pattern '{spec}': {e}"))?;
            let mut n = 0;
            for m in paths {
                let m = m.map_err(|e| crate::err!(Io, "pattern '{spec}': {e}"))?;
                n += 1;
                if m.is_dir() {
                    walk_dir(&m, &mut out)?;
                } else {
                    out.push(m);
                }
            }
            if n == 0 {
                crate::bail!(Io, "pattern '{spec}' matches nothing");
            }
        } else {
            crate::bail!(Io, "no such file or folder: {spec}");
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The files worker `index` of `count` handles: every `count`-th file of the sorted list,
/// starting at `index` (deterministic across machines given the same inputs).
pub fn shard_inputs(files: &[PathBuf], index: usize, count: usize) -> Result<Vec<PathBuf>> {
    if count == 0 || index >= count {
        crate::bail!(
            InvalidArgument,
            "shard {index}/{count}: need 0 <= index < count"
        );
    }
    let mut sorted = files.to_vec();
    sorted.sort();
    Ok(sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index)
        .map(|(_, p)| p)
        .collect())
}

/// A worker's share given as two optional halves (`shardIndex`/`shardCount`): both or
/// neither, and `index < count`.
pub fn check_worker_share(index: Option<usize>, count: Option<usize>) -> Result<()> {
    match (index, count) {
        (None, None) => Ok(()),
        (Some(i), Some(n)) if n == 0 || i >= n => {
            crate::bail!(InvalidArgument, "shard {i}/{n}: need 0 <= index < count")
        }
        (Some(_), Some(_)) => Ok(()),
        _ => crate::bail!(InvalidArgument, "shardIndex and shardCount go together"),
    }
}

/// The inputs `specs` name ([`discover_inputs`]), then this worker's share of them
/// ([`shard_inputs`]) when `index`/`count` are given ([`check_worker_share`]).
pub fn discover_share(
    specs: &[String],
    index: Option<usize>,
    count: Option<usize>,
) -> Result<Vec<PathBuf>> {
    check_worker_share(index, count)?;
    let files = discover_inputs(specs)?;
    match (index, count) {
        (Some(i), Some(n)) => shard_inputs(&files, i, n),
        _ => Ok(files),
    }
}

/// [`discover_share`] for a conversion: when the share meets exactly one input and outputs
/// are sharded (`--shard-size`), the workers split that input's output shards instead
/// ([`ConvertOptions::output_share`]: one DCP folder or HF checkpoint across N machines);
/// otherwise they split the input list as [`discover_share`] does.
pub fn discover_share_with_outputs(
    specs: &[String],
    index: Option<usize>,
    count: Option<usize>,
    opts: &mut super::ConvertOptions,
) -> Result<Vec<PathBuf>> {
    check_worker_share(index, count)?;
    let files = discover_inputs(specs)?;
    match (index, count) {
        (Some(i), Some(n)) if files.len() == 1 && opts.shard_size.is_some() => {
            opts.output_share = Some((i, n));
            Ok(files)
        }
        (Some(i), Some(n)) => shard_inputs(&files, i, n),
        _ => Ok(files),
    }
}
