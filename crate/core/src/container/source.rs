//! Opening a file: a copy-on-write memory map, or one eager read.
//!
//! The map is private (`MAP_PRIVATE`): JS receives external ArrayBuffers that point straight
//! into it and may write through them; those writes must land in private pages and never reach
//! the file. A read-only map would SIGSEGV on such a write, a shared one would modify the file.
//! Without mmap the file is read with one `read_exact` into a buffer of exactly its length.
//!
//! Every map is registered with [`crate::mapguard`] for its lifetime ([`MappedFile`]): a
//! truncation by another process then reads as zeros instead of raising SIGBUS, and
//! [`Backing::check`] reports the change (`E_FILE_CHANGED`). A map that cannot be guarded
//! (the registry is full) is not kept: the file is read eagerly instead.

use crate::bytes::{Backing, ByteView};
use crate::error::{Error, Result};
use crate::mapguard::{Guard, Identity};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Opens `path` as bytes: a private copy-on-write map when `mmap` is true, else an owned read.
/// An empty file is `E_TRUNCATED` (no torch format is empty).
pub fn open(path: &Path, mmap: bool) -> Result<ByteView> {
    let file = File::open(path).map_err(|e| Error::io(e, "cannot open the file"))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(e, "cannot stat the file"))?
        .len();
    if len == 0 {
        crate::bail!(Truncated, "the file is empty");
    }
    let len_usize = usize::try_from(len).map_err(|_| {
        crate::err!(
            LimitExceeded,
            "the file ({len} bytes) does not fit in this process's address space"
        )
    })?;
    if mmap {
        let id = Identity::of(&file, path).map_err(|e| Error::io(e, "cannot stat the file"))?;
        // SAFETY: the map is private and copy-on-write, so writes through it never reach the file.
        // The hazard of any file mapping (another process truncates the file, touching the lost
        // pages raises SIGBUS) is handled by the guard registered below, before any byte of
        // the map is read; a map we cannot guard is dropped unread.
        let map = unsafe { memmap2::MmapOptions::new().len(len_usize).map_copy(&file) }
            .map_err(|e| Error::io(e, "cannot map the file"))?;
        if let Some(guard) = Guard::register(map.as_ptr(), map.len(), id) {
            return Ok(ByteView::new(Arc::new(MappedFile { guard, map })));
        }
        drop(map);
    }
    let shrank = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            crate::err!(Truncated, "the file shrank while it was being read")
        } else {
            Error::io(e, "cannot read the file")
        }
    };
    let mut buf = vec![0u8; len_usize];
    read_parallel(&file, &mut buf).map_err(shrank)?;
    Ok(ByteView::from_vec(buf))
}

/// A guarded file mapping (see [`crate::mapguard`]).
struct MappedFile {
    // Dropped first: unregistered before it is unmapped.
    guard: Guard,
    map: memmap2::MmapMut,
}

impl Backing for MappedFile {
    fn bytes(&self) -> &[u8] {
        &self.map
    }
    fn check(&self) -> Result<()> {
        self.guard.check()
    }
}

/// Eager reads are split into chunks of this size, read concurrently.
const READ_CHUNK: usize = 32 << 20;

/// Fills `buf` from the start of `file`. On unix big files are read in chunks on rayon's
/// threads (`pread`): filling fresh memory costs a page fault and a zeroed page per 4 KiB,
/// and that work, not the disk or the page cache, is what bounds an eager load; spread over
/// the cores it goes proportionally faster.
fn read_parallel(mut file: &File, buf: &mut [u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    if buf.len() > READ_CHUNK {
        use rayon::prelude::*;
        use std::os::unix::fs::FileExt;
        return buf
            .par_chunks_mut(READ_CHUNK)
            .enumerate()
            .try_for_each(|(i, chunk)| file.read_exact_at(chunk, (i * READ_CHUNK) as u64));
    }
    file.read_exact(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn temp(name: &str, content: &[u8]) -> std::path::PathBuf {
        let p =
            std::env::temp_dir().join(format!("torchsave-source-{}-{name}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn reads_both_ways_and_mmap_is_private() {
        let p = temp("a", b"hello world");
        for mmap in [false, true] {
            let v = open(&p, mmap).unwrap();
            assert_eq!(v.as_slice(), b"hello world");
            // Writing through the backing (what JS may do) never changes the file.
            unsafe { *v.backing().as_mut_ptr() = b'J' };
            assert_eq!(v.as_slice()[0], b'J');
            assert_eq!(std::fs::read(&p).unwrap(), b"hello world");
        }
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn empty_and_missing_files() {
        let p = temp("empty", b"");
        for mmap in [false, true] {
            assert_eq!(open(&p, mmap).unwrap_err().code, ErrorCode::Truncated);
        }
        std::fs::remove_file(&p).unwrap();
        assert_eq!(open(&p, false).unwrap_err().code, ErrorCode::Io);
    }

    /// What `torch.save(obj, same_path)` does to a file we mapped, in this process: the reads
    /// must survive (zeros past the new end) and the check must say so.
    #[test]
    fn a_truncated_mapping_reads_zeros_and_reports_the_change() {
        let page: usize = 4096;
        let content: Vec<u8> = (0..3 * page + 100).map(|i| (i % 251) as u8 + 1).collect();
        for cut in [0, page + 10] {
            let p = temp(&format!("trunc{cut}"), &content);
            let v = open(&p, true).unwrap();
            assert!(crate::mapguard::is_guarded(v.as_slice().as_ptr()));
            assert!(v.check().is_ok());
            let before = crate::mapguard::faults_handled();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(cut as u64)
                .unwrap();
            // Every byte, through the mapping: no SIGBUS.
            let bytes = v.as_slice();
            let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
            let kept = cut.div_ceil(page) * page;
            // Pages before the new end keep the file's bytes, the rest read as zeros.
            assert_eq!(&bytes[..cut], &content[..cut]);
            assert!(bytes[kept.min(bytes.len())..].iter().all(|&b| b == 0));
            assert!(sum > 0 || cut == 0);
            assert!(crate::mapguard::faults_handled() > before);
            assert_eq!(v.check().unwrap_err().code, ErrorCode::FileChanged);
            drop(v);
            std::fs::remove_file(&p).unwrap();
        }
    }

    #[test]
    fn overwrite_in_place_is_detected_and_replace_keeps_the_old_bytes() {
        let p = temp("overwrite", &[7u8; 10000]);
        let v = open(&p, true).unwrap();
        // File-system timestamps are coarse (a few ms): let the clock move first.
        std::thread::sleep(std::time::Duration::from_millis(30));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.write_all(&[9u8; 10000]).unwrap();
        }
        // MAP_PRIVATE does not protect pages we never wrote: they show the new bytes.
        assert_eq!(v.as_slice()[5000], 9);
        assert_eq!(v.check().unwrap_err().code, ErrorCode::FileChanged);
        drop(v);

        let v = open(&p, true).unwrap();
        let other = temp("overwrite-new", &[1u8; 50]);
        std::fs::rename(&other, &p).unwrap();
        assert!(v.as_slice().iter().all(|&b| b == 9));
        assert!(
            v.check().is_ok(),
            "a replaced path leaves our mapping valid"
        );
        drop(v);
        std::fs::remove_file(&p).unwrap();
    }
}
