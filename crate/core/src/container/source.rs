//! Opening a file: a copy-on-write memory map, or one eager read.
//!
//! The map is private (`MAP_PRIVATE`): JS receives external ArrayBuffers that point straight
//! into it and may write through them; those writes must land in private pages and never reach
//! the file. A read-only map would SIGSEGV on such a write, a shared one would modify the file.
//! Without mmap the file is read with one `read_exact` into a buffer of exactly its length.

use crate::bytes::ByteView;
use crate::error::{Error, Result};
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
        // SAFETY: the map is private and copy-on-write, so writes through it never reach the file.
        // The documented hazard of any file mapping remains: if another process truncates the
        // file while it is mapped, touching the lost pages raises SIGBUS. torch.load(mmap=True)
        // has the same exposure; callers who cannot rule it out pass `mmap: false`.
        let map = unsafe { memmap2::MmapOptions::new().len(len_usize).map_copy(&file) }
            .map_err(|e| Error::io(e, "cannot map the file"))?;
        return Ok(ByteView::new(Arc::new(map)));
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
}
