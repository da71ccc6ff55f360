//! The sync and async twins share these helpers: `compute` does file I/O and parsing or
//! writing (off the event loop for the async form), `resolve` builds JS values at the end.

use crate::error::{catch, panic_error, to_napi};
use crate::js::{Js, RawValue};
use crate::to_js::ToJs;
use napi::bindgen_prelude::{Buffer, Uint8Array};
use napi::{Env, Result, Task};
use std::path::Path;
use torchsave_core::container;
use torchsave_core::{
    load_bytes, load_file, save_to_path, save_to_writer, ByteView, Error as torchsaveError, Graph,
    LoadOptions, Loaded, SaveOptions,
};

/// Why a computation failed, carried out of the worker thread as plain data.
pub enum Failure {
    Core(torchsave_core::Error),
    Panic(String),
}

impl Failure {
    pub fn into_napi(self, env: &Env) -> napi::Error {
        match self {
            Failure::Core(e) => to_napi(env, &e),
            Failure::Panic(p) => panic_error(env, &p),
        }
    }
}

/// Runs core work, catching panics.
pub fn run<T>(f: impl FnOnce() -> torchsave_core::Result<T>) -> std::result::Result<T, Failure> {
    match catch(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::Core(e)),
        Err(p) => Err(Failure::Panic(p)),
    }
}

pub enum Source {
    Path(String),
    /// Copied once before parsing: the loaded tensors must not alias the caller's buffer
    /// (torch.load(BytesIO) does not either), and the async form must not race JS writes.
    Bytes(Uint8Array),
}

pub fn load_source(source: &Source, opts: &LoadOptions) -> torchsave_core::Result<Loaded> {
    match source {
        Source::Path(p) => load_file(Path::new(p), opts),
        Source::Bytes(b) => load_bytes(ByteView::from_vec(b.to_vec()), opts),
    }
}

/// What every load does on the JS thread before it makes its buffers: gives back the
/// mappings V8 has collected, then lets napi-common's `pressure` collect for the bytes this
/// load is about to hand out (the file's size: an eager load's storages, or a mapping's
/// length). A sync load calls it at its entry; an async one in its completion callback
/// (`LoadTask::resolve`), not at its entry: `await`'s continuation runs inside the promise job
/// that still holds the previous result, so a collection at the next call's entry found it
/// reachable (a loop of 1 GiB `loadAsync` calls held two results, not one).
pub fn before_load(env: &Env, source: &Source) {
    let bytes = match source {
        Source::Path(p) => {
            std::fs::metadata(p).map_or(0, |m| if m.is_file() { m.len() as usize } else { 0 })
        }
        Source::Bytes(b) => b.len(),
    };
    torchsave_napi_common::release::reap(env);
    torchsave_napi_common::pressure::before_allocation(env, bytes);
}

/// A parsed load. For an eager load of a path (`mmap: false`) the storages still view the
/// file's map, kept in `eager_map`: the conversion gives them JS-owned buffers and copies
/// their bytes (see `to_js`), instead of the core copying them into Rust buffers first.
pub struct Opened {
    pub loaded: Loaded,
    pub eager_map: Option<ByteView>,
    /// Storage records whose CRC-32 the copy checks (zip, default `verifyCrc`): checking
    /// while copying reads each byte once, from cache, where a separate pass over the map
    /// first faulted in every file page (it doubled an eager load's time).
    pub crc: Vec<crate::to_js::RecordCrc>,
    /// The file, for errors found while copying.
    pub path: Option<String>,
}

/// Parses `source`; eager loads of a path are left viewing the map (see [`Opened`]).
pub fn open_source(source: &Source, opts: &LoadOptions) -> torchsave_core::Result<Opened> {
    match source {
        // A distributed checkpoint is a folder: `load_file` reads it (and owns its storages).
        Source::Path(p) if !opts.mmap && !container::dcp::is_dcp_dir(Path::new(p)) => {
            let path = Path::new(p);
            let in_file = |e: torchsaveError| e.in_file(path.display().to_string());
            // Parsed through a private map like `load_file`'s eager path (same CRC default:
            // storages are checked because the load is not mmapped).
            let map = container::source::open(path, true).map_err(in_file)?;
            let fuse_crc = opts.verify_crc.is_none() && map.as_slice().starts_with(b"PK\x03\x04");
            if !fuse_crc {
                let loaded = container::detect::load(map.clone(), opts, true).map_err(in_file)?;
                return Ok(Opened {
                    loaded,
                    eager_map: Some(map),
                    crc: Vec::new(),
                    path: Some(p.clone()),
                });
            }
            // Parsed as a mapped load (small records checked, storages not), then the copy
            // checks every stored record's CRC-32 as an unmapped load would.
            let mapped = LoadOptions {
                mmap: true,
                ..opts.clone()
            };
            let loaded = container::detect::load(map.clone(), &mapped, true).map_err(in_file)?;
            let ar = container::zip_read::ZipArchive::parse(map.clone()).map_err(in_file)?;
            let crc = ar
                .entries()
                .iter()
                .filter(|e| e.method == 0 && e.crc32 != 0)
                .filter_map(|e| {
                    Some(crate::to_js::RecordCrc {
                        start: usize::try_from(e.data_offset).ok()?,
                        len: usize::try_from(e.compressed_size).ok()?,
                        crc: e.crc32,
                        name: e.name.clone(),
                    })
                })
                .collect();
            Ok(Opened {
                loaded,
                eager_map: Some(map),
                crc,
                path: Some(p.clone()),
            })
        }
        _ => Ok(Opened {
            loaded: load_source(source, opts)?,
            eager_map: None,
            crc: Vec::new(),
            path: None,
        }),
    }
}

/// The raw tree of a sync load, storages filled.
pub fn loaded_to_js(
    env: &Env,
    opened: &Opened,
    external: bool,
    max_depth: usize,
) -> Result<RawValue> {
    let js = Js::new(env);
    let mut conv = ToJs::new(js, &opened.loaded.graph, max_depth);
    let (out, fills) = conv.loaded_eager(
        Some(&opened.loaded.info),
        external,
        opened.eager_map.as_ref(),
    )?;
    if let Some(map) = &opened.eager_map {
        let path = opened.path.as_deref().unwrap_or("");
        fills
            .run(map, &opened.crc)
            .map_err(|e| to_napi(env, &e.in_file(path)))?;
    }
    Ok(RawValue(out))
}

pub struct LoadTask {
    pub source: Source,
    pub opts: LoadOptions,
    pub external: bool,
}

impl Task for LoadTask {
    type Output = std::result::Result<Opened, Failure>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| open_source(&self.source, &self.opts)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        before_load(&env, &self.source);
        let opened = output.map_err(|f| f.into_napi(&env))?;
        let depth = self.opts.limits.max_depth;
        let external = self.external;
        match catch(move || resolve_load(&env, opened, external, depth)) {
            Ok(r) => r,
            Err(p) => Err(panic_error(&env, &p)),
        }
    }
}

/// Builds the raw tree; an eager load's copies then run on the libuv pool (a second task whose
/// promise the first resolves with), so a 1 GiB loadAsync never copies on the event loop.
fn resolve_load(env: &Env, opened: Opened, external: bool, depth: usize) -> Result<RawValue> {
    let js = Js::new(env);
    let mut conv = ToJs::new(js, &opened.loaded.graph, depth);
    let (out, fills) = conv.loaded_eager(
        Some(&opened.loaded.info),
        external,
        opened.eager_map.as_ref(),
    )?;
    drop(conv);
    if fills.is_empty() {
        return Ok(RawValue(out));
    }
    let mut held = std::ptr::null_mut();
    // SAFETY: a strong reference keeps the value (and so its buffers) alive during the fill.
    let status = unsafe { napi::sys::napi_create_reference(env.raw(), out, 1, &mut held) };
    if status != napi::sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::from(status),
            "Node-API call napi_create_reference failed",
        ));
    }
    let promise = env.spawn(FillTask {
        opened: Some(opened),
        fills,
        held: Held(held),
    })?;
    Ok(RawValue(napi::JsValue::raw(&promise.promise_object())))
}

/// A napi reference carried through a task (created and deleted on the JS thread only).
struct Held(napi::sys::napi_ref);
// SAFETY: the reference is only touched in `resolve`, on the JS thread.
unsafe impl Send for Held {}

pub struct FillTask {
    opened: Option<Opened>,
    fills: crate::to_js::Fills,
    held: Held,
}

impl Task for FillTask {
    type Output = std::result::Result<(), Failure>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        let out = match self.opened.as_ref() {
            Some(Opened {
                eager_map: Some(map),
                crc,
                path,
                ..
            }) => {
                let fills = &self.fills;
                let path = path.as_deref().unwrap_or("");
                run(|| fills.run(map, crc).map_err(|e| e.in_file(path)))
            }
            _ => Ok(()),
        };
        // The map is no longer needed: unmap it now, not when the task is dropped.
        self.opened = None;
        Ok(out)
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        let mut v = std::ptr::null_mut();
        // SAFETY: the reference made in `resolve_load`, on this env; deleted once here.
        unsafe {
            napi::sys::napi_get_reference_value(env.raw(), self.held.0, &mut v);
            napi::sys::napi_delete_reference(env.raw(), self.held.0);
        }
        self.held.0 = std::ptr::null_mut();
        output.map_err(|f| f.into_napi(&env))?;
        Ok(RawValue(v))
    }
}

/// Writes `graph` to `path`, or returns the bytes when `path` is `None`.
pub fn save_graph(
    graph: &Graph,
    path: Option<&str>,
    opts: &SaveOptions,
) -> torchsave_core::Result<Option<Vec<u8>>> {
    match path {
        Some(p) => {
            save_to_path(graph, Path::new(p), opts).map_err(|e| e.in_file(p))?;
            Ok(None)
        }
        None => {
            let mut out = Vec::new();
            save_to_writer(graph, &mut out, opts)?;
            Ok(Some(out))
        }
    }
}

pub struct SaveTask {
    pub graph: Graph,
    pub path: Option<String>,
    pub opts: SaveOptions,
}

impl Task for SaveTask {
    type Output = std::result::Result<Option<Vec<u8>>, Failure>;
    type JsValue = Option<Buffer>;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| {
            save_graph(&self.graph, self.path.as_deref(), &self.opts)
        }))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Option<Buffer>> {
        Ok(output.map_err(|f| f.into_napi(&env))?.map(Buffer::from))
    }
}

/// `scan`: the JSON document for one file or buffer (the core never fails a scan: errors are
/// in the document).
pub struct ScanTask {
    pub source: Source,
    pub strict: bool,
}

impl ScanTask {
    pub fn document(&self) -> String {
        use torchsave_core::scan::{scan_bytes, scan_file};
        let (name, report) = match &self.source {
            Source::Path(p) => (p.clone(), scan_file(Path::new(p))),
            Source::Bytes(b) => (
                "<bytes>".to_string(),
                scan_bytes(ByteView::from_vec(b.to_vec())),
            ),
        };
        report.to_json(&name, self.strict).to_string()
    }
}

impl Task for ScanTask {
    type Output = std::result::Result<String, Failure>;
    type JsValue = String;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| Ok(self.document())))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<String> {
        output.map_err(|f| f.into_napi(&env))
    }
}
