//! The files `torchsave scan FILE|DIR|GLOB...` looks at: a named file always (whatever its
//! name), a folder's files (recursively) whose extension is a checkpoint or pickle one, a
//! glob's matches (folders among them walked the same way). Inside folders, files of other
//! names are scanned too when their first bytes are a zip, a pickle or a tar. Unlike `convert`'s discovery,
//! shards listed by an index are scanned one by one and pickles/tars are included.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Extensions picked up inside folders.
pub const SCAN_EXTENSIONS: &[&str] = &[
    "pt",
    "pth",
    "bin",
    "ckpt",
    "pkl",
    "pickle",
    "tar",
    "zip",
    "safetensors",
    "joblib",
    "model",
    "pt2",
    "ptl",
    "mar",
    "jit",
    "ts",
    "torchscript",
    "npy",
    "npz",
    "distcp",
];

/// A file whose first bytes are a zip, a protocol-2+ pickle or a tar is scanned whatever its
/// name: a folder walk by extension alone would let `weights.dat` through.
fn looks_like_pickle_container(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 263];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = head.get(..n).unwrap_or_default();
    head.starts_with(b"PK\x03\x04")
        || (head.first() == Some(&0x80) && head.get(1).is_some_and(|v| (2..=5).contains(v)))
        || head.get(257..262) == Some(b"ustar")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(e, &format!("read folder {}", dir.display())))?;
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            // A DCP folder's `.metadata` is a pickle like any other.
            .is_some_and(|n| n.starts_with('.') && n != ".metadata");
        if hidden {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SCAN_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            || looks_like_pickle_container(&p)
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Expands files, folders and globs into a sorted, deduplicated list.
pub fn discover(specs: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for spec in specs {
        let p = Path::new(spec);
        if p.is_dir() {
            walk(p, &mut out)?;
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
                    walk(&m, &mut out)?;
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
