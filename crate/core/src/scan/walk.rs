//! From a file's bytes to the byte ranges that something would unpickle, as far as the bytes
//! allow: a damaged container is walked anyway (a scanner that stops at "corrupt" is a bypass).
//!
//! * zip: the central directory when it parses (records read without CRC checks, as torch
//!   reads them); when it does not (bad or stale end record, truncated directory), the local
//!   entry headers from the start of the file, one after the other, resynchronising on the
//!   next `PK\x03\x04` where a header's sizes are missing or wrong. Records scanned: every
//!   `*.pkl` (`data.pkl`, TorchScript's `constants.pkl`, debug pickles) and every other record
//!   whose bytes open like a pickle, except storages (`data/<key>`: raw tensor bytes nothing
//!   unpickles). TorchScript `code/` is reported as information, torch.package sources
//!   (`.py`, `.data/extern_modules`) as dangerous;
//! * tar (torch before 0.1.10): every member, by its 512-byte headers (not the `tar` crate:
//!   a damaged header must not end the walk early). `storages` and `tensors` interleave
//!   pickles with raw bytes, so they are searched for every pickle start (`resync`);
//! * anything else (legacy stream, bare pickle): the whole file, pickle after pickle.

use crate::bytes::ByteView;
use crate::pickle::policy::Dialect;
use std::io::Read;

/// Bytes to run as pickles.
pub(crate) struct Blob {
    /// The record (`archive/data.pkl`, tar member, or `""` for the file itself).
    pub record: String,
    pub bytes: ByteView,
    pub dialect: Dialect,
    /// Search the whole blob for pickle starts, not only right after each STOP.
    pub resync: bool,
}

/// What the container says beside its pickles.
pub(crate) enum Extra {
    /// TorchScript code files (information).
    TorchScriptCode { files: usize, record: String },
    /// torch.package Python sources (dangerous).
    PackageCode { files: usize, record: String },
}

pub(crate) struct Walk {
    pub format: &'static str,
    pub blobs: Vec<Blob>,
    pub notes: Vec<String>,
    pub extras: Vec<Extra>,
}

const LOCAL: &[u8] = b"PK\x03\x04";
const CENTRAL: &[u8] = b"PK\x01\x02";

/// True when `b` opens like a pickle: PROTO 2-5 followed by an opcode, or (protocol 0/1) one
/// of the bytes that open a pickle of a real object with a STOP somewhere after it.
pub(crate) fn looks_like_pickle(b: &[u8]) -> bool {
    match b {
        [0x80, v, c, ..] if (2..=5).contains(v) => crate::pickle::opcodes::name(*c).is_some(),
        // The STOP is looked for in the next 1 MiB only: a heuristic must not read a whole
        // legacy storage tail.
        [c, rest @ ..] if b"(}])cNILFSVJKMGUTXq".contains(c) => rest
            .get(..rest.len().min(1 << 20))
            .is_some_and(|w| w.contains(&b'.')),
        _ => false,
    }
}

/// A record or file that is meant to be a pickle: named `*.pkl`, or opening with PROTO.
pub(crate) fn opens_pickle(b: &[u8], record: &str) -> bool {
    record.ends_with(".pkl") || matches!(b, [0x80, v, ..] if *v <= 5) || looks_like_pickle(b)
}

/// The next offset at or after `from` where a protocol 2-5 pickle could start.
pub(crate) fn next_pickle_start(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    rest.windows(3)
        .position(|w| matches!(w, [0x80, v, c] if (2..=5).contains(v) && crate::pickle::opcodes::name(*c).is_some()))
        .map(|p| p + from)
}

fn find(b: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn looks_like_safetensors(b: &[u8]) -> bool {
    match (b.get(..8), b.get(8)) {
        (Some(n), Some(b'{')) => {
            let n = u64::from_le_bytes(n.try_into().unwrap_or([0; 8]));
            n > 1 && n <= b.len() as u64
        }
        _ => false,
    }
}

pub(crate) fn walk(bytes: &ByteView) -> Walk {
    let b = bytes.as_slice();
    let mut w = Walk {
        format: "pickle",
        blobs: Vec::new(),
        notes: Vec::new(),
        extras: Vec::new(),
    };
    if b.starts_with(LOCAL) {
        w.format = "zip";
        walk_zip(bytes, &mut w);
    } else if crate::container::tar_read::looks_like_tar(b) {
        w.format = "tar";
        walk_tar(bytes, &mut w);
    } else if crate::container::legacy::has_legacy_magic(b) || opens_pickle(b, "") {
        w.format = if crate::container::legacy::has_legacy_magic(b) {
            "legacy"
        } else {
            "pickle"
        };
        w.blobs.push(Blob {
            record: String::new(),
            bytes: bytes.clone(),
            dialect: Dialect::TorchSave,
            resync: false,
        });
    } else if looks_like_safetensors(b) {
        w.format = "safetensors";
        w.notes
            .push("a safetensors file: a JSON header and raw tensors, no pickles".to_string());
    } else if let Some(at) = find(b, LOCAL, 0) {
        w.format = "zip";
        w.notes.push(format!(
            "zip entries start at byte {at}, after bytes that are no container (torch.load would not open this; zip tools would)"
        ));
        local_entries(bytes, at, &mut w);
    } else {
        w.format = "unknown";
    }
    w
}

/// One zip record, located: name and raw data.
struct Record {
    name: String,
    method: u16,
    data: ByteView,
    uncompressed: Option<u64>,
}

fn walk_zip(bytes: &ByteView, w: &mut Walk) {
    let records = match crate::container::zip_read::ZipArchive::parse(bytes.clone()) {
        Ok(ar) => ar
            .entries()
            .iter()
            .filter_map(|e| {
                let start = usize::try_from(e.data_offset).ok()?;
                let end = start.checked_add(usize::try_from(e.compressed_size).ok()?)?;
                let end = end.min(bytes.len());
                Some(Record {
                    name: e.name.clone(),
                    method: e.method,
                    data: bytes.slice(start.min(end)..end)?,
                    uncompressed: Some(e.uncompressed_size),
                })
            })
            .collect(),
        Err(e) => {
            w.notes.push(format!(
                "the zip directory is unreadable ({}: {}); scanned the local entry headers instead",
                e.code, e.message
            ));
            let mut tmp = Walk {
                format: "zip",
                blobs: Vec::new(),
                notes: Vec::new(),
                extras: Vec::new(),
            };
            local_entries(bytes, 0, &mut tmp);
            w.blobs.extend(tmp.blobs);
            w.notes.extend(tmp.notes);
            w.extras.extend(tmp.extras);
            return;
        }
    };
    zip_records(records, w);
}

/// Local headers from `at`: each header's sizes lead to the next one; where they do not
/// (data descriptors, zip64 sentinels, damage), the next `PK\x03\x04` does.
fn local_entries(bytes: &ByteView, at: usize, w: &mut Walk) {
    let b = bytes.as_slice();
    let rd16 = |p: usize| {
        b.get(p..p + 2)
            .and_then(|s| s.try_into().ok())
            .map(u16::from_le_bytes)
    };
    let rd32 = |p: usize| {
        b.get(p..p + 4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let mut records = Vec::new();
    let mut pos = Some(at);
    while let Some(p) = pos {
        let (Some(flags), Some(method), Some(csize), Some(usize_), Some(nlen), Some(xlen)) = (
            rd16(p + 6),
            rd16(p + 8),
            rd32(p + 18),
            rd32(p + 22),
            rd16(p + 26),
            rd16(p + 28),
        ) else {
            break;
        };
        let name_end = (p + 30 + nlen as usize).min(b.len());
        let name = String::from_utf8_lossy(b.get(p + 30..name_end).unwrap_or(&[])).into_owned();
        let start = (name_end + xlen as usize).min(b.len());
        let sized = csize != u32::MAX && !(flags & 8 != 0 && csize == 0);
        let next_sig = |from: usize| {
            let l = find(b, LOCAL, from);
            let c = find(b, CENTRAL, from);
            match (l, c) {
                (Some(l), Some(c)) => Some(l.min(c)),
                (l, c) => l.or(c),
            }
        };
        let end = if sized {
            (start + csize as usize).min(b.len())
        } else {
            next_sig(start).unwrap_or(b.len())
        };
        if let Some(data) = bytes.slice(start..end.max(start)) {
            records.push(Record {
                name,
                method,
                data,
                uncompressed: (sized && usize_ != u32::MAX).then_some(usize_ as u64),
            });
        }
        pos = if sized && b.get(end..).is_some_and(|r| r.starts_with(LOCAL)) {
            Some(end)
        } else {
            find(b, LOCAL, (p + 4).max(if sized { end } else { p + 4 }))
        };
    }
    if records.is_empty() {
        w.notes
            .push("no readable zip entry header was found".to_string());
    }
    zip_records(records, w);
}

/// Caps what a deflated record may inflate to while scanning (pickles are small).
const INFLATE_CAP: u64 = 1 << 30;

fn zip_records(records: Vec<Record>, w: &mut Walk) {
    let rel = |n: &str| {
        n.split_once('/')
            .map(|(_, r)| r.to_string())
            .unwrap_or(n.to_string())
    };
    let package = records
        .iter()
        .any(|r| rel(&r.name) == ".data/extern_modules")
        || records
            .iter()
            .any(|r| r.name.ends_with(".py") && !rel(&r.name).starts_with("code/"));
    let torchscript = !package
        && records
            .iter()
            .any(|r| rel(&r.name) == "constants.pkl" || rel(&r.name).starts_with("code/"));
    if package {
        w.format = "torch.package";
    } else if torchscript {
        w.format = "torchscript";
    }
    let mut code_files = 0;
    let mut py_files = 0;
    let mut first_code = String::new();
    for r in records {
        let relname = rel(&r.name);
        if relname.starts_with("data/") && !relname.ends_with(".pkl") {
            continue;
        }
        if r.name.ends_with(".py") {
            if first_code.is_empty() {
                first_code = r.name.clone();
            }
            if package {
                py_files += 1;
            } else {
                code_files += 1;
            }
            continue;
        }
        let data = match r.method {
            0 => r.data,
            8 => {
                let cap = r.uncompressed.unwrap_or(INFLATE_CAP).min(INFLATE_CAP);
                let mut out = Vec::new();
                let res = flate2::read::DeflateDecoder::new(r.data.as_slice())
                    .take(cap)
                    .read_to_end(&mut out);
                if let Err(e) = res {
                    w.notes.push(format!(
                        "record '{}' inflates only partly ({e}); scanned what inflated",
                        r.name
                    ));
                }
                ByteView::from_vec(out)
            }
            m => {
                w.notes.push(format!(
                    "record '{}' uses compression method {m}; not scanned",
                    r.name
                ));
                continue;
            }
        };
        if r.name.ends_with(".pkl") || looks_like_pickle(data.as_slice()) {
            w.blobs.push(Blob {
                record: r.name,
                bytes: data,
                dialect: if torchscript {
                    Dialect::TorchScript
                } else {
                    Dialect::TorchSave
                },
                resync: false,
            });
        }
    }
    if code_files > 0 {
        w.extras.push(Extra::TorchScriptCode {
            files: code_files,
            record: first_code.clone(),
        });
    }
    if package {
        w.extras.push(Extra::PackageCode {
            files: py_files,
            record: first_code,
        });
    }
}

fn octal(b: &[u8]) -> Option<u64> {
    let t: String = b
        .iter()
        .map(|&c| c as char)
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_digit(8))
        .collect();
    u64::from_str_radix(&t, 8).ok()
}

fn walk_tar(bytes: &ByteView, w: &mut Walk) {
    let b = bytes.as_slice();
    let mut pos = 0usize;
    while let Some(h) = b.get(pos..pos + 512) {
        if h.iter().all(|&x| x == 0) {
            break;
        }
        let cstr = |s: &[u8]| {
            let n = s.iter().position(|&c| c == 0).unwrap_or(s.len());
            String::from_utf8_lossy(s.get(..n).unwrap_or(&[])).into_owned()
        };
        let mut name = cstr(h.get(..100).unwrap_or(&[]));
        let prefix = cstr(h.get(345..500).unwrap_or(&[]));
        if h.get(257..262) == Some(b"ustar") && !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let Some(size) = octal(h.get(124..136).unwrap_or(&[])) else {
            w.notes.push(format!(
                "tar header at byte {pos} has no readable size; the rest was searched for pickles"
            ));
            if let Some(rest) = bytes.slice(pos + 512..b.len()) {
                w.blobs.push(Blob {
                    record: format!("(after byte {pos})"),
                    bytes: rest,
                    dialect: Dialect::TorchSave,
                    resync: true,
                });
            }
            return;
        };
        let start = pos + 512;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .unwrap_or(usize::MAX)
            .min(b.len());
        if end < start.saturating_add(size as usize) {
            w.notes.push(format!(
                "tar member '{name}' is cut short; scanned what is there"
            ));
        }
        let typeflag = h.get(156).copied().unwrap_or(b'0');
        if matches!(typeflag, b'0' | 0 | b'7') {
            if let Some(data) = bytes.slice(start.min(end)..end) {
                let base = name.rsplit('/').next().unwrap_or(&name).to_string();
                w.blobs.push(Blob {
                    record: name,
                    bytes: data,
                    dialect: Dialect::TorchSave,
                    resync: base == "storages" || base == "tensors",
                });
            }
        }
        let padded = (size as usize).saturating_add(511) / 512 * 512;
        pos = match start.checked_add(padded) {
            Some(p) => p,
            None => break,
        };
    }
}
