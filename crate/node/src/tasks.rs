//! The sync and async twins share these helpers: `compute` does file I/O and parsing or
//! writing (off the event loop for the async form), `resolve` builds JS values at the end.

use crate::error::{catch, panic_error, to_napi};
use crate::js::{Js, RawValue};
use crate::to_js::ToJs;
use napi::bindgen_prelude::{Buffer, Uint8Array};
use napi::{Env, Result, Task};
use std::path::Path;
use torchsave_core::{
    load_bytes, load_file, save_to_path, save_to_writer, ByteView, Graph, LoadOptions, Loaded,
    SaveOptions,
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

pub fn loaded_to_js(
    env: &Env,
    loaded: &Loaded,
    external: bool,
    max_depth: usize,
) -> Result<RawValue> {
    let js = Js::new(env);
    let mut conv = ToJs::new(js, &loaded.graph, max_depth);
    Ok(RawValue(conv.loaded(Some(&loaded.info), external)?))
}

pub struct LoadTask {
    pub source: Source,
    pub opts: LoadOptions,
    pub external: bool,
}

impl Task for LoadTask {
    type Output = std::result::Result<Loaded, Failure>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| load_source(&self.source, &self.opts)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        let loaded = output.map_err(|f| f.into_napi(&env))?;
        let depth = self.opts.limits.max_depth;
        match catch(|| loaded_to_js(&env, &loaded, self.external, depth)) {
            Ok(r) => r,
            Err(p) => Err(panic_error(&env, &p)),
        }
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
