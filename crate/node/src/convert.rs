//! Batch conversion, `inspectMany`, `diff`, input discovery and safetensors I/O: option
//! objects in, plain report objects out. The work is `torchsave_core::convert` and
//! `torchsave_core::safetensors`; this file only translates.
//!
//! Threads: `convert` is an `AsyncTask` whose `compute` runs `convert_many`, which owns its
//! own rayon pool of `jobs` threads (so the libuv thread only waits); progress events go
//! back through a `ThreadsafeFunction` that is dropped (released) with the task, so the
//! process can exit once the promise settles. A finished-file event waits (bounded) until
//! the JS callback ran, so every event is delivered before the promise resolves.
//! Cancellation: the AbortSignal's abort callback sets an `AtomicBool` the engine checks
//! before each file; files in flight finish, later ones report `E_CANCELLED`, and the
//! promise rejects with `E_CANCELLED` carrying the reports as `err.reports`.

use crate::error::{core, to_napi};
use crate::js::Js;
use crate::options::policy_options;
use crate::tasks::{run, Failure};
use napi::bindgen_prelude::{AbortSignal, AsyncTask, Either, FromNapiValue, ToNapiValue, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Result, Status, Task};
use napi_derive::napi;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use torchsave_core::convert::{self, ConvertOptions, FileReport, Progress, Target};
use torchsave_core::{hf_index, safetensors as st, Error as CoreError, ErrorCode};
use torchsave_core::{Graph, LoadOptions};

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct NativeConvertOptions {
    /// `pt` | `pt-legacy` | `safetensors` (default).
    pub to: Option<String>,
    /// Output folder; default: next to each input.
    pub out: Option<String>,
    /// Sub-object to convert (`model_state_dict`, `a/b`).
    pub select: Option<String>,
    /// Key prefixes to strip, in order.
    pub strip_prefix: Option<Vec<String>>,
    /// Remove every leading `module.`.
    pub strip_data_parallel: Option<bool>,
    /// Key renames, in order: `'regex=>replacement'` strings (the CLI's `--rename`) or
    /// `[pattern, replacement]` pairs; Rust regex patterns, JS replacements (`$1`, `$<name>`,
    /// `$&`, `$$`). Parsed by the core (`convert::parse_rename`).
    #[napi(ts_type = "Array<string | [string, string]>")]
    pub rename: Option<Vec<Either<String, Vec<String>>>>,
    /// Cast floating tensors to `float16` | `bfloat16` | `float32` | `float64`.
    pub dtype: Option<String>,
    pub drop_optimizer: Option<bool>,
    pub compact: Option<bool>,
    /// Bytes, or a size like `5GB` / `500MiB`.
    #[napi(ts_type = "number | string")]
    pub shard_size: Option<Either<f64, String>>,
    /// Files in flight (default: available cores).
    pub jobs: Option<u32>,
    pub dry_run: Option<bool>,
    pub verify: Option<bool>,
    pub force: Option<bool>,
    /// Skip inputs whose outputs exist and pass a check (size and header; in full with
    /// `verify`); their reports have `skipped: true`. Excludes `force`.
    pub skip_existing: Option<bool>,
    /// fsync each output and its folder before naming it (default true). `false` skips the
    /// fsyncs (like torch.save and `cp`); outputs stay atomic.
    pub durable: Option<bool>,
    pub keep_tree: Option<bool>,
    /// This worker's share of the inputs: every `shardCount`-th file from `shardIndex` (one
    /// input with `shardSize`: every `shardCount`-th output shard).
    pub shard_index: Option<u32>,
    pub shard_count: Option<u32>,
    /// Read inputs with the weights-only policy (default true).
    pub weights_only: Option<bool>,
    pub safe_globals: Option<Vec<String>>,
}

#[napi(object, object_from_js = false)]
pub struct NativeReportError {
    pub code: String,
    pub message: String,
}

#[napi(object, object_from_js = false)]
pub struct NativeFileReport {
    pub input: String,
    pub outputs: Vec<String>,
    pub format: String,
    pub tensors: u32,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub millis: f64,
    pub verified: bool,
    pub notes: Vec<String>,
    pub error: Option<NativeReportError>,
    /// `skipExisting` found valid outputs: nothing was read or written.
    pub skipped: bool,
}

#[napi(object, object_from_js = false)]
pub struct NativeProgress {
    pub index: u32,
    pub total: u32,
    pub done: u32,
    pub input: String,
    /// Absent when the file starts; its report when it is done.
    pub report: Option<NativeFileReport>,
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The core's Display starts with the code; JS has it in `.code` already.
fn strip_code(code: ErrorCode, message: String) -> String {
    let prefix = format!("{}: ", code.as_str());
    match message.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => message,
    }
}

fn report_to_js(r: FileReport) -> NativeFileReport {
    NativeFileReport {
        input: path_str(&r.input),
        outputs: r.outputs.iter().map(|p| path_str(p)).collect(),
        format: r.format,
        tensors: u32::try_from(r.tensors).unwrap_or(u32::MAX),
        bytes_in: r.bytes_in as f64,
        bytes_out: r.bytes_out as f64,
        millis: r.millis as f64,
        verified: r.verified,
        notes: r.notes,
        error: r.error.map(|(code, message)| NativeReportError {
            code: code.as_str().to_string(),
            message: strip_code(code, message),
        }),
        skipped: r.skipped,
    }
}

fn bad(msg: String) -> CoreError {
    core(ErrorCode::InvalidArgument, msg)
}

/// Everything `convert` needs, checked before any file is touched.
pub struct ConvertPlan {
    /// Files, folders, globs: expanded on the worker thread (a big tree walk must not
    /// block the event loop).
    pub specs: Vec<String>,
    pub shard: (Option<usize>, Option<usize>),
    pub opts: ConvertOptions,
    pub jobs: usize,
}

/// The JS options over `ConvertOptions::default()`: only what was given is set; every rule
/// (targets, renames, dtypes, sizes, jobs, the worker share) is the core's.
fn plan(specs: &[String], o: NativeConvertOptions) -> std::result::Result<ConvertPlan, CoreError> {
    let mut opts = ConvertOptions::default();
    opts.load = policy_options(opts.load, o.weights_only, o.safe_globals);
    if let Some(t) = &o.to {
        opts.to = Target::parse(t)?;
    }
    opts.out_dir = o.out.map(PathBuf::from);
    opts.select = o.select.filter(|s| !s.is_empty());
    if let Some(p) = o.strip_prefix {
        opts.strip_prefixes = p;
    }
    if let Some(b) = o.strip_data_parallel {
        opts.strip_dataparallel = b;
    }
    for r in o.rename.unwrap_or_default() {
        opts.renames.push(match r {
            Either::A(spec) => convert::parse_rename(&spec)?,
            Either::B(pair) => match pair.as_slice() {
                [pat, rep] => convert::rename_rule(pat, rep)?,
                _ => return Err(bad("rename entries are [pattern, replacement] pairs".into())),
            },
        });
    }
    if let Some(d) = &o.dtype {
        opts.dtype = Some(convert::parse_cast_dtype(d)?);
    }
    if let Some(b) = o.drop_optimizer {
        opts.drop_optimizer = b;
    }
    if let Some(b) = o.compact {
        opts.compact = b;
    }
    opts.shard_size = match o.shard_size {
        None => None,
        Some(Either::A(n)) => Some(convert::shard_size_from_number(n)?),
        Some(Either::B(s)) => Some(hf_index::parse_size(&s)?),
    };
    for (given, slot) in [
        (o.dry_run, &mut opts.dry_run),
        (o.verify, &mut opts.verify),
        (o.force, &mut opts.force),
        (o.skip_existing, &mut opts.skip_existing),
        (o.durable, &mut opts.durable),
        (o.keep_tree, &mut opts.keep_tree),
    ] {
        if let Some(b) = given {
            *slot = b;
        }
    }
    let share = (
        o.shard_index.map(|i| i as usize),
        o.shard_count.map(|n| n as usize),
    );
    opts.check()?;
    convert::check_worker_share(share.0, share.1)?;
    let jobs = convert::jobs_or_default(o.jobs.map(|j| j as usize))?;
    Ok(ConvertPlan {
        specs: specs.to_vec(),
        shard: share,
        opts,
        jobs,
    })
}

fn discover(
    specs: &[String],
    index: Option<usize>,
    count: Option<usize>,
) -> std::result::Result<Vec<PathBuf>, CoreError> {
    convert::discover_share(specs, index, count)
}

/// Progress callback: called with one event; CalleeHandled = false (no leading error arg).
pub type ProgressFn = ThreadsafeFunction<
    NativeProgress,
    napi::threadsafe_function::UnknownReturnValue,
    NativeProgress,
    Status,
    false,
>;

pub struct ConvertTask {
    plan: ConvertPlan,
    progress: Option<Arc<ProgressFn>>,
    cancel: Arc<AtomicBool>,
}

/// How long a worker waits for JS to take a finished-file event before going on without it.
const EVENT_ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn send_progress(tsfn: &ProgressFn, p: Progress) {
    let done = p.report.is_some();
    let ev = NativeProgress {
        index: u32::try_from(p.index).unwrap_or(u32::MAX),
        total: u32::try_from(p.total).unwrap_or(u32::MAX),
        done: u32::try_from(p.done).unwrap_or(u32::MAX),
        input: path_str(&p.input),
        report: p.report.map(report_to_js),
    };
    if !done {
        tsfn.call(ev, ThreadsafeFunctionCallMode::NonBlocking);
        return;
    }
    let (tx, rx) = mpsc::channel::<()>();
    let status =
        tsfn.call_with_return_value(ev, ThreadsafeFunctionCallMode::Blocking, move |_, _| {
            let _ = tx.send(());
            Ok(())
        });
    if status == Status::Ok {
        let _ = rx.recv_timeout(EVENT_ACK_TIMEOUT);
    }
}

impl Task for ConvertTask {
    type Output = std::result::Result<Vec<FileReport>, Failure>;
    type JsValue = Vec<NativeFileReport>;

    fn compute(&mut self) -> Result<Self::Output> {
        let progress = self.progress.clone();
        let cb = move |p: Progress| {
            if let Some(t) = &progress {
                send_progress(t, p);
            }
        };
        let cancel = self.cancel.clone();
        let plan = &self.plan;
        Ok(run(|| {
            let mut opts = plan.opts.clone();
            let files = convert::discover_share_with_outputs(
                &plan.specs,
                plan.shard.0,
                plan.shard.1,
                &mut opts,
            )?;
            Ok(convert::convert_many(
                &files, &opts, plan.jobs, &cb, &cancel,
            ))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Vec<NativeFileReport>> {
        // Release the callback now: nothing calls it any more, and a live TSFN would keep
        // the event loop (and so the process) alive.
        self.progress = None;
        let reports = output.map_err(|f| f.into_napi(&env))?;
        let reports: Vec<NativeFileReport> = reports.into_iter().map(report_to_js).collect();
        if self.cancel.load(Ordering::Relaxed) {
            return Err(cancelled_error(&env, reports));
        }
        Ok(reports)
    }
}

fn cancelled_error(env: &Env, reports: Vec<NativeFileReport>) -> napi::Error {
    let build = || -> Result<napi::Error> {
        let js = Js::new(env);
        let done = reports.iter().filter(|r| r.error.is_none()).count();
        let obj = js.error(
            ErrorCode::Cancelled.as_str(),
            &format!(
                "conversion cancelled ({done} of {} files converted; see err.reports)",
                reports.len()
            ),
        )?;
        // SAFETY: env is the live env of this resolve call.
        let arr = unsafe { Vec::<NativeFileReport>::to_napi_value(env.raw(), reports) }?;
        js.set(obj, c"reports", arr)?;
        // SAFETY: obj is a live handle from this scope.
        let u = unsafe { Unknown::from_napi_value(env.raw(), obj) }?;
        Ok(napi::Error::from(u))
    };
    build().unwrap_or_else(|e| e)
}

/// Converts checkpoints (files, folders, globs) in parallel; see the module docs.
#[napi(
    ts_args_type = "inputs: Array<string>, options: NativeConvertOptions, onProgress?: ((event: NativeProgress) => void) | undefined | null, signal?: AbortSignal | undefined | null",
    ts_return_type = "Promise<Array<NativeFileReport>>"
)]
pub fn convert(
    env: Env,
    inputs: Vec<String>,
    options: NativeConvertOptions,
    on_progress: Option<ProgressFn>,
    signal: Option<AbortSignal>,
) -> Result<AsyncTask<ConvertTask>> {
    let plan = plan(&inputs, options).map_err(|e| to_napi(&env, &e))?;
    let cancel = Arc::new(AtomicBool::new(false));
    if let Some(s) = &signal {
        let c = cancel.clone();
        s.on_abort(move || c.store(true, Ordering::Relaxed));
    }
    let task = ConvertTask {
        plan,
        progress: on_progress.map(Arc::new),
        cancel,
    };
    Ok(AsyncTask::with_optional_signal(task, signal))
}

/// The inputs `convert` would process: files, folders (recursive) and globs, sorted, then
/// this worker's share when `shardIndex`/`shardCount` are given.
#[napi]
pub fn discover_inputs(
    env: Env,
    patterns: Vec<String>,
    shard_index: Option<u32>,
    shard_count: Option<u32>,
) -> Result<Vec<String>> {
    let files = discover(
        &patterns,
        shard_index.map(|i| i as usize),
        shard_count.map(|n| n as usize),
    )
    .map_err(|e| to_napi(&env, &e))?;
    Ok(files.iter().map(|p| path_str(p)).collect())
}

/// Parses `5GB`, `500MiB`, `1e9` into bytes.
#[napi]
pub fn parse_size(env: Env, size: String) -> Result<f64> {
    hf_index::parse_size(&size)
        .map(|n| n as f64)
        .map_err(|e| to_napi(&env, &e))
}

// --- inspectMany -----------------------------------------------------------------------

#[napi(object, object_from_js = false)]
pub struct NativeCount {
    pub name: String,
    pub files: u32,
}

#[napi(object, object_from_js = false)]
pub struct NativeDtypeStat {
    pub dtype: String,
    pub tensors: f64,
    pub bytes: f64,
}

#[napi(object, object_from_js = false)]
pub struct NativeInputError {
    pub path: String,
    pub code: String,
    pub message: String,
}

#[napi(object, object_from_js = false)]
pub struct NativeSummary {
    pub files: Vec<String>,
    pub count: u32,
    pub formats: Vec<NativeCount>,
    pub dtypes: Vec<NativeDtypeStat>,
    pub tensors: f64,
    pub total_bytes: f64,
    pub tensor_bytes: f64,
    pub errors: Vec<NativeInputError>,
}

pub struct InspectManyTask {
    patterns: Vec<String>,
    opts: LoadOptions,
}

impl Task for InspectManyTask {
    type Output = std::result::Result<(Vec<PathBuf>, convert::Summary), Failure>;
    type JsValue = NativeSummary;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| {
            let files = convert::discover_inputs(&self.patterns)?;
            let s = convert::inspect_many(&files, &self.opts);
            Ok((files, s))
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<NativeSummary> {
        let (files, s) = output.map_err(|f| f.into_napi(&env))?;
        Ok(NativeSummary {
            files: files.iter().map(|p| path_str(p)).collect(),
            count: u32::try_from(s.count).unwrap_or(u32::MAX),
            formats: s
                .formats
                .into_iter()
                .map(|(name, n)| NativeCount {
                    name,
                    files: u32::try_from(n).unwrap_or(u32::MAX),
                })
                .collect(),
            dtypes: s
                .dtypes
                .into_iter()
                .map(|(dtype, d)| NativeDtypeStat {
                    dtype,
                    tensors: d.tensors as f64,
                    bytes: d.bytes as f64,
                })
                .collect(),
            tensors: s.tensors as f64,
            total_bytes: s.total_bytes as f64,
            tensor_bytes: s.tensor_bytes as f64,
            errors: s
                .errors
                .into_iter()
                .map(|e| NativeInputError {
                    path: path_str(&e.path),
                    code: e.code.as_str().to_string(),
                    message: strip_code(e.code, e.message),
                })
                .collect(),
        })
    }
}

/// Summarises many files (files, folders, globs): count, formats, dtypes, bytes; files that
/// fail to read are listed in `errors` with their codes. Never executes anything (the
/// weights-only policy is off unless asked for, like `inspect`).
#[napi(ts_return_type = "Promise<NativeSummary>")]
pub fn inspect_many(
    patterns: Vec<String>,
    weights_only: Option<bool>,
) -> AsyncTask<InspectManyTask> {
    AsyncTask::new(InspectManyTask {
        patterns,
        opts: policy_options(LoadOptions::for_summaries(), weights_only, None),
    })
}

// --- diff --------------------------------------------------------------------------------

#[napi(object, object_from_js = false)]
pub struct NativeChanged {
    pub key: String,
    /// `dtype` | `shape` | `values`.
    #[napi(ts_type = "'dtype' | 'shape' | 'values'")]
    pub reason: String,
    /// Largest |a - b| when both are real numbers of the same shape (NaN: a NaN on one side).
    pub max_abs_diff: Option<f64>,
}

#[napi(object, object_from_js = false)]
pub struct NativeDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<NativeChanged>,
    pub same: u32,
}

pub struct DiffTask {
    a: String,
    b: String,
    opts: LoadOptions,
}

impl Task for DiffTask {
    type Output = std::result::Result<convert::DiffReport, Failure>;
    type JsValue = NativeDiff;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| {
            convert::diff(Path::new(&self.a), Path::new(&self.b), &self.opts)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<NativeDiff> {
        let d = output.map_err(|f| f.into_napi(&env))?;
        Ok(NativeDiff {
            added: d.added,
            removed: d.removed,
            changed: d
                .changed
                .into_iter()
                .map(|c| NativeChanged {
                    key: c.key,
                    reason: c.reason.as_str().to_string(),
                    max_abs_diff: c.max_abs_diff,
                })
                .collect(),
            same: u32::try_from(d.same).unwrap_or(u32::MAX),
        })
    }
}

/// Compares two checkpoints of any supported format tensor by tensor.
#[napi(ts_return_type = "Promise<NativeDiff>")]
pub fn diff(a: String, b: String, weights_only: Option<bool>) -> AsyncTask<DiffTask> {
    AsyncTask::new(DiffTask {
        a,
        b,
        opts: policy_options(LoadOptions::for_summaries(), weights_only, None),
    })
}

// --- safetensors ---------------------------------------------------------------------------

/// A safetensors file read as `{root, storages}` (root: an OrderedDict name -> tensor, in the
/// file's data order) plus its `__metadata__` as `[key, value]` pairs.
pub fn load_safetensors_graph(
    path: &str,
    mmap: bool,
    restore_aliases: bool,
) -> std::result::Result<(Graph, Vec<(String, String)>), CoreError> {
    let mut loaded = st::read_file(Path::new(path), mmap)?;
    if restore_aliases {
        st::restore_aliases(&mut loaded);
    }
    Ok((loaded.graph, loaded.metadata))
}

/// Writes the flat state dict at the graph's root as safetensors (to `path` atomically, or
/// to bytes when `path` is `None`).
pub fn save_safetensors_graph(
    graph: &Graph,
    metadata: &[(String, String)],
    path: Option<&str>,
) -> std::result::Result<Option<Vec<u8>>, CoreError> {
    let entries = st::state_dict_entries(graph, graph.root())?;
    match path {
        Some(p) => {
            st::write_file(graph, &entries, metadata, Path::new(p))?;
            Ok(None)
        }
        None => Ok(Some(st::to_bytes(graph, &entries, metadata)?)),
    }
}
