//! Files as they come from the wild (issue 13), made by tests/wild/make_wild.py from real
//! numpy and torch 2.11; every expected value is in tests/wild/expected.json, computed there
//! by numpy / torch:
//! * numpy arrays pickled by Python 2 (their bytes a `str`), bare and inside a torch file,
//!   under every `StrEncoding`: exact bytes, and a byte-length check that refuses the rest;
//! * a bare pickle followed by a newline (read as `pickle.load` reads it);
//! * a zip whose 32-bit end record is stale beside an intact zip64 record (read as miniz);
//! * sparse tensors of every layout: `inspect --sha256` is the digest of `to_dense()`;
//! * `inspect --json` lists numpy arrays;
//! * a torch.package archive: refused with its own code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value as Json;
use std::path::PathBuf;
use torchsave_core::inspect::{inspect, InspectOptions};
use torchsave_core::{load_bytes, load_file, ByteView, LoadOptions, Node, StrEncoding};

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/wild")
        .join(name)
}

fn expected(name: &str) -> Json {
    let text = std::fs::read_to_string(path("expected.json")).expect("run make_wild.py");
    let all: Json = serde_json::from_str(&text).unwrap();
    all["files"][name].clone()
}

fn opts(encoding: StrEncoding, weights_only: bool) -> LoadOptions {
    LoadOptions {
        encoding,
        weights_only,
        ..LoadOptions::default()
    }
}

/// `inspect --json --sha256` of a file, parsed.
fn inspect_doc(name: &str, o: &LoadOptions) -> Json {
    let loaded = load_file(&path(name), o).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&inspect(&loaded, &InspectOptions { sha256: true }).to_json()).unwrap()
}

/// Our numpy entries against numpy's (path, dtype name, shape, sha256 of C-order bytes).
fn check_arrays(name: &str, doc: &Json, what: &str) {
    let want = expected(name)["arrays"].as_array().unwrap().clone();
    let got = doc["arrays"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} ({what}): inspect lists no \"arrays\""));
    assert_eq!(got.len(), want.len(), "{name} ({what})");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["kind"], "numpy", "{name}");
        // encoding='bytes' keeps Python 2 `str` keys as bytes (Python too): paths differ.
        let keys: &[&str] = if what == "Bytes" {
            &["dtype", "shape", "sha256"]
        } else {
            &["path", "dtype", "shape", "sha256"]
        };
        for &k in keys {
            assert_eq!(g[k], w[k], "{name} ({what}) {}: {k}", w["path"]);
        }
    }
}

#[test]
fn python2_numpy_payloads_keep_their_bytes_under_every_encoding() {
    // The 73 float64 of issue 13 are 584 bytes, not their UTF-8 re-encoding (834).
    let loaded = load_file(&path("np_py2_p2.pkl"), &opts(StrEncoding::Utf8, false)).unwrap();
    let lens: Vec<usize> = loaded
        .graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::NdArray(a) => Some(a.data.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lens.first(), Some(&584));
    for name in ["np_py2_p0.pkl", "np_py2_p2.pkl", "torch_py2_numpy.pt"] {
        for enc in [StrEncoding::Utf8, StrEncoding::Latin1, StrEncoding::Bytes] {
            let doc = inspect_doc(name, &opts(enc, false));
            check_arrays(name, &doc, &format!("{enc:?}"));
        }
    }
    let torch = expected("torch_py2_numpy.pt");
    let doc = inspect_doc("torch_py2_numpy.pt", &opts(StrEncoding::Utf8, false));
    assert_eq!(doc["tensors"][0]["sha256"], torch["tensors"][0]["sha256"]);
}

#[test]
fn an_array_whose_bytes_disagree_with_its_shape_is_refused() {
    // np_py2_p2.pkl with the first array's SHORT/BINSTRING payload one byte shorter (length
    // field and data): shape x itemsize no longer fits, which must be an error, not values.
    let mut b = std::fs::read(path("np_py2_p2.pkl")).unwrap();
    let at = b
        .windows(5)
        .position(|w| w == [b'T', 0x48, 0x02, 0, 0])
        .expect("the 584-byte BINSTRING");
    b[at + 1] = 0x47;
    b.remove(at + 5);
    for enc in [StrEncoding::Utf8, StrEncoding::Latin1, StrEncoding::Bytes] {
        let e = load_bytes(ByteView::from_vec(b.clone()), &opts(enc, false)).unwrap_err();
        assert_eq!(e.code.as_str(), "E_ARRAY_SIZE", "{enc:?}: {e}");
    }
}

#[test]
fn a_pickle_followed_by_a_newline_reads_like_pickle_load() {
    let doc = inspect_doc("trailing_newline.pkl", &opts(StrEncoding::Utf8, false));
    assert_eq!(doc["format"], "pickle");
    check_arrays("trailing_newline.pkl", &doc, "utf8");
}

#[test]
fn a_stale_32_bit_end_record_gives_way_to_the_zip64_record() {
    let doc = inspect_doc("zip64_stale_eocd.pt", &LoadOptions::default());
    let want = expected("zip64_stale_eocd.pt")["tensors"].clone();
    let got: Vec<Json> = doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::json!({"path": t["path"], "sha256": t["sha256"]}))
        .collect();
    assert_eq!(Json::Array(got), want);
    // Bounds checks still hold on the zip64 values: a zip64 directory offset past the file.
    let mut b = std::fs::read(path("zip64_stale_eocd.pt")).unwrap();
    let z64 = b.windows(4).rposition(|w| w == b"PK\x06\x06").unwrap();
    let past = (b.len() as u64 * 2).to_le_bytes();
    b[z64 + 48..z64 + 56].copy_from_slice(&past);
    let e = load_bytes(ByteView::from_vec(b), &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(e.code.as_str(), "E_TRUNCATED" | "E_BAD_ZIP"),
        "{e}"
    );
}

#[test]
fn sparse_tensors_hash_their_dense_values() {
    let doc = inspect_doc("sparse_layouts.pt", &LoadOptions::default());
    let want = expected("sparse_layouts.pt")["tensors"].clone();
    let got = doc["tensors"].as_array().unwrap();
    let want = want.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        for k in ["path", "dtype", "shape", "sha256"] {
            assert_eq!(g[k], w[k], "{}: {k}", w["path"]);
        }
        assert_eq!(
            g.get("layout").unwrap_or(&Json::Null),
            &w["layout"],
            "{}",
            w["path"]
        );
    }
}

#[test]
fn a_torch_package_archive_is_refused_with_its_own_code() {
    let e = load_file(&path("torch_package.pt"), &opts(StrEncoding::Utf8, false)).unwrap_err();
    assert_eq!(e.code.as_str(), "E_TORCH_PACKAGE", "{e}");
    // torch.load cannot read it either (what it said is recorded by the script).
    assert!(expected("torch_package.pt")["torch_load_error"].is_string());
}
