//! Atomic replacement of a file: write a temporary file in the target's folder (same file
//! system, so the rename is atomic), fsync it, rename it over the target, fsync the folder.
//! On any error the temporary file is removed and the old target is untouched.
//!
//! On Linux the temporary file is anonymous (`O_TMPFILE`): it has no name while it is being
//! written, so even a `kill -9` or a power cut mid-save leaves nothing behind. Only once it
//! is complete and synced is it linked under a temporary name and renamed over the target
//! (a window of two syscalls). Where `O_TMPFILE` is unsupported (some file systems, other
//! systems) a named `.<name>.torchsave-<pid>-<n>.tmp` is used instead, which a crash
//! mid-write can leave behind — never a half-written target either way.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp-file name unique within this process and unlikely to collide across processes.
fn temp_path(target: &Path) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        crate::err!(
            InvalidArgument,
            "'{}' does not name a file",
            target.display()
        )
    })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(
        ".{}.torchsave-{}-{}{:08x}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        n,
        nanos
    );
    Ok(target.with_file_name(tmp))
}

/// Removes the temp file unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Creates `target` atomically with what `write` puts into the (empty, new) file.
pub fn replace_with<F>(target: &Path, write: F) -> Result<()>
where
    F: FnOnce(&File) -> Result<()>,
{
    let in_file = |e: Error| e.in_file(target.display().to_string());
    let tmp = temp_path(target).map_err(in_file)?;
    #[cfg(target_os = "linux")]
    if let Some(file) = anonymous_file(target) {
        write(&file).map_err(in_file)?;
        file.sync_all()
            .map_err(|e| in_file(Error::io(e, "syncing the temporary file")))?;
        link_anonymous(&file, &tmp).map_err(in_file)?;
        let mut guard = Cleanup(Some(tmp.clone()));
        drop(file);
        std::fs::rename(&tmp, target)
            .map_err(|e| in_file(Error::io(e, "renaming the temporary file over the target")))?;
        guard.0 = None;
        sync_dir(target);
        return Ok(());
    }
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| in_file(Error::io(e, "creating the temporary file")))?;
    let mut guard = Cleanup(Some(tmp.clone()));
    write(&file).map_err(in_file)?;
    file.sync_all()
        .map_err(|e| in_file(Error::io(e, "syncing the temporary file")))?;
    drop(file);
    std::fs::rename(&tmp, target)
        .map_err(|e| in_file(Error::io(e, "renaming the temporary file over the target")))?;
    guard.0 = None;
    sync_dir(target);
    Ok(())
}

/// An unnamed file in the target's folder, or `None` where `O_TMPFILE` is unsupported.
#[cfg(target_os = "linux")]
fn anonymous_file(target: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

/// Gives an anonymous file a name: `linkat` through `/proc/self/fd` (no privileges needed,
/// unlike `AT_EMPTY_PATH`).
#[cfg(target_os = "linux")]
fn link_anonymous(file: &File, name: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let src = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| crate::err!(Io, "bad fd path"))?;
    let dst = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| crate::err!(InvalidArgument, "the path contains a NUL byte"))?;
    // SAFETY: both arguments are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            std::io::Error::last_os_error(),
            "naming the temporary file",
        ));
    }
    Ok(())
}

/// Makes the rename durable. Best effort: some file systems refuse fsync on folders, and the
/// new file is already complete either way.
fn sync_dir(target: &Path) {
    #[cfg(unix)]
    {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = target;
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("torchsave-atomic-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).ok();
        d
    }

    fn entries(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn error_keeps_old_file_and_leaves_no_temp() {
        let d = scratch("err");
        let target = d.join("model.pt");
        std::fs::write(&target, b"old").ok();
        let r = replace_with(&target, |mut f| {
            f.write_all(b"half").map_err(|e| Error::io(e, "w"))?;
            crate::bail!(Unserializable, "boom")
        });
        assert_eq!(r.map_err(|e| e.code), Err(ErrorCode::Unserializable));
        assert_eq!(std::fs::read(&target).ok(), Some(b"old".to_vec()));
        assert_eq!(entries(&d), vec!["model.pt".to_string()]);
    }

    #[test]
    fn success_replaces() {
        let d = scratch("ok");
        let target = d.join("model.pt");
        std::fs::write(&target, b"old").ok();
        let r = replace_with(&target, |mut f| {
            f.write_all(b"new").map_err(|e| Error::io(e, "w"))
        });
        assert!(r.is_ok());
        assert_eq!(std::fs::read(&target).ok(), Some(b"new".to_vec()));
        assert_eq!(entries(&d), vec!["model.pt".to_string()]);
    }
}
