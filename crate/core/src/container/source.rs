//! Opening a file: copy-on-write mmap or an eager read. (stub: helper B)
use crate::bytes::ByteView;
use crate::error::Result;
use std::path::Path;

pub fn open(path: &Path, mmap: bool) -> Result<ByteView> {
    let _ = mmap;
    let v = std::fs::read(path).map_err(|e| crate::error::Error::io(e, "read"))?;
    Ok(ByteView::from_vec(v))
}
