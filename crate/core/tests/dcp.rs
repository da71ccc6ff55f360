//! Distributed checkpoints against real torch 2.11: `tests/dcp/make_dcp.py make` writes DCP
//! folders with `torch.distributed.checkpoint.save` (one process with `no_dist=True`, and two
//! gloo processes with DTensor shards) into this test binary's temp dir, with
//! `dcp_to_torch_save` of each. We load each folder, save what we read as a `.pt`, and torch
//! compares the two (`make_dcp.py compare`: container kinds, keys, order, tensors bit for bit).
//! The tests fail, never skip, without the Python oracle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use torchsave_core::container::dcp;
use torchsave_core::convert::{self, ConvertOptions, Target};
use torchsave_core::writer::dcp_write::{save_dcp, DcpSaveOptions};
use torchsave_core::DType;
use torchsave_core::{load_file, save_to_path, ErrorCode, Format, LoadOptions, Node, SaveOptions};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TORCHSAVE_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var("HOME").expect("HOME");
    let p = PathBuf::from(home).join(".cache/torchsave/venv-torch-2.11.0/bin/python");
    assert!(
        p.exists(),
        "no torch venv: run scripts/python-env.sh or set TORCHSAVE_PYTHON"
    );
    p
}

/// Runs `make_dcp.py ARGS...`, panicking with its output on failure.
fn oracle(args: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dcp/make_dcp.py");
    let out = Command::new(python())
        .arg("-W")
        .arg("ignore")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "make_dcp.py {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fixtures, made once per test binary.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dcp-fixtures");
        let _ = std::fs::remove_dir_all(&d);
        oracle(&[Path::new("make"), &d]);
        d
    })
}

fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dcp-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn read_case(case: &str, mmap: bool) {
    let dir = fixtures().join(case);
    assert!(dcp::is_dcp_dir(&dir));
    let opts = LoadOptions {
        mmap,
        ..LoadOptions::default()
    };
    let loaded = load_file(&dir, &opts).unwrap();
    assert_eq!(loaded.info.format, Format::Dcp);
    assert_eq!(loaded.info.version.as_deref(), Some("1.0.0"));
    // torch's own DCP load accepts the metadata's dataclasses: no weights-only refusal.
    assert_eq!(loaded.info.weights_only_refusal, None);
    let out = scratch(&format!("read-{case}-{mmap}")).join("ours.pt");
    save_to_path(&loaded.graph, &out, &SaveOptions::default()).unwrap();
    oracle(&[
        Path::new("compare"),
        &out,
        &fixtures().join(format!("{case}.pt")),
    ]);
}

#[test]
fn nested_state_dict_every_dtype_three_files() {
    read_case("nested", true);
}

#[test]
fn model_and_optimizer_state() {
    read_case("model", false);
}

#[test]
fn dtensor_shards_from_two_ranks_are_assembled() {
    read_case("sharded", true);
    // The metadata says 2 chunks per sharded tensor, in 2 files.
    let md = dcp::read_metadata(&fixtures().join("sharded"), &LoadOptions::default()).unwrap();
    let row = md.entries.iter().find(|e| e.fqn == "model.row").unwrap();
    let dcp::Item::Tensor { chunks, size, .. } = &row.item else {
        panic!("model.row is not a tensor")
    };
    assert_eq!(size, &vec![6, 4]);
    assert_eq!(chunks.len(), 2);
    assert_ne!(chunks[0].location.file, chunks[1].location.file);
    // Mapped: the sharded tensors stay tiles in the maps until their bytes are asked for.
    let loaded = load_file(&fixtures().join("sharded"), &LoadOptions::default()).unwrap();
    let tiled: Vec<_> = loaded
        .graph
        .storages
        .iter()
        .filter_map(|s| s.data.backing().tiles())
        .collect();
    assert_eq!(tiled.len(), 3, "row, col, odd are sharded");
    assert!(tiled
        .iter()
        .all(|t| !t.is_assembled() && t.tiles.len() == 2));
}

#[test]
fn a_single_chunk_tensor_views_the_mapped_file() {
    let dir = fixtures().join("nested");
    let loaded = load_file(&dir, &LoadOptions::default()).unwrap();
    let mapped = loaded
        .graph
        .storages
        .iter()
        .filter(|s| !s.data.is_empty())
        .all(|s| s.data.offset_in_backing() > 0);
    assert!(
        mapped,
        "storages should be slices of the mapped .distcp files"
    );
    // Nested as torch nests it: `layers` is a list of dicts.
    let root = loaded.graph.root();
    let items = torchsave_core::graph::mapping_items(&loaded.graph, root).unwrap();
    let (_, layers) = items
        .iter()
        .find(|(k, _)| matches!(k, torchsave_core::Value::Str(s) if s == "layers"))
        .unwrap();
    assert!(matches!(loaded.graph.deref(layers), Some(Node::List(l)) if l.len() == 2));
}

#[test]
fn metadata_naming_other_globals_is_refused_under_weights_only() {
    // make_dcp.py's `evil`: a .metadata whose pickle calls os.system (pickle.dump of an
    // object with that __reduce__).
    let d = fixtures().join("evil");
    let e = load_file(&d, &LoadOptions::default()).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
    // Without weights_only nothing runs either: the root is an inert object, not a Metadata.
    let opts = LoadOptions {
        weights_only: false,
        ..LoadOptions::default()
    };
    assert_eq!(load_file(&d, &opts).unwrap_err().code, ErrorCode::BadDcp);
}

#[test]
fn missing_or_short_data_files_are_coded() {
    let src = fixtures().join("sharded");
    let d = scratch("short");
    for f in [".metadata", "__0_0.distcp"] {
        std::fs::copy(src.join(f), d.join(f)).unwrap();
    }
    assert_eq!(
        load_file(&d, &LoadOptions::default()).unwrap_err().code,
        ErrorCode::Io
    );
    let one = std::fs::read(src.join("__1_0.distcp")).unwrap();
    std::fs::write(d.join("__1_0.distcp"), &one[..one.len() / 2]).unwrap();
    assert_eq!(
        load_file(&d, &LoadOptions::default()).unwrap_err().code,
        ErrorCode::Truncated
    );
}

/// Writes `case.pt` (torch's dcp_to_torch_save output, read by us) as a DCP folder of
/// `writers` files; torch then loads our folder both ways (`make_dcp.py dcpload`).
fn write_case(case: &str, writers: usize) -> PathBuf {
    let reference = fixtures().join(format!("{case}.pt"));
    let loaded = load_file(&reference, &LoadOptions::default()).unwrap();
    let out = scratch(&format!("write-{case}-{writers}")).join("ckpt");
    let opts = DcpSaveOptions {
        writers,
        ..DcpSaveOptions::default()
    };
    let w = save_dcp(&loaded.graph, &out, &opts).unwrap();
    assert_eq!(w.files.len(), writers);
    for f in &w.files {
        assert!(out.join(f).is_file(), "{f}");
    }
    oracle(&[Path::new("dcpload"), &out, &reference]);
    // And back through our reader: the same value as torch's.
    let back = load_file(&out, &LoadOptions::default()).unwrap();
    let again = out.with_file_name("back.pt");
    save_to_path(&back.graph, &again, &SaveOptions::default()).unwrap();
    oracle(&[Path::new("compare"), &again, &reference]);
    out
}

#[test]
fn written_nested_checkpoint_is_what_torch_loads() {
    write_case("nested", 3);
}

#[test]
fn written_model_and_optimizer_load_in_torch() {
    write_case("model", 1);
}

#[test]
fn written_sharded_values_split_over_files() {
    let out = write_case("sharded", 2);
    // Both files hold items: tensors go to the lightest file.
    for f in ["__0_0.distcp", "__0_1.distcp"] {
        assert!(std::fs::metadata(out.join(f)).unwrap().len() > 0, "{f}");
    }
}

#[test]
fn the_folder_appears_whole_or_not_at_all() {
    let reference = fixtures().join("model.pt");
    let g = load_file(&reference, &LoadOptions::default())
        .unwrap()
        .graph;
    let d = scratch("atomic");
    let out = d.join("ckpt");
    save_dcp(&g, &out, &DcpSaveOptions::default()).unwrap();
    let no = DcpSaveOptions {
        overwrite: false,
        ..DcpSaveOptions::default()
    };
    assert_eq!(
        save_dcp(&g, &out, &no).unwrap_err().code,
        ErrorCode::OutputExists
    );
    // A failed save (a value our writer refuses) leaves the old folder and no temporary.
    let mut bad = g.clone();
    bad.root = Some(torchsave_core::Value::Int(3));
    assert_eq!(
        save_dcp(&bad, &out, &DcpSaveOptions::default())
            .unwrap_err()
            .code,
        ErrorCode::Unserializable
    );
    let names: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["ckpt".to_string()]);
    assert!(dcp::is_dcp_dir(&out));
    let zero = DcpSaveOptions {
        writers: 0,
        ..DcpSaveOptions::default()
    };
    assert_eq!(
        save_dcp(&g, &out, &zero).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
}

fn convert_opts(out: &Path, to: &str) -> ConvertOptions {
    ConvertOptions {
        to: Target::parse(to).unwrap(),
        out_dir: Some(out.to_path_buf()),
        verify: true,
        ..ConvertOptions::default()
    }
}

#[test]
fn convert_sharded_dcp_to_safetensors_streams_with_select_and_cast() {
    let out = scratch("convert-st");
    let input = fixtures().join("sharded");
    // Inputs discovered in a folder: the DCP folder is one input.
    let found = convert::discover_inputs(&[fixtures().display().to_string()]).unwrap();
    assert!(found.contains(&input), "{found:?}");
    assert!(!found
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "distcp")));
    let o = ConvertOptions {
        select: Some("model".into()),
        dtype: Some(DType::Float16),
        ..convert_opts(&out, "safetensors")
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    assert!(r.verified);
    assert_eq!(r.format, "dcp");
    assert_eq!(r.outputs, vec![out.join("sharded.safetensors")]);
    oracle(&[
        Path::new("stcompare"),
        &out.join("sharded.safetensors"),
        &fixtures().join("sharded.pt"),
        Path::new("model"),
        Path::new("float16"),
    ]);
}

#[test]
fn convert_dcp_to_sharded_safetensors_and_pt() {
    let out = scratch("convert-shards");
    let input = fixtures().join("nested");
    let o = ConvertOptions {
        select: Some("shapes".into()),
        shard_size: Some(4096),
        ..convert_opts(&out, "safetensors")
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    assert!(r.outputs.len() > 2, "{:?}", r.outputs);
    let index = r
        .outputs
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".index.json"))
        .unwrap()
        .clone();
    oracle(&[
        Path::new("stcompare"),
        &index,
        &fixtures().join("nested.pt"),
        Path::new("shapes"),
        Path::new("-"),
    ]);
    let pt = scratch("convert-pt");
    let r = convert::convert_file(&fixtures().join("model"), &convert_opts(&pt, "pt"));
    assert_eq!(r.error, None);
    oracle(&[
        Path::new("compare"),
        &pt.join("model.pt"),
        &fixtures().join("model.pt"),
    ]);
}

#[test]
fn convert_pt_to_dcp_and_back() {
    let out = scratch("convert-to-dcp");
    let input = fixtures().join("nested.pt");
    let r = convert::convert_file(&input, &convert_opts(&out, "dcp"));
    assert_eq!(r.error, None);
    assert!(r.verified);
    assert_eq!(r.outputs, vec![out.join("nested")]);
    oracle(&[Path::new("dcpload"), &out.join("nested"), &input]);
    // Again without force: the folder exists.
    let r = convert::convert_file(&input, &convert_opts(&out, "dcp"));
    assert_eq!(r.error.map(|e| e.0), Some(ErrorCode::OutputExists));
    let o = ConvertOptions {
        shard_size: Some(1 << 20),
        ..convert_opts(&out, "dcp")
    };
    assert_eq!(
        convert::convert_file(&input, &o).error.map(|e| e.0),
        Some(ErrorCode::InvalidArgument)
    );
}

#[test]
fn scan_passes_real_dcp_folders_and_flags_the_hostile_metadata() {
    use torchsave_core::scan::{discover::discover, scan_file, Verdict};
    let dangerous = |case: &str| -> Vec<String> {
        let dir = fixtures().join(case);
        let files = discover(&[dir.display().to_string()]).unwrap();
        assert!(
            files.iter().any(|f| f.ends_with(".metadata")),
            "{case}: the walk skipped .metadata"
        );
        files
            .iter()
            .flat_map(|f| scan_file(f).findings)
            .filter(|f| f.verdict == Some(Verdict::Dangerous))
            .map(|f| f.name)
            .collect()
    };
    for case in ["nested", "model", "sharded"] {
        assert_eq!(dangerous(case), Vec::<String>::new(), "{case}");
    }
    assert!(dangerous("evil").iter().any(|n| n == "os.system"));
}

/// Every file under `dir` (name -> bytes).
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
fn three_machines_converting_one_sharded_dcp_write_one_full_runs_bytes() {
    let input = fixtures().join("sharded");
    let spec = vec![input.display().to_string()];
    let d = scratch("dcp-output-share");
    let run = |out: &Path, share: Option<(usize, usize)>| {
        let mut o = ConvertOptions {
            to: Target::Safetensors,
            shard_size: Some(16),
            dtype: Some(DType::BFloat16),
            out_dir: Some(out.to_path_buf()),
            ..ConvertOptions::default()
        };
        let files = convert::discover_share_with_outputs(
            &spec,
            share.map(|s| s.0),
            share.map(|s| s.1),
            &mut o,
        )
        .unwrap();
        assert_eq!(files.len(), 1, "the DCP folder is one input");
        let r = convert::convert_file(&files[0], &o);
        assert_eq!(r.error, None);
        r.outputs.len()
    };
    let full = d.join("full");
    let n = run(&full, None);
    assert!(n > 3, "several shards and the index ({n} outputs)");
    let parts = d.join("parts");
    let written: usize = (0..3).map(|i| run(&parts, Some((i, 3)))).sum();
    assert_eq!(written, n, "each output written by exactly one machine");
    assert_eq!(folder_bytes(&parts), folder_bytes(&full));
}
