//! Values that cannot be written fail with a code, and a failed save leaves the old file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use torchsave_core::writer::{save_to_path, save_to_vec};
use torchsave_core::{
    ByteView, DType, ErrorCode, Graph, Node, SaveOptions, Storage, Tensor, Value,
};

fn storage(dtype: DType, numel: u64, nbytes: usize) -> Storage {
    Storage {
        key: "0".into(),
        dtype,
        untyped: false,
        numel,
        location: "cpu".into(),
        data: ByteView::from_vec(vec![7u8; nbytes]),
    }
}

fn tensor(storage: usize, dtype: DType, shape: Vec<i64>, stride: Vec<i64>, offset: i64) -> Node {
    Node::Tensor(Tensor::strided(storage, dtype, shape, stride, offset))
}

fn code(g: &Graph) -> ErrorCode {
    save_to_vec(g, &SaveOptions::default()).unwrap_err().code
}

#[test]
fn two_dtypes_on_one_storage_is_unserializable() {
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, 2, 8));
    let a = g.add(tensor(s, DType::Float32, vec![2], vec![1], 0));
    let b = g.add(tensor(s, DType::Int32, vec![2], vec![1], 0));
    let root = g.add(Node::Dict(vec![
        (Value::Str("a".into()), a),
        (Value::Str("b".into()), b),
    ]));
    g.root = Some(root);
    let err = save_to_vec(&g, &SaveOptions::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::Unserializable);
    assert!(
        err.message.contains("root[\"b\"]"),
        "names the path: {}",
        err.message
    );
}

#[test]
fn view_outside_storage_is_rejected() {
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, 2, 8));
    g.root = Some(g.add(tensor(s, DType::Float32, vec![3], vec![1], 0)));
    assert_eq!(code(&g), ErrorCode::StorageBounds);
    let mut g2 = Graph::new();
    let s = g2.add_storage(storage(DType::Float32, 2, 8));
    g2.root = Some(g2.add(tensor(s, DType::Float32, vec![1], vec![1], -1)));
    assert_eq!(code(&g2), ErrorCode::StorageBounds);
}

#[test]
fn storage_size_mismatch_is_rejected() {
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, 3, 8));
    g.root = Some(g.add(tensor(s, DType::Float32, vec![2], vec![1], 0)));
    assert_eq!(code(&g), ErrorCode::StorageSize);
}

#[test]
fn dangling_reference_is_rejected() {
    let mut g = Graph::new();
    g.root = Some(Value::Ref(42));
    assert_eq!(code(&g), ErrorCode::Unserializable);
}

#[test]
fn too_deep_nesting_is_a_limit_not_a_crash() {
    let mut g = Graph::new();
    let mut v = Value::None;
    for _ in 0..5000 {
        v = g.add(Node::List(vec![v]));
    }
    g.root = Some(v);
    assert_eq!(code(&g), ErrorCode::LimitExceeded);
}

#[test]
fn failed_save_keeps_old_file_and_leaves_no_temp() {
    let dir = std::env::temp_dir().join(format!("torchsave-writer-err-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join("model.pt");
    std::fs::write(&target, b"previous checkpoint").unwrap();
    let mut g = Graph::new();
    let s = g.add_storage(storage(DType::Float32, 3, 8)); // declares 12 bytes, holds 8
    g.root = Some(g.add(tensor(s, DType::Float32, vec![2], vec![1], 0)));
    for durable in [true, false] {
        let opts = SaveOptions {
            durable,
            ..SaveOptions::default()
        };
        let err = save_to_path(&g, &target, &opts).unwrap_err();
        assert_eq!(err.code, ErrorCode::StorageSize);
        assert_eq!(std::fs::read(&target).unwrap(), b"previous checkpoint");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "no stray temp file (durable {durable}): {names:?}"
        );
    }
    // Writing into a folder that does not exist is an I/O error, not a panic.
    let err = save_to_path(
        &Graph::new(),
        &dir.join("missing/x.pt"),
        &SaveOptions::default(),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::Io);
}
