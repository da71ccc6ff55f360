//! The convert engine on inputs that need no torch reader: graphs built in Rust, saved as
//! safetensors, converted (keys, casts, shards, verify), and checked by real torch +
//! safetensors; plus batch behaviour (failures isolated, cancel, overwrite rules, naming,
//! discovery, work sharding), `inspect_many` and `diff`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "convert/support.rs"]
mod support;

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use support::*;
use torchsave_core::convert::{self, ConvertOptions, Target};
use torchsave_core::safetensors as st;
use torchsave_core::value::{Graph, Node, Value};
use torchsave_core::{DType, ErrorCode};

/// A DataParallel-style state dict: transposed f32 weight, f64 bias, an embedding tied to a
/// head (one tensor node under two names), an int64 buffer. Returns the graph and the
/// views.json entries (original names) for the oracle.
fn dp_graph() -> (Graph, serde_json::Map<String, serde_json::Value>) {
    let mut g = Graph::new();
    let s0 = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..12).map(|x| x as f32 / 3.0 - 1.7)),
    ));
    let w = g.add(Node::Tensor(view(s0, DType::Float32, &[4, 3], &[1, 4], 0)));
    let s1 = g.add_storage(storage(
        DType::Float64,
        [0.1f64, -2.5, 1e-9, 7.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    ));
    let b = g.add(Node::Tensor(contiguous(s1, DType::Float64, &[4])));
    let s2 = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..6).map(|x| 1.0 + x as f32 * 1e-4)),
    ));
    let emb = g.add(Node::Tensor(contiguous(s2, DType::Float32, &[3, 2])));
    let s3 = g.add_storage(storage(
        DType::Int64,
        (0..3i64).flat_map(|x| (x - 1).to_le_bytes()).collect(),
    ));
    let buf = g.add(Node::Tensor(contiguous(s3, DType::Int64, &[3])));
    let root = ordered(
        &mut g,
        vec![
            ("module.module.fc.weight", w.clone()),
            ("module.module.fc.bias", b.clone()),
            ("module.module.emb", emb.clone()),
            ("module.module.head", emb.clone()),
            ("module.module.steps", buf.clone()),
        ],
    );
    g.root = Some(root);
    let mut views = serde_json::Map::new();
    for (name, v) in [
        ("fc.weight", &w),
        ("fc.bias", &b),
        ("emb", &emb),
        ("steps", &buf),
    ] {
        views.insert(name.to_string(), view_json(&g, tensor_of(&g, v)));
    }
    (g, views)
}

fn opts(out: &Path) -> ConvertOptions {
    ConvertOptions {
        out_dir: Some(out.to_path_buf()),
        ..ConvertOptions::default()
    }
}

#[test]
fn rust_graph_converted_with_edits_and_cast_loads_in_python() {
    let dir = scratch("conv-python");
    let (g, mut views) = dp_graph();
    let input = dir.join("in").join("ckpt.safetensors");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    st::save_graph(&g, &input).unwrap();

    let out = dir.join("out");
    let o = ConvertOptions {
        strip_dataparallel: true,
        dtype: Some(DType::Float16),
        verify: true,
        ..opts(&out)
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    assert!(r.verified);
    assert_eq!(r.format, "safetensors");
    assert_eq!(r.outputs, vec![out.join("ckpt.safetensors")]);
    assert_eq!(r.tensors, 4, "head is an alias of emb");
    assert_eq!(
        r.bytes_out,
        std::fs::metadata(out.join("ckpt.safetensors"))
            .unwrap()
            .len()
    );
    for name in ["fc.weight", "fc.bias", "emb"] {
        views.get_mut(name).unwrap()["cast"] = json!("float16");
    }
    std::fs::write(
        out.join("ckpt.views.json"),
        json!({"tensors": views, "metadata": {"format": "pt", "head": "emb"}, "resave_identical": false}).to_string(),
    )
    .unwrap();
    oracle("views", &out);
}

#[test]
fn sharded_output_reads_back_and_follows_the_hub_rule() {
    let dir = scratch("conv-sharded");
    let (g, _) = dp_graph();
    let input = dir.join("pytorch_model.safetensors");
    st::save_graph(&g, &input).unwrap();
    let out = dir.join("out");
    // The input is a safetensors file, so its order is the file's (dtype rank, then name):
    // steps (i64, 24 bytes), fc.bias (f64, 32), emb (f32, 24), fc.weight (f32, 48). With a
    // 60-byte limit the hub rule gives [steps, fc.bias], [emb], [fc.weight].
    let o = ConvertOptions {
        strip_dataparallel: true,
        shard_size: Some(60),
        verify: true,
        ..opts(&out)
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    assert!(r.verified);
    let names: Vec<String> = r
        .outputs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json"
        ]
    );
    let idx = torchsave_core::hf_index::parse_index(
        &std::fs::read(out.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let mut wm = idx.weight_map.clone();
    wm.sort();
    assert_eq!(
        wm,
        [
            (
                "emb".to_string(),
                "model-00002-of-00003.safetensors".to_string()
            ),
            (
                "fc.bias".to_string(),
                "model-00001-of-00003.safetensors".to_string()
            ),
            (
                "fc.weight".to_string(),
                "model-00003-of-00003.safetensors".to_string()
            ),
            (
                "steps".to_string(),
                "model-00001-of-00003.safetensors".to_string()
            ),
        ]
    );
    assert_eq!(idx.total_size, Some(128));
    // The alias is recorded in the shard holding the kept tensor.
    let s2 = st::read_file(&out.join("model-00002-of-00003.safetensors"), true).unwrap();
    assert!(s2
        .metadata
        .contains(&("head".to_string(), "emb".to_string())));
    // The sharded checkpoint converts back into one file holding the restored alias.
    let back = dir.join("back");
    let r = convert::convert_file(
        &out.join("model.safetensors.index.json"),
        &ConvertOptions {
            verify: true,
            ..opts(&back)
        },
    );
    assert_eq!(r.error, None);
    assert_eq!(r.format, "hf-index");
    assert_eq!(r.outputs, vec![back.join("model.safetensors")]);
}

#[test]
fn overwrite_rules_and_dry_run() {
    let dir = scratch("conv-overwrite");
    let (g, _) = dp_graph();
    let input = dir.join("m.safetensors");
    st::save_graph(&g, &input).unwrap();
    let out = dir.join("out");
    // Dry run: reports the exact size, writes nothing (not even the folder).
    let r = convert::convert_file(
        &input,
        &ConvertOptions {
            dry_run: true,
            ..opts(&out)
        },
    );
    assert_eq!(r.error, None);
    assert!(!out.exists());
    let real = convert::convert_file(&input, &opts(&out));
    assert_eq!(real.error, None);
    assert_eq!(r.bytes_out, real.bytes_out);
    let before = std::fs::read(out.join("m.safetensors")).unwrap();
    // Existing output: E_OUTPUT_EXISTS, file untouched; force overwrites.
    let again = convert::convert_file(
        &input,
        &ConvertOptions {
            strip_dataparallel: true,
            ..opts(&out)
        },
    );
    assert_eq!(
        again.error.as_ref().map(|e| e.0),
        Some(ErrorCode::OutputExists)
    );
    assert_eq!(std::fs::read(out.join("m.safetensors")).unwrap(), before);
    let forced = convert::convert_file(
        &input,
        &ConvertOptions {
            strip_dataparallel: true,
            force: true,
            ..opts(&out)
        },
    );
    assert_eq!(forced.error, None);
    assert_ne!(std::fs::read(out.join("m.safetensors")).unwrap(), before);
    // Converting next to the input would replace it: refused even with force.
    let same = convert::convert_file(
        &input,
        &ConvertOptions {
            force: true,
            ..ConvertOptions::default()
        },
    );
    assert_eq!(
        same.error.as_ref().map(|e| e.0),
        Some(ErrorCode::InvalidArgument)
    );
    // No temporaries left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn skip_existing_resumes_a_batch() {
    let dir = scratch("conv-skip");
    let (g, _) = dp_graph();
    let inputs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.join(format!("m{i}.safetensors"));
            st::save_graph(&g, &p).unwrap();
            p
        })
        .collect();
    let out = dir.join("out");
    let cancel = AtomicBool::new(false);
    let skip = |to: Target, verify: bool| ConvertOptions {
        skip_existing: true,
        to,
        verify,
        ..opts(&out)
    };
    // A batch interrupted after one file: the retry converts the rest, skips the first.
    let first = convert::convert_file(&inputs[0], &opts(&out));
    assert_eq!(first.error, None);
    let before = std::fs::read(out.join("m0.safetensors")).unwrap();
    let retry = convert::convert_many(
        &inputs,
        &skip(Target::Safetensors, false),
        2,
        &|_| {},
        &cancel,
    );
    let skipped: Vec<bool> = retry.iter().map(|r| r.skipped).collect();
    assert_eq!(skipped, vec![true, false, false]);
    assert!(retry.iter().all(|r| r.error.is_none()));
    assert_eq!(retry[0].outputs, vec![out.join("m0.safetensors")]);
    assert_eq!(retry[0].bytes_out, 0);
    assert_eq!(std::fs::read(out.join("m0.safetensors")).unwrap(), before);
    // The finished batch again: every file skipped, nothing failed (cheap and full checks).
    for verify in [false, true] {
        let again = convert::convert_many(
            &inputs,
            &skip(Target::Safetensors, verify),
            2,
            &|_| {},
            &cancel,
        );
        assert!(
            again.iter().all(|r| r.skipped && r.error.is_none()),
            "{again:?}"
        );
    }
    // Without the option an existing output is still E_OUTPUT_EXISTS.
    let plain = convert::convert_file(&inputs[1], &opts(&out));
    assert_eq!(plain.error.map(|e| e.0), Some(ErrorCode::OutputExists));
    // A damaged output (truncated) is not skipped, and never silently overwritten.
    let bytes = std::fs::read(out.join("m1.safetensors")).unwrap();
    std::fs::write(out.join("m1.safetensors"), &bytes[..bytes.len() - 3]).unwrap();
    let bad = convert::convert_file(&inputs[1], &skip(Target::Safetensors, false));
    assert!(!bad.skipped);
    assert_eq!(bad.error.map(|e| e.0), Some(ErrorCode::OutputExists));
    // pt targets: the zip directory is checked; a file that is not a zip is refused.
    let pt = convert::convert_file(&inputs[2], &skip(Target::Pt, false));
    assert!(!pt.skipped && pt.error.is_none(), "{pt:?}");
    let pt_again = convert::convert_file(&inputs[2], &skip(Target::Pt, false));
    assert!(pt_again.skipped && pt_again.error.is_none(), "{pt_again:?}");
    std::fs::write(out.join("m0.pt"), b"not a zip file at all").unwrap();
    let junk = convert::convert_file(&inputs[0], &skip(Target::Pt, false));
    assert_eq!(junk.error.map(|e| e.0), Some(ErrorCode::OutputExists));
    // force and skip_existing exclude each other.
    let both = convert::convert_file(
        &inputs[0],
        &ConvertOptions {
            force: true,
            ..skip(Target::Safetensors, false)
        },
    );
    assert_eq!(both.error.map(|e| e.0), Some(ErrorCode::InvalidArgument));
}

#[test]
fn key_edit_errors_and_selection() {
    let dir = scratch("conv-keys");
    let (g, _) = dp_graph();
    let input = dir.join("m.safetensors");
    st::save_graph(&g, &input).unwrap();
    let out = dir.join("out");
    // Renaming two keys to one name is an error, not a silent overwrite.
    let o = ConvertOptions {
        renames: vec![convert::parse_rename(r"fc\.(weight|bias)=>fc").unwrap()],
        ..opts(&out)
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(
        r.error.as_ref().map(|e| e.0),
        Some(ErrorCode::InvalidArgument)
    );
    assert!(!out.join("m.safetensors").exists());
    for bad in ["no-arrow", "a=b", "(=>x"] {
        assert_eq!(
            convert::parse_rename(bad).unwrap_err().code,
            ErrorCode::InvalidArgument,
            "{bad}"
        );
    }
    // The one syntax: split at the first `=>`; JS replacements become the regex crate's.
    let (re, rep) = convert::parse_rename(r"^(\w+)\.(?<p>\w+)$=>$2_$<p>$1x$&$$=>").unwrap();
    assert_eq!(re.as_str(), r"^(\w+)\.(?<p>\w+)$");
    assert_eq!(rep, "${2}_${p}${1}x${0}$$=>");
    assert_eq!(
        re.replace_all("fc.bias", rep.as_str()),
        "bias_biasfcxfc.bias$=>"
    );
    // Regex groups and prefixes.
    let o = ConvertOptions {
        strip_prefixes: vec!["module.".into()],
        renames: vec![convert::parse_rename(r"^module\.fc\.(\w+)$=>linear.$1").unwrap()],
        ..opts(&out)
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    let back = st::read_file(&out.join("m.safetensors"), true).unwrap();
    let mut names: Vec<String> = root_items(&back.graph).into_iter().map(|x| x.0).collect();
    names.sort();
    assert_eq!(
        names,
        ["linear.bias", "linear.weight", "module.emb", "module.steps"]
    );
    // A missing select path.
    let r = convert::convert_file(
        &input,
        &ConvertOptions {
            select: Some("nope".into()),
            force: true,
            ..opts(&out)
        },
    );
    assert_eq!(
        r.error.as_ref().map(|e| e.0),
        Some(ErrorCode::InvalidArgument)
    );
}

#[test]
fn batch_isolates_failures_reports_progress_and_cancels() {
    let dir = scratch("conv-batch");
    let (g, _) = dp_graph();
    let good1 = dir.join("a.safetensors");
    let good2 = dir.join("sub").join("b.safetensors");
    std::fs::create_dir_all(good2.parent().unwrap()).unwrap();
    st::save_graph(&g, &good1).unwrap();
    st::save_graph(&g, &good2).unwrap();
    let bad = dir.join("c.safetensors");
    let mut bytes = std::fs::read(&good1).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&bad, bytes).unwrap();
    let missing = dir.join("d.safetensors");
    let inputs = vec![good1.clone(), bad.clone(), missing.clone(), good2.clone()];
    let out = dir.join("out");
    let events = Mutex::new(Vec::new());
    let progress = |p: convert::Progress| {
        events
            .lock()
            .unwrap()
            .push((p.index, p.report.is_some(), p.total))
    };
    let o = ConvertOptions {
        keep_tree: true,
        verify: true,
        ..opts(&out)
    };
    let reports = convert::convert_many(&inputs, &o, 2, &progress, &AtomicBool::new(false));
    assert_eq!(
        reports.iter().map(|r| r.input.clone()).collect::<Vec<_>>(),
        inputs
    );
    assert_eq!(reports[0].error, None);
    assert_eq!(
        reports[1].error.as_ref().map(|e| e.0),
        Some(ErrorCode::Truncated)
    );
    assert_eq!(reports[2].error.as_ref().map(|e| e.0), Some(ErrorCode::Io));
    assert_eq!(reports[3].error, None);
    // keep_tree mirrors folders under the inputs' common root.
    assert_eq!(
        reports[3].outputs,
        vec![out.join("sub").join("b.safetensors")]
    );
    assert!(out.join("a.safetensors").exists());
    let ev = events.into_inner().unwrap();
    assert_eq!(ev.len(), 8, "a start and an end per file");
    assert!(ev.iter().all(|e| e.2 == 4));
    // Cancelled before starting: every file reports E_CANCELLED and nothing is written.
    let out2 = dir.join("out2");
    let reports = convert::convert_many(&inputs, &opts(&out2), 3, &|_| {}, &AtomicBool::new(true));
    assert!(reports
        .iter()
        .all(|r| r.error.as_ref().map(|e| e.0) == Some(ErrorCode::Cancelled)));
    assert!(!out2.exists());
}

#[test]
fn discovery_work_sharding_and_naming() {
    let dir = scratch("conv-discover");
    for f in [
        "a.pt",
        "b.pth",
        "c.bin",
        "d.ckpt",
        "e.safetensors",
        "notes.txt",
        ".e.safetensors.tmp-1-2",
        "sub/f.pt",
    ] {
        let p = dir.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }
    let hf = dir.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::write(hf.join("model-00001-of-00002.safetensors"), b"x").unwrap();
    std::fs::write(hf.join("model-00002-of-00002.safetensors"), b"x").unwrap();
    std::fs::write(hf.join("extra.safetensors"), b"x").unwrap();
    std::fs::write(
        hf.join("model.safetensors.index.json"),
        hf_index_text(&[
            ("a", "model-00001-of-00002.safetensors"),
            ("b", "model-00002-of-00002.safetensors"),
        ]),
    )
    .unwrap();
    let found = convert::discover_inputs(&[dir.display().to_string()]).unwrap();
    let rel: Vec<String> = found
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "a.pt",
            "b.pth",
            "c.bin",
            "d.ckpt",
            "e.safetensors",
            "hf/extra.safetensors",
            "hf/model.safetensors.index.json",
            "sub/f.pt"
        ]
    );
    let globbed = convert::discover_inputs(&[
        format!("{}/*.p*", dir.display()),
        dir.join("c.bin").display().to_string(),
    ])
    .unwrap();
    assert_eq!(
        globbed,
        vec![dir.join("a.pt"), dir.join("b.pth"), dir.join("c.bin")]
    );
    assert_eq!(
        convert::discover_inputs(&[dir.join("zzz").display().to_string()])
            .unwrap_err()
            .code,
        ErrorCode::Io
    );
    assert_eq!(
        convert::discover_inputs(&[format!("{}/*.none", dir.display())])
            .unwrap_err()
            .code,
        ErrorCode::Io
    );

    let s0 = convert::shard_inputs(&found, 0, 3).unwrap();
    let s1 = convert::shard_inputs(&found, 1, 3).unwrap();
    let s2 = convert::shard_inputs(&found, 2, 3).unwrap();
    assert_eq!(
        s0,
        vec![found[0].clone(), found[3].clone(), found[6].clone()]
    );
    assert_eq!(s0.len() + s1.len() + s2.len(), found.len());
    assert!(s1.iter().all(|p| !s0.contains(p) && !s2.contains(p)));
    assert_eq!(
        convert::shard_inputs(&found, 3, 3).unwrap_err().code,
        ErrorCode::InvalidArgument
    );

    let stem = |p: &str, t: Target| {
        let (s, e) = convert::output_stem(&PathBuf::from(p), t);
        format!("{s}.{e}")
    };
    assert_eq!(
        stem("a/model.pth", Target::Safetensors),
        "model.safetensors"
    );
    assert_eq!(
        stem("x/pytorch_model.bin", Target::Safetensors),
        "model.safetensors"
    );
    assert_eq!(
        stem("x/pytorch_model.bin.index.json", Target::Safetensors),
        "model.safetensors"
    );
    assert_eq!(stem("x/model.safetensors", Target::Pt), "pytorch_model.bin");
    assert_eq!(stem("x/net.safetensors", Target::Pt), "net.pt");
    assert_eq!(stem("x/net.ckpt", Target::PtLegacy), "net.ckpt");
    assert_eq!(stem("x/a.b.pt", Target::Safetensors), "a.b.safetensors");
}

fn hf_index_text(pairs: &[(&str, &str)]) -> String {
    let wm: Vec<(String, String)> = pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    torchsave_core::hf_index::index_json(0, &wm)
}

#[test]
fn diff_and_inspect_many() {
    let dir = scratch("conv-diff");
    let (g, _) = dp_graph();
    let a = dir.join("a.safetensors");
    st::save_graph(&g, &a).unwrap();
    // b: weight cast to f16, bias values changed, steps dropped, a new tensor added.
    let mut g2 = g.clone();
    let root = g2.root().clone();
    if let Value::Ref(id) = &root {
        if let Some(Node::OrderedDict { items, .. }) = g2.node_mut(*id) {
            items.retain(|(k, _)| *k != Value::Str("module.module.steps".into()));
        }
    }
    let sb = g2.add_storage(storage(
        DType::Float64,
        [0.1f64, -2.0, 1e-9, 7.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
    ));
    if let Some(Node::Tensor(t)) = g2.node_mut(1) {
        t.storage = Some(sb);
    }
    let sn = g2.add_storage(storage(DType::UInt8, vec![1, 2]));
    let newt = g2.add(Node::Tensor(contiguous(sn, DType::UInt8, &[2])));
    if let Value::Ref(id) = &root {
        if let Some(Node::OrderedDict { items, .. }) = g2.node_mut(*id) {
            items.push((Value::Str("new".into()), newt));
        }
    }
    let b0 = dir.join("b0.safetensors");
    st::save_graph(&g2, &b0).unwrap();
    let out = dir.join("o");
    let r = convert::convert_file(
        &b0,
        &ConvertOptions {
            renames: vec![convert::parse_rename("fc.weight$=>fc.weight").unwrap()],
            ..opts(&out)
        },
    );
    assert_eq!(r.error, None);
    // b0 went through the engine (a no-op rename) so `diff` compares an engine output.
    let b = out.join("b0.safetensors");
    let d = convert::diff(&a, &b, &Default::default()).unwrap();
    assert_eq!(d.added, ["new"]);
    assert_eq!(d.removed, ["module.module.steps"]);
    assert_eq!(d.changed.len(), 1);
    assert_eq!(d.changed[0].key, "module.module.fc.bias");
    assert_eq!(d.changed[0].reason, convert::ChangeReason::Values);
    assert_eq!(d.changed[0].max_abs_diff, Some(0.5));
    assert_eq!(d.same, 3, "fc.weight, emb and head (alias restored)");

    let half = dir.join("h");
    let r = convert::convert_file(
        &a,
        &ConvertOptions {
            dtype: Some(DType::Float16),
            ..opts(&half)
        },
    );
    assert_eq!(r.error, None);
    let d = convert::diff(&a, &half.join("a.safetensors"), &Default::default()).unwrap();
    assert!(d
        .changed
        .iter()
        .all(|c| c.reason == convert::ChangeReason::Dtype));
    let emb = d
        .changed
        .iter()
        .find(|c| c.key == "module.module.emb")
        .unwrap();
    let err = emb.max_abs_diff.unwrap();
    assert!(
        err > 0.0 && err < 1e-3,
        "f16 rounding of values near 1: {err}"
    );

    std::fs::write(dir.join("junk.safetensors"), b"\x01\x00").unwrap();
    let s = convert::inspect_many(
        &[a.clone(), b.clone(), dir.join("junk.safetensors")],
        &Default::default(),
    );
    assert_eq!(s.count, 2);
    assert_eq!(s.formats.get("safetensors"), Some(&2));
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].code, ErrorCode::Truncated);
    // a: 48 + 24 (emb, once) + 24 (steps) f32/i64 ... by dtype.
    assert_eq!(
        s.dtypes.get("float64").map(|d| (d.tensors, d.bytes)),
        Some((2, 64))
    );
    assert_eq!(
        s.dtypes.get("uint8").map(|d| (d.tensors, d.bytes)),
        Some((1, 2))
    );
    assert_eq!(
        s.total_bytes,
        std::fs::metadata(&a).unwrap().len() + std::fs::metadata(&b).unwrap().len()
    );
}

/// Every file under `dir`, relative, sorted (temporaries included: they would show up here).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn not_durable_writes_the_same_bytes_and_stays_atomic() {
    let dir = scratch("conv-durable");
    let (g, _) = dp_graph();
    let inputs: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| dir.join("in").join(format!("{n}.safetensors")))
        .collect();
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for i in &inputs {
        st::save_graph(&g, i).unwrap();
    }
    // Every writing path: streamed safetensors (Pending on the committer threads),
    // safetensors shards + index (writer::atomic::write_atomic), a cast, pt zip and legacy (save_to_path).
    let variants: Vec<(&str, ConvertOptions)> = vec![
        ("st", ConvertOptions::default()),
        (
            "st-f16",
            ConvertOptions {
                dtype: Some(DType::Float16),
                verify: true,
                ..ConvertOptions::default()
            },
        ),
        (
            "st-shards",
            ConvertOptions {
                shard_size: Some(64),
                ..ConvertOptions::default()
            },
        ),
        (
            "pt",
            ConvertOptions {
                to: Target::Pt,
                ..ConvertOptions::default()
            },
        ),
        (
            "pt-shards",
            ConvertOptions {
                to: Target::Pt,
                shard_size: Some(64),
                ..ConvertOptions::default()
            },
        ),
        (
            "legacy",
            ConvertOptions {
                to: Target::PtLegacy,
                ..ConvertOptions::default()
            },
        ),
    ];
    for (name, base) in &variants {
        let run = |durable: bool| {
            let out = dir.join(format!("{name}-{durable}"));
            let o = ConvertOptions {
                durable,
                out_dir: Some(out.clone()),
                ..base.clone()
            };
            let reports = convert::convert_many(&inputs, &o, 2, &|_| {}, &AtomicBool::new(false));
            for r in &reports {
                assert_eq!(r.error, None, "{name} durable={durable}");
                assert!(!r.outputs.is_empty());
            }
            let files = tree(&out);
            let bytes: Vec<Vec<u8>> = files
                .iter()
                .map(|f| std::fs::read(out.join(f)).unwrap())
                .collect();
            (files, bytes)
        };
        let (f1, b1) = run(true);
        let (f0, b0) = run(false);
        assert!(f1.len() >= inputs.len(), "{name}: {f1:?}");
        assert_eq!(f0, f1, "{name}: same outputs");
        assert!(b0 == b1, "{name}: same bytes");
    }

    // A failing commit (the output name is a non-empty folder) reports an error and leaves no
    // temporary behind, durable or not, on the streamed, write_atomic and save_to_path paths.
    for (name, base, blocked) in [
        ("st", ConvertOptions::default(), "a.safetensors"),
        (
            "st-shards",
            ConvertOptions {
                shard_size: Some(64),
                ..ConvertOptions::default()
            },
            "a.safetensors.index.json",
        ),
        (
            "pt",
            ConvertOptions {
                to: Target::Pt,
                ..ConvertOptions::default()
            },
            "a.pt",
        ),
    ] {
        for durable in [false, true] {
            let out = dir.join(format!("fail-{name}-{durable}"));
            std::fs::create_dir_all(out.join(blocked).join("keep")).unwrap();
            let o = ConvertOptions {
                durable,
                force: true,
                out_dir: Some(out.clone()),
                ..base.clone()
            };
            let before = tree(&out);
            let r = convert::convert_many(&inputs[..1], &o, 2, &|_| {}, &AtomicBool::new(false));
            assert_eq!(
                r[0].error.as_ref().map(|e| e.0),
                Some(ErrorCode::Io),
                "{name} durable={durable}"
            );
            let after: Vec<String> = tree(&out)
                .into_iter()
                .filter(|f| !f.starts_with("a-0000"))
                .collect();
            assert_eq!(after, before, "{name} durable={durable}: no temporary left");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every file under `dir` (name -> bytes), for comparing whole output folders.
fn folder_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn n_workers_sharing_one_sharded_input_write_exactly_one_full_runs_files() {
    let dir = scratch("conv-output-share");
    let (g, _) = dp_graph();
    let input = dir.join("pytorch_model.safetensors");
    st::save_graph(&g, &input).unwrap();
    let spec = vec![input.display().to_string()];
    for to in [Target::Safetensors, Target::Pt] {
        let run = |out: &Path, share: Option<(usize, usize)>| {
            let mut o = ConvertOptions {
                to,
                strip_dataparallel: true,
                shard_size: Some(60),
                ..opts(out)
            };
            let files = convert::discover_share_with_outputs(
                &spec,
                share.map(|s| s.0),
                share.map(|s| s.1),
                &mut o,
            )
            .unwrap();
            assert_eq!(files.len(), 1, "a one-input share keeps the input");
            assert_eq!(o.output_share, share);
            let r = convert::convert_file(&files[0], &o);
            assert_eq!(r.error, None);
            r.outputs.len()
        };
        let full = dir.join(format!("full-{to:?}"));
        assert_eq!(run(&full, None), 4, "3 shards + the index");
        let parts = dir.join(format!("parts-{to:?}"));
        let written: Vec<usize> = (0..2).map(|i| run(&parts, Some((i, 2)))).collect();
        // worker 0: shards 1 and 3 + the index; worker 1: shard 2.
        assert_eq!(written, [3, 1]);
        assert_eq!(folder_bytes(&parts), folder_bytes(&full), "{to:?}");
    }
    // Several inputs: the share splits the input list, as before.
    let other = dir.join("second.safetensors");
    st::save_graph(&g, &other).unwrap();
    let mut o = ConvertOptions {
        shard_size: Some(60),
        ..opts(&dir)
    };
    let files = convert::discover_share_with_outputs(
        &[input.display().to_string(), other.display().to_string()],
        Some(1),
        Some(2),
        &mut o,
    )
    .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(o.output_share, None);
}
