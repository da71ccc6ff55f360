//! Atomic output files: write to a temporary sibling, fsync, rename over the target.
//!
//! A failed or cancelled conversion never leaves a half-written file at the output path and
//! never damages an existing one (ARCHITECTURE.md, "Errors"). The temporary file lives in
//! the target's folder so the rename stays on one filesystem.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path(target: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = format!(".{name}.tmp-{}-{n}", std::process::id());
    target.with_file_name(tmp)
}

/// Writes `path` through `fill`; the file appears complete or not at all.
pub fn write_atomic(
    path: &Path,
    fill: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<u64> {
    let tmp = temp_path(path);
    let mut run = || -> Result<u64> {
        let file =
            File::create(&tmp).map_err(|e| Error::io(e, &format!("create {}", tmp.display())))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush().map_err(|e| Error::io(e, "write"))?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(e.into_error(), "write"))?;
        file.sync_all().map_err(|e| Error::io(e, "fsync"))?;
        let len = file.metadata().map_err(|e| Error::io(e, "stat"))?.len();
        std::fs::rename(&tmp, path)
            .map_err(|e| Error::io(e, &format!("rename to {}", path.display())))?;
        Ok(len)
    };
    let r = run();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| e.in_file(path.display().to_string()))
}
