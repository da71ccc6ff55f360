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
    /// A distributed checkpoint folder (`torch.distributed.checkpoint`, one data file).
    Dcp,
}

impl Target {
    /// Parses `pt`, `pt-legacy`/`legacy`, `safetensors`, `dcp`.
    pub fn parse(s: &str) -> Result<Target> {
        Ok(match s {
            "pt" | "zip" | "torch" => Target::Pt,
            "pt-legacy" | "legacy" => Target::PtLegacy,
            "safetensors" | "st" => Target::Safetensors,
            "dcp" => Target::Dcp,
            _ => crate::bail!(
                InvalidArgument,
                "unknown target '{s}' (pt, pt-legacy, safetensors, dcp)"
            ),
        })
    }

    /// The name [`Target::parse`] reads (`pt`, `pt-legacy`, `safetensors`, `dcp`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Pt => "pt",
            Target::PtLegacy => "pt-legacy",
            Target::Safetensors => "safetensors",
            Target::Dcp => "dcp",
        }
    }

    pub(super) fn extension(self, input_ext: &str) -> &'static str {
        match self {
            Target::Safetensors => "safetensors",
            // A folder: no extension (see `naming::single_output`).
            Target::Dcp => "",
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
    /// `(index, count)`: write only output shards `j` with `j % count == index` (0-based, in
    /// the plan's order) and the index file only for `index == 0`, so `count` machines
    /// converting the same single input produce together exactly one full run's files. Set
    /// by [`super::discover_share_with_outputs`] when a worker share meets one sharded input.
    pub output_share: Option<(usize, usize)>,
    /// Re-read each output and compare per-tensor sha256 with what was meant to be written.
    pub verify: bool,
    /// Overwrite existing outputs.
    pub force: bool,
    /// Skip inputs whose outputs exist and pass a check (size and header; in full with
    /// `verify`): their reports say `skipped`, so a retried batch succeeds. Excludes `force`.
    /// See the `resume` module.
    pub skip_existing: bool,
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
            output_share: None,
            verify: false,
            force: false,
            skip_existing: false,
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
    /// The rules between options: `force` and `skip_existing` exclude each other.
    pub fn check(&self) -> Result<()> {
        if self.force && self.skip_existing {
            crate::bail!(
                InvalidArgument,
                "force (overwrite existing outputs) and skipExisting (keep them) exclude each other"
            );
        }
        if self.to == Target::Dcp && self.shard_size.is_some() {
            crate::bail!(
                InvalidArgument,
                "a distributed checkpoint output is one folder: shardSize does not apply"
            );
        }
        Ok(())
    }

    /// The key edits these options ask for.
    pub fn key_edits(&self) -> KeyEdits {
        KeyEdits {
            strip_prefixes: self.strip_prefixes.clone(),
            strip_dataparallel: self.strip_dataparallel,
            renames: self.renames.clone(),
        }
    }
}

/// Parses a rename in its one textual form, `'regex=>replacement'` (split at the first
/// `=>`; the CLI's `--rename`, the API's strings): the pattern in Rust regex syntax, the
/// replacement in JS syntax (`$1`, `$<name>`, `$&`, `$$`), see [`rename_rule`].
pub fn parse_rename(spec: &str) -> Result<(Regex, String)> {
    let (pat, rep) = spec.split_once("=>").ok_or_else(|| {
        crate::err!(
            InvalidArgument,
            "rename '{spec}' is not 'regex=>replacement'"
        )
    })?;
    rename_rule(pat, rep)
}

/// A rename from its two halves (the API's `[pattern, replacement]` pairs): the pattern
/// compiled (Rust regex syntax), the JS-syntax replacement rewritten into the regex crate's
/// (`$1` -> `${1}`, `$<n>` -> `${n}`, `$&` -> `${0}`, `$$` kept), so a group number is never
/// read together with the text after it.
pub fn rename_rule(pattern: &str, replacement: &str) -> Result<(Regex, String)> {
    let re = Regex::new(pattern)
        .map_err(|e| crate::err!(InvalidArgument, "rename pattern '{pattern}': {e}"))?;
    Ok((re, rust_replacement(replacement)))
}

fn rust_replacement(js: &str) -> String {
    let Ok(tokens) = Regex::new(r"\$(\$|&|<([A-Za-z_][A-Za-z0-9_]*)>|(\d+))") else {
        return js.to_string();
    };
    tokens
        .replace_all(js, |c: &regex::Captures| {
            match c.get(0).map(|m| m.as_str()) {
                Some("$$") => "$$".to_string(),
                Some("$&") => "${0}".to_string(),
                _ => format!(
                    "${{{}}}",
                    c.get(2).or_else(|| c.get(3)).map_or("", |m| m.as_str())
                ),
            }
        })
        .into_owned()
}

/// `dtype` by name, as a cast target ([`crate::cast::check_cast_target`]).
pub fn parse_cast_dtype(name: &str) -> Result<DType> {
    let dt = DType::from_name_checked(name)?;
    crate::cast::check_cast_target(dt)?;
    Ok(dt)
}

/// `shardSize` given as a number of bytes: a whole positive count that fits in 64 bits
/// (fractions are truncated). Sizes as text (`5GB`) are [`crate::hf_index::parse_size`]'s.
pub fn shard_size_from_number(n: f64) -> Result<u64> {
    if !(n.is_finite() && (1.0..1.8e19).contains(&n)) {
        crate::bail!(
            InvalidArgument,
            "shardSize must be a positive byte count, got {n}"
        );
    }
    Ok(n as u64)
}

/// Files in flight for [`super::convert_many`]: at least 1; default the available cores.
pub fn jobs_or_default(jobs: Option<usize>) -> Result<usize> {
    match jobs {
        Some(0) => crate::bail!(InvalidArgument, "jobs must be at least 1"),
        Some(j) => Ok(j),
        None => Ok(std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)),
    }
}
