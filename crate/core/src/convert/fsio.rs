//! Atomic output files: see [`crate::writer::atomic`] (one implementation for every output:
//! an unnamed temporary file on Linux, a hidden named one elsewhere; fsync unless not
//! `durable`; then a name).
//!
//! A failed, cancelled or killed conversion never leaves a half-written file at the output
//! path and never damages an existing one (ARCHITECTURE.md, "Errors").

use crate::error::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` through `fill`; the file appears complete or not at all. Returns its size.
/// `durable`: fsync the file and its folder before/after naming it (see
/// [`crate::writer::atomic::replace_with_opts`]); atomic either way.
pub fn write_atomic(
    path: &Path,
    durable: bool,
    fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let mut len = 0;
    crate::writer::atomic::replace_with_opts(path, durable, |file| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush().map_err(|e| Error::io(e, "write"))?;
        drop(w);
        len = file.metadata().map_err(|e| Error::io(e, "stat"))?.len();
        Ok(())
    })?;
    Ok(len)
}
