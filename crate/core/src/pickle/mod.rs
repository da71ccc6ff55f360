//! The pickle layer: a VM for protocols 0-5 that never executes anything.
//!
//! `unpickle` runs one pickle (up to and including its STOP) and builds nodes in a `Graph`.
//! GLOBAL pushes a `Node::Global`; REDUCE/NEWOBJ/BUILD on a global are handed to
//! [`interpret`], which turns known reconstructors (tensors, OrderedDict, Size, device, dtypes,
//! numpy, `_codecs.encode`, set/frozenset/bytearray/complex, ...) into typed nodes and
//! everything else into `PyObject`s. [`policy`] decides, before anything is built, whether a
//! global is allowed under `weights_only`.
//!
//! Persistent ids (BINPERSID/PERSID) are handed to a [`PersistentLoad`]; the standard torch
//! one ([`TorchPersistentLoader`]) parses `('storage', type, key, location, numel[, view])`
//! and asks a [`StorageSource`] (the container) for the bytes.

pub mod interpret;
pub mod opcodes;
pub mod policy;
pub mod vm;

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::{Limits, StrEncoding};
use crate::value::{Graph, Value};

pub use vm::unpickle;

/// Options for one unpickling run.
#[derive(Clone, Debug, Default)]
pub struct UnpickleOptions {
    pub weights_only: bool,
    /// Extra allowed globals (`module.qualname`).
    pub safe_globals: Vec<String>,
    pub encoding: StrEncoding,
    pub limits: Limits,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct UnpickleOutput {
    pub root: Value,
    /// Bytes consumed, including STOP (the legacy format has several pickles back to back).
    pub consumed: usize,
    /// Every GLOBAL the stream named, `module.name` as written (before Python 2 name mapping), first-seen order.
    pub globals: Vec<String>,
    /// Protocol from the PROTO opcode (0 when absent).
    pub protocol: u8,
}

/// Resolves persistent ids.
pub trait PersistentLoad {
    fn persistent_load(&mut self, graph: &mut Graph, pid: Value) -> Result<Value>;

    /// The element type a persistent-load result (`Node::Storage` node `node`) was declared
    /// with, when it differs from what `Graph::storages[id].dtype` says: storages are deduped
    /// by key, but each persistent id names its own storage type and a tensor takes its dtype
    /// from its own id (FORMAT.md 3.1). `None`: use the storage's dtype.
    fn storage_dtype(&self, node: crate::value::NodeId) -> Option<DType> {
        let _ = node;
        None
    }
}

/// A container's storages, looked up by key.
pub trait StorageSource {
    /// The bytes of storage `key`, which the persistent id says holds `nbytes` bytes of
    /// `dtype` elements. `Ok(None)` means "not known yet": the legacy and tar formats store
    /// storages after the pickle and fill `Storage::data` in afterwards.
    fn storage(&mut self, key: &str, dtype: DType, nbytes: u64) -> Result<Option<ByteView>>;
}

pub use interpret::TorchPersistentLoader;
