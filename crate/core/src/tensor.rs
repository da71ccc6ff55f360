//! (stub: helper A) tensor validation and contiguous bytes

// --- Temporary stub added by the containers branch so detect.rs compiles. The real
// implementation (the pickle/tensor helper's branch) replaces this whole file at merge.
use crate::error::Result;
use crate::options::Limits;
use crate::value::Graph;

/// Checks every view against its storage (see value.rs invariants).
pub fn validate_graph(graph: &Graph, limits: &Limits) -> Result<()> {
    let _ = (graph, limits);
    Ok(())
}
