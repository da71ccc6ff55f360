//! Shared, immutable byte ranges: the file (mmapped or read eagerly) and owned buffers.
//!
//! A `ByteView` is a window onto a `Backing` kept alive by an `Arc`. Storages loaded from a
//! zip archive are views onto the one backing of the whole file, so loading copies nothing;
//! the binding exposes each backing to JS once (V8 refuses two external ArrayBuffers with the
//! same start pointer) and builds typed-array views by offset.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

/// Memory that a `ByteView` can point into.
pub trait Backing: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// Start pointer, for the binding: JS may write through an external ArrayBuffer, so the
    /// backing must be writable memory that is never written back to a file
    /// (copy-on-write mmap, or a heap buffer).
    fn as_mut_ptr(&self) -> *mut u8 {
        self.bytes().as_ptr() as *mut u8
    }
    /// `E_FILE_CHANGED` when the memory is a file mapping whose file changed since it was
    /// mapped (see `mapguard`); memory that is not a mapping is always fine. Library calls
    /// that read a storage ask this after reading (a read may have hit zero pages).
    fn check(&self) -> crate::error::Result<()> {
        Ok(())
    }
    /// Length of [`Backing::bytes`], known without producing them (a [`Tiled`] backing
    /// assembles its bytes on first use).
    fn len(&self) -> usize {
        self.bytes().len()
    }
    /// True when [`Backing::len`] is 0.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The tiles of a [`Tiled`] backing, for readers that stream them without assembling.
    fn tiles(&self) -> Option<&Tiled> {
        None
    }
}

/// One tile of a [`Tiled`] tensor: a box (`offsets`, `sizes` in elements) of the whole, its
/// elements in C order in `data`.
#[derive(Clone, Debug)]
pub struct Tile {
    pub offsets: Vec<i64>,
    pub sizes: Vec<i64>,
    pub data: ByteView,
}

/// A whole C-order tensor buffer made of tiles that live elsewhere (a distributed
/// checkpoint's chunks, each in a mapped file): assembled into one buffer only when its
/// bytes are first asked for; streamed readers walk [`Tiled::runs`] instead.
/// The tiles must tile the whole exactly (the DCP reader checks it).
pub struct Tiled {
    pub shape: Vec<i64>,
    pub elem: usize,
    pub tiles: Vec<Tile>,
    len: usize,
    assembled: OnceLock<Vec<u8>>,
}

impl Tiled {
    pub fn new(shape: Vec<i64>, elem: usize, tiles: Vec<Tile>) -> Self {
        let len = shape.iter().map(|&s| s.max(0) as usize).product::<usize>() * elem;
        Tiled {
            shape,
            elem,
            tiles,
            len,
            assembled: OnceLock::new(),
        }
    }

    /// True once the bytes were asked for (and so are held in memory).
    pub fn is_assembled(&self) -> bool {
        self.assembled.get().is_some()
    }

    /// Calls `f` with each contiguous run of the whole's C-order bytes, in order: slices of
    /// the tiles' data. Tiles covering whole trailing dimensions give long runs (a tensor
    /// sharded on dim 0 is one run per tile).
    pub fn runs(
        &self,
        f: &mut dyn FnMut(&ByteView) -> crate::error::Result<()>,
    ) -> crate::error::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let n = self.shape.len();
        // m: the dims up to the last one some tile covers partly; the rest is a block every
        // tile holds whole.
        let full = |d: usize| {
            self.tiles
                .iter()
                .all(|t| t.sizes.get(d) == self.shape.get(d))
        };
        let m = (0..n).rev().find(|&d| !full(d)).map_or(0, |d| d + 1);
        if m == 0 {
            return self.tiles.first().map_or(Ok(()), |t| f(&t.data));
        }
        let (outer, rest) = self.shape.split_at(m - 1);
        let block = rest.iter().skip(1).map(|&s| s as usize).product::<usize>() * self.elem;
        let prefixes: usize = outer.iter().map(|&s| s as usize).product();
        // Every prefix of dims 0..m-1; along dim m-1 the tiles holding it, in offset order.
        let mut idx = vec![0usize; m - 1];
        for _ in 0..prefixes {
            let holds = |t: &&Tile| {
                idx.iter()
                    .zip(&t.offsets)
                    .zip(&t.sizes)
                    .all(|((&i, &o), &s)| o <= i as i64 && (i as i64) < o + s)
            };
            let mut along: Vec<&Tile> = self.tiles.iter().filter(holds).collect();
            along.sort_by_key(|t| t.offsets.get(m - 1).copied().unwrap_or(0));
            for t in along {
                let run = t.sizes.get(m - 1).copied().unwrap_or(0) as usize * block;
                // The tile's row for this prefix: its local index over dims 0..m-1.
                let row = idx
                    .iter()
                    .zip(&t.offsets)
                    .zip(&t.sizes)
                    .fold(0usize, |r, ((&i, &o), &s)| {
                        r * s as usize + (i - o as usize)
                    });
                let piece = t
                    .data
                    .slice(row * run..(row + 1) * run)
                    .ok_or_else(|| crate::err!(StorageBounds, "a tile is shorter than its box"))?;
                f(&piece)?;
            }
            for (i, &len) in idx.iter_mut().zip(outer).rev() {
                *i += 1;
                if *i < len as usize {
                    break;
                }
                *i = 0;
            }
        }
        Ok(())
    }
}

impl Backing for Tiled {
    fn bytes(&self) -> &[u8] {
        self.assembled.get_or_init(|| {
            let mut out = Vec::with_capacity(self.len);
            // The runs come in C order: appending them is the assembly.
            let _ = self.runs(&mut |r| {
                out.extend_from_slice(r.as_slice());
                Ok(())
            });
            out.resize(self.len, 0);
            out
        })
    }
    fn check(&self) -> crate::error::Result<()> {
        self.tiles.iter().try_for_each(|t| t.data.check())
    }
    fn len(&self) -> usize {
        self.len
    }
    fn tiles(&self) -> Option<&Tiled> {
        Some(self)
    }
}

impl Backing for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A window onto shared bytes.
#[derive(Clone)]
pub struct ByteView {
    backing: Arc<dyn Backing>,
    start: usize,
    len: usize,
}

impl ByteView {
    /// A view of the whole backing.
    pub fn new(backing: Arc<dyn Backing>) -> Self {
        let len = backing.len();
        ByteView {
            backing,
            start: 0,
            len,
        }
    }

    pub fn from_vec(v: Vec<u8>) -> Self {
        ByteView::new(Arc::new(v))
    }

    pub fn empty() -> Self {
        ByteView::from_vec(Vec::new())
    }

    /// A sub-view; `None` when the range is outside this view (never panics).
    pub fn slice(&self, range: Range<usize>) -> Option<ByteView> {
        if range.start > range.end || range.end > self.len {
            return None;
        }
        Some(ByteView {
            backing: self.backing.clone(),
            start: self.start + range.start,
            len: range.end - range.start,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        // The constructor and `slice` keep start..start+len inside the backing.
        self.backing
            .bytes()
            .get(self.start..self.start + self.len)
            .unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of this view inside its backing.
    pub fn offset_in_backing(&self) -> usize {
        self.start
    }

    pub fn backing(&self) -> &Arc<dyn Backing> {
        &self.backing
    }

    /// [`Backing::check`] of this view's backing.
    pub fn check(&self) -> crate::error::Result<()> {
        self.backing.check()
    }

    /// True when both views live in the same backing (same Arc).
    pub fn same_backing(&self, other: &ByteView) -> bool {
        Arc::ptr_eq(&self.backing, &other.backing)
    }
}

impl AsRef<[u8]> for ByteView {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for ByteView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteView({} bytes at {})", self.len, self.start)
    }
}

impl PartialEq for ByteView {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// Reverses the byte order of every `unit`-byte scalar in place (big-endian files; pass
/// `DType::swap_unit`, so complex values swap each half). A trailing partial unit is left
/// alone. The one byte swap of the crate.
pub fn byteswap_in_place(bytes: &mut [u8], unit: usize) {
    if unit <= 1 {
        return;
    }
    for c in bytes.chunks_exact_mut(unit) {
        c.reverse();
    }
}

/// [`byteswap_in_place`] on a copy.
pub fn byteswapped(data: &[u8], unit: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    byteswap_in_place(&mut v, unit);
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn tiles_assemble_in_c_order() {
        // A 3x4 u8 whole from two 3x2 column tiles, and from a 2x4 and a 1x4 row tile.
        let whole: Vec<u8> = (0u8..12).collect();
        let left = ByteView::from_vec(vec![0, 1, 4, 5, 8, 9]);
        let right = ByteView::from_vec(vec![2, 3, 6, 7, 10, 11]);
        let cols = Tiled::new(
            vec![3, 4],
            1,
            vec![
                Tile {
                    offsets: vec![0, 2],
                    sizes: vec![3, 2],
                    data: right,
                },
                Tile {
                    offsets: vec![0, 0],
                    sizes: vec![3, 2],
                    data: left,
                },
            ],
        );
        let mut runs = 0;
        cols.runs(&mut |_| {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 6);
        assert_eq!(ByteView::new(Arc::new(cols)).as_slice(), &whole[..]);
        let rows = Tiled::new(
            vec![3, 4],
            1,
            vec![
                Tile {
                    offsets: vec![0, 0],
                    sizes: vec![2, 4],
                    data: ByteView::from_vec(whole[..8].to_vec()),
                },
                Tile {
                    offsets: vec![2, 0],
                    sizes: vec![1, 4],
                    data: ByteView::from_vec(whole[8..].to_vec()),
                },
            ],
        );
        let mut runs = 0;
        rows.runs(&mut |_| {
            runs += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(runs, 2);
        let v = ByteView::new(Arc::new(rows));
        assert_eq!(v.len(), 12);
        assert_eq!(v.as_slice(), &whole[..]);
    }

    #[test]
    fn byteswap_units() {
        assert_eq!(
            byteswapped(&[1, 2, 3, 4, 5, 6, 7, 8], 4),
            vec![4, 3, 2, 1, 8, 7, 6, 5]
        );
        assert_eq!(byteswapped(&[1, 2, 3], 1), vec![1, 2, 3]);
        let mut b = vec![1, 2, 3, 4, 5];
        byteswap_in_place(&mut b, 2);
        assert_eq!(b, [2, 1, 4, 3, 5]);
    }
}
