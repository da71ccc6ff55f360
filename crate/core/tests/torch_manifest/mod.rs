//! Holds a loaded file to what a torch manifest (the peer corpus's schema, also the real-world
//! corpus's) records for it: format, weights-only verdict, every tensor and numpy array.
//! Shared by `peer_corpus.rs` and `realworld.rs`.

use serde_json::Value as Json;

/// A manifest path element as our inspect writes it: `{"attr": name}` is an object's state key.
pub fn path_elem(e: &Json) -> Json {
    match e.get("attr") {
        Some(name) => name.clone(),
        None => e.clone(),
    }
}

pub fn check_read(file: &str, entry: &Json, doc: &Json, problems: &mut Vec<String>) {
    let mut bad = |what: String| problems.push(format!("{file}: {what}"));
    let torchscript = entry["torchscript"].as_bool() == Some(true);
    let want_format = if torchscript {
        Json::from("torchscript")
    } else {
        entry["format"].clone()
    };
    if doc["format"] != want_format {
        bad(format!("format {} (torch: {})", doc["format"], want_format));
    }
    if let Some(ok) = entry["loads_weights_only_2_x"].as_bool() {
        if doc["weights_only_ok"].as_bool() != Some(ok) {
            bad(format!(
                "weights_only_ok {} (torch: {ok})",
                doc["weights_only_ok"]
            ));
        }
    }
    let want = entry["tensors"].as_array().cloned().unwrap_or_default();
    let got = doc["tensors"].as_array().cloned().unwrap_or_default();
    if want.len() != got.len() {
        bad(format!("{} tensors (torch: {})", got.len(), want.len()));
    }
    for (w, g) in want.iter().zip(&got) {
        let wpath: Vec<Json> = w["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(path_elem)
            .collect();
        if Json::Array(wpath.clone()) != g["path"] {
            bad(format!("tensor at {} (torch: {:?})", g["path"], wpath));
            continue;
        }
        for k in [
            "dtype",
            "shape",
            "stride",
            "storage_offset",
            "requires_grad",
            "sha256",
        ] {
            if w[k] != g[k] {
                bad(format!("{:?}: {k} {} (torch: {})", wpath, g[k], w[k]));
            }
        }
    }
    let want = entry["non_tensor"].as_array().cloned().unwrap_or_default();
    let got = doc["arrays"].as_array().cloned().unwrap_or_default();
    if want.len() != got.len() {
        bad(format!(
            "{} numpy arrays (torch: {})",
            got.len(),
            want.len()
        ));
    }
    for (w, g) in want.iter().zip(&got) {
        let wpath: Vec<Json> = w["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(path_elem)
            .collect();
        if Json::Array(wpath.clone()) != g["path"]
            || w["shape"] != g["shape"]
            || w["sha256"] != g["sha256"]
        {
            bad(format!("numpy array {} (torch: {w})", g));
        }
    }
}
