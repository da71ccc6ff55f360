//! Shared, immutable byte ranges: the file (mmapped or read eagerly) and owned buffers.
//!
//! A `ByteView` is a window onto a `Backing` kept alive by an `Arc`. Storages loaded from a
//! zip archive are views onto the one backing of the whole file, so loading copies nothing;
//! the binding exposes each backing to JS once (V8 refuses two external ArrayBuffers with the
//! same start pointer) and builds typed-array views by offset.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

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
        let len = backing.bytes().len();
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
mod tests {
    use super::*;

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
