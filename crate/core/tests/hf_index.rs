//! Sharded Hugging Face checkpoints: huggingface_hub's split rule (cases it computed,
//! committed in hub_split_cases.json), index files as transformers writes them, and reading
//! a sharded checkpoint written by Python in transformers' merge order.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "convert/support.rs"]
mod support;

use support::*;
use torchsave_core::hf_index::{self, SplitItem};
use torchsave_core::options::LoadOptions;
use torchsave_core::strided;
use torchsave_core::ErrorCode;

#[test]
fn split_matches_huggingface_hub() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/convert/hub_split_cases.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let items: Vec<SplitItem> = case["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|it| SplitItem {
                name: it[0].as_str().unwrap().to_string(),
                size: it[1].as_u64().unwrap(),
                storage: it[2].as_u64(),
            })
            .collect();
        let max = case["max_shard_size"].as_u64().unwrap();
        let plan = hf_index::split_into_shards(&items, max);
        let want: Vec<(String, Vec<String>)> = case["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s[0].as_str().unwrap().to_string(),
                    s[1].as_array()
                        .unwrap()
                        .iter()
                        .map(|n| n.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect();
        let n = plan.shards.len();
        let got: Vec<(String, Vec<String>)> = plan
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    hf_index::shard_file_name("model", "safetensors", i + 1, n),
                    s.clone(),
                )
            })
            .collect();
        assert_eq!(got, want, "case {case}");
        assert_eq!(
            plan.total_size,
            case["total_size"].as_u64().unwrap(),
            "case {case}"
        );
    }
}

#[test]
fn index_json_is_what_transformers_writes() {
    let dir = scratch("hf-index-json");
    let wm = vec![
        (
            "z.weight".to_string(),
            "model-00002-of-00002.safetensors".to_string(),
        ),
        (
            "a.bias".to_string(),
            "model-00001-of-00002.safetensors".to_string(),
        ),
        (
            "caf\u{e9}.\"q\"".to_string(),
            "model-00001-of-00002.safetensors".to_string(),
        ),
    ];
    let ours = hf_index::index_json(1234, &wm);
    let p = dir.join("model.safetensors.index.json");
    std::fs::write(&p, &ours).unwrap();
    let Some(python) = oracle_output("pyjson", &p) else {
        return;
    };
    assert_eq!(ours, python);
    let back = hf_index::parse_index(ours.as_bytes()).unwrap();
    assert_eq!(back.total_size, Some(1234));
    assert_eq!(
        back.shard_files(),
        [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
}

#[test]
fn reads_a_sharded_checkpoint_in_transformers_order() {
    let dir = scratch("hf-read-sharded");
    if !oracle("write", &dir) {
        return;
    }
    let sh = dir.join("sharded");
    let loaded = hf_index::load_sharded(
        &sh.join("model.safetensors.index.json"),
        &LoadOptions::default(),
    )
    .unwrap();
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sh.join("expect.json")).unwrap()).unwrap();
    let want = exp["tensors"].as_array().unwrap();
    let items = root_items(&loaded.graph);
    assert_eq!(items.len(), want.len());
    for ((k, v), w) in items.iter().zip(want) {
        let t = tensor_of(&loaded.graph, v);
        assert_eq!(k, w["name"].as_str().unwrap());
        assert_eq!(t.dtype.name(), w["dtype"].as_str().unwrap());
        assert_eq!(
            strided::sha256_hex(t, &loaded.graph.storages[t.storage.unwrap()]).unwrap(),
            w["sha256"].as_str().unwrap()
        );
    }
    assert_eq!(loaded.shards.len(), 2);
    assert!(loaded.shards[0].ends_with("model-00001-of-00002.safetensors"));
}

#[test]
fn inconsistent_indexes_get_bad_index() {
    let dir = scratch("hf-bad-index");
    if !oracle("write", &dir) {
        return;
    }
    let sh = dir.join("sharded");
    let idx = sh.join("model.safetensors.index.json");
    let orig = std::fs::read_to_string(&idx).unwrap();
    let load = || {
        hf_index::load_sharded(&idx, &LoadOptions::default())
            .map(|_| ())
            .unwrap_err()
            .code
    };
    // A name mapped to a shard that does not hold it.
    std::fs::write(&idx, orig.replace("\"a.bias\"", "\"a.missing\"")).unwrap();
    assert_eq!(load(), ErrorCode::BadIndex);
    // A name in one shard that the index maps to the other.
    std::fs::write(
        &idx,
        orig.replace(
            "\"a.bias\": \"model-00002-of-00002",
            "\"a.bias\": \"model-00001-of-00002",
        ),
    )
    .unwrap();
    assert_eq!(load(), ErrorCode::BadIndex);
    // A shard outside the folder.
    std::fs::write(
        &idx,
        orig.replace(
            "\"model-00001-of-00002.safetensors\"",
            "\"../x.safetensors\"",
        ),
    )
    .unwrap();
    assert_eq!(load(), ErrorCode::BadIndex);
    // A missing shard file is an I/O error.
    std::fs::write(
        &idx,
        orig.replace(
            "model-00001-of-00002.safetensors",
            "model-00009-of-00009.safetensors",
        ),
    )
    .unwrap();
    assert_eq!(load(), ErrorCode::Io);
    std::fs::write(&idx, "not json").unwrap();
    assert_eq!(load(), ErrorCode::BadIndex);
}
