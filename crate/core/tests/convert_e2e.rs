//! End to end through the torch reader and writer: files torch.save wrote, converted to
//! safetensors and back to .pt, checked by real torch. These need `load_file` and
//! `save_to_path` (other branches); before they are merged, these tests fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "convert/support.rs"]
mod support;

use std::path::Path;
use support::*;
use torchsave_core::convert::{self, ConvertOptions, Target};
use torchsave_core::safetensors as st;
use torchsave_core::strided;
use torchsave_core::DType;

fn sidecar(path: &Path) -> Vec<(String, String, Vec<i64>, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    parse_sidecar(&v)
}

fn parse_sidecar(v: &serde_json::Value) -> Vec<(String, String, Vec<i64>, String)> {
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["dtype"].as_str().unwrap().to_string(),
                t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_i64().unwrap())
                    .collect(),
                t["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The safetensors file's tensors as a sidecar, sorted by name (file order is by dtype).
fn st_facts(path: &Path) -> Vec<(String, String, Vec<i64>, String)> {
    let l = st::read_file(path, true).unwrap();
    let mut out: Vec<_> = root_items(&l.graph)
        .iter()
        .map(|(k, v)| {
            let t = tensor_of(&l.graph, v);
            let s = &l.graph.storages[t.storage.unwrap()];
            (
                k.clone(),
                t.dtype.name().to_string(),
                t.shape.clone(),
                strided::sha256_hex(t, s).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn state_dict_pt_to_safetensors_and_back() {
    let dir = scratch("e2e-sd");
    if !oracle("pt", &dir) {
        return;
    }
    let out = dir.join("out");
    let r = convert::convert_file(
        &dir.join("sd.pt"),
        &ConvertOptions {
            out_dir: Some(out.clone()),
            verify: true,
            ..ConvertOptions::default()
        },
    );
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.format, "zip");
    assert!(r.verified);
    let mut want = sidecar(&dir.join("sd.expect.json"));
    want.sort();
    assert_eq!(st_facts(&out.join("sd.safetensors")), want);

    // Back to .pt: torch.load(weights_only=True) must see the same state dict, same order
    // as the safetensors file gave it.
    let back = dir.join("back");
    let r = convert::convert_file(
        &out.join("sd.safetensors"),
        &ConvertOptions {
            to: Target::Pt,
            out_dir: Some(back.clone()),
            verify: true,
            ..ConvertOptions::default()
        },
    );
    assert_eq!(r.error, None, "{r:?}");
    let Some(text) = oracle_output("ptcheck", &back.join("sd.pt")) else {
        return;
    };
    let mut got = parse_sidecar(&serde_json::from_str(&text).unwrap());
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn dataparallel_checkpoint_select_strip_drop_cast() {
    let dir = scratch("e2e-ckpt");
    if !oracle("pt", &dir) {
        return;
    }
    let out = dir.join("out");
    let o = ConvertOptions {
        to: Target::Pt,
        select: Some("model_state_dict".into()),
        strip_dataparallel: true,
        dtype: Some(DType::Float16),
        verify: true,
        out_dir: Some(out.clone()),
        ..ConvertOptions::default()
    };
    let r = convert::convert_file(&dir.join("ckpt.pth"), &o);
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.outputs, vec![out.join("ckpt.pth")]);
    let Some(text) = oracle_output("ptcheck", &out.join("ckpt.pth")) else {
        return;
    };
    assert_eq!(
        parse_sidecar(&serde_json::from_str(&text).unwrap()),
        sidecar(&dir.join("ckpt.expect.json"))
    );

    // To safetensors without select: the state dict is found by key, optimizer ignored.
    let o = ConvertOptions {
        strip_dataparallel: true,
        dtype: Some(DType::Float16),
        drop_optimizer: true,
        verify: true,
        out_dir: Some(dir.join("st")),
        ..ConvertOptions::default()
    };
    let r = convert::convert_file(&dir.join("ckpt.pth"), &o);
    assert_eq!(r.error, None, "{r:?}");
    assert!(r.notes.iter().any(|n| n.contains("model_state_dict")));
    let mut want = sidecar(&dir.join("ckpt.expect.json"));
    want.sort();
    assert_eq!(st_facts(&dir.join("st").join("ckpt.safetensors")), want);
}

#[test]
fn sharded_pt_output_and_batch() {
    let dir = scratch("e2e-shards");
    if !oracle("pt", &dir) {
        return;
    }
    let out = dir.join("out");
    let o = ConvertOptions {
        to: Target::Pt,
        shard_size: Some(40),
        verify: true,
        out_dir: Some(out.clone()),
        ..ConvertOptions::default()
    };
    let r = convert::convert_file(&dir.join("sd.pt"), &o);
    assert_eq!(r.error, None, "{r:?}");
    assert!(r.outputs.last().unwrap().ends_with("sd.pt.index.json"));
    assert!(r.outputs.len() > 2);

    // The whole folder in one batch: two inputs, both converted, on 2 threads.
    let inputs = convert::discover_inputs(&[dir.display().to_string()]).unwrap();
    let inputs: Vec<_> = inputs
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .collect();
    assert_eq!(inputs.len(), 2);
    let reports = convert::convert_many(
        &inputs,
        &ConvertOptions {
            out_dir: Some(dir.join("batch")),
            drop_optimizer: true,
            strip_dataparallel: true,
            verify: true,
            ..ConvertOptions::default()
        },
        2,
        &|_| {},
        &Default::default(),
    );
    for r in &reports {
        assert_eq!(r.error, None, "{r:?}");
        assert!(r.verified);
    }
    let s = convert::inspect_many(&inputs, &Default::default());
    assert_eq!(s.count, 2);
    assert!(s.errors.is_empty());
    let d = convert::diff(
        &dir.join("sd.pt"),
        &dir.join("batch").join("sd.safetensors"),
        &Default::default(),
    )
    .unwrap();
    assert!(
        d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty(),
        "{d:?}"
    );
}
