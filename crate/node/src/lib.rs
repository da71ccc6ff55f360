//! Thin napi-rs binding over torchsave-core: converts options, maps errors, wraps async
//! tasks and builds JS values. Everything format-related lives in the core.
//!
//! Exports (typed in the generated `native/bindings.d.ts`; ts/native.ts gives the raw
//! values their precise types):
//! * `load(source, options)` / `loadAsync` → `{root, storages, info}` (see [`to_js`]);
//! * `save(tree, path | null, options)` / `saveAsync` → bytes when `path` is null;
//! * `inspect(source, options)` → the `inspect --json` document;
//! * `loadSafetensors(path, options)` → `{root, storages, metadata}`;
//!   `saveSafetensors(tree, path | null, metadata)` → bytes when `path` is null;
//! * `convert(inputs, options, onProgress?, signal?)`, `inspectMany`, `diff`,
//!   `discoverInputs`, `parseSize` (see [`convert`]);
//! * `preloadSharedLibraries(paths)`: dlopen with RTLD_GLOBAL, for the libtorch addon (see [`preload`]);
//! * `jitLoad(source, options)` / `jitLoadAsync`: a TorchScript archive as data (see [`jit`]);
//! * `saveDcpFolder(tree, dir, options)` / `saveDcpFolderAsync`, `isDcpFolder(path)`:
//!   distributed checkpoints (see [`dcp`]; `load` reads them);
//! * `coreVersion()`; `_graphRoundTrip` (test hook: raw tree → Graph → raw tree, no I/O).
//!
//! Every entry point catches panics (`E_INTERNAL`) so a bug never kills the Node process.
#![deny(clippy::unwrap_used)]

// Public so its #[napi] exports count as used in test builds too (napi-derive registers them only in the cdylib).
pub mod convert;
// Public so its #[napi] exports count as used in test builds too (see `convert`).
pub mod dcp;
mod error;
mod from_js;
mod inspect_glue;
pub mod jit;
mod js;
mod options;
// Public so its #[napi] export counts as used in test builds too (see `convert`).
pub mod preload;
mod tasks;
mod to_js;

use crate::error::{guard, to_napi};
use crate::from_js::FromJs;
use crate::js::{Js, RawValue};
use crate::options::{
    inspect_config, load_config, save_config, NativeInspectOptions, NativeLoadOptions,
    NativeSaveOptions,
};
use crate::tasks::{
    load_source, loaded_to_js, open_source, run, save_graph, LoadTask, SaveTask, Source,
};
use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Uint8Array};
use napi::{Env, Result, Unknown};
use napi_derive::napi;
use torchsave_core::{Graph, Limits};

fn source_of(s: Either<String, Uint8Array>) -> Source {
    match s {
        Either::A(p) => Source::Path(p),
        Either::B(b) => Source::Bytes(b),
    }
}

/// The version of the core crate.
#[napi]
pub fn core_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Loads a file (path) or in-memory bytes; returns the raw tree.
#[napi(ts_return_type = "import('../ts/raw/tree').RawLoaded")]
pub fn load(
    env: Env,
    source: Either<String, Uint8Array>,
    options: Option<NativeLoadOptions>,
) -> Result<RawValue> {
    guard(&env, || {
        let cfg = load_config(options).map_err(|e| to_napi(&env, &e))?;
        let source = source_of(source);
        tasks::before_load(&env, &source);
        let opened = run(|| open_source(&source, &cfg.core)).map_err(|f| f.into_napi(&env))?;
        loaded_to_js(&env, &opened, cfg.external, cfg.core.limits.max_depth)
    })
}

/// `load` off the event loop: reading and parsing run on the libuv pool.
#[napi(ts_return_type = "Promise<import('../ts/raw/tree').RawLoaded>")]
pub fn load_async(
    env: Env,
    source: Either<String, Uint8Array>,
    options: Option<NativeLoadOptions>,
) -> Result<AsyncTask<LoadTask>> {
    guard(&env, || {
        let cfg = load_config(options).map_err(|e| to_napi(&env, &e))?;
        let source = source_of(source);
        // Collecting waits for the completion callback (see `tasks::before_load`).
        torchsave_napi_common::release::reap(&env);
        Ok(AsyncTask::new(LoadTask {
            source,
            opts: cfg.core,
            external: cfg.external,
        }))
    })
}

pub(crate) fn graph_from_js(env: &Env, raw: Unknown) -> Result<Graph> {
    FromJs::new(Js::new(env), Limits::default().max_depth).build(napi::JsValue::raw(&raw))
}

/// Saves a raw tree and its storages to `path`, or returns the bytes when `path` is null.
#[napi(
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree, path: string | null, options?: NativeSaveOptions | undefined | null"
)]
pub fn save(
    env: Env,
    raw: Unknown,
    path: Option<String>,
    options: Option<NativeSaveOptions>,
) -> Result<Option<Buffer>> {
    guard(&env, || {
        let opts = save_config(options, path.as_deref()).map_err(|e| to_napi(&env, &e))?;
        let graph = graph_from_js(&env, raw)?;
        let out =
            run(|| save_graph(&graph, path.as_deref(), &opts)).map_err(|f| f.into_napi(&env))?;
        Ok(out.map(Buffer::from))
    })
}

/// `save` off the event loop. The raw tree is converted now (no tensor bytes are copied: the
/// storages' `Uint8Array`s are held until the write finishes); pickling and I/O run on the
/// libuv pool. Do not modify the tensors until the promise settles.
#[napi(
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree, path: string | null, options?: NativeSaveOptions | undefined | null",
    ts_return_type = "Promise<Buffer | null>"
)]
pub fn save_async(
    env: Env,
    raw: Unknown,
    path: Option<String>,
    options: Option<NativeSaveOptions>,
) -> Result<AsyncTask<SaveTask>> {
    guard(&env, || {
        let opts = save_config(options, path.as_deref()).map_err(|e| to_napi(&env, &e))?;
        let graph = graph_from_js(&env, raw)?;
        Ok(AsyncTask::new(SaveTask { graph, path, opts }))
    })
}

/// The `inspect --json` document (a JSON string) for a file or bytes.
#[napi]
pub fn inspect(
    env: Env,
    source: Either<String, Uint8Array>,
    options: Option<NativeInspectOptions>,
) -> Result<String> {
    guard(&env, || {
        let opts = inspect_config(&options);
        let sha = options.as_ref().and_then(|o| o.sha256).unwrap_or(false);
        let source = source_of(source);
        run(|| {
            let loaded = load_source(&source, &opts)?;
            inspect_glue::inspect_json(&loaded, sha)
        })
        .map_err(|f| f.into_napi(&env))
    })
}

/// The `scan --json` document (a JSON string, docs/scan.md) for a file path or bytes: every
/// global each pickle in it would import or call, with a verdict. The file's content never
/// throws (damage and unreadable files are in the document's `error`); `strict` only changes
/// `status` and `exit_code` (unknown globals flag the file too).
#[napi]
pub fn scan(env: Env, source: Either<String, Uint8Array>, strict: Option<bool>) -> Result<String> {
    guard(&env, || {
        let task = tasks::ScanTask {
            source: source_of(source),
            strict: strict.unwrap_or(false),
        };
        run(|| Ok(task.document())).map_err(|f| f.into_napi(&env))
    })
}

/// The files `torchsave scan` looks at for these files, folders and globs (sorted).
#[napi]
pub fn scan_discover(env: Env, specs: Vec<String>) -> Result<Vec<String>> {
    guard(&env, || {
        run(|| torchsave_core::scan::discover::discover(&specs))
            .map(|v| v.iter().map(|p| p.display().to_string()).collect())
            .map_err(|f| f.into_napi(&env))
    })
}

/// `scan` of a file off the event loop.
#[napi(ts_return_type = "Promise<string>")]
pub fn scan_async(path: String, strict: Option<bool>) -> AsyncTask<tasks::ScanTask> {
    AsyncTask::new(tasks::ScanTask {
        source: Source::Path(path),
        strict: strict.unwrap_or(false),
    })
}

/// Test hook: raw tree → Graph → raw tree with no file in between (storages are copied).
#[napi(
    js_name = "_graphRoundTrip",
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree",
    ts_return_type = "import('../ts/raw/tree').RawLoaded"
)]
pub fn graph_round_trip(env: Env, raw: Unknown) -> Result<RawValue> {
    guard(&env, || {
        let graph = graph_from_js(&env, raw)?;
        let mut conv = to_js::ToJs::new(Js::new(&env), &graph, Limits::default().max_depth);
        Ok(RawValue(conv.loaded(None, false)?))
    })
}

/// Reads a safetensors file: `{root, storages, metadata}` where root is an OrderedDict
/// name -> tensor and `metadata` the `__metadata__` pairs. With `restoreAliases` (default
/// true) names a writer dropped as shared (recorded in the metadata) come back as second
/// keys for the kept tensor.
#[napi(
    ts_args_type = "path: string, options?: NativeLoadOptions | undefined | null, restoreAliases?: boolean | undefined | null",
    ts_return_type = "import('../ts/raw/tree').RawLoaded & { metadata: Array<[string, string]> }"
)]
pub fn load_safetensors(
    env: Env,
    path: String,
    options: Option<NativeLoadOptions>,
    restore_aliases: Option<bool>,
) -> Result<RawValue> {
    guard(&env, || {
        let cfg = load_config(options).map_err(|e| to_napi(&env, &e))?;
        tasks::before_load(&env, &tasks::Source::Path(path.clone()));
        let (graph, metadata) = run(|| {
            convert::load_safetensors_graph(&path, cfg.core.mmap, restore_aliases.unwrap_or(true))
        })
        .map_err(|f| f.into_napi(&env))?;
        let js = Js::new(&env);
        let mut conv = to_js::ToJs::new(js, &graph, cfg.core.limits.max_depth);
        let out = conv.loaded(None, cfg.external)?;
        let md = js.array(metadata.len())?;
        for (i, (k, v)) in metadata.iter().enumerate() {
            let pair = js.array(2)?;
            js.set_index(pair, 0, js.string(k)?)?;
            js.set_index(pair, 1, js.string(v)?)?;
            js.set_index(md, i, pair)?;
        }
        js.set(out, c"metadata", md)?;
        Ok(RawValue(out))
    })
}

/// Writes a flat state dict (raw tree root: a dict name -> tensor) as safetensors, to `path`
/// atomically or to bytes when `path` is null. `metadata` pairs go to `__metadata__` after
/// `format: pt`; tensors sharing memory are written once and the alias recorded.
#[napi(
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree, path: string | null, metadata?: Array<[string, string]> | undefined | null"
)]
pub fn save_safetensors(
    env: Env,
    raw: Unknown,
    path: Option<String>,
    metadata: Option<Vec<Vec<String>>>,
) -> Result<Option<Buffer>> {
    guard(&env, || {
        let mut md = Vec::new();
        for pair in metadata.unwrap_or_default() {
            let [k, v] = pair.as_slice() else {
                let e = error::core(
                    torchsave_core::ErrorCode::InvalidArgument,
                    "metadata entries are [key, value] string pairs",
                );
                return Err(to_napi(&env, &e));
            };
            md.push((k.clone(), v.clone()));
        }
        let graph = graph_from_js(&env, raw)?;
        let out = run(|| convert::save_safetensors_graph(&graph, &md, path.as_deref()))
            .map_err(|f| f.into_napi(&env))?;
        Ok(out.map(Buffer::from))
    })
}

/// Frees a loaded storage's memory now (`torch.dispose`): detaches `buffer` (every view of
/// it reads as empty from then on) and gives its memory back: V8 frees a JS-owned buffer, a
/// mapped file is unmapped. False when there was nothing to free (already detached).
/// The caller (ts/tensor/storage.ts) passes only buffers a load made, once no tensor uses them.
#[napi(ts_args_type = "buffer: ArrayBuffer")]
pub fn release_buffer(env: Env, buffer: Unknown) -> Result<bool> {
    guard(&env, || {
        torchsave_napi_common::release::release(&env, &buffer)
    })
}

/// Test/bench hook: bytes of mapped files still held for JS values on this thread, after
/// giving back those V8 has collected.
#[napi(js_name = "_mappedBytes")]
pub fn mapped_bytes(env: Env) -> f64 {
    torchsave_napi_common::release::reap(&env);
    torchsave_napi_common::release::live_bytes() as f64
}

/// Test/bench hook: this thread's full collections forced by big loads (napi-common's
/// `pressure`), and the eager-storage pool's bytes kept now and reused so far (`pool`).
#[napi(object, object_from_js = false)]
pub struct NativeMemoryStats {
    pub forced_collections: f64,
    pub pooled_bytes: f64,
    pub reused_bytes: f64,
}

/// Test/bench hook: see [`NativeMemoryStats`].
#[napi(js_name = "_memoryStats")]
pub fn memory_stats() -> NativeMemoryStats {
    let (pooled, reused) = torchsave_napi_common::pool::stats();
    NativeMemoryStats {
        forced_collections: torchsave_napi_common::pressure::forced_collections() as f64,
        pooled_bytes: pooled as f64,
        reused_bytes: reused as f64,
    }
}

/// One dtype of the core's table ([`torchsave_core::DType::ALL`]).
#[napi(object, object_from_js = false)]
pub struct NativeDTypeInfo {
    /// PyTorch's name (`float32`, `bfloat16`, ...).
    pub name: &'static str,
    /// Bytes per element.
    pub itemsize: u32,
    pub is_floating_point: bool,
    pub is_complex: bool,
    /// `float`, `complex`, `int`, `bool`, `quantized` or `bits`.
    pub class: &'static str,
    /// The legacy storage class (`FloatStorage`), or null for the dtypes pickled untyped.
    pub storage_class: Option<&'static str>,
}

/// The contracts TS shares with Rust, read from their one Rust owner: every error code JS can
/// see and the dtype table. `scripts/gen-contract.js` writes `ts/generated/contract.ts` from
/// this (run by `npm run build`), and a test checks that the file is current.
#[napi(object, object_from_js = false)]
pub struct NativeContract {
    pub error_codes: Vec<&'static str>,
    pub dtypes: Vec<NativeDTypeInfo>,
}

#[napi]
pub fn contract() -> NativeContract {
    use torchsave_core::{DType, ErrorCode};
    NativeContract {
        error_codes: ErrorCode::ALL.iter().map(|c| c.as_str()).collect(),
        dtypes: DType::ALL
            .iter()
            .map(|d| NativeDTypeInfo {
                name: d.name(),
                itemsize: d.element_size() as u32,
                is_floating_point: d.is_floating_point(),
                is_complex: d.is_complex(),
                class: d.class().name(),
                storage_class: d.storage_class(),
            })
            .collect(),
    }
}

/// Throws `E_FILE_CHANGED` when `bytes` view a loaded file's mapping and that file changed on
/// disk since the load (truncated: the lost pages read as zeros; or modified in place). The
/// TS facade calls it before a library call reads a mapped storage; other memory passes.
#[napi]
pub fn check_mapping(env: Env, bytes: Uint8Array) -> Result<()> {
    guard(&env, || {
        run(|| torchsave_core::mapguard::check_addr(bytes.as_ptr())).map_err(|f| f.into_napi(&env))
    })
}

/// Test hook: the core's float cast (`float64/32/16`, `bfloat16`) of little-endian `bytes`,
/// so the TS casts can be checked bit for bit against it.
#[napi(js_name = "_castFloats")]
pub fn cast_floats(env: Env, bytes: Uint8Array, from: String, to: String) -> Result<Buffer> {
    guard(&env, || {
        let dt = |n: &str| torchsave_core::DType::from_name_checked(n);
        let out = run(|| torchsave_core::cast::cast_buffer(bytes.as_ref(), dt(&from)?, dt(&to)?))
            .map_err(|f| f.into_napi(&env))?;
        Ok(Buffer::from(out))
    })
}
