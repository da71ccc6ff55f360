//! Other readers' fixture files (burn, candle, tch-rs), read in place from the project's
//! shared peer corpus (`../shared/peer-corpus/` beside the clone, or `$TORCHSAVE_PEER_CORPUS`),
//! never copied here. `manifest.json` there records what real torch 2.11 reads from each file
//! (see its `schema` and SOURCES.md); this test holds our reader to exactly that:
//! * `read`: the same format, weights-only verdict, and every tensor (path, dtype, shape,
//!   stride, storage_offset, requires_grad, sha256 of the contiguous values) in torch's order,
//!   plus any numpy arrays (`non_tensor`: path, shape, sha256);
//! * `refuse`: torch refuses the file (it is broken), so must we, with a code;
//! * `refuse_or_read`: torch cannot open it; a clean (coded) refusal or a read are both fine.
//!
//! TorchScript archives (`torchscript: true`) are what `torch.jit.load` reads; we read them as
//! data (`container::torchscript`) and hold them to the manifest like any `read` file, except
//! that the manifest's `format` is the container by its first bytes (`zip`) while inspect
//! says `torchscript`, and `weights_only_ok` is false (torch.load(weights_only=True) refuses
//! TorchScript archives). The manifest's tensors are every tensor attribute of every module
//! by dotted name; ours walk the module object, which for these files is the same list.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod torch_manifest;

use serde_json::Value as Json;
use std::path::PathBuf;
use torch_manifest::check_read;
use torchsave_core::inspect::{inspect, InspectOptions};
use torchsave_core::{load_file, LoadOptions};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("TORCHSAVE_PEER_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peer-corpus"),
    }
}

#[test]
fn every_peer_fixture_reads_as_torch_reads_it() {
    let dir = corpus_dir();
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "the peer corpus is missing: cannot read {} ({e}). It is the project's shared folder of \
             other readers' fixtures (../shared/peer-corpus beside the clone); set \
             TORCHSAVE_PEER_CORPUS to where it is",
            manifest.display()
        )
    });
    let m: Json = serde_json::from_str(&text).expect("manifest.json is JSON");
    let files = m["files"].as_array().expect("manifest.json has files[]");
    assert!(
        files.len() >= 70,
        "the peer corpus lists only {} files",
        files.len()
    );
    let mut problems = Vec::new();
    let mut torchscript = Vec::new();
    let (mut read, mut refused) = (0, 0);
    for entry in files {
        let file = entry["file"].as_str().unwrap();
        let path = dir.join(file);
        let weights_only = entry["loads_weights_only_2_x"].as_bool().unwrap_or(false);
        let opts = LoadOptions {
            weights_only,
            ..LoadOptions::default()
        };
        let result = load_file(&path, &opts);
        let expectation = entry["reader_expectation"].as_str().unwrap_or("?");
        if entry["torchscript"].as_bool() == Some(true) {
            torchscript.push(file.to_string());
            // torch.jit.load's globals only: the default (weights-only) load reads them too.
            if let Err(e) = load_file(&path, &LoadOptions::default()) {
                problems.push(format!(
                    "{file}: TorchScript refused under weightsOnly: {e}"
                ));
            }
        }
        match (expectation, result) {
            ("read", Ok(loaded)) => {
                let doc: Json = serde_json::from_str(
                    &inspect(&loaded, &InspectOptions { sha256: true }).to_json(),
                )
                .unwrap();
                check_read(file, entry, &doc, &mut problems);
                read += 1;
            }
            ("read", Err(e)) => problems.push(format!("{file}: torch reads it, we refuse: {e}")),
            ("refuse", Ok(_)) => problems.push(format!(
                "{file}: torch refuses it ({}), we read it",
                entry["torch_cannot_load"]
            )),
            ("refuse" | "refuse_or_read", Err(e)) if e.code.as_str() == "E_INTERNAL" => {
                problems.push(format!("{file}: refused with an internal error: {e}"))
            }
            ("refuse" | "refuse_or_read", Err(_)) => refused += 1,
            ("refuse_or_read", Ok(_)) => read += 1,
            (other, _) => problems.push(format!("{file}: unknown reader_expectation '{other}'")),
        }
    }
    eprintln!(
        "peer corpus: {} files, {read} read, {refused} refused; TorchScript (read as data): {}",
        files.len(),
        torchscript.join(", ")
    );
    assert!(
        problems.is_empty(),
        "{} disagreements with torch:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
