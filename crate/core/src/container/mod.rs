//! Containers: detect the format from the bytes and load a `Graph`.
//!
//! | Format | PyTorch versions | Module |
//! | --- | --- | --- |
//! | zip (`PK\x03\x04`) | 1.6+ default (1.4-1.5 opt-in) | [`zip_read`] |
//! | legacy stream (pickled magic `0x1950a86a20f9469cfc6c`) | 0.1.10 - 1.5 default | [`legacy`] |
//! | tar (`sys_info`, `pickle`, `tensors`, `storages` members) | before 0.1.10 | [`tar_read`] |
//! | bare pickle | anything pickled without torch.save | [`detect`] |
//! | TorchScript (zip with `constants.pkl`, `code/`) | `torch.jit.save`, 1.4+ | [`torchscript`] |
//! | distributed checkpoint (a folder: `.metadata`, `*.distcp`) | `torch.distributed.checkpoint`, 2.0+ | [`dcp`] |

pub mod dcp;
pub mod detect;
mod eager;
pub mod legacy;
pub mod source;
pub mod tar_read;
mod torch_pickle;
pub mod torchscript;
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
    /// The first construct (container, opcode, global, call, ...) torch 2.11's default
    /// weights-only policy refuses in this file, whatever `weights_only` the load used;
    /// `None` when `torch.load(weights_only=True)` accepts it. Kept by `pickle::policy::Policy`.
    pub weights_only_refusal: Option<String>,
}

/// A loaded file.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub graph: Graph,
    pub info: LoadInfo,
}

/// Loads a file from disk: storages are views into a copy-on-write map of the file, or, with
/// `opts.mmap == false`, buffers of their own that no longer depend on the file.
/// A folder holding a DCP `.metadata` is read as that distributed checkpoint ([`dcp`]).
pub fn load_file(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    if dcp::is_dcp_dir(path) {
        return dcp::load_dir(path, opts);
    }
    let in_file = |e: crate::error::Error| e.in_file(path.display().to_string());
    // A file that changed while it was parsed or copied (another process truncated or
    // rewrote it: the reads saw zeros or new bytes, never SIGBUS) is E_FILE_CHANGED, which
    // wins over whatever the parse made of those bytes.
    let changed = |bytes: &ByteView| bytes.check().map_err(in_file);
    if opts.mmap {
        let bytes = source::open(path, true).map_err(in_file)?;
        let loaded = detect::load(bytes.clone(), opts, true);
        changed(&bytes)?;
        return loaded.map_err(in_file);
    }
    // Eager: parse through a map (no copy of what is only parsed), then give every storage
    // its own buffer, as torch.load(mmap=False) does. One allocation per storage (rather
    // than one for the whole file) lets the allocator hand the same memory to the next
    // load, which is where most of an eager load's time goes (first-touch page faults).
    let bytes = source::open(path, true).map_err(in_file)?;
    let loaded = detect::load(bytes.clone(), opts, true);
    changed(&bytes)?;
    let mut loaded = loaded.map_err(in_file)?;
    eager::own_storages(&mut loaded.graph, &bytes);
    changed(&bytes)?;
    Ok(loaded)
}

/// Loads from bytes already in memory.
pub fn load_bytes(bytes: ByteView, opts: &LoadOptions) -> Result<Loaded> {
    detect::load(bytes, opts, false)
}
