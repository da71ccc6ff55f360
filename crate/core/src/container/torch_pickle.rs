//! The torch-pickle plumbing every container shares: unpickle options from load options,
//! the one place that builds PyTorch's persistent loader ([`torch_loader`], so a change to
//! its constructor touches one line), and the loader for pickles that must hold no
//! persistent ids. The containers (`zip_read`, `legacy`, `tar_read`) and the bare-pickle
//! path in `detect` import it; it imports no container, so the dispatcher and the readers
//! form no import circle.

use crate::error::Result;
use crate::options::LoadOptions;
use crate::pickle::{
    self, PersistentLoad, StorageSource, TorchPersistentLoader, UnpickleOptions, UnpickleOutput,
};
use crate::value::{Graph, Value};

/// Unpickle options from load options.
pub(crate) fn unpickle_options(opts: &LoadOptions) -> UnpickleOptions {
    UnpickleOptions {
        weights_only: opts.weights_only,
        safe_globals: opts.safe_globals.clone(),
        encoding: opts.encoding,
        limits: opts.limits.clone(),
    }
}

/// The single place that builds PyTorch's persistent loader over a container's storages.
pub(crate) fn torch_loader(source: &mut dyn StorageSource) -> TorchPersistentLoader<'_> {
    TorchPersistentLoader::new(source)
}

/// Runs an object pickle with the standard torch persistent loader.
pub(crate) fn run_torch_pickle(
    bytes: &[u8],
    graph: &mut Graph,
    opts: &LoadOptions,
    source: &mut dyn StorageSource,
) -> Result<UnpickleOutput> {
    let mut loader = torch_loader(source);
    pickle::unpickle(bytes, graph, &unpickle_options(opts), &mut loader)
}

/// A persistent loader for pickles that must not contain persistent ids (bare pickles,
/// metadata pickles inside containers).
pub(crate) struct NoPersistentIds;

impl PersistentLoad for NoPersistentIds {
    fn persistent_load(&mut self, _graph: &mut Graph, _pid: Value) -> Result<Value> {
        crate::bail!(
            BadPickle,
            "the pickle refers to external storage (a persistent id) but this container has no storages; \
             a bare pickle cannot hold tensors — was the file written by torch.save?"
        )
    }
}
