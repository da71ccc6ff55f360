//! Distributed checkpoints (`torch.distributed.checkpoint`): writing a state dict as a DCP
//! folder (`torchsave_core::writer::dcp_write`), sync and async, and the folder test the TS
//! facade asks before treating a folder as one checkpoint. Reading goes through `load`.

use crate::error::{guard, to_napi};
use crate::tasks::{run, Failure};
use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Result, Task, Unknown};
use napi_derive::napi;
use std::path::{Path, PathBuf};
use torchsave_core::container::dcp;
use torchsave_core::writer::dcp_write::{save_dcp, DcpSaveOptions, DcpWritten};
use torchsave_core::{Error as CoreError, ErrorCode, Graph};

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct NativeDcpSaveOptions {
    /// Data files (`__0_<i>.distcp`) to split the tensors over, written in parallel (default 1).
    pub writers: Option<u32>,
    /// Replace an existing folder (default true, like torch's `FileSystemWriter`).
    pub overwrite: Option<bool>,
    /// fsync the files and folders before returning (default true).
    pub durable: Option<bool>,
}

/// What a DCP save wrote.
#[napi(object, object_from_js = false)]
pub struct NativeDcpWritten {
    /// Data file names, in order.
    pub files: Vec<String>,
    /// Flattened keys (`model.layer.weight`), in metadata order.
    pub keys: Vec<String>,
    /// Bytes written (data files and `.metadata`).
    pub bytes: f64,
}

fn config(o: Option<NativeDcpSaveOptions>) -> std::result::Result<DcpSaveOptions, CoreError> {
    let o = o.unwrap_or_default();
    let mut core = DcpSaveOptions::default();
    if let Some(w) = o.writers {
        if w == 0 {
            return Err(CoreError::new(
                ErrorCode::InvalidArgument,
                "writers must be at least 1".to_string(),
            ));
        }
        core.writers = w as usize;
    }
    if let Some(v) = o.overwrite {
        core.overwrite = v;
    }
    if let Some(v) = o.durable {
        core.durable = v;
    }
    Ok(core)
}

fn written(w: DcpWritten) -> NativeDcpWritten {
    NativeDcpWritten {
        files: w.files,
        keys: w.keys,
        bytes: w.bytes as f64,
    }
}

/// Writes a raw tree (a state dict) as a distributed checkpoint folder at `dir`.
#[napi(
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree, dir: string, options?: NativeDcpSaveOptions | undefined | null"
)]
pub fn save_dcp_folder(
    env: Env,
    raw: Unknown,
    dir: String,
    options: Option<NativeDcpSaveOptions>,
) -> Result<NativeDcpWritten> {
    guard(&env, || {
        let opts = config(options).map_err(|e| to_napi(&env, &e))?;
        let graph = crate::graph_from_js(&env, raw)?;
        run(|| save_dcp(&graph, Path::new(&dir), &opts))
            .map(written)
            .map_err(|f| f.into_napi(&env))
    })
}

pub struct DcpSaveTask {
    graph: Graph,
    dir: PathBuf,
    opts: DcpSaveOptions,
}

impl Task for DcpSaveTask {
    type Output = std::result::Result<DcpWritten, Failure>;
    type JsValue = NativeDcpWritten;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(run(|| save_dcp(&self.graph, &self.dir, &self.opts)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<NativeDcpWritten> {
        output.map(written).map_err(|f| f.into_napi(&env))
    }
}

/// `saveDcpFolder` off the event loop (do not modify the tensors until it settles).
#[napi(
    ts_args_type = "raw: import('../ts/raw/tree').RawSaveTree, dir: string, options?: NativeDcpSaveOptions | undefined | null",
    ts_return_type = "Promise<NativeDcpWritten>"
)]
pub fn save_dcp_folder_async(
    env: Env,
    raw: Unknown,
    dir: String,
    options: Option<NativeDcpSaveOptions>,
) -> Result<AsyncTask<DcpSaveTask>> {
    guard(&env, || {
        let opts = config(options).map_err(|e| to_napi(&env, &e))?;
        let graph = crate::graph_from_js(&env, raw)?;
        Ok(AsyncTask::new(DcpSaveTask {
            graph,
            dir: PathBuf::from(dir),
            opts,
        }))
    })
}

/// True when `path` is a folder holding a DCP `.metadata` (read as one checkpoint).
#[napi]
pub fn is_dcp_folder(path: String) -> bool {
    dcp::is_dcp_dir(Path::new(&path))
}
