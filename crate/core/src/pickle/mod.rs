//! The pickle layer: a VM for protocols 0-5 that never executes anything.
//!
//! `unpickle` runs one pickle (up to and including its STOP) and builds nodes in a `Graph`.
//! GLOBAL pushes a `Node::Global`; REDUCE/NEWOBJ/BUILD on a global are handed to
//! [`interpret`], which turns known reconstructors (tensors, OrderedDict, Size, device, dtypes,
//! numpy, `_codecs.encode`, set/frozenset/bytearray/complex, ...) into typed nodes and
//! everything else into `PyObject`s. [`policy`] is the one value that decides, before anything
//! is built, whether an opcode, global, call, BUILD, APPEND/SETITEM target or persistent id is
//! allowed under `weights_only` (and keeps inspect's verdict).
//!
//! Persistent ids (BINPERSID/PERSID) are handed to a [`PersistentLoad`]; the standard torch
//! one ([`TorchPersistentLoader`]) parses `('storage', type, key, location, numel[, view])`
//! and asks a [`StorageSource`] (the container) for the bytes.

mod args;
pub mod interpret;
mod kinds;
mod numpy;
pub mod opcodes;
mod persistent;
pub mod policy;
mod reconstruct;
pub mod trace;
pub mod vm;

use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::{Limits, StrEncoding};
use crate::value::{Graph, Value};

pub use numpy::{descr_itemsize, descr_name};
pub use vm::{trace, unpickle, unpickle_with_policy, TraceRun};

/// Options for one unpickling run.
#[derive(Clone, Debug, Default)]
pub struct UnpickleOptions {
    pub weights_only: bool,
    /// Extra allowed globals (`module.qualname`).
    pub safe_globals: Vec<String>,
    pub encoding: StrEncoding,
    pub limits: Limits,
}

impl UnpickleOptions {
    /// The weights-only policy these options ask for (a fresh verdict).
    pub fn policy(&self) -> policy::Policy {
        policy::Policy::new(self.weights_only, &self.safe_globals)
    }
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
    /// The first construct torch 2.11's default weights-only policy refuses in this pickle
    /// (`None`: it accepts it), whatever `weights_only` was; see [`policy::Policy::refusal`].
    pub weights_only_refusal: Option<String>,
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

pub use persistent::TorchPersistentLoader;
