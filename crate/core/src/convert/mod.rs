//! The batch conversion engine behind `torchsave convert`, plus `inspect_many` and `diff`.
//!
//! One file goes through: load (torch file through the reader, safetensors through
//! [`crate::safetensors`], a sharded checkpoint through [`crate::hf_index`]; all mmapped) ->
//! select a sub-object -> drop optimizer state -> edit keys -> cast floats -> write (pt through
//! the writer's `save_to_path`; one safetensors file through [`stream`], which casts while
//! writing instead of materialising casts; both atomic) -> optionally re-read and compare
//! per-tensor sha256. [`convert_many`] runs files on a dedicated rayon pool of `jobs`
//! threads, so at most `jobs` files are in flight and memory stays at about `jobs` mapped
//! inputs plus the casts' new storages (none when streamed); streamed outputs are committed
//! (fsync, name) on [`COMMITTERS`] background threads; a failing file becomes a report with
//! an error code and never stops the others; outputs are never overwritten without `force`.
//!
//! Output naming: `a/model.pth` -> `OUT/model.safetensors` (`OUT` = `out_dir`, or the input's
//! folder); with `keep_tree` the input's folder relative to the inputs' common root is
//! recreated under `OUT`. Hugging Face names follow their convention: `pytorch_model.bin`
//! becomes `model.safetensors` and back to `pytorch_model.bin`; sharded outputs are
//! `{stem}-00001-of-0000N.{ext}` plus `{stem}.{ext}.index.json`. Torch outputs keep the
//! input's extension when it is `.pt/.pth/.bin/.ckpt`, else `.pt`.
//!
//! What must change together: [`Target::extension`], [`output_stem`] and the index naming in
//! [`crate::hf_index`]; [`INPUT_EXTENSIONS`] and [`discover_inputs`].

pub mod diff;
pub mod stream;
pub mod transform;

use crate::dtype::DType;
use crate::error::{Error, ErrorCode, Result};
use crate::graph;
use crate::hf_index;
use crate::options::{LoadOptions, SaveFormat, SaveOptions};
use crate::safetensors as st;
use crate::strided;
use crate::value::{Format, Graph, Node, NodeId, Tensor, Value};
use crate::writer::atomic::{write_atomic, Pending};
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

pub use diff::{
    diff, inspect_many, ChangeReason, Changed, DiffReport, DtypeStat, InputError, Summary,
};
pub use transform::KeyEdits;

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

    fn extension(self, input_ext: &str) -> &'static str {
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

/// What happened to one input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileReport {
    pub input: PathBuf,
    /// Files written (or that would be, in a dry run): shards first, then the index.
    pub outputs: Vec<PathBuf>,
    /// Input format: `zip`, `legacy`, `tar`, `pickle`, `safetensors`, `hf-index`.
    pub format: String,
    /// Tensors written.
    pub tensors: usize,
    pub bytes_in: u64,
    /// Bytes written (dry run: the exact size for safetensors, 0 for pt).
    pub bytes_out: u64,
    pub millis: u64,
    /// Outputs were re-read and matched.
    pub verified: bool,
    /// What the engine decided on its own: auto-selected key, dropped keys, aliases,
    /// skipped casts.
    pub notes: Vec<String>,
    /// `(code, message)` when the file failed.
    pub error: Option<(ErrorCode, String)>,
}

/// A progress event: `report` is `None` when a file starts, `Some` when it is done.
#[derive(Clone, Debug)]
pub struct Progress {
    pub index: usize,
    pub total: usize,
    /// Files finished so far (including this one when `report` is set).
    pub done: usize,
    pub input: PathBuf,
    pub report: Option<FileReport>,
}

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Torch(Format),
    Safetensors,
    HfIndex,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Torch(f) => f.as_str(),
            SourceFormat::Safetensors => "safetensors",
            SourceFormat::HfIndex => "hf-index",
        }
    }
}

/// A loaded input of any kind.
#[derive(Clone, Debug)]
pub struct Source {
    pub graph: Graph,
    pub format: SourceFormat,
    /// The files read (the index's shards for a sharded checkpoint).
    pub files: Vec<PathBuf>,
    pub bytes_in: u64,
    /// safetensors `__metadata__` (single files only).
    pub metadata: Vec<(String, String)>,
    /// The mapped file storages point into (single mapped files), for streamed reads.
    pub mapped: Option<stream::MappedInput>,
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Loads any input: `*.index.json` as a sharded checkpoint, safetensors (by its `.safetensors`
/// name or sniffed from the bytes), anything else through the torch reader. `restore_aliases` re-adds names a
/// safetensors writer dropped as shared (see [`st::restore_aliases`]).
pub fn load_source(path: &Path, opts: &LoadOptions, restore_aliases: bool) -> Result<Source> {
    if hf_index::is_index_path(path) {
        let s = hf_index::load_sharded(path, opts)?;
        let bytes_in = file_len(path) + s.shards.iter().map(|p| file_len(p)).sum::<u64>();
        let mut files = s.shards;
        files.insert(0, path.to_path_buf());
        return Ok(Source {
            graph: s.graph,
            format: SourceFormat::HfIndex,
            files,
            bytes_in,
            metadata: Vec::new(),
            mapped: None,
        });
    }
    let in_file = |e: Error| e.in_file(path.display().to_string());
    let bytes = crate::container::source::open(path, opts.mmap).map_err(in_file)?;
    let bytes_in = bytes.len() as u64;
    // Like torch.load, a `.safetensors` name is enough; otherwise sniff the bytes.
    let named_st = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let mapped = if opts.mmap {
        stream::MappedInput::open(path, &bytes)
    } else {
        None
    };
    if named_st || st::looks_like_safetensors(bytes.as_slice()) {
        let mut loaded = st::read_bytes(bytes).map_err(in_file)?;
        if restore_aliases {
            st::restore_aliases(&mut loaded);
        }
        return Ok(Source {
            graph: loaded.graph,
            format: SourceFormat::Safetensors,
            files: vec![path.to_path_buf()],
            bytes_in,
            metadata: loaded.metadata,
            mapped,
        });
    }
    // A mapped load parses the map already open (what `load_file` does with `mmap`).
    let loaded = if opts.mmap {
        crate::container::detect::load(bytes, opts, true).map_err(in_file)?
    } else {
        drop(bytes);
        crate::container::load_file(path, opts)?
    };
    Ok(Source {
        graph: loaded.graph,
        format: SourceFormat::Torch(loaded.info.format),
        files: vec![path.to_path_buf()],
        bytes_in,
        metadata: Vec::new(),
        mapped,
    })
}

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
/// shards an index in the same folder lists) and glob patterns into a sorted, deduplicated
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

/// Converts one input; never panics, errors land in the report.
pub fn convert_file(input: &Path, opts: &ConvertOptions) -> FileReport {
    let w = write_file(input, opts);
    w.commit()
}

/// One input converted and written, its outputs not yet committed (fsync + name): a streamed
/// output leaves its [`Pending`] here so [`convert_many`] can commit it on another thread
/// while the worker goes on with the next file.
struct Written {
    report: FileReport,
    pending: Vec<Pending>,
    /// [`ConvertOptions::durable`]: whether committing fsyncs.
    durable: bool,
    start: Instant,
}

impl Written {
    /// Commits the outputs in order; a failure lands in the report (and, like any failure,
    /// leaves no output of this file behind that was not committed already).
    fn commit(mut self) -> FileReport {
        let input = self.report.input.clone();
        for p in self.pending {
            if self.report.error.is_some() {
                break; // Dropping the rest removes them.
            }
            if let Err(e) = p.commit_with(self.durable) {
                let e = e.in_file(input.display().to_string());
                self.report.error = Some((e.code, e.to_string()));
                self.report.verified = false;
            }
        }
        self.report.millis = self.start.elapsed().as_millis() as u64;
        self.report
    }
}

fn write_file(input: &Path, opts: &ConvertOptions) -> Written {
    let start = Instant::now();
    let mut report = FileReport {
        input: input.to_path_buf(),
        ..FileReport::default()
    };
    let mut pending = Vec::new();
    if let Err(e) = convert_inner(input, opts, &mut report, &mut pending) {
        let e = e.in_file(input.display().to_string());
        report.error = Some((e.code, e.to_string()));
        report.verified = false;
        pending.clear();
    }
    report.millis = start.elapsed().as_millis() as u64;
    Written {
        report,
        pending,
        durable: opts.durable,
        start,
    }
}

fn check_output(path: &Path, input: &Path, opts: &ConvertOptions) -> Result<()> {
    let same = match (path.canonicalize(), input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        crate::bail!(
            InvalidArgument,
            "output {} would replace the input; choose an output folder",
            path.display()
        );
    }
    if path.exists() && !opts.force {
        crate::bail!(
            OutputExists,
            "{} exists (pass force to overwrite)",
            path.display()
        );
    }
    Ok(())
}

/// `(name, dtype, shape, sha256)` of tensors, by name.
pub(crate) type Digests = Vec<(String, DType, Vec<i64>, String)>;

fn digests_of(graph: &Graph, named: &[(String, NodeId)]) -> Result<Digests> {
    let mut out = Vec::with_capacity(named.len());
    for (name, id) in named {
        let Some(Node::Tensor(t)) = graph.node(*id) else {
            continue;
        };
        let Some(sid) = t.storage else {
            out.push((name.clone(), t.dtype, t.shape.clone(), String::new()));
            continue;
        };
        let s = graph
            .storages
            .get(sid)
            .ok_or_else(|| crate::err!(StorageBounds, "storage {sid} missing"))?;
        out.push((
            name.clone(),
            t.dtype,
            t.shape.clone(),
            strided::sha256_hex(t, s)?,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn compare_digests(want: &Digests, got: &Digests, output: &Path) -> Result<()> {
    if want.len() != got.len() {
        crate::bail!(
            VerifyFailed,
            "{} holds {} tensors, expected {}",
            output.display(),
            got.len(),
            want.len()
        );
    }
    for (w, g) in want.iter().zip(got) {
        if w != g {
            crate::bail!(
                VerifyFailed,
                "{}: '{}' reads back as {} {:?} sha256 {} instead of '{}' {} {:?} sha256 {}",
                output.display(),
                g.0,
                g.1,
                g.2,
                g.3,
                w.0,
                w.1,
                w.2,
                w.3
            );
        }
    }
    Ok(())
}

/// Whether `opts` take the streamed path ([`stream`]): one safetensors output.
fn streams(opts: &ConvertOptions) -> bool {
    opts.to == Target::Safetensors && opts.shard_size.is_none()
}

fn convert_inner(
    input: &Path,
    opts: &ConvertOptions,
    report: &mut FileReport,
    pending: &mut Vec<Pending>,
) -> Result<()> {
    let (stem, ext) = output_stem(input, opts.to);
    let dir = output_dir(input, opts);
    let single = dir.join(format!("{stem}.{ext}"));
    if opts.shard_size.is_none() {
        // Fail fast, before reading anything.
        check_output(&single, input, opts)?;
    }
    let mut src = load_source(input, &opts.load, true)?;
    report.format = src.format.name().to_string();
    report.bytes_in = src.bytes_in;

    // select
    let mut root = src.graph.root().clone();
    if let Some(sel) = &opts.select {
        root = transform::select_path(&src.graph, &root, sel)?;
    } else if opts.to == Target::Safetensors {
        if let Some((key, v)) = transform::auto_select(&src.graph, &root) {
            report.notes.push(format!("selected '{key}'"));
            root = v;
        }
    }
    if opts.drop_optimizer {
        for k in transform::drop_optimizer(&mut src.graph, &root) {
            report.notes.push(format!("dropped '{k}'"));
        }
    }
    transform::edit_keys(&mut src.graph, &root, &opts.key_edits())?;
    let mut cast_plan = None;
    if let Some(d) = opts.dtype {
        let r = if streams(opts) {
            // Cast while writing (stream.rs); decide now what the cast would do.
            let p = transform::plan_cast(&src.graph, &root, d)?;
            let r = p.report.clone();
            cast_plan = Some((p, d));
            r
        } else {
            transform::cast_floats(&mut src.graph, &root, d)?
        };
        if !r.skipped.is_empty() {
            report.notes.push(format!(
                "left {} tensors uncast ({})",
                r.skipped.len(),
                r.skipped.join(", ")
            ));
        }
    }
    src.graph.root = Some(root.clone());

    match opts.to {
        Target::Safetensors if streams(opts) => {
            let out = StreamedOut {
                cast: cast_plan.as_ref().map(|(p, d)| (p, *d)),
                mapped: src.mapped.as_ref(),
            };
            write_safetensors_streamed(input, &src.graph, &root, &dir, &stem, opts, &out, report)
                .map(|p| pending.extend(p))
        }
        Target::Safetensors => {
            write_safetensors(input, &src.graph, &root, &dir, &stem, opts, report)
        }
        Target::Pt | Target::PtLegacy => {
            write_pt(input, &src.graph, &root, &dir, &stem, ext, opts, report)
        }
    }
}

fn ensure_dir(dir: &Path, opts: &ConvertOptions) -> Result<()> {
    if opts.dry_run || dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(e, &format!("create folder {}", dir.display())))
}

fn cancelled_check(cancel: Option<&AtomicBool>) -> Result<()> {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        crate::bail!(Cancelled, "cancelled");
    }
    Ok(())
}

/// One safetensors output: path, `name -> tensor`, `__metadata__`.
type ShardOut = (PathBuf, Vec<(String, NodeId)>, Vec<(String, String)>);

fn write_safetensors(
    input: &Path,
    graph: &Graph,
    root: &Value,
    dir: &Path,
    stem: &str,
    opts: &ConvertOptions,
    report: &mut FileReport,
) -> Result<()> {
    let entries = st::state_dict_entries(graph, root)?;
    let d = st::dedupe_shared(graph, &entries)?;
    for (dropped, kept) in &d.removed {
        report.notes.push(format!(
            "'{dropped}' shares memory with '{kept}': kept once, recorded in __metadata__"
        ));
    }
    // Shards: (file name, entries, metadata).
    let mut shards: Vec<ShardOut> = Vec::new();
    let mut index: Option<(PathBuf, String)> = None;
    match opts.shard_size {
        Some(max) => {
            let items = split_items(graph, &d.kept)?;
            let plan = hf_index::split_into_shards(&items, max);
            let n = plan.shards.len();
            let mut weight_map = Vec::new();
            for (i, names) in plan.shards.iter().enumerate() {
                let file = hf_index::shard_file_name(stem, "safetensors", i + 1, n);
                let es: Vec<(String, NodeId)> = names
                    .iter()
                    .filter_map(|nm| d.kept.iter().find(|(k, _)| k == nm).cloned())
                    .collect();
                // Aliases are recorded in the shard that holds the kept tensor.
                let removed: Vec<(String, String)> = d
                    .removed
                    .iter()
                    .filter(|(_, kept)| names.contains(kept))
                    .cloned()
                    .collect();
                for (k, _) in &es {
                    weight_map.push((k.clone(), file.clone()));
                }
                shards.push((dir.join(&file), es, st::file_metadata(&[], &removed)));
            }
            if n > 1 {
                let ipath = dir.join(format!("{stem}.safetensors.index.json"));
                index = Some((ipath, hf_index::index_json(plan.total_size, &weight_map)));
            }
        }
        None => shards.push((
            dir.join(format!("{stem}.safetensors")),
            d.kept.clone(),
            st::file_metadata(&[], &d.removed),
        )),
    }
    for (p, _, _) in &shards {
        check_output(p, input, opts)?;
    }
    if let Some((p, _)) = &index {
        check_output(p, input, opts)?;
    }
    let mut plans = Vec::with_capacity(shards.len());
    for (p, es, md) in &shards {
        plans.push((p.clone(), st::plan(graph, es, md)?));
    }
    report.tensors = d.kept.len();
    report.outputs = plans.iter().map(|(p, _)| p.clone()).collect();
    if let Some((p, _)) = &index {
        report.outputs.push(p.clone());
    }
    if opts.dry_run {
        report.bytes_out = plans.iter().map(|(_, pl)| pl.file_len).sum::<u64>()
            + index.as_ref().map(|(_, t)| t.len() as u64).unwrap_or(0);
        return Ok(());
    }
    ensure_dir(dir, opts)?;
    for (p, pl) in &plans {
        report.bytes_out += write_atomic(p, opts.durable, &mut |w| st::write_plan(graph, pl, w))?;
    }
    if let Some((p, text)) = &index {
        report.bytes_out += write_atomic(p, opts.durable, &mut |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| Error::io(e, "write"))
        })?;
    }
    if opts.verify {
        let want = digests_of(graph, &d.kept)?;
        let (check_path, got) = match &index {
            Some((ip, _)) => {
                let s = hf_index::load_sharded(ip, &LoadOptions::default())?;
                let named = graph::flat_tensor_map(&s.graph, s.graph.root()).unwrap_or_default();
                (ip.clone(), digests_of(&s.graph, &named)?)
            }
            None => {
                let mut all = Vec::new();
                for (p, _) in &plans {
                    let back = st::read_file(p, true)?;
                    let named =
                        graph::flat_tensor_map(&back.graph, back.graph.root()).unwrap_or_default();
                    all.extend(digests_of(&back.graph, &named)?);
                }
                all.sort_by(|a, b| a.0.cmp(&b.0));
                (plans.first().map(|p| p.0.clone()).unwrap_or_default(), all)
            }
        };
        compare_digests(&want, &got, &check_path)?;
        report.verified = true;
    }
    Ok(())
}

/// How a streamed output reads and casts.
struct StreamedOut<'a> {
    cast: Option<(&'a transform::CastPlan, DType)>,
    mapped: Option<&'a stream::MappedInput>,
}

/// One safetensors file through [`stream`]: planned from the uncast graph with the cast's
/// dtypes, written to a temporary file, verified there (a file that fails `verify` is never
/// named), and returned uncommitted. `None` in a dry run.
#[allow(clippy::too_many_arguments)]
fn write_safetensors_streamed(
    input: &Path,
    graph: &Graph,
    root: &Value,
    dir: &Path,
    stem: &str,
    opts: &ConvertOptions,
    how: &StreamedOut,
    report: &mut FileReport,
) -> Result<Option<Pending>> {
    let entries = st::state_dict_entries(graph, root)?;
    let d = st::dedupe_shared(graph, &entries)?;
    for (dropped, kept) in &d.removed {
        report.notes.push(format!(
            "'{dropped}' shares memory with '{kept}': kept once, recorded in __metadata__"
        ));
    }
    let path = dir.join(format!("{stem}.safetensors"));
    check_output(&path, input, opts)?;
    let out_dtype = |id: NodeId, t: &Tensor| match how.cast {
        Some((c, to)) if c.tensors.contains(&id) => to,
        _ => t.dtype,
    };
    let plan = st::plan_with(
        graph,
        &d.kept,
        &st::file_metadata(&[], &d.removed),
        &out_dtype,
    )?;
    report.tensors = d.kept.len();
    report.outputs = vec![path.clone()];
    if opts.dry_run {
        report.bytes_out = plan.file_len;
        return Ok(None);
    }
    ensure_dir(dir, opts)?;
    let pending = Pending::create(&path)?;
    let (bytes, want) = stream::write_streamed(
        graph,
        &plan,
        how.cast,
        how.mapped,
        pending.file(),
        opts.verify,
    )
    .map_err(|e| e.in_file(path.display().to_string()))?;
    report.bytes_out = bytes;
    if let Some(want) = want {
        let got =
            read_back_digests(pending.file()).map_err(|e| e.in_file(path.display().to_string()))?;
        compare_digests(&want, &got, &path)?;
        report.verified = true;
    }
    Ok(Some(pending))
}

/// Per-tensor digests of a written (not yet named) safetensors file, read back from disk.
fn read_back_digests(file: &std::fs::File) -> Result<Digests> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut buf))
        .map_err(|e| Error::io(e, "read back"))?;
    let back = st::read_bytes(crate::bytes::ByteView::from_vec(buf))?;
    let named = graph::flat_tensor_map(&back.graph, back.graph.root()).unwrap_or_default();
    digests_of(&back.graph, &named)
}

/// Sizes and storage identities for the shard splitter.
fn split_items(graph: &Graph, entries: &[(String, NodeId)]) -> Result<Vec<hf_index::SplitItem>> {
    entries
        .iter()
        .map(|(name, id)| {
            let Some(Node::Tensor(t)) = graph.node(*id) else {
                crate::bail!(Unserializable, "'{name}' is not a tensor");
            };
            Ok(hf_index::SplitItem {
                name: name.clone(),
                size: strided::nbytes(t)?,
                storage: t.storage.map(|s| s as u64),
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn write_pt(
    input: &Path,
    graph: &Graph,
    root: &Value,
    dir: &Path,
    stem: &str,
    ext: &str,
    opts: &ConvertOptions,
    report: &mut FileReport,
) -> Result<()> {
    let save = |archive: &str| SaveOptions {
        format: if opts.to == Target::PtLegacy {
            SaveFormat::Legacy
        } else {
            SaveFormat::Zip
        },
        archive_name: archive.to_string(),
        compact: opts.compact,
        durable: opts.durable,
        ..SaveOptions::default()
    };
    let max_depth = opts.load.limits.max_depth;
    // Outputs: (path, graph).
    let mut outs: Vec<(PathBuf, Graph)> = Vec::new();
    let mut index: Option<(PathBuf, String)> = None;
    match opts.shard_size {
        Some(max) => {
            let entries = st::state_dict_entries(graph, root)?;
            let items = split_items(graph, &entries)?;
            let plan = hf_index::split_into_shards(&items, max);
            let n = plan.shards.len();
            let mut weight_map = Vec::new();
            for (i, names) in plan.shards.iter().enumerate() {
                let file = hf_index::shard_file_name(stem, ext, i + 1, n);
                let mut g = Graph::new();
                let mut imp = graph::Importer::new(graph);
                let mut items = Vec::new();
                for nm in names {
                    if let Some((k, id)) = entries.iter().find(|(k, _)| k == nm) {
                        items.push((Value::Str(k.clone()), imp.value(&mut g, &Value::Ref(*id))?));
                        weight_map.push((k.clone(), file.clone()));
                    }
                }
                let r = g.add(Node::OrderedDict { items, state: None });
                g.root = Some(r);
                outs.push((dir.join(file), g));
            }
            if n > 1 {
                index = Some((
                    dir.join(format!("{stem}.{ext}.index.json")),
                    hf_index::index_json(plan.total_size, &weight_map),
                ));
            }
        }
        None => {
            let mut g = graph.clone();
            g.root = Some(root.clone());
            outs.push((dir.join(format!("{stem}.{ext}")), g));
        }
    }
    for (p, _) in &outs {
        check_output(p, input, opts)?;
    }
    if let Some((p, _)) = &index {
        check_output(p, input, opts)?;
    }
    report.outputs = outs.iter().map(|(p, _)| p.clone()).collect();
    if let Some((p, _)) = &index {
        report.outputs.push(p.clone());
    }
    let mut want: Digests = Vec::new();
    for (_, g) in &outs {
        let named = graph::tensor_paths(g, g.root(), max_depth)?;
        report.tensors += named.len();
        want.extend(digests_of(g, &named)?);
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    if opts.dry_run {
        return Ok(());
    }
    ensure_dir(dir, opts)?;
    for (p, g) in &outs {
        let archive = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "archive".into());
        crate::writer::save_to_path(g, p, &save(&archive))?;
        report.bytes_out += file_len(p);
    }
    if let Some((p, text)) = &index {
        report.bytes_out += write_atomic(p, opts.durable, &mut |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| Error::io(e, "write"))
        })?;
    }
    if opts.verify {
        let mut got: Digests = Vec::new();
        let check_path = match &index {
            Some((ip, _)) => {
                let s = hf_index::load_sharded(ip, &opts.load)?;
                let named = graph::tensor_paths(&s.graph, s.graph.root(), max_depth)?;
                got.extend(digests_of(&s.graph, &named)?);
                ip.clone()
            }
            None => {
                for (p, _) in &outs {
                    let back = crate::container::load_file(p, &opts.load)?;
                    let named = graph::tensor_paths(&back.graph, back.graph.root(), max_depth)?;
                    got.extend(digests_of(&back.graph, &named)?);
                }
                outs.first().map(|o| o.0.clone()).unwrap_or_default()
            }
        };
        got.sort_by(|a, b| a.0.cmp(&b.0));
        compare_digests(&want, &got, &check_path)?;
        report.verified = true;
    }
    Ok(())
}

/// Threads that commit written outputs (fsync, name) for [`convert_many`]. They mostly wait
/// on the disk; several fsyncs in flight share the file system's journal commits, which is
/// most of the gain (one output at a time pays a journal commit and a cache flush each).
const COMMITTERS: usize = 4;

/// Converts many inputs on a dedicated pool of `jobs` threads (at most `jobs` files in
/// flight). Reports come back in input order; `progress` is called from worker threads as
/// files start and finish; once `cancel` is set, files not yet started report
/// `E_CANCELLED`. `keep_tree` without `root_dir` uses the inputs' common folder.
///
/// A streamed output is committed (fsync, then named) on one of [`COMMITTERS`] threads
/// while its worker goes on with the next file; its file is reported done (progress, and
/// its slot in the result) once committed. At most `2 * jobs` written files wait for a
/// commit at a time.
pub fn convert_many(
    inputs: &[PathBuf],
    opts: &ConvertOptions,
    jobs: usize,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Vec<FileReport> {
    use rayon::prelude::*;
    use std::sync::mpsc;
    use std::sync::Mutex;
    let mut opts = opts.clone();
    if opts.keep_tree && opts.root_dir.is_none() {
        opts.root_dir = common_root(inputs);
    }
    let total = inputs.len();
    let done = AtomicUsize::new(0);
    // Reports finished on committer threads, by input index.
    let committed: Mutex<Vec<(usize, FileReport)>> = Mutex::new(Vec::new());
    let finished = |index: usize, report: FileReport| -> FileReport {
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress(Progress {
            index,
            total,
            done: d,
            input: report.input.clone(),
            report: Some(report.clone()),
        });
        report
    };
    let (tx, rx) = mpsc::sync_channel::<(usize, Written)>(2 * jobs.max(1));
    let rx = Mutex::new(rx);
    let committer = || loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((index, w)) = job else { return };
        let report = finished(index, w.commit());
        if let Ok(mut c) = committed.lock() {
            c.push((index, report));
        }
    };
    let mut reports: Vec<Option<FileReport>> = std::thread::scope(|scope| {
        let started = (0..COMMITTERS)
            .filter(|i| {
                std::thread::Builder::new()
                    .name(format!("torchsave-commit-{i}"))
                    .spawn_scoped(scope, committer)
                    .is_ok()
            })
            .count();
        // No committer thread: commit on the worker.
        let tx = (started > 0).then_some(tx);
        let run = |(index, input): (usize, &PathBuf)| -> Option<FileReport> {
            progress(Progress {
                index,
                total,
                done: done.load(Ordering::Relaxed),
                input: input.clone(),
                report: None,
            });
            let w = match cancelled_check(Some(cancel)) {
                Err(e) => Written {
                    report: FileReport {
                        input: input.clone(),
                        error: Some((e.code, e.in_file(input.display().to_string()).to_string())),
                        ..FileReport::default()
                    },
                    pending: Vec::new(),
                    durable: opts.durable,
                    start: Instant::now(),
                },
                Ok(()) => write_file(input, &opts),
            };
            let w = match (&tx, w.pending.is_empty()) {
                (Some(tx), false) => match tx.send((index, w)) {
                    Ok(()) => return None,
                    // Every committer is gone: commit here.
                    Err(mpsc::SendError((_, w))) => w,
                },
                _ => w,
            };
            Some(finished(index, w.commit()))
        };
        let out = match rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .thread_name(|i| format!("torchsave-convert-{i}"))
            .build()
        {
            Ok(pool) => pool.install(|| {
                inputs
                    .par_iter()
                    .enumerate()
                    .with_max_len(1)
                    .map(run)
                    .collect()
            }),
            // No threads available: do the work here, one file at a time.
            Err(_) => inputs.iter().enumerate().map(run).collect(),
        };
        // Closing the channel lets the committers finish the queue and exit; the scope
        // waits for them.
        drop(tx);
        out
    });
    let committed = committed.into_inner().unwrap_or_else(|e| e.into_inner());
    for (index, report) in committed {
        if let Some(slot) = reports.get_mut(index) {
            *slot = Some(report);
        }
    }
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| FileReport {
                input: inputs.get(i).cloned().unwrap_or_default(),
                error: Some((ErrorCode::Io, "the output was never committed".into())),
                ..FileReport::default()
            })
        })
        .collect()
}
