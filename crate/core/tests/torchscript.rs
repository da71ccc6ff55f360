//! The TorchScript reader against real torch 2.11: the archives in `tests/torchscript/` were
//! written by `__test__/python/make_jit_fixtures.py --small` (torch.jit.script / trace /
//! save), and `jit.json` beside them is what `torch.jit.load(p)` says of each (the oracle's
//! `jit_describe`): state dict key by key (dtype, shape, values' sha256), every module's
//! parameters, buffers, children and training flag, the extra files. Regenerate with
//! `$TORCHSAVE_PYTHON __test__/python/make_jit_fixtures.py crate/core/tests/torchscript --small`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use serde_json::Value as Json;
use std::path::PathBuf;
use torchsave_core::container::torchscript::{self, ScriptModuleInfo, View};
use torchsave_core::container::zip_read::ZipArchive;
use torchsave_core::inspect::{inspect, tensor_sha256, InspectOptions};
use torchsave_core::{load_file, ByteView, ErrorCode, Format, Graph, LoadOptions, Node, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/torchscript")
}

fn manifest() -> Json {
    serde_json::from_str(&std::fs::read_to_string(dir().join("jit.json")).unwrap()).unwrap()
}

fn archive(file: &str, opts: &LoadOptions) -> torchsave_core::Result<torchscript::ScriptArchive> {
    let bytes = ByteView::from_vec(std::fs::read(dir().join(file)).unwrap());
    let ar = ZipArchive::parse(bytes)?;
    assert!(torchscript::is_torchscript(&ar), "{file}");
    torchscript::load(&ar, opts, false)
}

fn tensor_facts(g: &Graph, v: &Value) -> (String, Vec<i64>, String) {
    let Some(Node::Tensor(t)) = g.deref(v) else {
        panic!("not a tensor: {v:?}")
    };
    (
        t.dtype.name().to_string(),
        t.shape.clone(),
        tensor_sha256(g, t).unwrap(),
    )
}

fn modules<'a>(
    m: &'a ScriptModuleInfo,
    name: String,
    out: &mut Vec<(String, &'a ScriptModuleInfo)>,
) {
    out.push((name.clone(), m));
    for (n, c) in &m.children {
        let child = if name.is_empty() {
            n.clone()
        } else {
            format!("{name}.{n}")
        };
        modules(c, child, out);
    }
}

fn names(items: &[(String, Value)]) -> Vec<String> {
    items.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn state_dicts_and_module_trees_equal_torch_jit_load() {
    let m = manifest();
    let files = m["files"].as_object().unwrap();
    assert!(files.len() >= 5);
    for (file, entry) in files {
        let want = &entry["torch"];
        let mut a = archive(file, &LoadOptions::default()).unwrap();
        assert_eq!(a.info.format, Format::TorchScript);
        // state_dict(): keys in order, each tensor's dtype, shape and values.
        let sd = a.module.state_dict();
        let wsd = want["state_dict"].as_array().unwrap();
        assert_eq!(
            sd.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            wsd.iter()
                .map(|p| p[0].as_str().unwrap())
                .collect::<Vec<_>>(),
            "{file}: state_dict keys"
        );
        for ((k, v), w) in sd.iter().zip(wsd) {
            let (dtype, shape, sha) = tensor_facts(&a.graph, v);
            assert_eq!(Json::from(dtype), w[1]["dtype"], "{file}: {k} dtype");
            assert_eq!(serde_json::json!(shape), w[1]["shape"], "{file}: {k} shape");
            assert_eq!(Json::from(sha), w[1]["sha256"], "{file}: {k} values");
        }
        // Every module: qualname, training flag, parameters / buffers / children (recurse=False).
        let mut ours = Vec::new();
        modules(&a.module, String::new(), &mut ours);
        let wm = want["modules"].as_array().unwrap();
        assert_eq!(ours.len(), wm.len(), "{file}: module count");
        for ((name, mine), w) in ours.iter().zip(wm) {
            assert_eq!(Json::from(name.as_str()), w["name"], "{file}");
            assert_eq!(
                Json::from(mine.qualname.as_str()),
                w["qualname"],
                "{file}: {name}"
            );
            assert_eq!(
                mine.training.map(Json::from),
                Some(w["training"].clone()),
                "{file}: {name}"
            );
            let (p, b, c) = (
                names(&mine.parameters),
                names(&mine.buffers),
                mine.children
                    .iter()
                    .map(|(n, _)| n.clone())
                    .collect::<Vec<_>>(),
            );
            assert_eq!(
                serde_json::json!(p),
                w["parameters"],
                "{file}: {name} parameters"
            );
            assert_eq!(serde_json::json!(b), w["buffers"], "{file}: {name} buffers");
            assert_eq!(
                serde_json::json!(c),
                w["children"],
                "{file}: {name} children"
            );
        }
        // _extra_files come back byte for byte.
        let wx = want["extra_files"].as_object().unwrap();
        assert_eq!(a.extra.len(), wx.len(), "{file}: extra files");
        for (n, bytes) in &a.extra {
            let hex: String = bytes
                .as_slice()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(Json::from(hex), wx[n], "{file}: extra/{n}");
        }
        // forward's source is there for display (torch prints it re-formatted, so compare a line).
        if let Some(code) = want["code"].as_str() {
            let fwd = a.module.forward.clone().unwrap_or_default();
            assert!(fwd.starts_with("def forward("), "{file}: {fwd}");
            let last = code.trim_end().lines().last().unwrap().trim();
            assert!(
                fwd.contains(last.split('_').next().unwrap()),
                "{file}: {last} in {fwd}"
            );
        }
        // The three views: the state dict view is an OrderedDict of the same tensors.
        let sdv = a.state_dict_value();
        assert!(
            matches!(a.graph.deref(&sdv), Some(Node::OrderedDict { items, .. }) if items.len() == sd.len())
        );
    }
}

#[test]
fn non_tensor_attributes_and_constants() {
    let a = archive("attrs.pt", &LoadOptions::default()).unwrap();
    let attr = |n: &str| {
        a.module
            .attributes
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no attribute {n}"))
    };
    assert_eq!(attr("count"), Value::Int(7));
    assert_eq!(attr("label"), Value::Str("héllo".into()));
    assert_eq!(attr("scale"), Value::Float(0.25));
    assert_eq!(attr("flag"), Value::Bool(true));
    // build_intlist / restore_type_tag resolve to the list and the dict.
    assert_eq!(
        a.graph.deref(&attr("sizes")),
        Some(&Node::List(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3)
        ]))
    );
    assert!(matches!(a.graph.deref(&attr("table")), Some(Node::Dict(items)) if items.len() == 2));
    // A plain tensor attribute is neither parameter nor buffer (not in the state dict).
    assert!(matches!(
        a.graph.deref(&attr("plain")),
        Some(Node::Tensor(_))
    ));
    assert!(a
        .module
        .state_dict()
        .iter()
        .all(|(k, _)| !k.contains("plain")));
    // constants.pkl's tensor, from constants/0.
    let c = archive("constants.pt", &LoadOptions::default()).unwrap();
    let Some(Node::Tuple(items)) = c.graph.deref(&c.constants) else {
        panic!("constants are a tuple")
    };
    let (dtype, shape, _) = tensor_facts(&c.graph, &items[0]);
    assert_eq!((dtype.as_str(), shape), ("float32", vec![3]));
    let st = &c.graph.storages[0];
    assert_eq!(st.key, "constants/0");
    let vals: Vec<f32> = st
        .data
        .as_slice()
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(vals, [1.0, 2.0, 3.0]);
}

#[test]
fn load_inspect_and_views_go_through_the_torchscript_reader() {
    let p = dir().join("batchnorm.pt");
    let loaded = load_file(&p, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.info.format, Format::TorchScript);
    let doc: Json =
        serde_json::from_str(&inspect(&loaded, &InspectOptions { sha256: true }).to_json())
            .unwrap();
    assert_eq!(doc["format"], "torchscript");
    // torch.load(weights_only=True) refuses TorchScript archives: that is the verdict.
    assert_eq!(doc["weights_only_ok"], false);
    let paths: Vec<Json> = doc["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].clone())
        .collect();
    assert!(
        paths.contains(&serde_json::json!(["bn", "running_var"])),
        "{paths:?}"
    );
    let sd = torchscript::load_file(&p, &LoadOptions::default(), View::StateDict).unwrap();
    assert!(
        matches!(sd.graph.deref(sd.graph.root()), Some(Node::OrderedDict { items, .. }) if items.len() == 7)
    );
    let eager = LoadOptions {
        mmap: false,
        ..LoadOptions::default()
    };
    let jit = torchscript::load_file(&p, &eager, View::Jit).unwrap();
    assert!(
        matches!(jit.graph.deref(jit.graph.root()), Some(Node::OrderedDict { items, .. }) if items.len() == 6)
    );
    // torch.save checkpoints are not TorchScript.
    let other = dir().join("jit.json");
    assert_eq!(
        torchscript::load_file(&other, &LoadOptions::default(), View::Jit)
            .unwrap_err()
            .code,
        ErrorCode::UnknownFormat
    );
}

#[test]
fn a_data_pkl_naming_os_system_is_refused_under_weights_only_and_inert_without() {
    let e = archive("attack_os_system.pt", &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal, "{e}");
    let e = load_file(&dir().join("attack_os_system.pt"), &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal, "{e}");
    let trusting = LoadOptions {
        weights_only: false,
        ..LoadOptions::default()
    };
    let a = archive("attack_os_system.pt", &trusting).unwrap();
    let evil = a
        .module
        .attributes
        .iter()
        .find(|(k, _)| k == "evil")
        .unwrap();
    let Some(Node::Object(o)) = a.graph.deref(&evil.1) else {
        panic!("os.system(...) is an inert object")
    };
    assert_eq!((o.module.as_str(), o.name.as_str()), ("os", "system"));
    assert!(a.info.weights_only_refusal.is_some());
}

#[test]
fn convert_writes_the_state_dict_as_safetensors() {
    use torchsave_core::convert::{self, ConvertOptions};
    let m = manifest();
    let out = std::env::temp_dir().join(format!("torchsave-jit-convert-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    for file in ["batchnorm.pt", "scripted_control.pt"] {
        let r = convert::convert_file(
            &dir().join(file),
            &ConvertOptions {
                out_dir: Some(out.clone()),
                verify: true,
                ..ConvertOptions::default()
            },
        );
        assert_eq!(r.error, None, "{r:?}");
        assert_eq!(r.format, "torchscript");
        let st_path = out.join(file.replace(".pt", ".safetensors"));
        let l = torchsave_core::safetensors::read_file(&st_path, true).unwrap();
        let Some(Node::OrderedDict { items, .. }) = l.graph.deref(l.graph.root()) else {
            panic!("safetensors root")
        };
        let mut got: Vec<(String, String)> = items
            .iter()
            .map(|(k, v)| {
                let Value::Str(k) = k else { panic!() };
                (k.clone(), tensor_facts(&l.graph, v).2)
            })
            .collect();
        let mut want: Vec<(String, String)> = m["files"][file]["torch"]["state_dict"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_string(),
                    p[1]["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{file}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
