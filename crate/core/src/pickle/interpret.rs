//! (stub: helper A)
use super::{PersistentLoad, StorageSource};
use crate::error::Result;
use crate::value::{Graph, Value};

/// The standard torch persistent loader over a container's storages.
pub struct TorchPersistentLoader<'a> {
    pub source: &'a mut dyn StorageSource,
}

impl PersistentLoad for TorchPersistentLoader<'_> {
    fn persistent_load(&mut self, graph: &mut Graph, pid: Value) -> Result<Value> {
        let _ = (graph, pid);
        crate::bail!(BadPickle, "not implemented yet")
    }
}
