//! Atomic output files for the converter: a thin adapter from a streaming writer to
//! [`crate::writer::atomic::replace_with`], so every output (pt or safetensors) gets the same
//! crash-safety: the file appears complete or not at all, and an existing one is never damaged.

use crate::error::{Error, Result};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes `path` through `fill`; returns the number of bytes written.
pub fn write_atomic(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let mut len = 0;
    crate::writer::atomic::replace_with(path, |file| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush().map_err(|e| Error::io(e, "write"))?;
        drop(w);
        len = file.metadata().map_err(|e| Error::io(e, "stat"))?.len();
        Ok(())
    })?;
    Ok(len)
}
