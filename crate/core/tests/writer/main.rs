//! Writer tests against real PyTorch.
//!
//! * byte identity: `make_fixtures.py` saved objects with torch 2.11 and wrote a recipe of
//!   each; we build the same graph, save it, and compare whole archives byte for byte except
//!   the `.data/serialization_id` digits and their CRC (libtorch-only values);
//! * torch loads what we write (`check_load.py`, skipped when the venv is missing);
//! * `unzip -t` / `python -m zipfile -t` accept our archives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod recipe;

use std::path::{Path, PathBuf};
use torchsave_core::writer::{save_to_path, save_to_vec};
use torchsave_core::{ErrorCode, SaveFormat, SaveOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/writer/fixtures")
}

fn venv_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TORCHSAVE_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = Path::new(&home).join(".cache/torchsave/venv-torch-2.11.0/bin/python");
    p.exists().then_some(p)
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Byte ranges of `.data/serialization_id`'s data, descriptor CRC and central CRC.
fn serialization_id_ranges(zip: &[u8]) -> Vec<std::ops::Range<usize>> {
    let eocd = zip.len() - 22;
    let cd_size = u32_at(zip, eocd + 12) as usize;
    let cd_off = u32_at(zip, eocd + 16) as usize;
    let mut p = cd_off;
    let mut out = Vec::new();
    while p < cd_off + cd_size {
        let (nl, el, cl) = (
            u16_at(zip, p + 28),
            u16_at(zip, p + 30),
            u16_at(zip, p + 32),
        );
        let name = &zip[p + 46..p + 46 + nl];
        if name.ends_with(b"/.data/serialization_id") {
            let h = u32_at(zip, p + 42) as usize;
            let data = h + 30 + u16_at(zip, h + 26) + u16_at(zip, h + 28);
            out.push(data..data + 40);
            out.push(data + 44..data + 48);
            out.push(p + 16..p + 20);
        }
        p += 46 + nl + el + cl;
    }
    out
}

fn masked(mut b: Vec<u8>, ranges: &[std::ops::Range<usize>]) -> Vec<u8> {
    for r in ranges {
        for x in &mut b[r.clone()] {
            *x = 0;
        }
    }
    b
}

/// Index of the first differing byte, with context, for a readable failure.
fn first_diff(a: &[u8], b: &[u8]) -> Option<String> {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or(if a.len() != b.len() {
            Some(a.len().min(b.len()))
        } else {
            None
        })?;
    let lo = i.saturating_sub(24);
    Some(format!(
        "first difference at byte {i} (ours {} bytes, torch {} bytes)\n ours: {:02x?}\ntorch: {:02x?}",
        a.len(),
        b.len(),
        &a[lo..(i + 24).min(a.len())],
        &b[lo..(i + 24).min(b.len())]
    ))
}

fn check_identical(case: &str) {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join(format!("{case}.recipe"))).unwrap();
    let graph = recipe::parse(&text);
    let ours = save_to_vec(&graph, &SaveOptions::default()).unwrap();
    let torch = std::fs::read(dir.join(format!("{case}.pt"))).unwrap();
    let ranges = serialization_id_ranges(&torch);
    assert_eq!(ranges.len(), 3, "torch archive has a serialization id");
    assert_eq!(
        serialization_id_ranges(&ours),
        ranges,
        "{case}: serialization id at the same place"
    );
    let (a, b) = (masked(ours, &ranges), masked(torch, &ranges));
    if let Some(d) = first_diff(&a, &b) {
        panic!("{case}: archive differs from torch.save's: {d}");
    }
}

#[test]
fn identical_state_dict() {
    check_identical("state_dict");
}
#[test]
fn identical_sgd_state() {
    check_identical("sgd_state");
}
#[test]
fn identical_adam_state() {
    check_identical("adam_state");
}
#[test]
fn identical_checkpoint() {
    check_identical("checkpoint");
}
#[test]
fn identical_every_dtype() {
    check_identical("every_dtype");
}
#[test]
fn identical_views() {
    check_identical("views");
}
#[test]
fn identical_misc() {
    check_identical("misc");
}
#[test]
fn identical_numpy() {
    check_identical("numpy");
}
#[test]
fn identical_module() {
    check_identical("module");
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("torchsave-writer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut std::process::Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("could not run: {e}")),
    }
}

/// torch.load(weights_only=...) of our files gives the same descriptions as of torch's
/// (one Python process per call: importing torch is slow).
fn check_torch_loads(cases: &[&str], opts: &SaveOptions, weights_only: bool) {
    let Some(py) = venv_python() else {
        panic!("no torch venv: run scripts/python-env.sh or set TORCHSAVE_PYTHON (interop tests never skip)");
    };
    let dir = scratch(&format!(
        "load-{:?}-{}-{}",
        opts.format, opts.compact, weights_only
    ));
    let mut files = Vec::new();
    for case in cases {
        let graph = recipe::parse(
            &std::fs::read_to_string(fixtures().join(format!("{case}.recipe"))).unwrap(),
        );
        let ours = dir.join(format!("{case}.pt"));
        save_to_path(&graph, &ours, opts).unwrap();
        files.push(ours);
    }
    files.extend(cases.iter().map(|c| fixtures().join(format!("{c}.pt"))));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/writer/check_load.py");
    let wo = if weights_only { "1" } else { "0" };
    let mode = if opts.compact { "compact" } else { "exact" };
    let (ok, out) = run(std::process::Command::new(&py)
        .arg(&script)
        .arg(wo)
        .arg(mode)
        .args(&files));
    assert!(ok, "torch.load failed:\n{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 2 * cases.len(), "{out}");
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(
            lines[i],
            lines[i + cases.len()],
            "{case}: torch sees different values in our file"
        );
    }
}

#[test]
fn torch_loads_zip_weights_only() {
    let cases = [
        "state_dict",
        "sgd_state",
        "adam_state",
        "checkpoint",
        "every_dtype",
        "views",
    ];
    check_torch_loads(&cases, &SaveOptions::default(), true);
}

#[test]
fn torch_loads_compact_views() {
    check_torch_loads(
        &["views", "every_dtype"],
        &SaveOptions {
            compact: true,
            ..SaveOptions::default()
        },
        true,
    );
}

#[test]
fn torch_loads_legacy() {
    let opts = SaveOptions {
        format: SaveFormat::Legacy,
        ..SaveOptions::default()
    };
    check_torch_loads(&["state_dict", "checkpoint", "views"], &opts, true);
    check_torch_loads(&["misc", "module"], &opts, false);
}

#[test]
fn legacy_rejects_new_dtypes() {
    // torch itself cannot load legacy files holding uint16/float8/... (UntypedStorage ids).
    let graph =
        recipe::parse(&std::fs::read_to_string(fixtures().join("every_dtype.recipe")).unwrap());
    let opts = SaveOptions {
        format: SaveFormat::Legacy,
        ..SaveOptions::default()
    };
    assert_eq!(
        save_to_vec(&graph, &opts).unwrap_err().code,
        ErrorCode::Unserializable
    );
}

#[test]
fn torch_loads_full_objects() {
    check_torch_loads(&["misc", "numpy", "module"], &SaveOptions::default(), false);
}

#[test]
fn zip_tools_accept_our_archives() {
    let dir = scratch("ziptools");
    let text = std::fs::read_to_string(fixtures().join("every_dtype.recipe")).unwrap();
    let graph = recipe::parse(&text);
    let f = dir.join("every_dtype.pt");
    save_to_path(&graph, &f, &SaveOptions::default()).unwrap();
    let py = venv_python().expect("no torch venv: run scripts/python-env.sh");
    let (ok, out) = run(std::process::Command::new(py)
        .args(["-m", "zipfile", "-t"])
        .arg(&f));
    assert!(ok, "python zipfile: {out}");
    // unzip comes with scripts/python-env.sh (Debian's package) and must be there.
    let (ok, out) = run(std::process::Command::new("unzip").arg("-t").arg(&f));
    assert!(ok && out.contains("No errors detected"), "unzip -t: {out}");
}

#[test]
fn rejects_unsupported_protocol() {
    let graph = recipe::parse("storages 0\ni 1\n");
    for protocol in [0u8, 1, 6, 255] {
        let err = save_to_vec(
            &graph,
            &SaveOptions {
                protocol,
                ..SaveOptions::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
    }
}

#[test]
fn protocol_3_loads_in_torch() {
    let Some(py) = venv_python() else { return };
    let dir = scratch("proto3");
    let graph = recipe::parse(&std::fs::read_to_string(fixtures().join("misc.recipe")).unwrap());
    let f = dir.join("p3.pt");
    save_to_path(
        &graph,
        &f,
        &SaveOptions {
            protocol: 3,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/writer/check_load.py");
    let (ok, out) = run(std::process::Command::new(&py)
        .arg(&script)
        .args(["0", "exact"])
        .arg(&f)
        .arg(fixtures().join("misc.pt")));
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1]);
}

mod errors;

/// Debug helper: `TORCHSAVE_DUMP=case cargo test dump_case -- --ignored` writes ours.
#[test]
#[ignore]
fn dump_case() {
    let case = std::env::var("TORCHSAVE_DUMP").unwrap_or_else(|_| "numpy".into());
    let graph =
        recipe::parse(&std::fs::read_to_string(fixtures().join(format!("{case}.recipe"))).unwrap());
    std::fs::write(
        format!("/tmp/{case}.ours.pt"),
        save_to_vec(&graph, &SaveOptions::default()).unwrap(),
    )
    .unwrap();
}

/// Saving to a path writes the very bytes of the stream writer (which the `identical_*`
/// tests hold to torch.save's), durable or not: for every fixture, and for an archive big
/// enough for the direct-I/O path (a record across 8 MiB blocks, CRCs computed while writing).
/// `{'b': uint8 tensor over all of `big`, 's': int64 tensor [7]}`: a big record, then a small
/// one after it.
fn big_graph(big: Vec<u8>) -> torchsave_core::Graph {
    let n = big.len();
    let text = format!(
        "storages 2\nuint8 0 {n} {} -\nint64 0 1 {} 0700000000000000\n",
        "637075", "637075"
    );
    let mut graph = recipe::parse(
        &(text + "D 0 2 s 62 t 1 0 uint8 1 1 1 0 0 0 0 0 0 s 73 t 2 1 int64 0 0 0 0 0 0 0"),
    );
    graph.storages[0].data = torchsave_core::ByteView::from_vec(big);
    if let Some(torchsave_core::Node::Tensor(t)) = graph.nodes.get_mut(1) {
        t.shape = vec![n as i64];
    }
    graph
}

#[test]
fn path_saves_equal_stream_saves() {
    let dir = scratch("path-eq");
    let mut graphs: Vec<(String, torchsave_core::Graph)> = Vec::new();
    for case in ["state_dict", "checkpoint", "every_dtype", "views"] {
        let text = std::fs::read_to_string(fixtures().join(format!("{case}.recipe"))).unwrap();
        graphs.push((case.to_string(), recipe::parse(&text)));
    }
    let n: usize = (24 << 20) + 12345;
    graphs.push((
        "big".into(),
        big_graph((0..n).map(|i| (i % 251) as u8).collect()),
    ));
    for (name, g) in &graphs {
        let want = save_to_vec(g, &SaveOptions::default()).unwrap();
        for durable in [true, false] {
            let f = dir.join("out.pt");
            let opts = SaveOptions {
                durable,
                ..SaveOptions::default()
            };
            save_to_path(g, &f, &opts).unwrap();
            let got = std::fs::read(&f).unwrap();
            if let Some(d) = first_diff(&got, &want) {
                panic!("{name} (durable {durable}): path save differs from stream save: {d}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// zip64 end to end: a 4.1 GiB tensor plus a small one after it (both zip64 rules), loaded
/// by torch with mmap. Needs ~5 GiB of RAM and disk: `cargo test --release -- --ignored big`.
#[test]
#[ignore]
fn big_zip64_archive_loads_in_torch() {
    let Some(py) = venv_python() else { return };
    let n: usize = 0xFFFF_FFFF + 0x0600_0000;
    let mut big = vec![0u8; n];
    big[0] = 1;
    big[n - 1] = 2;
    let graph = big_graph(big);
    let dir = scratch("big");
    let f = dir.join("big.pt");
    save_to_path(&graph, &f, &SaveOptions::default()).unwrap();
    let code =
        "import sys,torch; d=torch.load(sys.argv[1], mmap=True, weights_only=True); b=d['b']; \
                print(b.numel(), int(b[0]), int(b[-1]), int(d['s']))";
    let (ok, out) = run(std::process::Command::new(py).args(["-c", code]).arg(&f));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("{n} 1 2 7"));
}
