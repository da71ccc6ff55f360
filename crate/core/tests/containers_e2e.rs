//! End-to-end container tests: real torch files through detection, the pickle VM and
//! `inspect`. They need the pickle VM; on the containers branch it is a stub, so these fail
//! there by design and pass once the pickle branch is merged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "container_common/mod.rs"]
mod common;

use common::*;
use torchsave_core::inspect::{inspect, InspectOptions};
use torchsave_core::{load_bytes, load_file, ByteView, ErrorCode, Format, LoadOptions};

const FILES: [&str; 9] = [
    "zip_default",
    "zip_buffer",
    "zip_deflated",
    "zip_renamed",
    "zip_nocrc",
    "zip_empty",
    "zip_bigendian",
    "legacy",
    "tar",
];

/// The `"tensors":[...]` part of an inspect JSON.
fn tensors_json(json: &str) -> &str {
    let start = json.find("\"tensors\":").unwrap() + "\"tensors\":".len();
    let end = json.find(",\"arrays\":").unwrap();
    &json[start..end]
}

#[test]
fn real_files_inspect_exactly_like_torch() {
    for name in FILES {
        let want = &facts("tensors", name)[0][0];
        let format = &facts("format", name)[0][0];
        for mmap in [true, false] {
            let opts = LoadOptions {
                mmap,
                weights_only: name != "tar",
                ..LoadOptions::default()
            };
            let loaded = load_file(&fixture(&format!("{name}.pt")), &opts)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.info.format.as_str(), format);
            assert_eq!(loaded.info.big_endian, name == "zip_bigendian", "{name}");
            let json = inspect(&loaded, &InspectOptions { sha256: true }).to_json();
            assert_eq!(tensors_json(&json), want, "{name} mmap={mmap}");
        }
    }
}

#[test]
fn zip_info_is_reported() {
    let l = load_file(&fixture("zip_renamed.pt"), &LoadOptions::default()).unwrap();
    assert_eq!(l.info.format, Format::Zip);
    assert_eq!(l.info.archive_name.as_deref(), Some("renamed_folder"));
    assert_eq!(l.info.version.as_deref(), Some("3"));
    assert!(l
        .info
        .globals
        .iter()
        .any(|g| g == "collections.OrderedDict"));
    // A plain state dict is loadable by torch's weights-only unpickler.
    assert!(inspect(&l, &InspectOptions::default()).weights_only_ok);
}

/// zip_buffer.pt re-packed with one record changed (None = removed).
fn repacked(record: &str, new: Option<Vec<u8>>) -> Vec<u8> {
    let recs = records_of(&std::fs::read(fixture("zip_buffer.pt")).unwrap());
    let kept: Vec<(String, Vec<u8>)> = recs
        .into_iter()
        .filter_map(|(n, d)| {
            if n == record {
                new.clone().map(|x| (n, x))
            } else {
                Some((n, d))
            }
        })
        .collect();
    let entries: Vec<Entry> = kept.iter().map(|(n, d)| stored(n, d)).collect();
    build_zip(&entries, false).bytes
}

#[test]
fn storage_records_are_checked_against_persistent_ids() {
    let opts = LoadOptions::default();
    let b = repacked("archive/data/0", Some(vec![0u8; 20]));
    assert_eq!(
        load_bytes(ByteView::from_vec(b), &opts).unwrap_err().code,
        ErrorCode::StorageSize
    );
    let b = repacked("archive/data/0", Some(vec![0u8; 28]));
    assert_eq!(
        load_bytes(ByteView::from_vec(b), &opts).unwrap_err().code,
        ErrorCode::StorageSize
    );
    let b = repacked("archive/data/1", None);
    assert_eq!(
        load_bytes(ByteView::from_vec(b), &opts).unwrap_err().code,
        ErrorCode::MissingRecord
    );
    // Sanity: the unmodified repack loads.
    let b = repacked("nothing", None);
    assert!(load_bytes(ByteView::from_vec(b), &opts).is_ok());
}

#[test]
fn storage_crc_is_checked_when_read_eagerly() {
    let src = std::fs::read(fixture("zip_buffer.pt")).unwrap();
    let ar =
        torchsave_core::container::zip_read::ZipArchive::parse(ByteView::from_vec(src.clone()))
            .unwrap();
    let off = ar.find("data/0").unwrap().data_offset as usize;
    let mut bad = src.clone();
    bad[off] ^= 0x10;
    let eager = load_bytes(ByteView::from_vec(bad.clone()), &LoadOptions::default()).unwrap_err();
    assert_eq!(eager.code, ErrorCode::BadCrc);
    let off_opts = LoadOptions {
        verify_crc: Some(false),
        ..LoadOptions::default()
    };
    assert!(load_bytes(ByteView::from_vec(bad.clone()), &off_opts).is_ok());
    // A mapped file skips storage CRCs by default (like torch), checks them when asked.
    let p = std::env::temp_dir().join(format!("torchsave-e2e-crc-{}.pt", std::process::id()));
    std::fs::write(&p, &bad).unwrap();
    assert!(load_file(
        &p,
        &LoadOptions {
            mmap: true,
            ..LoadOptions::default()
        }
    )
    .is_ok());
    let strict = LoadOptions {
        mmap: true,
        verify_crc: Some(true),
        ..LoadOptions::default()
    };
    assert_eq!(load_file(&p, &strict).unwrap_err().code, ErrorCode::BadCrc);
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn bare_pickles_and_hints() {
    let l = load_bytes(
        ByteView::from_vec(b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.".to_vec()),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(l.info.format, Format::Pickle);
    // A persistent id in a bare pickle has nothing to resolve to.
    let pid = b"\x80\x02X\x01\x00\x00\x00kQ.".to_vec();
    assert!(load_bytes(ByteView::from_vec(pid), &LoadOptions::default()).is_err());
    // Text that merely starts like a protocol-0 pickle is an unknown format, not a pickle error.
    let e = load_bytes(
        ByteView::from_vec(b"(hello world".to_vec()),
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownFormat);
}

#[test]
fn tar_loads_without_weights_only() {
    let opts = LoadOptions {
        weights_only: false,
        ..LoadOptions::default()
    };
    let l = load_file(&fixture("tar.pt"), &opts).unwrap();
    assert_eq!(l.info.format, Format::Tar);
    let r = inspect(&l, &InspectOptions::default());
    assert!(!r.weights_only_ok);
}
