//! What `convert` can do to one file: the options (with their defaults) and the parsers of
//! their textual forms.

use super::transform::KeyEdits;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::LoadOptions;
use regex::Regex;
use std::path::PathBuf;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// torch.save's zip format.
    Pt,
    /// The pre-1.6 stream format.
    PtLegacy,
    Safetensors,
}

impl Target {
    /// Parses `pt`, `pt-legacy`/`legacy`, `safetensors`.
    pub fn parse(s: &str) -> Result<Target> {
        Ok(match s {
            "pt" | "zip" | "torch" => Target::Pt,
            "pt-legacy" | "legacy" => Target::PtLegacy,
            "safetensors" | "st" => Target::Safetensors,
            _ => crate::bail!(
                InvalidArgument,
                "unknown target '{s}' (pt, pt-legacy, safetensors)"
            ),
        })
    }

    pub(super) fn extension(self, input_ext: &str) -> &'static str {
        match self {
            Target::Safetensors => "safetensors",
            _ => match input_ext {
                "pth" => "pth",
                "bin" => "bin",
                "ckpt" => "ckpt",
                _ => "pt",
            },
        }
    }
}

/// Everything `convert` can do to one file.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub to: Target,
    /// Sub-object to convert (`model_state_dict`, `a/b/0`); see [`transform::select_path`].
    /// `None` with a safetensors target picks a state dict by [`transform::auto_select`].
    pub select: Option<String>,
    pub strip_prefixes: Vec<String>,
    /// Remove every leading `module.` (nested DataParallel).
    pub strip_dataparallel: bool,
    /// `(pattern, replacement)` applied to every key, in order.
    pub renames: Vec<(Regex, String)>,
    /// Cast floating tensors (float64/32/16, bfloat16) to this dtype.
    pub dtype: Option<DType>,
    /// Remove optimizer state from a checkpoint ([`transform::OPTIMIZER_KEYS`]).
    pub drop_optimizer: bool,
    /// pt targets: each storage keeps only the bytes its tensors reach.
    pub compact: bool,
    /// Split outputs into shards of at most this many bytes (Hugging Face layout).
    pub shard_size: Option<u64>,
    /// Re-read each output and compare per-tensor sha256 with what was meant to be written.
    pub verify: bool,
    /// Overwrite existing outputs.
    pub force: bool,
    /// fsync each output (and its folder) before naming it, so it survives a power loss.
    /// `false` skips the fsyncs only: outputs are still written to a temporary file and
    /// renamed, so a failed or killed conversion never leaves a partial output.
    pub durable: bool,
    /// Do everything except writing.
    pub dry_run: bool,
    /// Recreate input folders (relative to `root_dir`) under `out_dir`.
    pub keep_tree: bool,
    /// Output folder; `None`: next to each input.
    pub out_dir: Option<PathBuf>,
    /// Common root for `keep_tree`; `None`: [`convert_many`] uses the inputs' common folder.
    pub root_dir: Option<PathBuf>,
    /// How inputs are read (weights-only by default).
    pub load: LoadOptions,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            to: Target::Safetensors,
            select: None,
            strip_prefixes: Vec::new(),
            strip_dataparallel: false,
            renames: Vec::new(),
            dtype: None,
            drop_optimizer: false,
            compact: false,
            shard_size: None,
            verify: false,
            force: false,
            durable: true,
            dry_run: false,
            keep_tree: false,
            out_dir: None,
            root_dir: None,
            load: LoadOptions::default(),
        }
    }
}

impl ConvertOptions {
    /// The key edits these options ask for.
    pub fn key_edits(&self) -> KeyEdits {
        KeyEdits {
            strip_prefixes: self.strip_prefixes.clone(),
            strip_dataparallel: self.strip_dataparallel,
            renames: self.renames.clone(),
        }
    }
}

/// Parses `--rename PATTERN=REPLACEMENT` (split at the first `=`).
pub fn parse_rename(spec: &str) -> Result<(Regex, String)> {
    let (pat, rep) = spec.split_once('=').ok_or_else(|| {
        crate::err!(
            InvalidArgument,
            "rename '{spec}' is not PATTERN=REPLACEMENT"
        )
    })?;
    let re =
        Regex::new(pat).map_err(|e| crate::err!(InvalidArgument, "rename pattern '{pat}': {e}"))?;
    Ok((re, rep.to_string()))
}
