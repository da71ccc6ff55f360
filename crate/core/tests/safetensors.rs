//! safetensors read/write against the real `safetensors` package (st_oracle.py), plus
//! corrupted headers (each with its error code) and casts against torch, bit for bit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "convert/support.rs"]
mod support;

use serde_json::json;
use support::*;
use torchsave_core::safetensors as st;
use torchsave_core::value::{Graph, Node, Value};
use torchsave_core::{cast, strided};
use torchsave_core::{DType, ErrorCode};

#[test]
fn reads_files_written_by_python_safetensors() {
    let dir = scratch("st-read-python");
    if !oracle("write", &dir) {
        return;
    }
    for name in ["dtypes", "tied", "plain"] {
        let loaded = st::read_file(&dir.join(format!("{name}.safetensors")), true).unwrap();
        let exp: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.expect.json"))).unwrap(),
        )
        .unwrap();
        let items = root_items(&loaded.graph);
        let want = exp["tensors"].as_array().unwrap();
        assert_eq!(items.len(), want.len(), "{name}");
        for ((k, v), w) in items.iter().zip(want) {
            let t = tensor_of(&loaded.graph, v);
            let s = &loaded.graph.storages[t.storage.unwrap()];
            assert_eq!(k, w["name"].as_str().unwrap(), "{name}: order as load_file");
            assert_eq!(t.dtype.name(), w["dtype"].as_str().unwrap(), "{name}/{k}");
            assert_eq!(
                serde_json::to_value(&t.shape).unwrap(),
                w["shape"],
                "{name}/{k}"
            );
            assert_eq!(
                strided::sha256_hex(t, s).unwrap(),
                w["sha256"].as_str().unwrap(),
                "{name}/{k}"
            );
        }
        let md: Vec<(String, String)> = match &exp["metadata"] {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            _ => vec![],
        };
        let mut got_md = loaded.metadata.clone();
        got_md.sort();
        let mut md = md;
        md.sort();
        assert_eq!(got_md, md, "{name}: metadata");
    }
}

#[test]
fn rewriting_a_python_file_is_byte_identical() {
    let dir = scratch("st-rewrite");
    if !oracle("write", &dir) {
        return;
    }
    // dtypes.safetensors was saved by save_file(..., metadata={"format": "pt"}): re-serialising
    // its tensors must give exactly the same bytes (order, JSON spelling, padding).
    let path = dir.join("dtypes.safetensors");
    let original = std::fs::read(&path).unwrap();
    let loaded = st::read_file(&path, false).unwrap();
    let entries = st::state_dict_entries(&loaded.graph, loaded.graph.root()).unwrap();
    let bytes = st::to_bytes(&loaded.graph, &entries, &[]).unwrap();
    assert_eq!(bytes, original);
}

#[test]
fn tied_weights_restored_as_one_tensor() {
    let dir = scratch("st-tied");
    if !oracle("write", &dir) {
        return;
    }
    let mut loaded = st::read_file(&dir.join("tied.safetensors"), true).unwrap();
    assert_eq!(st::restore_aliases(&mut loaded), 1);
    let items = root_items(&loaded.graph);
    assert_eq!(
        items.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["0.weight", "1.weight"]
    );
    assert_eq!(
        items[0].1, items[1].1,
        "both names refer to one tensor node"
    );
}

/// A graph exercising the writer: several dtypes, a transposed (non-contiguous) view, a
/// slice with an offset, the same tensor under two names, and a view that overlaps a full
/// tensor of the same storage.
fn writer_graph() -> (Graph, serde_json::Value) {
    let mut g = Graph::new();
    let s0 = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..12).map(|x| x as f32 * 0.5 - 2.0)),
    ));
    let full = g.add(Node::Tensor(contiguous(s0, DType::Float32, &[3, 4])));
    let s1 = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..12).map(|x| (x * x) as f32)),
    ));
    let transposed = g.add(Node::Tensor(view(s1, DType::Float32, &[4, 3], &[1, 4], 0)));
    let s2 = g.add_storage(storage(
        DType::Int64,
        (0..10i64)
            .flat_map(|x| (x * 1000 - 3).to_le_bytes())
            .collect(),
    ));
    let sliced = g.add(Node::Tensor(view(s2, DType::Int64, &[2, 2], &[4, 2], 1)));
    let s3 = g.add_storage(storage(
        DType::Float16,
        vec![0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b],
    ));
    let half = g.add(Node::Tensor(contiguous(s3, DType::Float16, &[3])));
    let s4 = g.add_storage(storage(DType::Bool, vec![1, 0, 1]));
    let mask = g.add(Node::Tensor(contiguous(s4, DType::Bool, &[3])));
    let s5 = g.add_storage(storage(DType::BFloat16, vec![0x80, 0x3f, 0x40, 0xc0]));
    let scalar = g.add(Node::Tensor(view(s5, DType::BFloat16, &[], &[], 1)));
    // `head` overlaps `full` (same storage, rows 1..3): dropped as an alias of `full`.
    let head = g.add(Node::Tensor(view(s0, DType::Float32, &[2, 4], &[4, 1], 4)));
    let root = ordered(
        &mut g,
        vec![
            ("w", full.clone()),
            ("t", transposed.clone()),
            ("slice", sliced.clone()),
            ("h", half.clone()),
            ("mask", mask.clone()),
            ("bscalar", scalar.clone()),
            ("w_tied", full.clone()),
            ("head", head),
        ],
    );
    g.root = Some(root);
    let mut tensors = serde_json::Map::new();
    for (name, v) in [
        ("w", &full),
        ("t", &transposed),
        ("slice", &sliced),
        ("h", &half),
        ("mask", &mask),
        ("bscalar", &scalar),
    ] {
        tensors.insert(name.to_string(), view_json(&g, tensor_of(&g, v)));
    }
    let views = json!({
        "tensors": tensors,
        "metadata": {"format": "pt", "head": "w", "w_tied": "w"},
        "resave_identical": false,
    });
    (g, views)
}

#[test]
fn files_we_write_load_in_python_with_equal_values() {
    let dir = scratch("st-write-python");
    let (g, views) = writer_graph();
    let written = st::save_graph(&g, &dir.join("ours.safetensors")).unwrap();
    assert_eq!(
        written.removed,
        vec![
            ("head".to_string(), "w".to_string()),
            ("w_tied".to_string(), "w".to_string())
        ]
    );
    std::fs::write(dir.join("ours.views.json"), views.to_string()).unwrap();

    // A second file with only `format` in the metadata: safetensors' own save_file must
    // produce the very same bytes from what it loads.
    let mut g2 = Graph::new();
    let s = g2.add_storage(storage(DType::Float32, f32_bytes((0..6).map(|x| x as f32))));
    let a = g2.add(Node::Tensor(view(s, DType::Float32, &[3, 2], &[1, 3], 0)));
    let s = g2.add_storage(storage(
        DType::Int32,
        (0..4i32).flat_map(|x| x.to_le_bytes()).collect(),
    ));
    let b = g2.add(Node::Tensor(contiguous(s, DType::Int32, &[4])));
    let root = ordered(&mut g2, vec![("zeta", a.clone()), ("alpha", b.clone())]);
    g2.root = Some(root);
    st::save_graph(&g2, &dir.join("plain.safetensors")).unwrap();
    let mut tensors = serde_json::Map::new();
    tensors.insert("zeta".into(), view_json(&g2, tensor_of(&g2, &a)));
    tensors.insert("alpha".into(), view_json(&g2, tensor_of(&g2, &b)));
    std::fs::write(
        dir.join("plain.views.json"),
        json!({"tensors": tensors, "metadata": {"format": "pt"}, "resave_identical": true})
            .to_string(),
    )
    .unwrap();
    oracle("views", &dir);
}

#[test]
fn write_then_read_round_trips_values() {
    let (g, _) = writer_graph();
    let entries = st::state_dict_entries(&g, g.root()).unwrap();
    let bytes = st::to_bytes(&g, &entries, &[]).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(header_len % 8, 0, "header padded to a multiple of 8");
    let back = st::read_bytes(torchsave_core::ByteView::from_vec(bytes)).unwrap();
    for (name, v) in root_items(&back.graph) {
        let t = tensor_of(&back.graph, &v);
        let (_, orig) = entries.iter().find(|(n, _)| *n == name).unwrap();
        let ot = tensor_of(&g, &Value::Ref(*orig));
        assert_eq!(t.shape, ot.shape);
        assert_eq!(
            strided::sha256_hex(t, &back.graph.storages[t.storage.unwrap()]).unwrap(),
            strided::sha256_hex(ot, &g.storages[ot.storage.unwrap()]).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn partial_overlap_without_a_full_tensor_is_refused() {
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, f32_bytes((0..8).map(|x| x as f32))));
    let a = g.add(Node::Tensor(view(s, DType::Float32, &[4], &[1], 0)));
    let b = g.add(Node::Tensor(view(s, DType::Float32, &[4], &[1], 2)));
    let root = ordered(&mut g, vec![("a", a), ("b", b)]);
    g.root = Some(root);
    let entries = st::state_dict_entries(&g, g.root()).unwrap();
    assert_eq!(
        st::to_bytes(&g, &entries, &[]).unwrap_err().code,
        ErrorCode::Unserializable
    );
    // Disjoint slices of one storage are not shared: both are written.
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, f32_bytes((0..8).map(|x| x as f32))));
    let a = g.add(Node::Tensor(view(s, DType::Float32, &[4], &[1], 0)));
    let b = g.add(Node::Tensor(view(s, DType::Float32, &[4], &[1], 4)));
    let root = ordered(&mut g, vec![("a", a), ("b", b)]);
    g.root = Some(root);
    let entries = st::state_dict_entries(&g, g.root()).unwrap();
    let d = st::dedupe_shared(&g, &entries).unwrap();
    assert_eq!(d.kept.len(), 2);
    assert!(d.removed.is_empty());
}

#[test]
fn non_tensor_values_and_unsupported_dtypes_have_codes() {
    let mut g = Graph::new();
    let root = dict(&mut g, vec![("epoch", Value::Int(3))]);
    g.root = Some(root);
    assert_eq!(
        st::state_dict_entries(&g, g.root()).unwrap_err().code,
        ErrorCode::Unserializable
    );
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Complex128, vec![0; 16]));
    let t = g.add(Node::Tensor(contiguous(s, DType::Complex128, &[1])));
    let root = ordered(&mut g, vec![("c", t)]);
    g.root = Some(root);
    let entries = st::state_dict_entries(&g, g.root()).unwrap();
    assert_eq!(
        st::to_bytes(&g, &entries, &[]).unwrap_err().code,
        ErrorCode::UnsupportedDtype
    );
}

/// Builds a file from a header string and a data buffer (header padded to 8 bytes).
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend_from_slice(data);
    out
}

fn code_of(bytes: Vec<u8>) -> ErrorCode {
    st::read_bytes(torchsave_core::ByteView::from_vec(bytes))
        .map(|_| ())
        .unwrap_err()
        .code
}

#[test]
fn corrupted_headers_get_codes() {
    let good = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    assert!(st::read_bytes(torchsave_core::ByteView::from_vec(file(good, &[0; 8]))).is_ok());

    assert_eq!(code_of(vec![1, 2, 3]), ErrorCode::Truncated);
    // Header size past the 100 MB cap.
    let mut huge = (100_000_001u64).to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}      ");
    assert_eq!(code_of(huge), ErrorCode::LimitExceeded);
    let mut max = u64::MAX.to_le_bytes().to_vec();
    max.extend_from_slice(b"{}");
    assert_eq!(code_of(max), ErrorCode::LimitExceeded);
    // Header longer than the file.
    let mut short = (64u64).to_le_bytes().to_vec();
    short.extend_from_slice(b"{}");
    assert_eq!(code_of(short), ErrorCode::Truncated);
    // Not JSON / not an object / not UTF-8.
    assert_eq!(code_of(file("{\"a\":", &[])), ErrorCode::BadSafetensors);
    assert_eq!(code_of(file("[1,2]", &[])), ErrorCode::BadSafetensors);
    let mut bad_utf8 = file("{\"\u{e9}\":1}", &[]);
    bad_utf8[10] = 0xff;
    assert_eq!(code_of(bad_utf8), ErrorCode::BadSafetensors);
    // Duplicate names.
    let dup = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert_eq!(code_of(file(dup, &[0; 8])), ErrorCode::BadSafetensors);
    // Gap, overlap, reversed offsets.
    let gap = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    assert_eq!(code_of(file(gap, &[0; 12])), ErrorCode::BadSafetensors);
    let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert_eq!(code_of(file(overlap, &[0; 8])), ErrorCode::BadSafetensors);
    let reversed = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}"#;
    assert_eq!(code_of(file(reversed, &[0; 1])), ErrorCode::BadSafetensors);
    // Shape x dtype disagrees with the span; shape overflows.
    let wrong = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    assert_eq!(code_of(file(wrong, &[0; 8])), ErrorCode::BadSafetensors);
    let ovf = r#"{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#;
    assert_eq!(code_of(file(ovf, &[0; 8])), ErrorCode::BadSafetensors);
    // Data shorter than the offsets; trailing bytes after the last tensor.
    assert_eq!(code_of(file(good, &[0; 4])), ErrorCode::Truncated);
    assert_eq!(code_of(file(good, &[0; 12])), ErrorCode::BadSafetensors);
    // Unknown dtype; format-only dtype; bad metadata value; missing fields; negative dim.
    let unk = r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    assert_eq!(code_of(file(unk, &[0; 16])), ErrorCode::UnsupportedDtype);
    let f6 = r#"{"a":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}"#;
    assert_eq!(code_of(file(f6, &[0; 3])), ErrorCode::UnsupportedDtype);
    let md = r#"{"__metadata__":{"format":1}}"#;
    assert_eq!(code_of(file(md, &[])), ErrorCode::BadSafetensors);
    let missing = r#"{"a":{"dtype":"F32","data_offsets":[0,4]}}"#;
    assert_eq!(code_of(file(missing, &[0; 4])), ErrorCode::BadSafetensors);
    let neg = r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#;
    assert_eq!(code_of(file(neg, &[0; 4])), ErrorCode::BadSafetensors);
    let three = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#;
    assert_eq!(code_of(file(three, &[0; 4])), ErrorCode::BadSafetensors);
}

#[test]
fn empty_file_and_sniffing() {
    // What safetensors writes for an empty dict: `{}` padded to 8.
    let empty = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ".to_vec();
    let loaded = st::read_bytes(torchsave_core::ByteView::from_vec(empty.clone())).unwrap();
    assert!(root_items(&loaded.graph).is_empty());
    assert!(st::looks_like_safetensors(&empty));
    assert!(!st::looks_like_safetensors(b"PK\x03\x04 not safetensors"));
    assert!(!st::looks_like_safetensors(
        b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P"
    ));
}

#[test]
fn casts_match_torch_bit_for_bit() {
    let dir = scratch("st-casts");
    if !oracle("casts", &dir) {
        return;
    }
    let loaded = st::read_file(&dir.join("casts.safetensors"), true).unwrap();
    let items = root_items(&loaded.graph);
    let get = |name: &str| {
        let v = &items.iter().find(|x| x.0 == name).unwrap().1;
        let t = tensor_of(&loaded.graph, v);
        (
            t.dtype,
            loaded.graph.storages[t.storage.unwrap()]
                .data
                .as_slice()
                .to_vec(),
        )
    };
    let mut checked = 0;
    for (name, _) in &items {
        let Some((src, dst)) = name.split_once("_to_") else {
            continue;
        };
        let (from, input) = get(&format!("in_{src}"));
        let (to, expected) = get(name);
        let got = cast::cast_buffer(&input, from, to).unwrap();
        assert_eq!(got.len(), expected.len(), "{name}");
        let es = to.element_size();
        for (i, (g, e)) in got.chunks(es).zip(expected.chunks(es)).enumerate() {
            // torch's NaN bits for these two pairs depend on the element's position (vector
            // body vs loop tail, see `cast_buffer`): only NaN-ness is checked for their NaNs.
            if from == DType::Float16 && to == DType::Float32 {
                let (g, e) = (
                    f32::from_le_bytes(g.try_into().unwrap()),
                    f32::from_le_bytes(e.try_into().unwrap()),
                );
                if e.is_nan() {
                    assert!(g.is_nan(), "{name}: element {i}");
                    continue;
                }
            }
            if from == DType::Float64 && to == DType::BFloat16 {
                let bits = |b: &[u8]| u16::from_le_bytes(b.try_into().unwrap());
                if half::bf16::from_bits(bits(e)).is_nan() {
                    assert!(
                        half::bf16::from_bits(bits(g)).is_nan(),
                        "{name}: element {i}"
                    );
                    continue;
                }
            }
            assert_eq!(
                g,
                e,
                "{name}: element {i} of {from}->{dst}: input {:02x?}",
                &input[i * from.element_size()..(i + 1) * from.element_size()]
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 12, "every pair of f64/f32/f16/bf16");
}
