//! Streamed safetensors output: the converter's only path for `--to safetensors` (one file
//! or `--shard-size` shards, each file planned and streamed the same way).
//!
//! Why: converting by materialising (cast every storage into new memory, then write it)
//! touches fresh memory for every cast byte and faults in every input page through the map;
//! on a checkpoint of a few hundred MB that costs more than the cast itself. Here the header
//! is computed up front from shapes and output dtypes ([`st::plan_with`]), then each tensor
//! is read in steps of [`STEP`] bytes into one buffer per worker thread, cast into a second
//! one, and written to the output in writes of about [`FLUSH`] bytes. Nothing is allocated
//! per tensor and the map's data pages are never touched: storages that lie in the mapped
//! input file are read with `pread` on the file (a copy out of the page cache, no page
//! faults, and a file truncated under us is `E_TRUNCATED` rather than a SIGBUS); storages
//! elsewhere (byte-swapped big-endian storages, eager loads, sharded inputs) are read from
//! memory. Strided views go through [`crate::strided::for_each_chunk`]'s gather.
//!
//! Invariants: the output is byte-identical to casting with [`transform::cast_floats`] and
//! writing with [`st::write_plan`] (the tests compare both paths). That holds because the
//! cast is elementwise (a view's elements cast alone equal the same elements of the cast
//! storage), tensors are written in the plan's order with the plan's sizes (the written
//! length is checked against the plan), and the cast decisions are the ones
//! [`transform::plan_cast`] makes for [`transform::cast_floats`].
//!
//! What must change together: [`st::plan_with`] and [`st::write_plan`] (order and sizes),
//! [`transform::plan_cast`] and [`transform::cast_floats`], [`crate::cast::cast_into`] and
//! [`crate::cast::cast_buffer`].

use super::transform::CastPlan;
use super::Digests;
use crate::bytes::ByteView;
use crate::cast;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::safetensors as st;
use crate::strided;
use crate::value::{Graph, Storage, Tensor};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Input bytes read (or cast) per step: small enough that the input and cast buffers stay in
/// the core's cache, large enough that a syscall per step costs nothing. A multiple of every
/// element size.
const STEP: usize = 256 << 10;
/// Output bytes gathered before one `write`.
const FLUSH: usize = 1 << 20;

/// A mapped input file the graph's storages may point into, plus a handle on the very same
/// file for `pread`. An input may have several (a distributed checkpoint's `.distcp` files).
#[derive(Clone, Debug)]
pub struct MappedInput {
    file: Arc<File>,
    view: ByteView,
}

impl MappedInput {
    /// Pairs `view` (the map of `path`) with a handle on the same file. `None` when the file
    /// at `path` is no longer the one mapped (replaced meanwhile) or on systems without
    /// `pread`: the storages are then read from memory.
    pub fn open(path: &Path, view: &ByteView) -> Option<MappedInput> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let file = File::open(path).ok()?;
            let a = file.metadata().ok()?;
            let b = std::fs::metadata(path).ok()?;
            if a.dev() != b.dev() || a.ino() != b.ino() || a.len() != view.len() as u64 {
                return None;
            }
            Some(MappedInput {
                file: Arc::new(file),
                view: view.clone(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = (path, view);
            None
        }
    }

    /// Offset in the file of `data`, when `data` lies inside the map.
    fn offset_of(&self, data: &[u8]) -> Option<u64> {
        let base = self.view.as_slice();
        let b = base.as_ptr() as usize;
        let p = data.as_ptr() as usize;
        let end = p.checked_add(data.len())?;
        (p >= b && end <= b.checked_add(base.len())?).then(|| (p - b) as u64)
    }

    #[cfg(unix)]
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                crate::err!(Truncated, "the input shrank while it was being converted")
            } else {
                Error::io(e, "read")
            }
        })
    }

    #[cfg(not(unix))]
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> Result<()> {
        crate::bail!(Io, "pread is not available here")
    }
}

/// Size of the output buffer: a flush's worth plus the largest step's output (a step of
/// float16 widened to float64 grows 4x), so a step always fits after a flush.
const OUT_CAP: usize = FLUSH + 4 * STEP;

/// The two buffers a worker reuses for every tensor of every file. Both keep their length
/// (zeroed once per thread), so no step pays for clearing or growing memory.
#[derive(Default)]
struct Buffers {
    input: Vec<u8>,
    out: Vec<u8>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// Output side: gathers bytes in `buf[..fill]`, writes them in big writes, hashes each
/// tensor when asked.
struct Sink<'a> {
    file: &'a File,
    buf: &'a mut [u8],
    fill: usize,
    written: u64,
    hasher: Option<Sha256>,
}

impl Sink<'_> {
    fn flush(&mut self) -> Result<()> {
        if let Some(data) = self.buf.get(..self.fill).filter(|d| !d.is_empty()) {
            let mut f = self.file;
            f.write_all(data).map_err(|e| Error::io(e, "write"))?;
            self.written += data.len() as u64;
        }
        self.fill = 0;
        Ok(())
    }

    /// The next `n` bytes of the buffer (flushing first when they do not fit, or when a
    /// flush's worth is gathered). `n` is at most `4 * STEP`.
    fn room(&mut self, n: usize) -> Result<(usize, &mut [u8])> {
        if self.fill >= FLUSH || self.fill + n > self.buf.len() {
            self.flush()?;
        }
        let at = self.fill;
        let dst = self
            .buf
            .get_mut(at..at + n)
            .ok_or_else(|| crate::err!(LimitExceeded, "a {n}-byte step exceeds the buffer"))?;
        Ok((at, dst))
    }

    /// Marks `n` bytes from `at` as filled and hashes them.
    fn commit(&mut self, at: usize, n: usize) {
        if let (Some(h), Some(new)) = (self.hasher.as_mut(), self.buf.get(at..at + n)) {
            h.update(new);
        }
        self.fill = at + n;
    }

    /// Appends `src` (at most one step of elements of `from`), cast to `cast` when set.
    fn append(&mut self, src: &[u8], from: DType, cast: Option<DType>) -> Result<()> {
        let n = match cast {
            Some(to) => cast::cast_len(src.len(), from, to)?,
            None => src.len(),
        };
        let (at, dst) = self.room(n)?;
        match cast {
            Some(to) => cast::cast_slice(src, from, to, dst)?,
            None => dst.copy_from_slice(src),
        }
        self.commit(at, n);
        Ok(())
    }

    /// Appends `n` (at most one step) bytes read from `input` at `offset`, uncast.
    fn append_read(&mut self, input: &MappedInput, offset: u64, n: usize) -> Result<()> {
        let (at, dst) = self.room(n)?;
        input.read_at(dst, offset)?;
        self.commit(at, n);
        Ok(())
    }
}

/// Streams one tensor's values (C order, cast to `cast` when set) into `sink`.
fn stream_tensor(
    t: &Tensor,
    st: &Storage,
    cast: Option<DType>,
    inputs: &[MappedInput],
    inbuf: &mut [u8],
    sink: &mut Sink,
) -> Result<()> {
    let range = strided::reached_range(t, st)?;
    if range.is_empty() {
        return Ok(());
    }
    let from = t.dtype;
    if !strided::is_contiguous(t) {
        // Rare in checkpoints: gather from memory, a run at a time.
        return strided::for_each_chunk(t, st, &mut |c| {
            for step in c.chunks(STEP) {
                sink.append(step, from, cast)?;
            }
            Ok(())
        });
    }
    let len = usize::try_from(strided::nbytes(t)?)
        .map_err(|_| crate::err!(LimitExceeded, "tensor too large"))?;
    let start = range.start as usize;
    // A tensor assembled from tiles (a distributed checkpoint's shards) that it views whole:
    // stream the tiles' runs, never the assembled buffer.
    if let Some(tiled) = st.data.backing().tiles() {
        if start == 0 && len == st.data.len() && st.data.offset_in_backing() == 0 {
            return tiled
                .runs(&mut |run| stream_bytes(run.as_slice(), from, cast, inputs, inbuf, sink));
        }
    }
    let data = st
        .data
        .as_slice()
        .get(start..start.saturating_add(len))
        .ok_or_else(|| crate::err!(StorageBounds, "view outside storage"))?;
    stream_bytes(data, from, cast, inputs, inbuf, sink)
}

/// Streams `data` (elements of `from`, C order): `pread` from the mapped input that holds it
/// (no page of the map is touched), else from memory; cast to `cast` when set.
fn stream_bytes(
    data: &[u8],
    from: DType,
    cast: Option<DType>,
    inputs: &[MappedInput],
    inbuf: &mut [u8],
    sink: &mut Sink,
) -> Result<()> {
    let len = data.len();
    let Some((input, offset)) = inputs
        .iter()
        .find_map(|i| i.offset_of(data).map(|o| (i, o)))
    else {
        for step in data.chunks(STEP) {
            sink.append(step, from, cast)?;
        }
        return Ok(());
    };
    let mut pos = 0usize;
    while pos < len {
        let n = STEP.min(len - pos);
        let at = offset + pos as u64;
        match cast {
            None => sink.append_read(input, at, n)?,
            Some(_) => {
                let buf = inbuf
                    .get_mut(..n)
                    .ok_or_else(|| crate::err!(StorageBounds, "input buffer"))?;
                input.read_at(buf, at)?;
                sink.append(buf, from, cast)?;
            }
        }
        pos += n;
    }
    Ok(())
}

/// Writes the file `plan` describes to `file` (which must be empty): the header, then each
/// tensor streamed from its storage and cast where `cast` says. With `digests`, returns the
/// sha256 of each tensor as written (`(name, dtype, shape, hex)`, sorted by name) for
/// `--verify`. Returns the bytes written.
pub(crate) fn write_streamed(
    graph: &Graph,
    plan: &st::Plan,
    cast: Option<(&CastPlan, DType)>,
    inputs: &[MappedInput],
    file: &File,
    digests: bool,
) -> Result<(u64, Option<Digests>)> {
    BUFFERS.with(|cell| {
        let mut guard = cell
            .try_borrow_mut()
            .map_err(|_| crate::err!(InvalidArgument, "re-entrant streamed write"))?;
        let Buffers { input: inbuf, out } = &mut *guard;
        if out.len() != OUT_CAP {
            *out = vec![0; OUT_CAP];
        }
        if inbuf.len() != STEP {
            *inbuf = vec![0; STEP];
        }
        let mut sink = Sink {
            file,
            buf: out,
            fill: 0,
            written: 0,
            hasher: None,
        };
        for part in plan.header.chunks(STEP) {
            sink.append(part, DType::UInt8, None)?;
        }
        let mut want: Digests = Vec::new();
        for (name, id, _) in &plan.tensors {
            let (t, st) = st::tensor_and_storage(graph, name, *id)?;
            let to = cast.and_then(|(c, to)| c.tensors.contains(id).then_some(to));
            if digests {
                sink.hasher = Some(Sha256::new());
            }
            stream_tensor(t, st, to, inputs, inbuf, &mut sink)?;
            if let Some(h) = sink.hasher.take() {
                want.push((
                    name.clone(),
                    to.unwrap_or(t.dtype),
                    t.shape.clone(),
                    hex(&h.finalize()),
                ));
            }
        }
        sink.flush()?;
        let written = sink.written;
        if written != plan.file_len {
            crate::bail!(
                VerifyFailed,
                "wrote {written} bytes where the header promises {}",
                plan.file_len
            );
        }
        if !digests {
            return Ok((written, None));
        }
        want.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((written, Some(want)))
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
