//! The writer: a graph in, the bytes torch.save would write out.
//!
//! * [`pickler`] emits protocol 2 exactly as CPython's pickler does (opcodes, memo numbering,
//!   batching), with storages as persistent ids;
//! * [`zip_write`] lays records out as PyTorch's miniz writer does (FB padding to 64, data
//!   descriptors, zip64 rules, record order);
//! * [`legacy_write`] writes the pre-1.6 stream;
//! * [`atomic`] writes to a temporary file in the target's folder, fsyncs and renames.

pub mod atomic;
pub mod legacy_write;
pub mod pickler;
pub mod zip_write;

use crate::error::Result;
use crate::options::SaveOptions;
use crate::value::Graph;
use std::io::Write;
use std::path::Path;

/// Writes `graph` to `w` (a stream: no seeking needed).
pub fn save_to_writer<W: Write>(graph: &Graph, w: &mut W, opts: &SaveOptions) -> Result<()> {
    let _ = (graph, w, opts);
    crate::bail!(InvalidArgument, "writer not implemented yet")
}

/// Writes `graph` to `path` atomically: the old file stays intact until the new one is
/// complete and synced.
pub fn save_to_path(graph: &Graph, path: &Path, opts: &SaveOptions) -> Result<()> {
    let _ = (graph, path, opts);
    crate::bail!(InvalidArgument, "writer not implemented yet")
}
