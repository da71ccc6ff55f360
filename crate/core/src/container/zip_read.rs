//! The zip container (torch >= 1.6, opt-in since 1.4): a hand-written, validating reader.
//!
//! Why not the `zip` crate: we need (1) zero-copy byte offsets into the mmapped file so that
//! storages are views, not copies; (2) tolerance of miniz's non-standard local zip64 extra
//! (FORMAT.md 2.6: the local header's zip64 field holds the header offset, not sizes), which
//! means never trusting local zip64 fields at all; (3) a stable error code per malformation;
//! (4) checks the `zip` crate does not make: duplicate names, records overlapping each other
//! or the central directory, every offset/size against the file length. It is ~400 lines.
//!
//! What is read, and from where:
//! * the end-of-central-directory record (EOCD), searched backwards within the last
//!   65,557 bytes (22-byte record + the longest comment); a zip64 locator right before it
//!   leads to the zip64 EOCD record, whose disk numbers, counts, size and offset win over the
//!   classic fields, as in miniz (torch's reader) and Python's zipfile, even where those are
//!   not `0xFFFF`/`0xFFFFFFFF` sentinels but stale values;
//! * every central-directory (CD) entry: sizes, CRC and header offset come from the CD, with
//!   sentinel fields replaced from the CD's zip64 extra (id 1, fields in spec order);
//! * each local header only for its name/extra lengths: data starts at
//!   `offset + 30 + name_len + extra_len`. The local name must equal the CD name.
//!
//! Records are looked up under the top folder, which is the part of the FIRST CD entry's name
//! before its first `/` (PyTorchStreamReader's rule; any folder name loads). Entries outside
//! that folder are ignored (torch's `getAllRecords` would reject the file; we are more lenient
//! because such entries cannot change what is loaded).
//!
//! Records: `data.pkl` (required), `.data/version` or else `version` (required, 1..=10),
//! `byteorder` (`little`/`big`, default little), `constants.pkl` (TorchScript: read by `container::torchscript`, refused here),
//! torch.package archives (`.data/extern_modules`, `.py` sources, no `data.pkl`: refused
//! with `E_TORCH_PACKAGE`, they hold code to run, not a checkpoint),
//! `data/<key>` per storage (length must equal the persistent id's nbytes, as torch checks).
//! Method 0 (stored) records are views into the file; method 8 (deflate, e.g. re-zipped with
//! Python's `zipfile`) is inflated into an owned buffer capped at the declared size.
//!
//! CRC-32: torch never checks it. We check `data.pkl` and the small records unless
//! `verify_crc == Some(false)`, and storages when `verify_crc == Some(true)` or, by default,
//! when the file was read eagerly (checking an mmapped file would fault in every page).
//! A stored CRC of 0 means "not recorded" (`torch.serialization.set_crc32_options(False)`).

use super::{torch_pickle, LoadInfo, Loaded};
use crate::bytes::{byteswapped, ByteView};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::options::LoadOptions;
use crate::pickle::StorageSource;
use crate::value::{Format, Graph};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::io::Read;

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_EOCD: u32 = 0x0605_4b50;
const SIG_ZIP64_EOCD: u32 = 0x0606_4b50;
const SIG_ZIP64_LOCATOR: u32 = 0x0706_4b50;
const EOCD_LEN: u64 = 22;
const LOCATOR_LEN: u64 = 20;
const ZIP64_EOCD_LEN: u64 = 56;
const CD_ENTRY_LEN: u64 = 46;
const LOCAL_LEN: u64 = 30;
/// 22-byte EOCD plus the longest possible comment.
const EOCD_SEARCH: u64 = 65_557;
/// Newest format version torch 2.x reads (`kMaxSupportedFileFormatVersion`).
pub const MAX_SUPPORTED_VERSION: u64 = 10;
/// Records other than storages are read fully and CRC-checked by default; they are tiny in
/// torch's files. Bigger non-storage records are still read, just not checked by default.
const SMALL_RECORD: u64 = 1 << 20;

fn get(b: &[u8], at: u64, n: usize) -> Option<&[u8]> {
    let start = usize::try_from(at).ok()?;
    b.get(start..start.checked_add(n)?)
}
fn rd16(b: &[u8], at: u64) -> Option<u16> {
    get(b, at, 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
}
fn rd32(b: &[u8], at: u64) -> Option<u32> {
    get(b, at, 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}
fn rd64(b: &[u8], at: u64) -> Option<u64> {
    get(b, at, 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
}

fn truncated(what: &str, at: u64) -> Error {
    crate::err!(
        Truncated,
        "the file ends inside the {what}; it was cut short (re-download or re-save it)"
    )
    .at(at)
}

/// One central-directory entry, with its data located.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    /// Full name (`archive/data.pkl`), UTF-8 (invalid bytes replaced).
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Offset of the local header.
    pub header_offset: u64,
    /// Offset of the first data byte.
    pub data_offset: u64,
}

/// A parsed, validated zip archive over shared bytes.
pub struct ZipArchive {
    bytes: ByteView,
    entries: Vec<ZipEntry>,
    /// Names relative to the top folder -> entry index.
    index: HashMap<String, usize>,
    folder: String,
    zip64: bool,
}

impl std::fmt::Debug for ZipArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZipArchive")
            .field("folder", &self.folder)
            .field("entries", &self.entries)
            .finish()
    }
}

struct Eocd {
    entries: u64,
    cd_size: u64,
    cd_offset: u64,
    /// Where the central directory must end at the latest (start of the zip64 record or EOCD).
    cd_limit: u64,
    zip64: bool,
}

fn find_eocd(b: &[u8]) -> Result<Eocd> {
    let len = b.len() as u64;
    if len < EOCD_LEN {
        return Err(truncated("end-of-central-directory record", len));
    }
    let lowest = len.saturating_sub(EOCD_SEARCH);
    let mut pos = len - EOCD_LEN;
    let eocd = loop {
        if rd32(b, pos) == Some(SIG_EOCD) {
            let comment = rd16(b, pos + 20).unwrap_or(u16::MAX) as u64;
            if pos + EOCD_LEN + comment <= len {
                break pos;
            }
        }
        if pos == lowest {
            crate::bail!(
                Truncated,
                "no end-of-central-directory record in the last {EOCD_SEARCH} bytes: the zip was cut short or is not a zip"
            );
        }
        pos -= 1;
    };
    let field16 = |o: u64| rd16(b, eocd + o).unwrap_or(0);
    let field32 = |o: u64| rd32(b, eocd + o).unwrap_or(0);
    let (disk, cd_disk) = (field16(4), field16(6));
    let (n_disk, n_total) = (field16(8), field16(10));
    let (cd_size32, cd_offset32) = (field32(12), field32(16));
    // With a zip64 record, its disk numbers and counts are the ones that count (below).
    let has_locator = eocd >= LOCATOR_LEN && rd32(b, eocd - LOCATOR_LEN) == Some(SIG_ZIP64_LOCATOR);
    if !has_locator && (disk != 0 || cd_disk != 0 || n_disk != n_total) {
        crate::bail!(
            BadZip,
            "multi-disk zip archives are not supported (disk {disk}, directory disk {cd_disk})"
        );
    }
    let mut out = Eocd {
        entries: n_total as u64,
        cd_size: cd_size32 as u64,
        cd_offset: cd_offset32 as u64,
        cd_limit: eocd,
        zip64: false,
    };
    if has_locator {
        let loc = eocd - LOCATOR_LEN;
        let rec = rd64(b, loc + 8).unwrap_or(u64::MAX);
        let disks = rd32(b, loc + 16).unwrap_or(0);
        if disks > 1 {
            crate::bail!(
                BadZip,
                "multi-disk zip64 archives are not supported ({disks} disks)"
            );
        }
        let rec_end = rec
            .checked_add(ZIP64_EOCD_LEN)
            .ok_or_else(|| crate::err!(BadZip, "zip64 record offset overflows"))?;
        if rec_end > loc {
            crate::bail!(
                BadZip,
                "the zip64 locator points at {rec}, past itself (at {loc})"
            );
        }
        if rd32(b, rec) != Some(SIG_ZIP64_EOCD) {
            return Err(crate::err!(
                BadZip,
                "no zip64 end-of-central-directory record where the locator points"
            )
            .at(rec));
        }
        let f32_ = |o: u64| rd32(b, rec + o).unwrap_or(0);
        let f64_ = |o: u64| rd64(b, rec + o).unwrap_or(0);
        if f32_(16) != 0 || f32_(20) != 0 || f64_(24) != f64_(32) {
            crate::bail!(BadZip, "multi-disk zip64 archives are not supported");
        }
        let (entries, cd_size, cd_offset) = (f64_(32), f64_(40), f64_(48));
        // The 32-bit fields may be stale (not the 0xFFFF/0xFFFFFFFF sentinels, yet different):
        // miniz (torch's reader) and Python's zipfile take the zip64 values, so do we. Every
        // bounds check below applies to the values taken.
        out = Eocd {
            entries,
            cd_size,
            cd_offset,
            cd_limit: rec,
            zip64: true,
        };
    }
    Ok(out)
}

/// Replaces sentinel fields from the zip64 extra (id 1) of a central-directory entry.
fn apply_zip64_extra(
    extra: &[u8],
    usize_: &mut u64,
    csize: &mut u64,
    offset: &mut u64,
    name: &str,
) -> Result<()> {
    let need = [
        *usize_ == 0xFFFF_FFFF,
        *csize == 0xFFFF_FFFF,
        *offset == 0xFFFF_FFFF,
    ];
    if !need.iter().any(|&n| n) {
        return Ok(());
    }
    let mut p = 0u64;
    while let (Some(id), Some(size)) = (rd16(extra, p), rd16(extra, p + 2)) {
        let body = get(extra, p + 4, size as usize).ok_or_else(|| {
            crate::err!(
                BadZip,
                "extra field of '{name}' runs past its declared length"
            )
        })?;
        if id == 1 {
            let mut q = 0u64;
            let mut take = |needed: bool, field: &mut u64| -> Result<()> {
                if needed {
                    *field = rd64(body, q).ok_or_else(|| {
                        crate::err!(
                            BadZip,
                            "zip64 extra of '{name}' is too short for its 0xFFFFFFFF fields"
                        )
                    })?;
                    q += 8;
                }
                Ok(())
            };
            take(need[0], usize_)?;
            take(need[1], csize)?;
            take(need[2], offset)?;
            return Ok(());
        }
        p += 4 + size as u64;
    }
    crate::bail!(
        BadZip,
        "'{name}' has 0xFFFFFFFF size/offset fields but no zip64 extra"
    )
}

impl ZipArchive {
    /// Parses and validates the directory; reads no record data.
    pub fn parse(bytes: ByteView) -> Result<ZipArchive> {
        let b = bytes.as_slice();
        let len = b.len() as u64;
        let eocd = find_eocd(b)?;
        let cd_end = eocd
            .cd_offset
            .checked_add(eocd.cd_size)
            .ok_or_else(|| crate::err!(BadZip, "central directory offset + size overflows"))?;
        if cd_end > len {
            return Err(truncated("central directory", eocd.cd_offset));
        }
        if cd_end > eocd.cd_limit {
            crate::bail!(
                BadZip,
                "central directory ({} bytes at {}) overlaps the end-of-directory records at {}",
                eocd.cd_size,
                eocd.cd_offset,
                eocd.cd_limit
            );
        }
        if eocd.entries == 0 {
            crate::bail!(BadZip, "the zip archive has no entries");
        }
        if eocd.entries > eocd.cd_size / CD_ENTRY_LEN {
            crate::bail!(
                BadZip,
                "{} entries cannot fit in a {}-byte central directory",
                eocd.entries,
                eocd.cd_size
            );
        }
        let mut entries = Vec::with_capacity(eocd.entries as usize);
        let mut names = HashSet::with_capacity(eocd.entries as usize);
        let mut p = eocd.cd_offset;
        for i in 0..eocd.entries {
            let fixed = get(b, p, CD_ENTRY_LEN as usize).filter(|_| p + CD_ENTRY_LEN <= cd_end);
            let Some(fixed) = fixed else {
                return Err(crate::err!(
                    BadZip,
                    "central directory entry {i} runs past the directory's end"
                )
                .at(p));
            };
            let f16 = |o: u64| rd16(fixed, o).unwrap_or(0);
            let f32_ = |o: u64| rd32(fixed, o).unwrap_or(0);
            if f32_(0) != SIG_CENTRAL {
                return Err(
                    crate::err!(BadZip, "central directory entry {i} has a bad signature").at(p),
                );
            }
            let (flags, method, crc32) = (f16(8), f16(10), f32_(16));
            let (mut csize, mut usize_) = (f32_(20) as u64, f32_(24) as u64);
            let (name_len, extra_len, comment_len) =
                (f16(28) as u64, f16(30) as u64, f16(32) as u64);
            let disk = f16(34);
            let mut header_offset = f32_(42) as u64;
            let var_end = p + CD_ENTRY_LEN + name_len + extra_len + comment_len;
            if var_end > cd_end {
                return Err(crate::err!(
                    BadZip,
                    "central directory entry {i} runs past the directory's end"
                )
                .at(p));
            }
            let raw_name = get(b, p + CD_ENTRY_LEN, name_len as usize).unwrap_or(&[]);
            let extra = get(b, p + CD_ENTRY_LEN + name_len, extra_len as usize).unwrap_or(&[]);
            let name = String::from_utf8_lossy(raw_name).into_owned();
            apply_zip64_extra(extra, &mut usize_, &mut csize, &mut header_offset, &name)?;
            if disk != 0 && disk != 0xFFFF {
                crate::bail!(
                    BadZip,
                    "'{name}' lives on disk {disk}; multi-disk archives are not supported"
                );
            }
            if flags & 1 != 0 {
                crate::bail!(
                    BadZip,
                    "'{name}' is encrypted; torch never writes encrypted records"
                );
            }
            if method == 0 && csize != usize_ {
                crate::bail!(BadZip, "stored record '{name}' has compressed size {csize} but uncompressed size {usize_}");
            }
            if !names.insert(raw_name.to_vec()) {
                crate::bail!(BadZip, "the archive has two records named '{name}'");
            }
            // Local header: only its name and extra lengths are used.
            let lh = header_offset;
            if !matches!(lh.checked_add(LOCAL_LEN), Some(e) if e <= len) {
                return Err(truncated(&format!("local header of '{name}'"), lh));
            }
            if rd32(b, lh) != Some(SIG_LOCAL) {
                return Err(crate::err!(
                    BadZip,
                    "no local header where the directory says '{name}' starts"
                )
                .at(lh));
            }
            let (lname, lextra) = (
                rd16(b, lh + 26).unwrap_or(0) as u64,
                rd16(b, lh + 28).unwrap_or(0) as u64,
            );
            let data_offset = lh + LOCAL_LEN + lname + lextra;
            match get(b, lh + LOCAL_LEN, lname as usize) {
                Some(n) if n == raw_name => {}
                Some(_) => crate::bail!(
                    BadZip,
                    "the local header of '{name}' names a different record"
                ),
                None => return Err(truncated(&format!("local header of '{name}'"), lh)),
            }
            let data_end = data_offset
                .checked_add(csize)
                .ok_or_else(|| crate::err!(BadZip, "size of '{name}' overflows"))?;
            if data_end > len {
                return Err(truncated(&format!("record '{name}'"), data_offset));
            }
            if data_end > eocd.cd_offset {
                crate::bail!(BadZip, "record '{name}' ({csize} bytes at {data_offset}) overlaps the central directory");
            }
            entries.push(ZipEntry {
                name,
                flags,
                method,
                crc32,
                compressed_size: csize,
                uncompressed_size: usize_,
                header_offset,
                data_offset,
            });
            p = var_end;
        }
        // No two records may share bytes (a classic zip-bomb and confusion trick).
        let mut spans: Vec<(u64, u64, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.header_offset, e.data_offset + e.compressed_size, i))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            if let [(_, end_a, a), (start_b, _, b_)] = w {
                if start_b < end_a {
                    let (na, nb) = (
                        &entries.get(*a).map(|e| e.name.as_str()),
                        &entries.get(*b_).map(|e| e.name.as_str()),
                    );
                    crate::bail!(
                        BadZip,
                        "records {} and {} overlap",
                        na.unwrap_or("?"),
                        nb.unwrap_or("?")
                    );
                }
            }
        }
        let first = entries.first().map(|e| e.name.clone()).unwrap_or_default();
        let Some(slash) = first.find('/') else {
            crate::bail!(BadZip, "the first record '{first}' is not inside a folder (torch archives put every record under one)");
        };
        let folder = first.get(..slash).unwrap_or_default().to_string();
        let prefix = format!("{folder}/");
        let index = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.name.strip_prefix(&prefix).map(|rel| (rel.to_string(), i)))
            .collect();
        Ok(ZipArchive {
            bytes,
            entries,
            index,
            folder,
            zip64: eocd.zip64,
        })
    }

    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The top folder (`archive`, or the saved file's stem).
    pub fn folder(&self) -> &str {
        &self.folder
    }

    /// True when the archive has a zip64 end record.
    pub fn is_zip64(&self) -> bool {
        self.zip64
    }

    /// The entry for `record` (relative to the top folder).
    pub fn find(&self, record: &str) -> Option<&ZipEntry> {
        self.index.get(record).and_then(|&i| self.entries.get(i))
    }

    /// The record holding storage `key` (`rel`, relative to the top folder) with its index,
    /// checked to hold exactly the `nbytes` the pickle asks for: `E_MISSING_RECORD` /
    /// `E_STORAGE_SIZE` naming the record. Shared by torch.save's and TorchScript's loaders.
    pub(crate) fn storage_entry(
        &self,
        rel: &str,
        key: &str,
        dtype: DType,
        nbytes: u64,
    ) -> Result<(usize, &ZipEntry)> {
        let full = format!("{}/{rel}", self.folder);
        let idx = self.index.get(rel).copied();
        let Some((i, entry)) = idx.and_then(|i| Some((i, self.entries.get(i)?))) else {
            return Err(crate::err!(
                MissingRecord,
                "storage '{key}' has no record '{full}' in the archive"
            )
            .in_record(full));
        };
        if entry.uncompressed_size != nbytes {
            return Err(crate::err!(
                StorageSize,
                "record '{full}' holds {} bytes but storage '{key}' needs {nbytes} ({dtype} elements)",
                entry.uncompressed_size
            )
            .in_record(full));
        }
        Ok((i, entry))
    }

    /// The record's bytes: a view of the file when stored, an owned buffer when deflated.
    /// `verify_crc` checks the CRC-32 (skipped when the stored CRC is 0).
    pub fn read(&self, entry: &ZipEntry, verify_crc: bool) -> Result<ByteView> {
        let data = self.read_raw(entry)?;
        if verify_crc {
            check_crc(entry, data.as_slice())?;
        }
        Ok(data)
    }

    fn read_raw(&self, entry: &ZipEntry) -> Result<ByteView> {
        let start = usize::try_from(entry.data_offset)
            .map_err(|_| truncated("archive", entry.data_offset))?;
        let len = usize::try_from(entry.compressed_size)
            .map_err(|_| truncated("archive", entry.data_offset))?;
        let raw = start
            .checked_add(len)
            .and_then(|end| self.bytes.slice(start..end))
            .ok_or_else(|| truncated(&format!("record '{}'", entry.name), entry.data_offset))?;
        match entry.method {
            0 => Ok(raw),
            8 => inflate(raw.as_slice(), entry).map(ByteView::from_vec),
            m => Err(crate::err!(
                BadZip,
                "record '{}' uses compression method {m}; only stored (0) and deflate (8) are supported",
                entry.name
            )),
        }
    }
}

/// Largest uncompressed:compressed ratio accepted for records above [`INFLATE_RATIO_FLOOR`].
/// torch.save never compresses; compressed records come from re-zipping tools, where real
/// tensor data stays far below this. A higher ratio is a zip bomb until proven otherwise.
pub const MAX_INFLATE_RATIO: u64 = 100;
/// Records up to this size may inflate at any ratio (small and cheap either way).
pub const INFLATE_RATIO_FLOOR: u64 = 16 << 20;

/// Inflates at most `uncompressed_size + 1` bytes, so a lying header cannot make us allocate
/// more than it declared (zip-bomb safe), and a short or long stream is an error.
fn inflate(raw: &[u8], entry: &ZipEntry) -> Result<Vec<u8>> {
    let want = entry.uncompressed_size;
    if want > INFLATE_RATIO_FLOOR && want / (raw.len() as u64).max(1) > MAX_INFLATE_RATIO {
        crate::bail!(
            LimitExceeded,
            "record '{}' would inflate {} bytes to {want} (ratio above {MAX_INFLATE_RATIO}:1): refusing a likely zip bomb",
            entry.name,
            raw.len()
        );
    }
    let mut out = Vec::with_capacity(usize::try_from(want.min(1 << 26)).unwrap_or(0));
    flate2::read::DeflateDecoder::new(raw)
        .take(want.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| crate::err!(BadZip, "cannot inflate record '{}': {e}", entry.name))?;
    if out.len() as u64 != want {
        crate::bail!(
            BadZip,
            "record '{}' inflates to {}{} bytes but its header declares {want}",
            entry.name,
            if out.len() as u64 > want {
                "more than "
            } else {
                ""
            },
            out.len().min(usize::try_from(want).unwrap_or(usize::MAX))
        );
    }
    Ok(out)
}

/// Compares a record's CRC-32 with its bytes; a stored CRC of 0 means "not recorded".
pub fn check_crc(entry: &ZipEntry, data: &[u8]) -> Result<()> {
    if entry.crc32 == 0 {
        return Ok(());
    }
    let actual = crc32fast::hash(data);
    if actual != entry.crc32 {
        return Err(crate::err!(
            BadCrc,
            "CRC-32 of record '{}' is {actual:08x} but the archive says {:08x}: the file is corrupted",
            entry.name,
            entry.crc32
        )
        .in_record(entry.name.clone()));
    }
    Ok(())
}

/// Parses a version record the way torch's `stoull` does: leading whitespace, optional sign,
/// digits, anything after the digits ignored.
pub fn parse_version(text: &[u8]) -> Result<u64> {
    let s = String::from_utf8_lossy(text);
    let t = s.trim_start();
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, t.get(1..).unwrap_or("")),
        Some(b'+') => (false, t.get(1..).unwrap_or("")),
        _ => (false, t),
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        crate::bail!(
            BadZip,
            "cannot parse the version record '{}' as an integer",
            s.escape_debug()
        );
    }
    let v: u64 = digits.parse().map_err(|_| {
        crate::err!(
            UnsupportedVersion,
            "version {digits} is out of range; this reader supports 1..={MAX_SUPPORTED_VERSION}"
        )
    })?;
    if neg && v != 0 {
        crate::bail!(
            UnsupportedVersion,
            "version -{v} is not supported (supported: 1..={MAX_SUPPORTED_VERSION})"
        );
    }
    if !(1..=MAX_SUPPORTED_VERSION).contains(&v) {
        crate::bail!(
            UnsupportedVersion,
            "the archive's format version is {v}; this reader supports 1..={MAX_SUPPORTED_VERSION} (like torch 2.x)"
        );
    }
    Ok(v)
}

/// torch.package's layout (`torch/package/package_exporter.py`): `.data/extern_modules` and
/// `.data/version` are always written, the pickles live under their package's folder and the
/// modules as `.py` sources. torch.save never writes `.data/extern_modules`, so this holds even
/// when a package happens to contain a resource named `data.pkl`.
pub fn is_torch_package(ar: &ZipArchive) -> bool {
    ar.find(".data/extern_modules").is_some()
        && (ar.find(".data/python_version").is_some()
            || ar.index.keys().any(|k| k.ends_with(".py")))
}

/// A storage's bytes in this machine's (little-endian) order: swapped copies for a
/// big-endian archive's multi-byte dtypes, else the bytes as they are.
pub(crate) fn in_byte_order(raw: ByteView, dtype: DType, big_endian: bool) -> ByteView {
    if big_endian && dtype.swap_unit() > 1 {
        ByteView::from_vec(byteswapped(raw.as_slice(), dtype.swap_unit()))
    } else {
        raw
    }
}

/// The archive's storages, for the persistent loader.
struct ZipStorages<'a> {
    ar: &'a ZipArchive,
    big_endian: bool,
    verify: bool,
    cache: HashMap<String, ByteView>,
    /// Stored (zero-copy) storages whose CRC is checked in parallel after the pickle.
    deferred: Vec<usize>,
}

impl StorageSource for ZipStorages<'_> {
    fn storage(&mut self, key: &str, dtype: DType, nbytes: u64) -> Result<Option<ByteView>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(Some(v.clone()));
        }
        let rel = format!("data/{key}");
        let full = format!("{}/{rel}", self.ar.folder());
        let (i, entry) = self.ar.storage_entry(&rel, key, dtype, nbytes)?;
        let raw = self
            .ar
            .read_raw(entry)
            .map_err(|e| e.in_record(full.clone()))?;
        // Owned buffers (inflated / swapped) are checked now; stored views later, in parallel.
        let inline = self.verify && (entry.method != 0 || self.big_endian);
        if inline {
            check_crc(entry, raw.as_slice())?;
        } else if self.verify {
            self.deferred.push(i);
        }
        let data = in_byte_order(raw, dtype, self.big_endian);
        self.cache.insert(key.to_string(), data.clone());
        Ok(Some(data))
    }
}

/// Loads a zip-format checkpoint. `mmapped`: the bytes are a file mapping (changes the CRC
/// default). The caller validates the graph.
pub fn load(bytes: ByteView, opts: &LoadOptions, mmapped: bool) -> Result<Loaded> {
    load_archive(&ZipArchive::parse(bytes)?, opts, mmapped)
}

/// [`load`] of an archive already parsed (`detect` parses it once to tell TorchScript apart).
pub fn load_archive(ar: &ZipArchive, opts: &LoadOptions, mmapped: bool) -> Result<Loaded> {
    let folder = ar.folder().to_string();
    let verify_small = opts.verify_crc != Some(false);
    let verify_storages = opts.verify_crc.unwrap_or(!mmapped);
    // data.pkl is always checked (it is read fully anyway); other non-storage records when small.
    let small = |rel: &str| -> Result<Option<ByteView>> {
        match ar.find(rel) {
            None => Ok(None),
            Some(e) => {
                let check =
                    verify_small && (rel == "data.pkl" || e.uncompressed_size <= SMALL_RECORD);
                let v = ar.read(e, check);
                v.map(Some).map_err(|err| err.in_record(e.name.clone()))
            }
        }
    };
    if is_torch_package(ar) {
        crate::bail!(
            TorchPackage,
            "this is a torch.package archive (it has {folder}/.data/extern_modules and packaged Python \
             source, not a torch.save data.pkl), written by torch.package.PackageExporter: its objects are \
             rebuilt by running the Python code it contains, which this reader never does, and \
             torch.load cannot read it either; open it in Python with torch.package.PackageImporter, \
             or re-save the weights there with torch.save(model.state_dict(), path)"
        );
    }
    if ar.find("constants.pkl").is_some() {
        // `container::detect` sends TorchScript archives to `container::torchscript`; this
        // reader alone (called directly) does not read them.
        crate::bail!(
            UnknownFormat,
            "this is a TorchScript archive (it has {folder}/constants.pkl), written by torch.jit.save; \
             read it with torch.jit.load (torchsave's jit namespace), not this zip reader"
        );
    }
    let Some(pkl) = small("data.pkl")? else {
        crate::bail!(
            MissingRecord,
            "the archive has no '{folder}/data.pkl'; it is a zip but not a torch.save checkpoint"
        );
    };
    let version_rel = if ar.find(".data/version").is_some() {
        ".data/version"
    } else {
        "version"
    };
    let Some(version) = small(version_rel)? else {
        return Err(crate::err!(
            MissingRecord,
            "the archive has no '{folder}/version' record"
        )
        .in_record(format!("{folder}/version")));
    };
    parse_version(version.as_slice())
        .map_err(|e| e.in_record(format!("{folder}/{version_rel}")))?;
    let big_endian = match small("byteorder")? {
        None => false,
        Some(v) => match v.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(crate::err!(
                    BadZip,
                    "byteorder record is '{}'; it must be 'little' or 'big'",
                    String::from_utf8_lossy(other).escape_debug()
                )
                .in_record(format!("{folder}/byteorder")))
            }
        },
    };
    let mut src = ZipStorages {
        ar,
        big_endian,
        verify: verify_storages,
        cache: HashMap::new(),
        deferred: Vec::new(),
    };
    let mut graph = Graph::new();
    let out = torch_pickle::run_torch_pickle(pkl.as_slice(), &mut graph, opts, &mut src)
        .map_err(|e| e.in_record(format!("{folder}/data.pkl")))?;
    let deferred = std::mem::take(&mut src.deferred);
    deferred
        .par_iter()
        .try_for_each(|&i| match ar.entries.get(i) {
            Some(e) => ar.read_raw(e).and_then(|d| check_crc(e, d.as_slice())),
            None => Ok(()),
        })?;
    graph.root = Some(out.root);
    Ok(Loaded {
        graph,
        info: LoadInfo {
            format: Format::Zip,
            globals: out.globals,
            big_endian,
            pickle_protocol: out.protocol,
            archive_name: Some(folder),
            version: Some(
                String::from_utf8_lossy(version.as_slice())
                    .trim()
                    .to_string(),
            ),
            weights_only_refusal: out.weights_only_refusal,
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn versions_parse_like_stoull() {
        assert_eq!(parse_version(b"3\n").unwrap(), 3);
        assert_eq!(parse_version(b"  10abc").unwrap(), 10);
        assert_eq!(parse_version(b"abc").unwrap_err().code, ErrorCode::BadZip);
        assert_eq!(
            parse_version(b"11").unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            parse_version(b"0").unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            parse_version(b"-1").unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(
            parse_version(b"99999999999999999999999").unwrap_err().code,
            ErrorCode::UnsupportedVersion
        );
    }
}
