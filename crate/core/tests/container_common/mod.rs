//! Shared helpers for the container tests: fixtures, the expected.tsv sidecar written by
//! `containers/make_files.py`, and a tiny zip builder for synthetic (corrupt) archives.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/containers")
        .join(name)
}

/// The sidecar's lines, split on tabs.
pub fn expected() -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture("expected.tsv"))
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Lines of one kind for one file (without the kind and file columns).
pub fn facts(kind: &str, file: &str) -> Vec<Vec<String>> {
    expected()
        .into_iter()
        .filter(|l| l[0] == kind && l.get(1).map(String::as_str) == Some(file))
        .map(|l| l[2..].to_vec())
        .collect()
}

pub fn sha_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Where things landed in a built zip, for targeted corruption.
pub struct BuiltZip {
    pub bytes: Vec<u8>,
    pub local_offsets: Vec<usize>,
    pub data_offsets: Vec<usize>,
    pub cd_offset: usize,
    pub cd_entry_offsets: Vec<usize>,
    pub zip64_record: Option<usize>,
    pub eocd: usize,
}

pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    /// 0 stored, 8 deflate.
    pub method: u16,
}

pub fn stored<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        data,
        method: 0,
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Builds a zip like Python's zipfile would (no padding, no descriptors). With `zip64`, every
/// central-directory size/offset is 0xFFFFFFFF with a zip64 extra, and the archive ends with
/// a zip64 record + locator, as miniz does for big files (legal for small ones too).
pub fn build_zip(entries: &[Entry], zip64: bool) -> BuiltZip {
    let mut b = Vec::new();
    let mut local_offsets = Vec::new();
    let mut data_offsets = Vec::new();
    let mut metas = Vec::new();
    for e in entries {
        let payload = if e.method == 8 {
            deflate(e.data)
        } else {
            e.data.to_vec()
        };
        let crc = crc32fast::hash(e.data);
        local_offsets.push(b.len());
        b.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        b.extend_from_slice(&20u16.to_le_bytes());
        b.extend_from_slice(&0x0800u16.to_le_bytes());
        b.extend_from_slice(&e.method.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&crc.to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(e.name.as_bytes());
        data_offsets.push(b.len());
        b.extend_from_slice(&payload);
        metas.push((crc, payload.len() as u64, e.data.len() as u64));
    }
    let cd_offset = b.len();
    let mut cd_entry_offsets = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let (crc, csize, usize_) = metas[i];
        cd_entry_offsets.push(b.len());
        b.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        b.extend_from_slice(&20u16.to_le_bytes());
        b.extend_from_slice(&20u16.to_le_bytes());
        b.extend_from_slice(&0x0800u16.to_le_bytes());
        b.extend_from_slice(&e.method.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&crc.to_le_bytes());
        let extra: Vec<u8> = if zip64 {
            let mut x = Vec::new();
            x.extend_from_slice(&1u16.to_le_bytes());
            x.extend_from_slice(&24u16.to_le_bytes());
            x.extend_from_slice(&usize_.to_le_bytes());
            x.extend_from_slice(&csize.to_le_bytes());
            x.extend_from_slice(&(local_offsets[i] as u64).to_le_bytes());
            b.extend_from_slice(&[0xFF; 8]);
            x
        } else {
            b.extend_from_slice(&(csize as u32).to_le_bytes());
            b.extend_from_slice(&(usize_ as u32).to_le_bytes());
            Vec::new()
        };
        b.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        b.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 8]); // comment len, disk, internal attrs, external attrs (half)
        b.extend_from_slice(&[0; 2]);
        let off = if zip64 {
            0xFFFF_FFFFu32
        } else {
            local_offsets[i] as u32
        };
        b.extend_from_slice(&off.to_le_bytes());
        b.extend_from_slice(e.name.as_bytes());
        b.extend_from_slice(&extra);
    }
    let cd_size = b.len() - cd_offset;
    let mut zip64_record = None;
    if zip64 {
        let rec = b.len();
        zip64_record = Some(rec);
        b.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
        b.extend_from_slice(&44u64.to_le_bytes());
        b.extend_from_slice(&0x031Eu16.to_le_bytes());
        b.extend_from_slice(&45u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        b.extend_from_slice(&(cd_size as u64).to_le_bytes());
        b.extend_from_slice(&(cd_offset as u64).to_le_bytes());
        b.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(rec as u64).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
    }
    let eocd = b.len();
    b.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    let n = if zip64 { 0xFFFF } else { entries.len() as u16 };
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(&n.to_le_bytes());
    b.extend_from_slice(&(cd_size as u32).to_le_bytes());
    let off = if zip64 { 0xFFFF_FFFF } else { cd_offset as u32 };
    b.extend_from_slice(&off.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    BuiltZip {
        bytes: b,
        local_offsets,
        data_offsets,
        cd_offset,
        cd_entry_offsets,
        zip64_record,
        eocd,
    }
}

/// Every record of a real archive, in directory order: (full name, bytes).
pub fn records_of(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let ar = torchsave_core::container::zip_read::ZipArchive::parse(
        torchsave_core::ByteView::from_vec(bytes.to_vec()),
    )
    .unwrap();
    ar.entries()
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                ar.read(e, false).unwrap().as_slice().to_vec(),
            )
        })
        .collect()
}
