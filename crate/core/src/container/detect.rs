//! Format detection from the bytes (never the file name), and the bare-pickle container.
//!
//! Order of tests (first match wins):
//! 1. `PYTORCH1` at 0: the 1.0 preview archive format → `E_UNSUPPORTED_VERSION` (torch too);
//! 2. `PK\x03\x04` at 0 → zip (torch's own `_is_zipfile` test); a zip whose directory has
//!    `constants.pkl` (and is no torch.package) is a TorchScript archive, read as data by
//!    [`super::torchscript`] with the module object as the root (what `torch.load` of such a
//!    file returns in Python, through `torch.jit.load`);
//! 3. a small int pickle equal to the legacy magic number → legacy stream;
//! 4. a POSIX tar header (`ustar` at 257, or a valid header checksum) → tar. Unlike torch,
//!    which tries tar only for real files at offset 0, buffers are recognised too;
//! 5. `PROTO` (0x80, version <= 5) at 0 → bare pickle; any other byte that can open a
//!    protocol 0/1 pickle → tried as a bare pickle, and a failure is reported as
//!    `E_UNKNOWN_FORMAT` rather than a pickle error. Bytes after the pickle's STOP are
//!    ignored, as `pickle.load` ignores them (an int root followed by another pickle is a
//!    legacy stream with a bad magic number: `E_BAD_MAGIC`);
//! 6. anything else → `E_UNKNOWN_FORMAT`, with a hint when the bytes look like safetensors,
//!    HDF5 (Keras), gzip, numpy `.npy` or another kind of zip.
//!
//! Detection and dispatch only: the torch-pickle plumbing the containers share (unpickle
//! options, PyTorch's persistent loader) is [`super::torch_pickle`].

use super::torch_pickle::{unpickle_options, NoPersistentIds};
use super::{legacy, tar_read, torchscript, zip_read, LoadInfo, Loaded};
use crate::bytes::ByteView;
use crate::error::{ErrorCode, Result};
use crate::options::LoadOptions;
use crate::pickle;
use crate::value::{Format, Graph};

/// Detects the container and loads it, then validates every tensor against its storage.
/// `from_file`: the bytes came from `source::open` (mapped when `opts.mmap`).
pub fn load(bytes: ByteView, opts: &LoadOptions, from_file: bool) -> Result<Loaded> {
    let mmapped = from_file && opts.mmap;
    let loaded = match detect_format(bytes.as_slice())? {
        Format::Zip => {
            // One directory parse tells a TorchScript archive (`constants.pkl`) from torch.save's.
            let ar = zip_read::ZipArchive::parse(bytes)?;
            if torchscript::is_torchscript(&ar) {
                torchscript::load(&ar, opts, mmapped)?.into_loaded(torchscript::View::Module)
            } else {
                zip_read::load_archive(&ar, opts, mmapped)?
            }
        }
        // Only the zip branch above yields TorchScript.
        Format::TorchScript => {
            crate::bail!(Internal, "TorchScript is detected inside the zip branch")
        }
        // A folder, never bytes: `load_file` dispatches it.
        Format::Dcp => crate::bail!(Internal, "a DCP folder is not detected from bytes"),
        Format::Legacy => legacy::load(bytes, opts)?,
        Format::Tar => tar_read::load(bytes, opts)?,
        Format::Pickle => load_pickle(bytes.as_slice(), opts)?,
    };
    crate::tensor::validate_graph(&loaded.graph, &opts.limits)?;
    Ok(loaded)
}

/// Which container the bytes are, from their content alone. Bare pickles are recognised by
/// their first byte, so `Format::Pickle` is a guess that unpickling confirms.
pub fn detect_format(b: &[u8]) -> Result<Format> {
    if b.is_empty() {
        crate::bail!(Truncated, "the input is empty");
    }
    if b.starts_with(b"PYTORCH1") {
        crate::bail!(
            UnsupportedVersion,
            "this file uses the archive format of the PyTorch 1.0 preview release, which torch no longer reads; \
             re-save it with a released PyTorch"
        );
    }
    if b.starts_with(b"PK\x03\x04") {
        return Ok(Format::Zip);
    }
    if legacy::has_legacy_magic(b) {
        return Ok(Format::Legacy);
    }
    if tar_read::looks_like_tar(b) {
        return Ok(Format::Tar);
    }
    if pickle_start(b).is_some() {
        return Ok(Format::Pickle);
    }
    Err(unknown_format(b))
}

/// `Some(true)`: certainly a pickle (PROTO); `Some(false)`: could open a protocol 0/1 pickle.
fn pickle_start(b: &[u8]) -> Option<bool> {
    match b {
        [0x80, v, ..] if *v <= 5 => Some(true),
        // MARK, EMPTY_{DICT,LIST,TUPLE}, GLOBAL, NONE, INT, LONG, FLOAT, STRING, UNICODE,
        // BININT*, BINFLOAT, SHORT_BINSTRING, BINSTRING, BINUNICODE: what protocol 0/1 pickles
        // of real objects start with.
        [c, ..] if b"(}])cNILFSVJKMGUTX".contains(c) => Some(false),
        _ => None,
    }
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter()
        .take(16)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unknown_format(b: &[u8]) -> crate::error::Error {
    let hint = if looks_like_safetensors(b) {
        "; it looks like a safetensors file: read it with torch.loadSafetensors"
    } else if b.starts_with(b"\x89HDF\r\n\x1a\n") {
        "; it is an HDF5 file (Keras/h5py), not a PyTorch checkpoint"
    } else if b.starts_with(b"\x1f\x8b") {
        "; it is gzip-compressed: decompress it first"
    } else if b.starts_with(b"\x93NUMPY") {
        "; it is a numpy .npy array, not a PyTorch checkpoint"
    } else if b.starts_with(b"PK") {
        "; it is a zip archive that does not start with a local file header (torch.save archives always do)"
    } else if b.starts_with(b"\x08") && b.len() > 2 {
        "; if this is an ONNX model, it is a protobuf file, not a PyTorch checkpoint"
    } else {
        ""
    };
    crate::err!(
        UnknownFormat,
        "not a PyTorch file: it starts with bytes {}{hint}",
        hex_prefix(b)
    )
}

/// 8-byte little-endian header length, then a JSON object that fits in the file.
fn looks_like_safetensors(b: &[u8]) -> bool {
    let Some(n) = b
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return false;
    };
    b.get(8) == Some(&b'{') && n >= 2 && n <= (b.len() as u64).saturating_sub(8)
}

fn load_pickle(b: &[u8], opts: &LoadOptions) -> Result<Loaded> {
    let certain = pickle_start(b) == Some(true);
    let mut graph = Graph::new();
    let out = match pickle::unpickle(b, &mut graph, &unpickle_options(opts), &mut NoPersistentIds) {
        Ok(out) => out,
        Err(e)
            if !certain
                && matches!(
                    e.code,
                    ErrorCode::BadPickle | ErrorCode::UnknownOpcode | ErrorCode::Truncated
                ) =>
        {
            return Err(crate::err!(
                UnknownFormat,
                "{} (read as a pickle: {})",
                unknown_format(b).message,
                e.message
            ));
        }
        Err(e) => return Err(e),
    };
    // Bytes after STOP: `pickle.load` reads one pickle and leaves the rest of the file unread
    // (numpy's own test pickles end in a newline), so we read what it reads. The exception is
    // an int followed by more pickles: the shape of a legacy torch.save stream (magic,
    // protocol 1001, sys_info, ...) whose magic number is wrong, which torch refuses too.
    if out.consumed < b.len()
        && matches!(
            out.root,
            crate::value::Value::Int(_) | crate::value::Value::BigInt(_)
        )
        && b.get(out.consumed..)
            .is_some_and(|rest| pickle_start(rest).is_some())
    {
        crate::bail!(
            BadMagic,
            "invalid magic number: the file is laid out like a legacy torch.save stream but does not start \
             with PyTorch's magic number 0x1950a86a20f9469cfc6c; corrupt file?"
        );
    }
    graph.root = Some(out.root);
    Ok(Loaded {
        graph,
        info: LoadInfo {
            format: Format::Pickle,
            globals: out.globals,
            big_endian: false,
            pickle_protocol: out.protocol,
            archive_name: None,
            version: None,
            weights_only_refusal: out.weights_only_refusal,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content() {
        assert_eq!(detect_format(b"PK\x03\x04rest").unwrap(), Format::Zip);
        assert_eq!(detect_format(b"\x80\x02}q\x00.").unwrap(), Format::Pickle);
        assert_eq!(detect_format(b"(dp0\n.").unwrap(), Format::Pickle);
        let legacy =
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e\x80\x02\x4d\xe9\x03\x2e";
        assert_eq!(detect_format(legacy).unwrap(), Format::Legacy);
        assert_eq!(
            detect_format(b"PYTORCH1xxxx").unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(detect_format(b"").unwrap_err().code, ErrorCode::Truncated);
        assert_eq!(
            detect_format(b"\x00\x01\x02").unwrap_err().code,
            ErrorCode::UnknownFormat
        );
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        let e = detect_format(&st).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownFormat);
        assert!(looks_like_safetensors(&st));
        assert!(!looks_like_safetensors(b"\x80\x02}q\x00."));
    }
}
