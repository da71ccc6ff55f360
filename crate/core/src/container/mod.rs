//! Containers: detect the format from the bytes and load a `Graph`.
//!
//! | Format | PyTorch versions | Module |
//! | --- | --- | --- |
//! | zip (`PK\x03\x04`) | 1.6+ default (1.4-1.5 opt-in) | [`zip_read`] |
//! | legacy stream (pickled magic `0x1950a86a20f9469cfc6c`) | 0.1.10 - 1.5 default | [`legacy`] |
//! | tar (`sys_info`, `pickle`, `tensors`, `storages` members) | before 0.1.10 | [`tar_read`] |
//! | bare pickle | anything pickled without torch.save | [`detect`] |

pub mod detect;
pub mod legacy;
pub mod source;
pub mod tar_read;
pub mod zip_read;

use crate::bytes::ByteView;
use crate::error::Result;
use crate::options::LoadOptions;
use crate::value::{Format, Graph};
use std::path::Path;

/// Facts about the file, beside the value graph.
#[derive(Clone, Debug)]
pub struct LoadInfo {
    pub format: Format,
    /// Every GLOBAL named by the object pickle, `module.name` as written, first-seen order.
    pub globals: Vec<String>,
    /// True when the file's byte order was big-endian (storages were swapped).
    pub big_endian: bool,
    /// Protocol of the object pickle.
    pub pickle_protocol: u8,
    /// The zip's top folder, if zip.
    pub archive_name: Option<String>,
    /// The zip's `version` record, if zip.
    pub version: Option<String>,
}

/// A loaded file.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub graph: Graph,
    pub info: LoadInfo,
}

/// Loads a file from disk (mmapped unless `opts.mmap` is false).
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let bytes = source::open(path, opts.mmap).map_err(|e| e.in_file(path.display().to_string()))?;
    detect::load(bytes, opts, true).map_err(|e| e.in_file(path.display().to_string()))
}

/// Loads from bytes already in memory.
pub fn load_bytes(bytes: ByteView, opts: &LoadOptions) -> Result<Loaded> {
    detect::load(bytes, opts, false)
}
