//! Atomic replacement of a file: write a temporary file in the target's folder (same file
//! system, so the rename is atomic), fsync it, rename it over the target, fsync the folder.
//! The fsyncs (durability against power loss) are optional (`durable`); atomicity is not.
//! On any error the temporary file is removed and the old target is untouched; a crash
//! mid-write never leaves a half-written target.
//!
//! On Linux the temporary file is unnamed (`O_TMPFILE`) while it is written and gets a name
//! (`linkat` through `/proc/self/fd`) only once complete, so even a SIGKILL mid-write leaves
//! nothing behind (`torchsave convert` killed with `kill -9`). Where that is unavailable
//! (other systems, file systems without `O_TMPFILE`, no `/proc`) a crash can leave a
//! `.<name>.torchsave-<pid>-<n>.tmp` beside the target.

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

/// Creates `target` atomically and durably with what `write` puts into the (empty, new)
/// file: [`replace_with_opts`] with `durable = true`.
pub fn replace_with<F>(target: &Path, write: F) -> Result<()>
where
    F: FnOnce(&File) -> Result<()>,
{
    replace_with_opts(target, true, write)
}

/// Creates `target` atomically with what `write` puts into the (empty, new) file. `durable`:
/// fsync the file before it gets its name and the folder after, so the new file survives a
/// power loss; without it the replacement is still atomic for every process (a killed writer
/// leaves the old file or the complete new one) but the OS writes the data back later, as
/// with torch.save or `cp`.
pub fn replace_with_opts<F>(target: &Path, durable: bool, write: F) -> Result<()>
where
    F: FnOnce(&File) -> Result<()>,
{
    let in_file = |e: Error| e.in_file(target.display().to_string());
    let pending = Pending::create(target)?;
    write(pending.file()).map_err(in_file)?;
    pending.commit_with(durable)
}

/// Writes `path` atomically through a buffered `fill` (a failed, cancelled or killed writer
/// never leaves a half-written file at `path` and never damages an existing one); returns
/// the new file's size. `durable` as in [`replace_with_opts`].
pub fn write_atomic(
    path: &Path,
    durable: bool,
    fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<()>,
) -> Result<u64> {
    use std::io::Write;
    let mut len = 0;
    replace_with_opts(path, durable, |file| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush().map_err(|e| Error::io(e, "write"))?;
        drop(w);
        len = file.metadata().map_err(|e| Error::io(e, "stat"))?.len();
        Ok(())
    })?;
    Ok(len)
}

/// A temporary file that will become `target`: created by [`Pending::create`], filled through
/// [`Pending::file`], made durable and named by [`Pending::commit`]. Dropped uncommitted, it
/// leaves nothing behind (the unnamed file vanishes; a named fallback is removed).
///
/// The split lets a caller keep working while the commit's fsync waits for the disk (the
/// converter commits on other threads, where concurrent fsyncs share journal commits).
pub struct Pending {
    file: File,
    target: PathBuf,
    /// The hidden named temporary, when no unnamed file could be made.
    named: Cleanup,
}

impl Pending {
    /// A new, empty temporary file in `target`'s folder.
    pub fn create(target: &Path) -> Result<Pending> {
        let in_file = |e: Error| e.in_file(target.display().to_string());
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed::create(target) {
            return Ok(Pending {
                file,
                target: target.to_path_buf(),
                named: Cleanup(None),
            });
        }
        let tmp = temp_path(target).map_err(in_file)?;
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| in_file(Error::io(e, "creating the temporary file")))?;
        Ok(Pending {
            file,
            target: target.to_path_buf(),
            named: Cleanup(Some(tmp)),
        })
    }

    /// The temporary file (open for reading and writing).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The path the file gets on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsync, then give the file its name (replacing an existing one), then fsync the folder.
    pub fn commit(self) -> Result<()> {
        self.commit_with(true)
    }

    /// [`Pending::commit`], with the fsyncs only when `durable` (the naming stays atomic).
    pub fn commit_with(mut self, durable: bool) -> Result<()> {
        let target = self.target.clone();
        let in_file = |e: Error| e.in_file(target.display().to_string());
        if durable {
            self.file
                .sync_all()
                .map_err(|e| in_file(Error::io(e, "syncing the temporary file")))?;
        }
        match self.named.0.take() {
            #[cfg(target_os = "linux")]
            None => unnamed::publish(&self.file, &target).map_err(in_file)?,
            #[cfg(not(target_os = "linux"))]
            None => {}
            Some(tmp) => {
                // Re-armed so a failed rename still removes the temporary.
                self.named.0 = Some(tmp.clone());
                std::fs::rename(&tmp, &target).map_err(|e| {
                    in_file(Error::io(e, "renaming the temporary file over the target"))
                })?;
                self.named.0 = None;
            }
        }
        if durable {
            sync_dir(&target);
        }
        Ok(())
    }
}

#[cfg(target_os = "linux")]
mod unnamed {
    use super::temp_path;
    use crate::error::{Error, Result};
    use std::ffi::CString;
    use std::fs::{File, OpenOptions};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    use std::path::{Path, PathBuf};

    fn dir_of(target: &Path) -> PathBuf {
        match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// An unnamed file in the target's folder, or `None` when the system cannot make one
    /// (or could not name it later: no `/proc`), so the caller uses a named temporary.
    pub fn create(target: &Path) -> Option<File> {
        if !Path::new("/proc/self/fd").is_dir() {
            return None;
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(dir_of(target))
            .ok()
    }

    fn link(file: &File, to: &Path) -> std::io::Result<()> {
        let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        let to = CString::new(to.as_os_str().as_bytes())?;
        // SAFETY: both are NUL-terminated paths that outlive the call; the fd is open.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Gives the complete file its name. linkat cannot replace, so an existing target is
    /// replaced through a hidden name and a rename (no data is written in between).
    pub fn publish(file: &File, target: &Path) -> Result<()> {
        match link(file, target) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(e, "naming the written file")),
        }
        let tmp = temp_path(target)?;
        link(file, &tmp).map_err(|e| Error::io(e, "naming the written file"))?;
        std::fs::rename(&tmp, target).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(e, "renaming the temporary file over the target")
        })
    }
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
    fn pending_appears_only_on_commit_and_vanishes_when_dropped() {
        let d = scratch("pending");
        let target = d.join("out.safetensors");
        std::fs::write(&target, b"old").ok();
        let p = Pending::create(&target).unwrap();
        let mut f = p.file();
        f.write_all(b"new bytes").unwrap();
        // Written but not committed: the old file is untouched, no other name exists.
        assert_eq!(std::fs::read(&target).ok(), Some(b"old".to_vec()));
        assert_eq!(entries(&d), vec!["out.safetensors".to_string()]);
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).ok(), Some(b"new bytes".to_vec()));
        assert_eq!(entries(&d), vec!["out.safetensors".to_string()]);

        let other = d.join("never.safetensors");
        let p = Pending::create(&other).unwrap();
        p.file().write_all(b"lost").unwrap();
        drop(p);
        assert_eq!(entries(&d), vec!["out.safetensors".to_string()]);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn not_durable_is_still_atomic() {
        let d = scratch("fast");
        let target = d.join("model.pt");
        std::fs::write(&target, b"old").ok();
        let r = replace_with_opts(&target, false, |mut f| {
            f.write_all(b"half").map_err(|e| Error::io(e, "w"))?;
            crate::bail!(Unserializable, "boom")
        });
        assert_eq!(r.map_err(|e| e.code), Err(ErrorCode::Unserializable));
        assert_eq!(std::fs::read(&target).ok(), Some(b"old".to_vec()));
        assert_eq!(entries(&d), vec!["model.pt".to_string()]);
        let r = replace_with_opts(&target, false, |mut f| {
            f.write_all(b"new").map_err(|e| Error::io(e, "w"))
        });
        assert!(r.is_ok());
        assert_eq!(std::fs::read(&target).ok(), Some(b"new".to_vec()));
        assert_eq!(entries(&d), vec!["model.pt".to_string()]);
        let fresh = d.join("fresh.pt");
        assert!(replace_with_opts(&fresh, false, |mut f| {
            f.write_all(b"x").map_err(|e| Error::io(e, "w"))
        })
        .is_ok());
        assert_eq!(std::fs::read(&fresh).ok(), Some(b"x".to_vec()));
        let _ = std::fs::remove_dir_all(&d);
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
