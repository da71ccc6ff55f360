//! The real-world corpus: 30 weight files shipped inside 15 pinned PyPI wheels (legacy files
//! from the Python 2 era, zips from many torch versions, storages saved on `cuda:0`/`cuda:7`
//! or mixing devices, optimizer, scheduler and Lightning checkpoints, numpy values, classes of
//! packages not installed here, TorchScript archives, files up to 106 MB, a
//! `pytorch_model.bin`). `tests/realworld/make_realworld.py` downloads them by sha256 into a
//! cache outside the clone and records what real torch 2.11 reads from each
//! (`manifest.json`, the peer corpus's schema); scripts/test.sh runs it first and passes its
//! folder in `TORCHSAVE_REALWORLD`. Each file must read exactly as torch reads it: every
//! tensor's path, dtype, shape, stride, offset and sha256 of its values, every numpy array,
//! the weights-only verdict (`weightsOnly: true` refuses what torch refuses, with the policy
//! code), and the storage locations (a GPU's file opens here, on a machine without one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod torch_manifest;

use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use torch_manifest::check_read;
use torchsave_core::inspect::{inspect, InspectOptions};
use torchsave_core::{load_file, ErrorCode, LoadOptions};

fn corpus_dir() -> PathBuf {
    match std::env::var_os("TORCHSAVE_REALWORLD") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "TORCHSAVE_REALWORLD is not set: it names the folder \
             crate/core/tests/realworld/make_realworld.py fills (it prints it); scripts/test.sh \
             sets it"
        ),
    }
}

#[test]
fn every_real_world_file_reads_as_torch_reads_it() {
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("no manifest.json in {}: {e}", dir.display()));
    let m: Json = serde_json::from_str(&text).unwrap();
    let files = m["files"].as_array().unwrap();
    let packages: BTreeSet<&str> = files
        .iter()
        .map(|f| f["package"].as_str().unwrap().split("==").next().unwrap())
        .collect();
    assert!(files.len() >= 30, "only {} files", files.len());
    assert!(packages.len() >= 10, "only {} packages", packages.len());
    let mut problems = Vec::new();
    for entry in files {
        let file = entry["file"].as_str().unwrap();
        let path = dir.join("files").join(file);
        let weights_only = entry["loads_weights_only_2_x"].as_bool().unwrap();
        let torchscript = entry["torchscript"].as_bool() == Some(true);
        // What torch needs weights_only=False for, we load as inert data the same way.
        let loaded = match load_file(
            &path,
            &LoadOptions {
                weights_only: weights_only || torchscript,
                ..LoadOptions::default()
            },
        ) {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{file}: torch reads it, we refuse: {e}"));
                continue;
            }
        };
        let doc: Json =
            serde_json::from_str(&inspect(&loaded, &InspectOptions { sha256: true }).to_json())
                .unwrap();
        check_read(file, entry, &doc, &mut problems);
        if !weights_only && !torchscript {
            match load_file(&path, &LoadOptions::default()) {
                Err(e) if e.code == ErrorCode::UnsafeGlobal => {}
                Err(e) => problems.push(format!("{file}: weights-only refusal is {e}")),
                Ok(_) => problems.push(format!(
                    "{file}: torch refuses it weights-only ({}), we load it",
                    entry["weights_only_error"]
                )),
            }
        }
        if let Some(want) = entry["storage_locations"].as_array() {
            let want: BTreeSet<&str> = want.iter().map(|l| l.as_str().unwrap()).collect();
            let got: BTreeSet<&str> = loaded
                .graph
                .storages
                .iter()
                .map(|s| s.location.as_str())
                .collect();
            if want != got {
                problems.push(format!(
                    "{file}: storage locations {got:?} (torch: {want:?})"
                ));
            }
        }
    }
    eprintln!(
        "real-world corpus: {} files from {} packages",
        files.len(),
        packages.len()
    );
    assert!(
        problems.is_empty(),
        "{} disagreements with torch:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
