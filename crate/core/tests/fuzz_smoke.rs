//! The cargo-fuzz targets (crate/core/fuzz/fuzz_targets/*) on stable: the same bodies (one
//! module, `tests/fuzz_bodies`, compiled into both), run over every committed fixture plus
//! deterministic mutations of them (bit flips, byte overwrites with boundary values,
//! truncations, chunk duplications, splices of two files).
//!
//! This is not a fuzzer (no coverage feedback), but it runs in every `cargo test` and catches
//! the shallow panics a fuzzer would find first. A panic is reported with the target, the
//! seed file and the mutation, and the input is written to a temporary file so that it can
//! be replayed with `cargo +nightly fuzz run <target> <file>`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod fuzz_bodies;

use fuzz_bodies::TARGETS;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use torchsave_core::{load_bytes, safetensors, ByteView, LoadOptions};

/// Mutated inputs per seed file (plus the file itself).
const MUTATIONS_PER_FILE: usize = 48;
/// Splices between two seed files.
const SPLICES: usize = 200;

// ----- corpus and mutations ----------------------------------------------------------------

/// xorshift64*: deterministic and dependency-free; quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A position in `0..len`, biased to the first and last 256 bytes, where the headers,
    /// pickle opcodes and zip directories live.
    fn pos(&mut self, len: usize) -> usize {
        match self.below(4) {
            0 => self.below(len.min(256)),
            1 => len - 1 - self.below(len.min(256)),
            _ => self.below(len),
        }
    }
}

const INTERESTING_BYTES: [u8; 4] = [0x00, 0xff, 0x7f, 0x80];
/// Little-endian boundary values for 2/4/8-byte length and offset fields.
const INTERESTING_WORDS: [u64; 6] = [
    0,
    0xffff_ffff_ffff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
];

/// Applies one mutation and returns its description.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    if data.is_empty() {
        data.push(INTERESTING_BYTES[rng.below(4)]);
        return "grow empty".into();
    }
    match rng.below(6) {
        0 => {
            let flips = 1 + rng.below(4);
            let mut at = Vec::new();
            for _ in 0..flips {
                let p = rng.pos(data.len());
                data[p] ^= 1 << rng.below(8);
                at.push(p);
            }
            format!("bit flips at {at:?}")
        }
        1 => {
            let p = rng.pos(data.len());
            let v = INTERESTING_BYTES[rng.below(4)];
            data[p] = v;
            format!("byte {p} = {v:#04x}")
        }
        2 => {
            let width = [2usize, 4, 8][rng.below(3)];
            let p = rng.pos(data.len());
            let v = INTERESTING_WORDS[rng.below(INTERESTING_WORDS.len())];
            let end = (p + width).min(data.len());
            data[p..end].copy_from_slice(&v.to_le_bytes()[..end - p]);
            format!("bytes {p}..{end} = {v:#x} (LE)")
        }
        3 => {
            let n = rng.pos(data.len());
            data.truncate(n);
            format!("truncate to {n}")
        }
        4 => {
            let a = rng.pos(data.len());
            let len = 1 + rng.below((data.len() - a).min(512));
            let chunk = data[a..a + len].to_vec();
            let at = rng.pos(data.len());
            data.splice(at..at, chunk);
            format!("duplicate {a}..{} at {at}", a + len)
        }
        _ => {
            // Several small edits together reach states one edit cannot.
            let mut parts = Vec::new();
            for _ in 0..3 {
                let p = rng.pos(data.len());
                data[p] = rng.next() as u8;
                parts.push(p);
            }
            format!("random bytes at {parts:?}")
        }
    }
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("pt" | "pkl" | "bin" | "safetensors")
        ) {
            out.push(p);
        }
    }
}

/// Every committed binary fixture, plus safetensors files written from the writer fixtures
/// (none are committed; the writer is tested against the Python package elsewhere).
fn corpus() -> Vec<(String, Vec<u8>)> {
    let root = tests_dir();
    let mut paths = Vec::new();
    collect(&root, &mut paths);
    let mut out: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap_or(p).display().to_string();
            (name, std::fs::read(p).expect("fixture"))
        })
        .collect();
    assert!(
        out.len() >= 40,
        "expected the committed fixtures, found {}",
        out.len()
    );
    for name in ["state_dict", "every_dtype", "views"] {
        let path = root.join(format!("writer/fixtures/{name}.pt"));
        let bytes = std::fs::read(&path).expect("writer fixture");
        let opts = LoadOptions {
            weights_only: false,
            mmap: false,
            ..LoadOptions::default()
        };
        let loaded = load_bytes(ByteView::from_vec(bytes), &opts).expect("fixture loads");
        let g = &loaded.graph;
        if let Ok(entries) = safetensors::state_dict_entries(g, g.root()) {
            if let Ok(st) = safetensors::to_bytes(g, &entries, &[]) {
                out.push((format!("{name}.pt -> safetensors"), st));
            }
        }
    }
    assert!(
        out.iter().any(|(n, _)| n.ends_with("safetensors")),
        "no safetensors seed could be written"
    );
    out
}

/// The costly bodies get every n-th input here: the converter writes and reads files for
/// every input (three conversions), and the writer round trip saves and loads twice (its
/// own test, `writer_roundtrip_random_programs`, feeds it programs rather than fixtures).
const SPARSE: [(&str, usize); 2] = [("convert", 3), ("writer_roundtrip", 4)];

thread_local! {
    /// Inputs run so far and the time each target took, for the closing line.
    static RUNS: std::cell::RefCell<(usize, Vec<std::time::Duration>)> =
        std::cell::RefCell::new((0, vec![std::time::Duration::ZERO; TARGETS.len()]));
}

/// Runs every target on `data`; on a panic, saves the input and fails with where it came from.
fn run_all(data: &[u8], what: &str) {
    let n = RUNS.with(|r| {
        let mut r = r.borrow_mut();
        r.0 += 1;
        r.0
    });
    for (i, (target, body)) in TARGETS.into_iter().enumerate() {
        if SPARSE
            .iter()
            .any(|&(t, every)| t == target && n % every != 1)
        {
            continue;
        }
        let t0 = std::time::Instant::now();
        let failed = catch_unwind(AssertUnwindSafe(|| body(data))).is_err();
        RUNS.with(|r| r.borrow_mut().1[i] += t0.elapsed());
        if failed {
            let file = std::env::temp_dir().join(format!(
                "torchsave-fuzz-crash-{target}-{}.bin",
                std::process::id()
            ));
            let saved = match std::fs::write(&file, data) {
                Ok(()) => format!("input saved to {}", file.display()),
                Err(e) => format!("could not save the input: {e}"),
            };
            panic!(
                "fuzz target '{target}' panicked on {what} ({} bytes); {saved}",
                data.len()
            );
        }
    }
}

#[test]
fn fuzz_bodies_survive_fixtures_and_mutations() {
    let seeds = corpus();
    let started = std::time::Instant::now();
    let mut inputs = 0usize;
    for (i, (name, bytes)) in seeds.iter().enumerate() {
        run_all(bytes, &format!("seed {name}"));
        inputs += 1;
        let mut rng = Rng::new(0x746f_7263_6873_6176 ^ (i as u64 + 1));
        for m in 0..MUTATIONS_PER_FILE {
            let mut data = bytes.clone();
            let mut how = vec![mutate(&mut rng, &mut data)];
            // A third of the inputs stack a second mutation on the first.
            if m % 3 == 2 {
                how.push(mutate(&mut rng, &mut data));
            }
            run_all(
                &data,
                &format!("seed {name}, mutation #{m}: {}", how.join(", ")),
            );
            inputs += 1;
        }
    }
    let mut rng = Rng::new(0x5eed);
    for s in 0..SPLICES {
        let (an, a) = &seeds[rng.below(seeds.len())];
        let (bn, b) = &seeds[rng.below(seeds.len())];
        let cut_a = rng.below(a.len() + 1);
        let cut_b = rng.below(b.len() + 1);
        let mut data = a[..cut_a].to_vec();
        data.extend_from_slice(&b[cut_b..]);
        run_all(
            &data,
            &format!("splice #{s}: {an}[..{cut_a}] + {bn}[{cut_b}..]"),
        );
        inputs += 1;
    }
    let per_target = RUNS.with(|r| {
        let r = r.borrow();
        TARGETS
            .iter()
            .zip(&r.1)
            .map(|((t, _), d)| format!("{t} {d:.1?}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    eprintln!(
        "fuzz_smoke: {} seeds, {inputs} inputs x {} targets (every n-th input: {SPARSE:?}) in {:.1?}: {per_target}",
        seeds.len(),
        TARGETS.len(),
        started.elapsed()
    );
}

/// The mutator itself must be deterministic, or a reported mutation could not be replayed.
#[test]
fn mutations_are_deterministic() {
    let base: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let run = || {
        let mut rng = Rng::new(7);
        let mut out = Vec::new();
        for _ in 0..50 {
            let mut d = base.clone();
            let how = mutate(&mut rng, &mut d);
            out.push((how, d));
        }
        out
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert!(
        a.iter().filter(|(_, d)| d != &base).count() >= 45,
        "mutations left the input alone"
    );
    assert!(
        a.iter().any(|(_, d)| d.len() < base.len()),
        "no truncation in 50 mutations"
    );
    assert!(
        a.iter().any(|(_, d)| d.len() > base.len()),
        "no duplication in 50 mutations"
    );
}

/// Every input under `tests/fuzz_regressions/<target>/` (crashes the fuzzers found, fixed
/// since) through its target's body: they must stay fixed. The folder names are targets.
#[test]
fn fuzz_regressions_stay_fixed() {
    let root = tests_dir().join("fuzz_regressions");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return; // No crash found yet.
    };
    let mut replayed = 0;
    for dir in dirs {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some((_, body)) = TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!("{}: not a fuzz target name", dir.display());
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("regression dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).expect("regression input");
            if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
                panic!("regression {} fails again", f.display());
            }
            replayed += 1;
        }
    }
    eprintln!("fuzz_regressions: {replayed} inputs replayed");
}

/// The writer round trip over pseudo-random programs: the decoder turns any bytes into a
/// graph, so random bytes of random lengths reach every node kind and dtype.
#[test]
fn writer_roundtrip_random_programs() {
    let body = TARGETS
        .iter()
        .find(|(t, _)| *t == "writer_roundtrip")
        .expect("target")
        .1;
    let mut rng = Rng::new(0x7772_6974);
    let mut dtypes = std::collections::HashSet::new();
    let (mut shared, mut sets, mut strided) = (false, false, false);
    for i in 0..1500 {
        let len = rng.below(400);
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let (g, _) = fuzz_bodies::decode_case(&data);
        let mut per_storage = std::collections::HashMap::new();
        for n in &g.nodes {
            match n {
                torchsave_core::value::Node::Tensor(t) => {
                    dtypes.insert(t.dtype);
                    *per_storage.entry(t.storage).or_insert(0) += 1;
                    strided |= !torchsave_core::tensor::is_contiguous(t);
                }
                torchsave_core::value::Node::Set(_) | torchsave_core::value::Node::FrozenSet(_) => {
                    sets = true
                }
                _ => {}
            }
        }
        shared |= per_storage.values().any(|&n| n > 1);
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            let file = std::env::temp_dir().join(format!("torchsave-writer-case-{i}.bin"));
            let _ = std::fs::write(&file, &data);
            panic!(
                "writer_roundtrip failed on program #{i}, saved to {}",
                file.display()
            );
        }
    }
    // The generator must reach what the property is about.
    assert_eq!(
        dtypes.len(),
        torchsave_core::DType::ALL.len(),
        "dtypes reached: {dtypes:?}"
    );
    assert!(
        shared && sets && strided,
        "shared {shared} sets {sets} strided {strided}"
    );
}

/// The venv's Python with torch 2.11 (the oracle); interop tests never skip without it.
fn torch_python() -> PathBuf {
    if let Some(p) = std::env::var_os("TORCHSAVE_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").expect("HOME");
    let p = Path::new(&home).join(".cache/torchsave/venv-torch-2.11.0/bin/python");
    assert!(
        p.exists(),
        "no torch venv: run scripts/python-env.sh or set TORCHSAVE_PYTHON"
    );
    p
}

/// Found by `writer_roundtrip` (tests/fuzz_regressions/writer_roundtrip/bare-storage-twice-
/// identity): a bare storage pickled twice (two BINPERSIDs with one key) read back as two
/// objects. torch.load returns its cached storage for a key, so it is one object there, and
/// must be one node here, in both formats.
#[test]
fn bare_storage_pickled_twice_is_one_object_like_torch() {
    use torchsave_core::value::Node;
    use torchsave_core::{save_to_vec, DType, Graph, SaveFormat, SaveOptions, Storage, Value};
    let mut g = Graph::new();
    g.add_storage(Storage {
        key: "0".into(),
        dtype: DType::Float32,
        untyped: false,
        numel: 4,
        location: "cpu".into(),
        data: ByteView::from_vec((0u8..16).collect()),
    });
    let s = g.add(Node::Storage(0));
    let root = g.add(Node::Dict(vec![
        (Value::Str("a".into()), s.clone()),
        (Value::Str("b".into()), s),
    ]));
    g.root = Some(root);
    let dir = std::env::temp_dir().join(format!("torchsave-bare-storage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for format in [SaveFormat::Zip, SaveFormat::Legacy] {
        let bytes = save_to_vec(
            &g,
            &SaveOptions {
                format,
                ..SaveOptions::default()
            },
        )
        .unwrap();
        let file = dir.join(format!("{format:?}.pt"));
        std::fs::write(&file, &bytes).unwrap();
        let out = std::process::Command::new(torch_python())
            .arg("-c")
            .arg("import sys, warnings, torch; warnings.simplefilter('ignore'); d = torch.load(sys.argv[1], weights_only=False); print(type(d['a']).__name__, d['a'] is d['b'])")
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "TypedStorage True",
            "{format:?}: torch says; stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = LoadOptions {
            weights_only: false,
            mmap: false,
            ..LoadOptions::default()
        };
        let l = load_bytes(ByteView::from_vec(bytes), &opts).unwrap();
        let Some(Node::Dict(items)) = l.graph.deref(l.graph.root()) else {
            panic!("{format:?}: root is not a dict");
        };
        assert!(
            matches!(l.graph.deref(&items[0].1), Some(Node::Storage(_))),
            "{format:?}: {:?}",
            items[0].1
        );
        assert_eq!(
            items[0].1, items[1].1,
            "{format:?}: one object, as in torch"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
