//! Container-level tests that need no pickle VM: real torch 2.11 files (see
//! containers/make_files.py and its expected.tsv) read by the zip/legacy/tar layers, and
//! synthetic corrupt archives that must fail with a specific code and never panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "container_common/mod.rs"]
mod common;

use common::*;
use torchsave_core::container::detect::detect_format;
use torchsave_core::container::zip_read::{check_crc, ZipArchive};
use torchsave_core::container::{legacy, source, tar_read};
use torchsave_core::dtype::DType;
use torchsave_core::{load_bytes, ByteView, ErrorCode, Format, LoadOptions};

const ZIPS: [&str; 7] = [
    "zip_default",
    "zip_buffer",
    "zip_deflated",
    "zip_renamed",
    "zip_nocrc",
    "zip_empty",
    "zip_bigendian",
];

fn parse(b: &[u8]) -> torchsave_core::Result<ZipArchive> {
    ZipArchive::parse(ByteView::from_vec(b.to_vec()))
}

#[test]
fn real_zips_match_python_zipfile() {
    for name in ZIPS {
        for mmap in [false, true] {
            let bytes = source::open(&fixture(&format!("{name}.pt")), mmap).unwrap();
            assert_eq!(detect_format(bytes.as_slice()).unwrap(), Format::Zip);
            let ar = ZipArchive::parse(bytes.clone()).unwrap();
            assert_eq!(ar.folder(), facts("folder", name)[0][0], "{name}");
            let recs = facts("record", name);
            assert_eq!(ar.entries().len(), recs.len(), "{name}");
            for r in &recs {
                let e = ar
                    .entries()
                    .iter()
                    .find(|e| e.name == r[0])
                    .unwrap_or_else(|| panic!("{name}: {}", r[0]));
                let data = ar.read(e, true).unwrap();
                assert_eq!(data.len().to_string(), r[1], "{}", r[0]);
                assert_eq!(sha_hex(data.as_slice()), r[2], "{}", r[0]);
                assert_eq!(e.crc32.to_string(), r[3], "{}", r[0]);
                if e.method == 0 {
                    // Stored records are views of the file, not copies.
                    assert!(data.same_backing(&bytes));
                }
            }
            let rel = ar.find("data.pkl").unwrap();
            assert_eq!(rel.name, format!("{}/data.pkl", ar.folder()));
        }
    }
}

#[test]
fn torch_output_is_aligned_zip64_and_deflate_is_inflated() {
    let b = std::fs::read(fixture("zip_buffer.pt")).unwrap();
    let ar = parse(&b).unwrap();
    assert!(ar.is_zip64(), "torch always writes the zip64 end records");
    assert!(ar
        .entries()
        .iter()
        .all(|e| e.data_offset % 64 == 0 && e.method == 0));
    let d = parse(&std::fs::read(fixture("zip_deflated.pt")).unwrap()).unwrap();
    assert!(d.entries().iter().any(|e| e.method == 8));
    // The empty record: flags 0x0800, no descriptor, zero bytes.
    let e = parse(&std::fs::read(fixture("zip_empty.pt")).unwrap()).unwrap();
    let empty = e
        .entries()
        .iter()
        .find(|x| x.name.contains("/data/") && x.uncompressed_size == 0)
        .unwrap();
    assert_eq!(empty.flags, 0x0800);
    assert_eq!(e.read(empty, true).unwrap().len(), 0);
}

#[test]
fn legacy_stream_tail_matches_torch() {
    let bytes = source::open(&fixture("legacy.pt"), false).unwrap();
    assert_eq!(detect_format(bytes.as_slice()).unwrap(), Format::Legacy);
    assert!(legacy::has_legacy_magic(bytes.as_slice()));
    let tail: usize = facts("legacy_tail", "legacy")[0][0].parse().unwrap();
    let keys_facts = facts("legacy_key", "legacy");
    let keys: Vec<String> = keys_facts.iter().map(|k| k[0].clone()).collect();
    let expected = keys_facts
        .iter()
        .map(|k| {
            (
                k[0].clone(),
                (
                    DType::from_name(&k[1]).unwrap(),
                    k[2].parse::<u64>().unwrap(),
                ),
            )
        })
        .collect();
    let t = legacy::read_storage_tail(&bytes, tail, &keys, &expected, false).unwrap();
    assert_eq!(t.end, bytes.len());
    for k in &keys_facts {
        assert_eq!(sha_hex(t.data[&k[0]].as_slice()), k[3], "storage {}", k[0]);
        assert!(t.data[&k[0]].same_backing(&bytes));
    }
}

#[test]
fn tar_members_and_weights_only_refusal() {
    let bytes = source::open(&fixture("tar.pt"), true).unwrap();
    assert_eq!(detect_format(bytes.as_slice()).unwrap(), Format::Tar);
    let m = tar_read::members(&bytes).unwrap();
    for need in ["sys_info", "pickle", "tensors", "storages"] {
        assert!(m.contains_key(need), "{need}");
    }
    // torch: "Cannot use weights_only=True with files saved in the legacy .tar format".
    let e = load_bytes(bytes, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
}

#[test]
fn every_truncation_of_a_real_zip_fails_cleanly() {
    let b = std::fs::read(fixture("zip_empty.pt")).unwrap();
    for n in 0..b.len() {
        let e = parse(&b[..n]).unwrap_err();
        assert!(
            matches!(e.code, ErrorCode::Truncated | ErrorCode::BadZip),
            "cut at {n}: {e}"
        );
        let e =
            load_bytes(ByteView::from_vec(b[..n].to_vec()), &LoadOptions::default()).unwrap_err();
        assert!(
            matches!(
                e.code,
                ErrorCode::Truncated | ErrorCode::BadZip | ErrorCode::UnknownFormat
            ),
            "cut at {n}: {e}"
        );
    }
}

#[test]
fn every_truncation_of_legacy_and_tar_never_panics() {
    for name in ["legacy.pt", "tar.pt"] {
        let b = std::fs::read(fixture(name)).unwrap();
        let opts = LoadOptions {
            weights_only: false,
            ..LoadOptions::default()
        };
        // A tar may end with zero padding blocks; cuts inside them still hold every member.
        let complete = if name == "tar.pt" {
            let v = ByteView::from_vec(b.clone());
            tar_read::members(&v)
                .unwrap()
                .values()
                .map(|m| m.offset_in_backing() + m.len())
                .max()
                .unwrap()
        } else {
            b.len()
        };
        for n in 0..b.len() {
            let r = load_bytes(ByteView::from_vec(b[..n].to_vec()), &opts);
            if n < complete {
                assert!(r.is_err(), "{name} cut at {n}");
            }
        }
    }
}

#[test]
fn flipping_any_directory_byte_never_panics() {
    let b = std::fs::read(fixture("zip_buffer.pt")).unwrap();
    let ar = parse(&b).unwrap();
    let cd = ar
        .entries()
        .iter()
        .map(|e| e.data_offset + e.compressed_size)
        .max()
        .unwrap() as usize;
    for i in cd..b.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut c = b.clone();
            c[i] ^= mask;
            if let Ok(a) = parse(&c) {
                for e in a.entries() {
                    let _ = a.read(e, true);
                }
            }
        }
    }
}

#[test]
fn flipped_data_byte_is_a_crc_error() {
    let b = std::fs::read(fixture("zip_buffer.pt")).unwrap();
    let ar = parse(&b).unwrap();
    let e = ar.find("data/0").unwrap().clone();
    let mut c = b.clone();
    c[e.data_offset as usize] ^= 0x40;
    let ar2 = parse(&c).unwrap();
    let e2 = ar2.find("data/0").unwrap();
    assert_eq!(ar2.read(e2, true).unwrap_err().code, ErrorCode::BadCrc);
    assert!(
        ar2.read(e2, false).is_ok(),
        "torch does not check CRCs; neither do we when told not to"
    );
    // data.pkl is always checked by load.
    let p = ar.find("data.pkl").unwrap().clone();
    let mut c = b.clone();
    c[p.data_offset as usize + 5] ^= 0x01;
    let err = load_bytes(ByteView::from_vec(c), &LoadOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadCrc);
    // The no-CRC file (CRC fields 0) passes every check.
    let n = parse(&std::fs::read(fixture("zip_nocrc.pt")).unwrap()).unwrap();
    for e in n.entries() {
        check_crc(e, n.read(e, false).unwrap().as_slice()).unwrap();
    }
}

#[test]
fn synthetic_archives_parse_plain_and_zip64() {
    for zip64 in [false, true] {
        let z = build_zip(
            &[
                stored("m/data.pkl", b"\x80\x02}q\x00."),
                Entry {
                    name: "m/data/0",
                    data: &[7u8; 300],
                    method: 8,
                },
                stored("m/version", b"3\n"),
                stored("other/x", b"ignored"),
            ],
            zip64,
        );
        let ar = parse(&z.bytes).unwrap();
        assert_eq!(ar.is_zip64(), zip64);
        assert_eq!(ar.folder(), "m");
        assert_eq!(
            ar.read(ar.find("data/0").unwrap(), true)
                .unwrap()
                .as_slice(),
            &[7u8; 300]
        );
        assert_eq!(
            ar.find("data/0").unwrap().data_offset,
            z.data_offsets[1] as u64
        );
        assert!(
            ar.find("x").is_none(),
            "entries outside the top folder are ignored"
        );
    }
}

#[test]
fn structural_errors_have_codes() {
    let ok = [
        stored("a/data.pkl", b"\x80\x02N."),
        stored("a/version", b"3"),
    ];
    let code = |b: &[u8]| parse(b).unwrap_err().code;

    // Duplicate names.
    let z = build_zip(
        &[stored("a/data.pkl", b"x"), stored("a/data.pkl", b"y")],
        false,
    );
    assert_eq!(code(&z.bytes), ErrorCode::BadZip);
    // No folder.
    let z = build_zip(&[stored("data.pkl", b"x")], false);
    assert_eq!(code(&z.bytes), ErrorCode::BadZip);
    // No EOCD at all.
    let z = build_zip(&ok, false);
    assert_eq!(code(&z.bytes[..z.eocd]), ErrorCode::Truncated);
    // Sizes past EOF (central directory says 1 GB).
    let mut c = build_zip(&ok, false);
    let cd0 = c.cd_entry_offsets[0];
    c.bytes[cd0 + 20..cd0 + 28].copy_from_slice(&[0, 0, 0, 0x40, 0, 0, 0, 0x40]);
    assert_eq!(code(&c.bytes), ErrorCode::Truncated);
    // Stored record whose compressed and uncompressed sizes differ.
    let mut c = build_zip(&ok, false);
    c.bytes[cd0 + 24] ^= 1;
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // Header offset pointing at garbage.
    let mut c = build_zip(&ok, false);
    c.bytes[cd0 + 42] = 3;
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // Bad central directory signature.
    let mut c = build_zip(&ok, false);
    c.bytes[cd0] = b'X';
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // Entry count larger than the directory can hold.
    let mut c = build_zip(&ok, false);
    let e = c.eocd;
    c.bytes[e + 8..e + 12].copy_from_slice(&[200, 0, 200, 0]);
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // Unsupported compression method: found when read.
    let mut c = build_zip(&ok, false);
    c.bytes[cd0 + 10] = 12;
    let ar = parse(&c.bytes).unwrap();
    assert_eq!(
        ar.read(&ar.entries()[0], false).unwrap_err().code,
        ErrorCode::BadZip
    );
    // Encrypted flag.
    let mut c = build_zip(&ok, false);
    c.bytes[cd0 + 8] |= 1;
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
}

#[test]
fn overlapping_records_are_rejected() {
    // Record b's local header lives inside record a's data.
    let inner = build_zip(&[stored("a/b", b"hidden")], false);
    let local_b = inner.bytes[..inner.cd_offset].to_vec();
    let z = build_zip(&[stored("a/a", &local_b)], false);
    let b_offset = z.data_offsets[0];
    // Hand-append a second CD entry for b pointing into a's data, then a fresh EOCD.
    let mut bytes = z.bytes[..z.eocd].to_vec();
    let cd_start = z.cd_offset;
    let mut cd_b = bytes[inner.cd_offset..].to_vec(); // placeholder to size the entry
    cd_b.clear();
    let one = build_zip(&[stored("a/b", b"hidden")], false);
    cd_b.extend_from_slice(&one.bytes[one.cd_offset..one.eocd]);
    cd_b[42..46].copy_from_slice(&(b_offset as u32).to_le_bytes());
    bytes.extend_from_slice(&cd_b);
    let cd_size = bytes.len() - cd_start;
    bytes.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&[2, 0, 2, 0]);
    bytes.extend_from_slice(&(cd_size as u32).to_le_bytes());
    bytes.extend_from_slice(&(cd_start as u32).to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    // b's local header is genuine (name matches, data in bounds), so overlap is what fails;
    // the same archive without the second entry parses.
    assert!(parse(&[&z.bytes[..]].concat()).is_ok());
    assert_eq!(parse(&bytes).unwrap_err().code, ErrorCode::BadZip);
}

#[test]
fn zip64_inconsistencies_have_codes() {
    let ok = [
        stored("a/data.pkl", b"\x80\x02N."),
        stored("a/version", b"3"),
    ];
    let base = build_zip(&ok, true);
    let rec = base.zip64_record.unwrap();
    let code = |b: &[u8]| parse(b).unwrap_err().code;
    // A stale classic record (count, size, offset) beside an intact zip64 record: the zip64
    // values win, as in miniz and Python's zipfile (tests/wild.rs has a real torch file).
    let mut c = build_zip(&ok, true);
    let e = c.eocd;
    c.bytes[e + 8..e + 20].copy_from_slice(&[1, 0, 1, 0, 9, 0, 0, 0, 7, 0, 0, 0]);
    assert_eq!(parse(&c.bytes).unwrap().entries().len(), 2);
    // Locator pointing past itself.
    let mut c = build_zip(&ok, true);
    let loc = c.eocd - 20;
    c.bytes[loc + 8..loc + 16].copy_from_slice(&(loc as u64).to_le_bytes());
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // zip64 record with a bad signature.
    let mut c = build_zip(&ok, true);
    c.bytes[rec] = 0;
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // zip64 central-directory offset past the file.
    let mut c = build_zip(&ok, true);
    c.bytes[rec + 48..rec + 56].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // An entry whose 0xFFFFFFFF fields have no zip64 extra: shrink the extra id.
    let mut c = build_zip(&ok, true);
    let cd0 = c.cd_entry_offsets[0];
    let extra = cd0 + 46 + "a/data.pkl".len();
    c.bytes[extra] = 9;
    assert_eq!(code(&c.bytes), ErrorCode::BadZip);
    // An extra too short for its fields.
    let mut c = build_zip(&ok, true);
    c.bytes[extra + 2] = 8;
    assert!(matches!(code(&c.bytes), ErrorCode::BadZip));
}

#[test]
fn zip_bombs_and_lying_deflate_sizes_are_rejected() {
    let big = vec![0u8; 1 << 20];
    let z = build_zip(
        &[Entry {
            name: "a/x",
            data: &big,
            method: 8,
        }],
        false,
    );
    let mut c = z.bytes.clone();
    let cd0 = z.cd_entry_offsets[0];
    c[cd0 + 24..cd0 + 28].copy_from_slice(&1000u32.to_le_bytes()); // declares 1000 bytes
    let ar = parse(&c).unwrap();
    assert_eq!(
        ar.read(&ar.entries()[0], false).unwrap_err().code,
        ErrorCode::BadZip
    );
    c[cd0 + 24..cd0 + 28].copy_from_slice(&((1u32 << 20) + 5).to_le_bytes()); // declares more
    let ar = parse(&c).unwrap();
    assert_eq!(
        ar.read(&ar.entries()[0], false).unwrap_err().code,
        ErrorCode::BadZip
    );
}

#[test]
fn archive_level_records_are_checked_before_unpickling() {
    let opts = LoadOptions::default();
    let load = |entries: &[Entry]| {
        load_bytes(ByteView::from_vec(build_zip(entries, false).bytes), &opts)
            .unwrap_err()
            .code
    };
    let pkl = b"\x80\x02N.";
    assert_eq!(load(&[stored("a/version", b"3")]), ErrorCode::MissingRecord);
    assert_eq!(load(&[stored("a/data.pkl", pkl)]), ErrorCode::MissingRecord);
    assert_eq!(
        load(&[stored("a/data.pkl", pkl), stored("a/version", b"11")]),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        load(&[stored("a/data.pkl", pkl), stored("a/version", b"x")]),
        ErrorCode::BadZip
    );
    assert_eq!(
        load(&[
            stored("a/data.pkl", pkl),
            stored("a/.data/version", b"99"),
            stored("a/version", b"3")
        ]),
        ErrorCode::UnsupportedVersion,
        ".data/version wins over version, like torch"
    );
    assert_eq!(
        load(&[
            stored("a/data.pkl", pkl),
            stored("a/version", b"3"),
            stored("a/byteorder", b"middle")
        ]),
        ErrorCode::BadZip
    );
    assert_eq!(
        load(&[
            stored("a/data.pkl", pkl),
            stored("a/constants.pkl", pkl),
            stored("a/version", b"3")
        ]),
        ErrorCode::BadPickle,
        "TorchScript archives go to the TorchScript reader, whose data.pkl must hold a __torch__ module"
    );
    let preview = load_bytes(ByteView::from_vec(b"PYTORCH1\0\0\0\0".to_vec()), &opts).unwrap_err();
    assert_eq!(preview.code, ErrorCode::UnsupportedVersion);
    let mut st = 20u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{\"__metadata__\":{}} ");
    assert_eq!(
        load_bytes(ByteView::from_vec(st), &opts).unwrap_err().code,
        ErrorCode::UnknownFormat
    );
}

#[test]
fn legacy_header_errors() {
    let opts = LoadOptions::default();
    let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
    let mut wrong_version = magic.to_vec();
    wrong_version.extend_from_slice(b"\x80\x02\x4d\xe8\x03\x2e"); // 1000
    let e = load_bytes(ByteView::from_vec(wrong_version), &opts).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    let mut junk = magic.to_vec();
    junk.extend_from_slice(b"\x80\x02}.");
    assert_eq!(
        load_bytes(ByteView::from_vec(junk), &opts)
            .unwrap_err()
            .code,
        ErrorCode::BadMagic
    );
    assert_eq!(
        legacy::load(ByteView::from_vec(b"\x80\x02K\x01.".to_vec()), &opts)
            .unwrap_err()
            .code,
        ErrorCode::BadMagic
    );
}
