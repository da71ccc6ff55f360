//! Format detection. (stub: helper B)
use super::Loaded;
use crate::bytes::ByteView;
use crate::error::Result;
use crate::options::LoadOptions;

pub fn load(bytes: ByteView, opts: &LoadOptions, from_file: bool) -> Result<Loaded> {
    let _ = (bytes, opts, from_file);
    crate::bail!(UnknownFormat, "not implemented yet")
}
