//! Where outputs go and what they are called (the module docs of [`super`] give the rules).

use super::{ConvertOptions, Target};
use std::path::{Path, PathBuf};

/// The stem and extension outputs are named from (module docs).
pub fn output_stem(input: &Path, to: Target) -> (String, &'static str) {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = name.strip_suffix(".index.json").unwrap_or(&name);
    let (stem, ext) = match base.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), e.to_ascii_lowercase()),
        _ => (base.to_string(), String::new()),
    };
    match (to, ext.as_str(), stem.as_str()) {
        (Target::Safetensors, _, "pytorch_model") => ("model".to_string(), "safetensors"),
        (Target::Pt | Target::PtLegacy, "safetensors", "model") => {
            ("pytorch_model".to_string(), "bin")
        }
        _ => (stem, to.extension(&ext)),
    }
}

/// The one output of an unsharded conversion: `{stem}.{ext}`, or the folder `{stem}` for a
/// distributed checkpoint.
pub fn single_output(dir: &Path, stem: &str, ext: &str, to: Target) -> PathBuf {
    if to == Target::Dcp {
        dir.join(stem)
    } else {
        dir.join(format!("{stem}.{ext}"))
    }
}

/// The folder outputs for `input` go to.
pub fn output_dir(input: &Path, opts: &ConvertOptions) -> PathBuf {
    let parent = input.parent().map(Path::to_path_buf).unwrap_or_default();
    match &opts.out_dir {
        None => parent,
        Some(out) => {
            if opts.keep_tree {
                if let Some(root) = &opts.root_dir {
                    if let Ok(rel) = parent.strip_prefix(root) {
                        return out.join(rel);
                    }
                }
            }
            out.clone()
        }
    }
}

/// The deepest folder containing every input (for `keep_tree`).
pub fn common_root(inputs: &[PathBuf]) -> Option<PathBuf> {
    let mut root: Option<PathBuf> = None;
    for p in inputs {
        let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
        root = Some(match root {
            None => parent,
            Some(r) => {
                let mut common = PathBuf::new();
                for (a, b) in r.components().zip(parent.components()) {
                    if a != b {
                        break;
                    }
                    common.push(a);
                }
                common
            }
        });
    }
    root
}
