//! Writing a zip archive into a file as fast as the machine allows, with the same bytes as
//! [`super::zip_write::write_stream`] (torch.save's bytes).
//!
//! Where the time of a 1 GiB save goes (bench/save.js, `examples/save_phases.rs`; 2-core VM,
//! ext4 on virtio): pickling < 5 ms; CRC-32 ~100 ms on two threads; copying the bytes into the
//! page cache 0.3-2 s (the kernel's copy into fresh page-cache pages, `perf`: 72% in
//! `copy_folio_from_iter_atomic`; the spread is other processes' journal commits); the fsync
//! afterwards ~0.5 s. Hence:
//!
//! * **CRC-32 runs while the data is written.** The layout depends on sizes only, so the file
//!   is written from a plan with placeholder CRCs, leaving out the few bytes that depend on
//!   the CRCs of big records ("late" pieces: their data descriptors, the serialization id
//!   record and its descriptor, the central directory). Those are written once the CRCs,
//!   computed meanwhile on the rayon pool, are known. Records under [`EARLY_CRC_MAX`] get
//!   their CRC first (cheap), so a file of many small tensors has no late descriptors.
//! * **Buffered writes** ([`Mode::Buffered`], `durable: false`, and small or non-Linux
//!   durable saves): one thread, big records straight from the tensors' memory (no
//!   intermediate copy) in 1 MiB `pwrite`s ([`WRITE_CHUNK`]: whole-tensor writes of 16 MiB
//!   were up to 10x slower), small pieces coalesced in a 1 MiB buffer. More threads do not help:
//!   Linux file systems serialise buffered writes to one file on its inode lock (parallel
//!   `pwrite`s measured no faster, and often slower, than one thread).
//! * **Direct writes** ([`Mode::Direct`], durable saves of [`DIRECT_MIN`] bytes or more on
//!   Linux): the data must reach the disk anyway, so `O_DIRECT` sends it there once instead of
//!   filling the page cache and then waiting for its writeback in `fsync`. [`DIRECT_THREADS`]
//!   threads copy the file image into [`DIRECT_BLOCK`]-byte aligned buffers and write them,
//!   keeping several requests in flight (memory bound: threads × block = 32 MiB). Measured
//!   0.6-1.0 s per GiB including the fsync, against 1.1-3.9 s for buffered + fsync
//!   (`sync_file_range` to start writeback early was slower still; 2, 4 or 8 threads and 4-16
//!   MiB blocks all measured alike). The file is preallocated
//!   (`fallocate`, so a full disk fails before the writing). Late pieces are rewritten as
//!   whole aligned pages. File systems that refuse `O_DIRECT` (`EINVAL`) get buffered writes.
//!
//! What must change together: the piece list ([`pieces`]) and `write_stream`'s order; the set
//! of late pieces and what `plan_with_crcs` derives from CRCs.

use super::zip_write::{crc32, plan_with_crcs, Plan, RecordSource};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::borrow::Cow;
use std::fs::File;

/// Records smaller than this get their CRC before writing starts.
pub const EARLY_CRC_MAX: usize = 1 << 20;
/// Coalescing buffer for small pieces; pieces at least this big are written directly.
const STAGE: usize = 1 << 20;
/// Most bytes per buffered write call. One 16 MiB `write` per tensor took 0.45-4.1 s per GiB
/// into the page cache (ext4, Linux 6.18) where 1-2 MiB calls took 0.34-0.40 s every time, and
/// 4 MiB calls were already erratic (`save_phases` modes `stream` and `chunkN`).
const WRITE_CHUNK: usize = 1 << 20;
/// Durable saves of at least this many bytes use direct I/O where available.
pub const DIRECT_MIN: u64 = 16 << 20;
/// Threads (requests in flight) for direct writes.
pub const DIRECT_THREADS: usize = 4;
/// Bytes per direct write.
pub const DIRECT_BLOCK: usize = 8 << 20;
/// Alignment of direct writes (memory, file offset, length): 4 KiB satisfies devices with
/// 512-byte and 4 KiB logical blocks.
const DIRECT_ALIGN: usize = 4096;

/// How the bytes get to the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Through the page cache (what `cp` and torch.save do).
    Buffered,
    /// `O_DIRECT` where the file system allows it, else buffered.
    Direct,
}

/// The mode a save uses: direct I/O only pays when the bytes must reach the disk now.
pub fn mode_for(durable: bool, total_len: u64) -> Mode {
    if durable && total_len >= DIRECT_MIN && cfg!(target_os = "linux") {
        Mode::Direct
    } else {
        Mode::Buffered
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Header(usize),
    Data(usize),
    Descriptor(usize),
    Tail,
}

/// A contiguous run of the file; the pieces tile `0..total_len` in order.
#[derive(Clone, Copy, Debug)]
struct Piece {
    off: u64,
    len: u64,
    kind: Kind,
    /// Depends on CRCs that are computed while the rest is written.
    late: bool,
}

impl Piece {
    fn end(&self) -> u64 {
        self.off + self.len
    }
}

/// The bytes behind pieces, from one plan.
struct Src<'a> {
    plan: &'a Plan,
    records: &'a [RecordSource<'a>],
    sid: &'a [u8],
}

impl<'a> Src<'a> {
    fn bytes(&self, p: &Piece) -> Result<Cow<'a, [u8]>> {
        let entry = |i: usize| {
            self.plan
                .entries
                .get(i)
                .ok_or_else(|| crate::err!(Unserializable, "internal: no zip entry {i}"))
        };
        let b: Cow<'a, [u8]> = match p.kind {
            Kind::Header(i) => entry(i)?.local_header().into(),
            Kind::Data(i) => self
                .records
                .get(i)
                .map(|r| r.data)
                .unwrap_or(self.sid)
                .into(),
            Kind::Descriptor(i) => entry(i)?.descriptor().into(),
            Kind::Tail => self.plan.tail.as_slice().into(),
        };
        if b.len() as u64 != p.len {
            crate::bail!(
                Unserializable,
                "internal: zip piece {:?} is {} bytes, planned {}",
                p.kind,
                b.len(),
                p.len
            );
        }
        Ok(b)
    }
}

/// The file's pieces in order (empty ones left out).
fn pieces(plan: &Plan, n_records: usize, large: &[bool]) -> Vec<Piece> {
    let any_large = large.contains(&true);
    let mut v = Vec::with_capacity(plan.entries.len() * 3 + 1);
    for (i, e) in plan.entries.iter().enumerate() {
        let is_sid = i >= n_records;
        let big = large.get(i).copied().unwrap_or(false);
        let header_len = e.data_offset - e.header_offset;
        v.push(Piece {
            off: e.header_offset,
            len: header_len,
            kind: Kind::Header(i),
            late: false,
        });
        v.push(Piece {
            off: e.data_offset,
            len: e.size,
            kind: Kind::Data(i),
            late: is_sid && any_large,
        });
        v.push(Piece {
            off: e.data_offset + e.size,
            len: e.descriptor_len(),
            kind: Kind::Descriptor(i),
            late: big || (is_sid && any_large),
        });
    }
    v.push(Piece {
        off: plan.tail_offset,
        len: plan.tail.len() as u64,
        kind: Kind::Tail,
        late: any_large,
    });
    v.retain(|p| p.len > 0);
    v
}

fn io(e: std::io::Error) -> Error {
    Error::io(e, "writing archive")
}

/// Writes `records` as a zip archive (folder `folder`) into the empty `file`; `mode` picks
/// the mode from the archive's size. Returns the mode used (direct I/O falls back to
/// buffered where the file system refuses it).
pub fn write_file(
    folder: &str,
    records: &[RecordSource<'_>],
    alignment: u64,
    file: &File,
    mode: impl FnOnce(u64) -> Mode,
) -> Result<Mode> {
    let large: Vec<bool> = records
        .iter()
        .map(|r| r.data.len() >= EARLY_CRC_MAX)
        .collect();
    let early: Vec<u32> = records
        .par_iter()
        .map(|r| {
            if r.data.len() >= EARLY_CRC_MAX {
                0
            } else {
                crc32fast::hash(r.data)
            }
        })
        .collect();
    let any_large = large.contains(&true);
    let (draft, draft_sid) = plan_with_crcs(folder, records, alignment, early.clone())?;
    let pieces = pieces(&draft, records.len(), &large);
    let total = draft.total_len;
    let mode = mode(total);
    let draft_src = Src {
        plan: &draft,
        records,
        sid: &draft_sid,
    };
    if !any_large {
        // Every CRC is known: one pass, no helper thread.
        let direct = pass1(file, &pieces, &draft_src, total, mode)?;
        return Ok(if direct { Mode::Direct } else { Mode::Buffered });
    }
    // Pass 1 (everything but the late pieces) on writer threads; CRCs of big records here.
    let (crcs, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| pass1(file, &pieces, &draft_src, total, mode));
        let crcs: Vec<u32> = records
            .par_iter()
            .zip(early.par_iter())
            .map(|(r, &c)| {
                if r.data.len() >= EARLY_CRC_MAX {
                    crc32(r.data)
                } else {
                    c
                }
            })
            .collect();
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(crate::err!(Io, "the archive writer thread panicked")));
        (crcs, written)
    });
    let used = if written? {
        Mode::Direct
    } else {
        Mode::Buffered
    };
    // Pass 2: the late pieces, from the final plan (same layout, real CRCs).
    let (plan, sid) = plan_with_crcs(folder, records, alignment, crcs)?;
    let src = Src {
        plan: &plan,
        records,
        sid: &sid,
    };
    if used == Mode::Direct {
        #[cfg(target_os = "linux")]
        direct::patch(file, &pieces, &src, total)?;
    } else {
        buffered(file, pieces.iter().filter(|p| p.late), &src)?;
    }
    Ok(used)
}

/// Writes every piece but the late ones. Returns whether direct I/O was used.
fn pass1(file: &File, pieces: &[Piece], src: &Src<'_>, total: u64, mode: Mode) -> Result<bool> {
    #[cfg(target_os = "linux")]
    if mode == Mode::Direct {
        match direct::write(file, pieces, src, total) {
            Ok(true) => return Ok(true),
            // Refused by the file system: start over through the page cache.
            Ok(false) => file
                .set_len(0)
                .map_err(|e| Error::io(e, "resetting the output file"))?,
            Err(e) => return Err(e),
        }
    }
    let _ = (total, mode);
    buffered(file, pieces.iter().filter(|p| !p.late), src)?;
    Ok(false)
}

/// Buffered positional writes of `pieces` (in file order): small ones coalesced, big ones
/// straight from their memory.
fn buffered<'p>(file: &File, pieces: impl Iterator<Item = &'p Piece>, src: &Src<'_>) -> Result<()> {
    let mut stage: Vec<u8> = Vec::new();
    let mut stage_off = 0u64;
    for p in pieces {
        let b = src.bytes(p)?;
        let contiguous = stage_off + stage.len() as u64 == p.off;
        if !stage.is_empty() && (!contiguous || stage.len() + b.len() > STAGE) {
            write_at(file, &stage, stage_off)?;
            stage.clear();
        }
        if b.len() >= STAGE {
            let mut off = p.off;
            for c in b.chunks(WRITE_CHUNK) {
                write_at(file, c, off)?;
                off += c.len() as u64;
            }
        } else {
            if stage.is_empty() {
                stage_off = p.off;
            }
            stage.extend_from_slice(&b);
        }
    }
    if !stage.is_empty() {
        write_at(file, &stage, stage_off)?;
    }
    Ok(())
}

/// A writer that passes at most [`WRITE_CHUNK`] bytes per `write` call to `W` (a file),
/// for streams written into the page cache (legacy saves); see [`WRITE_CHUNK`] for why.
pub struct Chunked<W>(pub W);

impl<W: std::io::Write> std::io::Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf.get(..WRITE_CHUNK).unwrap_or(buf))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], off: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, off).map_err(io)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut off: u64) -> Result<()> {
    use std::os::windows::fs::FileExt;
    while !bytes.is_empty() {
        let n = file.seek_write(bytes, off).map_err(io)?;
        if n == 0 {
            return Err(io(std::io::ErrorKind::WriteZero.into()));
        }
        bytes = bytes.get(n..).unwrap_or(&[]);
        off += n as u64;
    }
    Ok(())
}

/// Fills `buf` with the file image from `start`: late pieces as zeros when `late_zero`, and
/// zeros past the end of the file.
fn fill(
    buf: &mut [u8],
    start: u64,
    pieces: &[Piece],
    src: &Src<'_>,
    late_zero: bool,
) -> Result<()> {
    let end = start + buf.len() as u64;
    let mut pos = start;
    let first = pieces.partition_point(|p| p.end() <= start);
    for p in pieces.get(first..).unwrap_or(&[]) {
        if p.off >= end {
            break;
        }
        let from = pos.saturating_sub(p.off);
        let n = (p.len - from).min(end - pos);
        let dst = buf
            .get_mut((pos - start) as usize..(pos - start + n) as usize)
            .ok_or_else(|| crate::err!(Unserializable, "internal: piece outside its block"))?;
        if p.late && late_zero {
            dst.fill(0);
        } else {
            let b = src.bytes(p)?;
            let s = b.get(from as usize..(from + n) as usize).ok_or_else(|| {
                crate::err!(Unserializable, "internal: piece shorter than planned")
            })?;
            dst.copy_from_slice(s);
        }
        pos += n;
    }
    if let Some(rest) = buf.get_mut((pos - start) as usize..) {
        rest.fill(0);
    }
    Ok(())
}

#[cfg(target_os = "linux")]
mod direct {
    use super::{fill, io, Piece, Src, DIRECT_ALIGN, DIRECT_BLOCK, DIRECT_THREADS};
    use crate::error::{Error, Result};
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::os::unix::io::AsRawFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// A buffer whose start is aligned for direct I/O (no unsafe: an aligned window onto a
    /// slightly bigger Vec).
    struct Aligned {
        raw: Vec<u8>,
        start: usize,
        len: usize,
    }

    impl Aligned {
        fn new(len: usize) -> Result<Self> {
            let raw = vec![0u8; len + DIRECT_ALIGN];
            let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
            if start >= DIRECT_ALIGN {
                crate::bail!(Io, "cannot align a buffer for direct I/O");
            }
            Ok(Aligned { raw, start, len })
        }
        fn get(&mut self, len: usize) -> &mut [u8] {
            let end = self.start + len.min(self.len);
            self.raw.get_mut(self.start..end).unwrap_or(&mut [])
        }
    }

    fn round_up(n: u64) -> u64 {
        n.div_ceil(DIRECT_ALIGN as u64) * DIRECT_ALIGN as u64
    }

    fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on an open descriptor with integer arguments only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reserves the file's blocks so a full disk fails now; best effort otherwise.
    fn preallocate(file: &File, len: u64) -> Result<()> {
        let Ok(len) = libc::off_t::try_from(len) else {
            return Ok(());
        };
        // SAFETY: fallocate on an open descriptor with integer arguments only.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOSPC) {
                return Err(Error::io(e, "reserving space for the archive"));
            }
        }
        Ok(())
    }

    /// Pass 1 with `O_DIRECT`. `Ok(false)`: the file system refused direct I/O (nothing
    /// useful was written; the caller starts over buffered).
    pub fn write(file: &File, pieces: &[Piece], src: &Src<'_>, total: u64) -> Result<bool> {
        if set_direct(file, true).is_err() {
            return Ok(false);
        }
        preallocate(file, total)?;
        let blocks = total.div_ceil(DIRECT_BLOCK as u64);
        let next = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let refused = AtomicBool::new(false);
        let worker = || -> Result<()> {
            let mut buf: Option<Aligned> = None;
            while !stop.load(Ordering::Relaxed) {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= blocks {
                    break;
                }
                let start = b * DIRECT_BLOCK as u64;
                let len = round_up((total - start).min(DIRECT_BLOCK as u64)) as usize;
                if buf.is_none() {
                    buf = Some(Aligned::new(DIRECT_BLOCK)?);
                }
                let Some(a) = buf.as_mut() else { break };
                let out = a.get(len);
                if let Err(e) = fill(out, start, pieces, src, true) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
                if let Err(e) = file.write_all_at(out, start) {
                    stop.store(true, Ordering::Relaxed);
                    if e.raw_os_error() == Some(libc::EINVAL) {
                        refused.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                    return Err(io(e));
                }
            }
            Ok(())
        };
        let threads = DIRECT_THREADS.min(blocks.max(1) as usize);
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(crate::err!(Io, "a direct writer thread panicked")))
                })
                .collect()
        });
        for r in results {
            r?;
        }
        if refused.load(Ordering::Relaxed) {
            set_direct(file, false).map_err(|e| Error::io(e, "leaving direct I/O"))?;
            return Ok(false);
        }
        // Direct writes end on a 4 KiB boundary; cut the padding (pass 2 may pad again and
        // cuts again).
        file.set_len(total)
            .map_err(|e| Error::io(e, "sizing the output file"))?;
        Ok(true)
    }

    /// Pass 2: rewrites the aligned pages that hold late pieces, from the final plan.
    pub fn patch(file: &File, pieces: &[Piece], src: &Src<'_>, total: u64) -> Result<()> {
        let align = DIRECT_ALIGN as u64;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for p in pieces.iter().filter(|p| p.late) {
            let (s, e) = (p.off / align * align, round_up(p.end()));
            match ranges.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => ranges.push((s, e)),
            }
        }
        for (s, e) in ranges {
            let len = (e - s) as usize;
            let mut a = Aligned::new(len)?;
            let out = a.get(len);
            fill(out, s, pieces, src, false)?;
            file.write_all_at(out, s).map_err(io)?;
        }
        file.set_len(total)
            .map_err(|e| Error::io(e, "sizing the output file"))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::writer::zip_write::{plan, write_stream};

    fn records(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
            .collect()
    }

    fn expected(recs: &[RecordSource<'_>]) -> Vec<u8> {
        let (p, sid) = plan("archive", recs, 64).unwrap();
        let mut out = Vec::new();
        write_stream(&p, recs, &sid, &mut out).unwrap();
        out
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("torchsave-fw-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).ok();
        d.join("out.bin")
    }

    /// Whether the test folder's file system takes O_DIRECT (tmpfs before Linux 6.6 does not).
    fn direct_supported(path: &std::path::Path) -> bool {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let probe = path.with_extension("probe");
            let ok = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(&probe)
                .is_ok();
            let _ = std::fs::remove_file(probe);
            ok
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            false
        }
    }

    fn check(name: &str, sizes: &[usize], mode: Mode) {
        let data = records(sizes);
        let recs: Vec<RecordSource<'_>> = data
            .iter()
            .enumerate()
            .map(|(i, d)| RecordSource {
                name: format!("data/{i}"),
                data: d,
            })
            .collect();
        let path = scratch(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let used = write_file("archive", &recs, 64, &f, |_| mode).unwrap();
        drop(f);
        if mode == Mode::Buffered || direct_supported(&path) {
            assert_eq!(used, mode, "{name}");
        }
        let got = std::fs::read(&path).unwrap();
        if let Some(d) = path.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
        assert_eq!(got.len(), expected(&recs).len(), "{name}");
        assert!(
            got == expected(&recs),
            "{name}: bytes differ from write_stream"
        );
    }

    #[test]
    fn buffered_equals_stream() {
        check("b-small", &[10, 0, 3, 64], Mode::Buffered);
        check(
            "b-mixed",
            &[100, EARLY_CRC_MAX + 5, 7, 3 * STAGE + 1, 0, 12],
            Mode::Buffered,
        );
    }

    #[test]
    fn direct_equals_stream() {
        // Blocks boundaries inside records, headers and descriptors; a file that does not end
        // on a page; records below and above the early-CRC size.
        check(
            "d-mixed",
            &[
                100,
                DIRECT_BLOCK + 4000,
                7,
                EARLY_CRC_MAX,
                2 * DIRECT_BLOCK - 3,
                0,
                12,
            ],
            Mode::Direct,
        );
        check("d-small", &[1, 2, 3], Mode::Direct);
    }

    #[test]
    fn chunked_caps_each_write() {
        struct Sizes(Vec<usize>);
        impl std::io::Write for Sizes {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = Chunked(Sizes(Vec::new()));
        std::io::Write::write_all(&mut w, &vec![7u8; 2 * WRITE_CHUNK + 5]).unwrap();
        assert_eq!(w.0 .0, vec![WRITE_CHUNK, WRITE_CHUNK, 5]);
    }

    #[test]
    fn mode_choice() {
        assert_eq!(mode_for(false, 1 << 40), Mode::Buffered);
        assert_eq!(mode_for(true, DIRECT_MIN - 1), Mode::Buffered);
        let want = if cfg!(target_os = "linux") {
            Mode::Direct
        } else {
            Mode::Buffered
        };
        assert_eq!(mode_for(true, DIRECT_MIN), want);
    }
}
