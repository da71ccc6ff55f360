//! The zip container exactly as PyTorch's patched miniz writes it (FORMAT.md 2.2-2.6, 2.12).
//!
//! Layout, per record, in torch 2.11's order (`data.pkl`, `.format_version`,
//! `.storage_alignment`, `byteorder`, `data/0..N-1`, `version`, `.data/serialization_id`):
//!
//! * local header: version needed 0, flags `0x0808` (`0x0800` and no data descriptor for an
//!   empty record), stored, time/date/CRC/sizes 0, then the extra field: a zip64 extra first
//!   when the record is ≥ 0xFFFFFFFF bytes (usize, csize = 0) and/or its header starts at or
//!   past 0xFFFFFFFF (the header's own offset — miniz's non-standard choice), then the `FB`
//!   padding field that puts the data on a multiple of the alignment;
//! * data descriptor: `PK\x07\x08`, CRC, sizes as u32 — or u64 when the record is big or
//!   starts past 4 GiB;
//! * central directory entries (no padding field; zip64 extra when a value overflows),
//!   a zip64 end record + locator (always), and the classic end record.
//!
//! Because every size is known before writing, the whole layout is computed first
//! ([`plan`]): CRCs of storages are computed in parallel (large storages in chunks combined
//! with `crc32fast::Hasher::combine`), and a file can then be written in parallel at
//! precomputed offsets. Tensor bytes are never copied into a second buffer.
//!
//! We write `.format_version` = `1` and `.storage_alignment` because the layout is exactly
//! torch's: torch's optional offset prediction (FORMAT.md 2.9) depends on that.
//!
//! `.data/serialization_id`: torch's value hashes record names and CRCs with the C++ standard
//! library's `std::hash` and cannot be reproduced here; torch only logs it. Ours is 20 digits
//! from a SHA-256 of the record names followed by 20 digits from a SHA-256 of their CRCs, so
//! the same content always gives the same file.

use crate::error::Result;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Write;

const LOCAL_HEADER_LEN: u64 = 30;
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;
/// CRC work unit for large records (parallel chunks, combined in order).
const CRC_CHUNK: usize = 8 << 20;

/// One record to write: its name inside the archive folder and its bytes.
pub struct RecordSource<'a> {
    pub name: String,
    pub data: &'a [u8],
}

/// Where one record goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPlan {
    /// Full name (`<folder>/<record>`).
    pub name: String,
    pub header_offset: u64,
    pub data_offset: u64,
    pub size: u64,
    pub crc: u32,
    pub padding: u64,
}

impl EntryPlan {
    pub(crate) fn size_is_64(&self) -> bool {
        self.size >= ZIP64_LIMIT
    }
    fn offset_is_64(&self) -> bool {
        self.header_offset >= ZIP64_LIMIT
    }
    pub(crate) fn descriptor_len(&self) -> u64 {
        match (self.size, self.size_is_64() || self.offset_is_64()) {
            (0, _) => 0,
            (_, true) => 24,
            (_, false) => 16,
        }
    }
    fn flags(&self) -> u16 {
        if self.size == 0 {
            0x0800
        } else {
            0x0808
        }
    }

    /// Local header + extra field (zip64 extra, then FB padding).
    pub fn local_header(&self) -> Vec<u8> {
        let mut extra = Vec::new();
        if self.size_is_64() || self.offset_is_64() {
            let len =
                if self.size_is_64() { 16 } else { 0 } + if self.offset_is_64() { 8 } else { 0 };
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&(len as u16).to_le_bytes());
            if self.size_is_64() {
                extra.extend_from_slice(&self.size.to_le_bytes());
                extra.extend_from_slice(&0u64.to_le_bytes());
            }
            if self.offset_is_64() {
                extra.extend_from_slice(&self.header_offset.to_le_bytes());
            }
        }
        extra.extend_from_slice(b"FB");
        extra.extend_from_slice(&(self.padding as u16).to_le_bytes());
        extra.extend(std::iter::repeat_n(b'Z', self.padding as usize));
        let mut h = Vec::with_capacity(30 + self.name.len() + extra.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // version needed
        h.extend_from_slice(&self.flags().to_le_bytes());
        h.extend_from_slice(&[0u8; 18]); // method, time, date, crc, csize, usize
        h.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        h.extend_from_slice(self.name.as_bytes());
        h.extend_from_slice(&extra);
        h
    }

    pub fn descriptor(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(24);
        match self.descriptor_len() {
            16 => {
                d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
                d.extend_from_slice(&self.crc.to_le_bytes());
                d.extend_from_slice(&(self.size as u32).to_le_bytes());
                d.extend_from_slice(&(self.size as u32).to_le_bytes());
            }
            24 => {
                d.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
                d.extend_from_slice(&self.crc.to_le_bytes());
                d.extend_from_slice(&self.size.to_le_bytes());
                d.extend_from_slice(&self.size.to_le_bytes());
            }
            _ => {}
        }
        d
    }

    fn central_entry(&self, out: &mut Vec<u8>) {
        let mut extra = Vec::new();
        if self.size_is_64() || self.offset_is_64() {
            let len =
                if self.size_is_64() { 16 } else { 0 } + if self.offset_is_64() { 8 } else { 0 };
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&(len as u16).to_le_bytes());
            if self.size_is_64() {
                extra.extend_from_slice(&self.size.to_le_bytes());
                extra.extend_from_slice(&self.size.to_le_bytes());
            }
            if self.offset_is_64() {
                extra.extend_from_slice(&self.header_offset.to_le_bytes());
            }
        }
        let size32 = self.size.min(ZIP64_LIMIT) as u32;
        let off32 = self.header_offset.min(ZIP64_LIMIT) as u32;
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // version made by
        out.extend_from_slice(&0u16.to_le_bytes()); // version needed
        out.extend_from_slice(&self.flags().to_le_bytes());
        out.extend_from_slice(&[0u8; 6]); // method, time, date
        out.extend_from_slice(&self.crc.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&size32.to_le_bytes());
        out.extend_from_slice(&(self.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]); // comment len, disk start, internal, external (lo)
        out.extend_from_slice(&[0u8; 2]); // external attributes (hi)
        out.extend_from_slice(&off32.to_le_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&extra);
    }
}

/// Padding miniz/PyTorch put in the FB field (`detail::getPadding`).
pub fn padding_for(cursor: u64, name_len: u64, size: u64, alignment: u64) -> u64 {
    let mut start = cursor + LOCAL_HEADER_LEN + name_len + 4;
    if size >= ZIP64_LIMIT || cursor >= ZIP64_LIMIT {
        start += 4;
        if size >= ZIP64_LIMIT {
            start += 16;
        }
        if cursor >= ZIP64_LIMIT {
            start += 8;
        }
    }
    (alignment - start % alignment) % alignment
}

/// The whole archive's layout.
#[derive(Clone, Debug)]
pub struct Plan {
    pub entries: Vec<EntryPlan>,
    /// Central directory + end records.
    pub tail: Vec<u8>,
    pub tail_offset: u64,
    pub total_len: u64,
}

/// CRC-32 of a buffer, in parallel for large ones.
pub fn crc32(data: &[u8]) -> u32 {
    if data.len() <= CRC_CHUNK {
        return crc32fast::hash(data);
    }
    let parts: Vec<(crc32fast::Hasher, u64)> = data
        .par_chunks(CRC_CHUNK)
        .map(|c| {
            let mut h = crc32fast::Hasher::new();
            h.update(c);
            (h, c.len() as u64)
        })
        .collect();
    let mut acc = crc32fast::Hasher::new();
    for (h, _) in parts {
        acc.combine(&h);
    }
    acc.finalize()
}

fn serialization_id(names: &[String], crcs: &[u32]) -> String {
    let mut a = Sha256::new();
    for n in names {
        a.update(n.as_bytes());
        a.update([0u8]);
    }
    let mut b = Sha256::new();
    for c in crcs {
        b.update(c.to_le_bytes());
    }
    let first = |d: &[u8]| {
        let mut x = [0u8; 8];
        x.copy_from_slice(d.get(..8).unwrap_or(&[0u8; 8]));
        u64::from_le_bytes(x)
    };
    format!("{:020}{:020}", first(&a.finalize()), first(&b.finalize()))
}

/// Builds the layout for `records` (the serialization id record is appended here).
/// Returns the plan and the serialization id bytes (the last record's data).
pub fn plan(folder: &str, records: &[RecordSource<'_>], alignment: u64) -> Result<(Plan, Vec<u8>)> {
    check_alignment(alignment)?;
    let crcs: Vec<u32> = records.par_iter().map(|r| crc32(r.data)).collect();
    plan_with_crcs(folder, records, alignment, crcs)
}

fn check_alignment(alignment: u64) -> Result<()> {
    if alignment == 0 || alignment > 32768 {
        crate::bail!(
            InvalidArgument,
            "storage alignment {alignment} must be between 1 and 32768"
        );
    }
    Ok(())
}

/// [`plan`] with the records' CRCs given (one per record). Offsets and sizes never depend on
/// the CRCs (the serialization id is always 40 digits), so a plan made with placeholder CRCs
/// has the final layout: [`super::file_write`] writes the bulk of a file from it while the
/// real CRCs are being computed.
pub fn plan_with_crcs(
    folder: &str,
    records: &[RecordSource<'_>],
    alignment: u64,
    crcs: Vec<u32>,
) -> Result<(Plan, Vec<u8>)> {
    check_alignment(alignment)?;
    if crcs.len() != records.len() {
        crate::bail!(
            InvalidArgument,
            "{} CRCs for {} records",
            crcs.len(),
            records.len()
        );
    }
    let mut names: Vec<String> = records
        .iter()
        .map(|r| format!("{folder}/{}", r.name))
        .collect();
    let sid = serialization_id(&names, &crcs).into_bytes();
    names.push(format!("{folder}/.data/serialization_id"));
    let mut sizes: Vec<u64> = records.iter().map(|r| r.data.len() as u64).collect();
    sizes.push(sid.len() as u64);
    let mut all_crcs = crcs;
    all_crcs.push(crc32fast::hash(&sid));

    let mut entries = Vec::with_capacity(names.len());
    let mut cursor: u64 = 0;
    for ((name, size), crc) in names.into_iter().zip(sizes).zip(all_crcs) {
        if name.len() > 0xFFFF {
            crate::bail!(InvalidArgument, "record name too long: {name}");
        }
        let padding = padding_for(cursor, name.len() as u64, size, alignment);
        let mut e = EntryPlan {
            name,
            header_offset: cursor,
            data_offset: 0,
            size,
            crc,
            padding,
        };
        e.data_offset = cursor + e.local_header().len() as u64;
        cursor = e
            .data_offset
            .checked_add(size)
            .and_then(|c| c.checked_add(e.descriptor_len()))
            .ok_or_else(|| crate::err!(InvalidArgument, "archive larger than 2^64 bytes"))?;
        entries.push(e);
    }
    let cd_offset = cursor;
    let mut tail = Vec::new();
    for e in &entries {
        e.central_entry(&mut tail);
    }
    let cd_size = tail.len() as u64;
    let n = entries.len() as u64;
    let zip64_eocd_offset = cd_offset + cd_size;
    // zip64 end of central directory record
    tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    tail.extend_from_slice(&44u64.to_le_bytes());
    tail.extend_from_slice(&0x031Eu16.to_le_bytes());
    tail.extend_from_slice(&0x002Du16.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&n.to_le_bytes());
    tail.extend_from_slice(&n.to_le_bytes());
    tail.extend_from_slice(&cd_size.to_le_bytes());
    tail.extend_from_slice(&cd_offset.to_le_bytes());
    // zip64 locator
    tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    tail.extend_from_slice(&0u32.to_le_bytes());
    tail.extend_from_slice(&zip64_eocd_offset.to_le_bytes());
    tail.extend_from_slice(&1u32.to_le_bytes());
    // classic end record
    let n16 = n.min(0xFFFF) as u16;
    tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    tail.extend_from_slice(&n16.to_le_bytes());
    tail.extend_from_slice(&n16.to_le_bytes());
    tail.extend_from_slice(&(cd_size.min(ZIP64_LIMIT) as u32).to_le_bytes());
    tail.extend_from_slice(&(cd_offset.min(ZIP64_LIMIT) as u32).to_le_bytes());
    tail.extend_from_slice(&0u16.to_le_bytes());
    let total_len = cd_offset + tail.len() as u64;
    Ok((
        Plan {
            entries,
            tail,
            tail_offset: cd_offset,
            total_len,
        },
        sid,
    ))
}

/// Writes the planned archive to a stream, sequentially.
pub fn write_stream<W: Write>(
    plan: &Plan,
    records: &[RecordSource<'_>],
    sid: &[u8],
    w: &mut W,
) -> Result<()> {
    let io = |e: std::io::Error| crate::error::Error::io(e, "writing archive");
    for (i, e) in plan.entries.iter().enumerate() {
        let data = records.get(i).map(|r| r.data).unwrap_or(sid);
        w.write_all(&e.local_header()).map_err(io)?;
        w.write_all(data).map_err(io)?;
        w.write_all(&e.descriptor()).map_err(io)?;
    }
    w.write_all(&plan.tail).map_err(io)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(header_offset: u64, size: u64, name: &str) -> EntryPlan {
        let padding = padding_for(header_offset, name.len() as u64, size, 64);
        let mut e = EntryPlan {
            name: name.into(),
            header_offset,
            data_offset: 0,
            size,
            crc: 0x1234_5678,
            padding,
        };
        e.data_offset = header_offset + e.local_header().len() as u64;
        e
    }

    #[test]
    fn first_record_padding_matches_torch() {
        // FORMAT.md 2.5 worked example: archive/data.pkl at 0 -> 14 bytes of padding, data at 64.
        let e = entry(0, 100, "archive/data.pkl");
        assert_eq!(e.padding, 14);
        assert_eq!(e.data_offset, 64);
        assert_eq!(e.descriptor().len(), 16);
    }

    #[test]
    fn zip64_for_big_records() {
        // torch 2.11 (skip_data) wrote big/data/0 of 0xFFFFFFFF+100 bytes at cursor 0x2d6:
        // local extra 01 00 10 00 <usize> <0>, FB with 0x2a bytes, data at 832.
        let e = entry(0x2d6, 0xFFFF_FFFF + 100, "big/data/0");
        assert_eq!(e.padding, 0x2a);
        assert_eq!(e.data_offset, 832);
        let h = e.local_header();
        assert_eq!(&h[40..44], &[1, 0, 16, 0]);
        assert_eq!(&h[44..52], &(0xFFFF_FFFFu64 + 100).to_le_bytes());
        assert_eq!(&h[52..60], &[0u8; 8]);
        assert_eq!(e.descriptor().len(), 24);
        let mut cd = Vec::new();
        e.central_entry(&mut cd);
        assert_eq!(&cd[20..28], &[0xff; 8]);
        assert_eq!(&cd[46 + 10..46 + 14], &[1, 0, 16, 0]);
    }

    #[test]
    fn zip64_for_records_after_4gib() {
        // torch 2.11: big/data/1 (12 bytes) with its header at 0x1_0000_03bb: local extra
        // 01 00 08 00 <offset>, FB with 13 bytes, data at 4294968320, 24-byte descriptor.
        let e = entry(0x1_0000_03bb, 12, "big/data/1");
        assert_eq!(e.padding, 13);
        assert_eq!(e.data_offset, 4_294_968_320);
        let h = e.local_header();
        assert_eq!(&h[40..44], &[1, 0, 8, 0]);
        assert_eq!(&h[44..52], &0x1_0000_03bbu64.to_le_bytes());
        assert_eq!(e.descriptor().len(), 24);
        let mut cd = Vec::new();
        e.central_entry(&mut cd);
        assert_eq!(&cd[42..46], &[0xff; 4]);
        assert_eq!(&cd[20..28], &[12, 0, 0, 0, 12, 0, 0, 0]);
    }

    #[test]
    fn empty_record_has_no_descriptor() {
        let e = entry(64, 0, "archive/data/0");
        assert_eq!(e.flags(), 0x0800);
        assert!(e.descriptor().is_empty());
    }

    #[test]
    fn parallel_crc_equals_serial() {
        let data: Vec<u8> = (0..(CRC_CHUNK * 2 + 12345))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        assert_eq!(crc32(&data), crc32fast::hash(&data));
    }

    #[test]
    fn rejects_bad_alignment() {
        let err = plan("archive", &[], 0).map(|_| ()).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidArgument);
    }
}
