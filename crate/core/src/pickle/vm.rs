//! (stub: helper A)
use super::{PersistentLoad, UnpickleOptions, UnpickleOutput};
use crate::error::Result;
use crate::value::Graph;

pub fn unpickle(
    bytes: &[u8],
    graph: &mut Graph,
    opts: &UnpickleOptions,
    loader: &mut dyn PersistentLoad,
) -> Result<UnpickleOutput> {
    let _ = (bytes, graph, opts, loader);
    crate::bail!(BadPickle, "not implemented yet")
}
