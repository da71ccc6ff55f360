//! `torch.jit.load` as data: the TorchScript reader's descriptor view
//! (`torchsave_core::container::torchscript::View::Jit`) as a raw tree, sync and async. The
//! TS facade (ts/jit/) builds a `ScriptModule` from it.

use crate::error::{catch, guard, panic_error, to_napi};
use crate::js::RawValue;
use crate::options::{load_config, NativeLoadOptions};
use crate::tasks::{loaded_to_js, run, Failure, Source};
use napi::bindgen_prelude::{AsyncTask, Either, Uint8Array};
use napi::{Env, Result, Task};
use napi_derive::napi;
use std::path::Path;
use torchsave_core::container::torchscript::{self, View};
use torchsave_core::{ByteView, LoadOptions, Loaded};

fn jit_source(source: &Source, opts: &LoadOptions) -> torchsave_core::Result<Loaded> {
    match source {
        Source::Path(p) => torchscript::load_file(Path::new(p), opts, View::Jit),
        Source::Bytes(b) => {
            torchscript::load_view(ByteView::from_vec(b.to_vec()), opts, false, View::Jit)
        }
    }
}

fn source_of(s: Either<String, Uint8Array>) -> Source {
    match s {
        Either::A(p) => Source::Path(p),
        Either::B(b) => Source::Bytes(b),
    }
}

/// Reads a TorchScript archive (path or bytes) as data; returns the raw tree whose root is
/// the descriptor (module tree, state dict, constants, code, extra files).
#[napi(ts_return_type = "import('../ts/raw/tree').RawLoaded")]
pub fn jit_load(
    env: Env,
    source: Either<String, Uint8Array>,
    options: Option<NativeLoadOptions>,
) -> Result<RawValue> {
    guard(&env, || {
        let cfg = load_config(options).map_err(|e| to_napi(&env, &e))?;
        let source = source_of(source);
        crate::tasks::before_load(&env, &source);
        let loaded = run(|| jit_source(&source, &cfg.core)).map_err(|f| f.into_napi(&env))?;
        loaded_to_js(
            &env,
            &opened(loaded),
            cfg.external,
            cfg.core.limits.max_depth,
        )
    })
}

/// `jitLoad` off the event loop.
#[napi(ts_return_type = "Promise<import('../ts/raw/tree').RawLoaded>")]
pub fn jit_load_async(
    env: Env,
    source: Either<String, Uint8Array>,
    options: Option<NativeLoadOptions>,
) -> Result<AsyncTask<JitLoadTask>> {
    guard(&env, || {
        let cfg = load_config(options).map_err(|e| to_napi(&env, &e))?;
        let source = source_of(source);
        // Collecting waits for the completion callback (see `tasks::before_load`).
        torchsave_napi_common::release::reap(&env);
        Ok(AsyncTask::new(JitLoadTask {
            source,
            opts: cfg.core,
            external: cfg.external,
        }))
    })
}

pub struct JitLoadTask {
    source: Source,
    opts: LoadOptions,
    external: bool,
}

impl Task for JitLoadTask {
    type Output = std::result::Result<Loaded, Failure>;
    type JsValue = RawValue;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| jit_source(&self.source, &self.opts)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<RawValue> {
        crate::tasks::before_load(&env, &self.source);
        let loaded = output.map_err(|f| f.into_napi(&env))?;
        let depth = self.opts.limits.max_depth;
        let loaded = opened(loaded);
        match catch(|| loaded_to_js(&env, &loaded, self.external, depth)) {
            Ok(r) => r,
            Err(p) => Err(panic_error(&env, &p)),
        }
    }
}

/// A TorchScript load as the conversion takes it: its storages view the bytes `jit_source`
/// read or mapped (no eager copy pass, no CRC records to check while copying).
fn opened(loaded: Loaded) -> crate::tasks::Opened {
    crate::tasks::Opened {
        loaded,
        eager_map: None,
        crc: Vec::new(),
        path: None,
    }
}
