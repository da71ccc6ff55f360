//! Shared helpers for the safetensors / convert tests: graphs built by hand, scratch
//! folders, and the Python oracle (`st_oracle.py`, real torch + safetensors).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use torchsave_core::value::{Graph, Node, Storage, Tensor, Value};
use torchsave_core::{ByteView, DType};

/// The pinned torch venv (PREAMBLE), or `TORCHSAVE_PYTHON`.
pub fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("TORCHSAVE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").ok()?;
    let p = PathBuf::from(home).join(".cache/torchsave/venv-torch-2.11.0/bin/python");
    p.exists().then_some(p)
}

/// Runs `st_oracle.py CMD DIR`; panics with its output on failure, and when no Python is
/// available: interop tests fail rather than skip (`npm test` installs the venv first).
pub fn oracle(cmd: &str, dir: &Path) -> bool {
    let Some(py) = python() else {
        panic!("no torch venv for st_oracle.py {cmd}: run scripts/python-env.sh or set TORCHSAVE_PYTHON");
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/st_oracle.py");
    let out = Command::new(py)
        .arg(script)
        .arg(cmd)
        .arg(dir)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "st_oracle.py {cmd} {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Runs `st_oracle.py CMD ARG` and returns its stdout (None without Python).
pub fn oracle_output(cmd: &str, arg: &Path) -> Option<String> {
    let py = python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/st_oracle.py");
    let out = Command::new(py)
        .arg(script)
        .arg(cmd)
        .arg(arg)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "st_oracle.py {cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A fresh, empty scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("convert-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn storage(dtype: DType, bytes: Vec<u8>) -> Storage {
    Storage {
        key: "0".into(),
        dtype,
        untyped: dtype.storage_class().is_none(),
        numel: (bytes.len() / dtype.element_size()) as u64,
        location: "cpu".into(),
        data: ByteView::from_vec(bytes),
    }
}

pub fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn view(sid: usize, dtype: DType, shape: &[i64], stride: &[i64], offset: i64) -> Tensor {
    Tensor::strided(sid, dtype, shape.to_vec(), stride.to_vec(), offset)
}

pub fn contiguous(sid: usize, dtype: DType, shape: &[i64]) -> Tensor {
    let mut stride = vec![0i64; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        stride[i] = acc;
        acc *= shape[i].max(1);
    }
    view(sid, dtype, shape, &stride, 0)
}

/// A root `OrderedDict` of `name -> value` (values already in `g`).
pub fn ordered(g: &mut Graph, items: Vec<(&str, Value)>) -> Value {
    let items = items
        .into_iter()
        .map(|(k, v)| (Value::Str(k.to_string()), v))
        .collect();
    g.add(Node::OrderedDict { items, state: None })
}

pub fn dict(g: &mut Graph, items: Vec<(&str, Value)>) -> Value {
    let items = items
        .into_iter()
        .map(|(k, v)| (Value::Str(k.to_string()), v))
        .collect();
    g.add(Node::Dict(items))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The `views.json` entry for a tensor of `g` (storage bytes + view geometry), which the
/// oracle rebuilds with `torch.as_strided`.
pub fn view_json(g: &Graph, t: &Tensor) -> serde_json::Value {
    let st = &g.storages[t.storage.unwrap()];
    serde_json::json!({
        "storage_hex": hex(st.data.as_slice()),
        "dtype": t.dtype.name(),
        "shape": t.shape,
        "stride": t.stride,
        "offset": t.storage_offset,
    })
}

pub fn tensor_of<'g>(g: &'g Graph, v: &Value) -> &'g Tensor {
    match g.deref(v) {
        Some(Node::Tensor(t)) => t,
        other => panic!("not a tensor: {other:?}"),
    }
}

/// Items of the root mapping.
pub fn root_items(g: &Graph) -> Vec<(String, Value)> {
    match g.deref(g.root()) {
        Some(Node::Dict(items)) | Some(Node::OrderedDict { items, .. }) => items
            .iter()
            .map(|(k, v)| match k {
                Value::Str(s) => (s.clone(), v.clone()),
                other => (format!("{other:?}"), v.clone()),
            })
            .collect(),
        other => panic!("root is not a mapping: {other:?}"),
    }
}
