//! The cargo-fuzz targets (crate/core/fuzz/fuzz_targets/*) on stable: the same four bodies,
//! run over every committed fixture plus deterministic mutations of them (bit flips, byte
//! overwrites with boundary values, truncations, chunk duplications, splices of two files).
//!
//! This is not a fuzzer (no coverage feedback), but it runs in every `cargo test` and catches
//! the shallow panics a fuzzer would find first. A panic is reported with the target, the
//! seed file and the mutation, and the input is written to a temporary file so that it can
//! be replayed with `cargo +nightly fuzz run <target> <file>`. Keep the bodies in step with
//! the fuzz targets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use torchsave_core::container::zip_read::ZipArchive;
use torchsave_core::pickle::{unpickle, PersistentLoad, UnpickleOptions};
use torchsave_core::value::{Graph, Value};
use torchsave_core::{load_bytes, safetensors, ByteView, Error, Limits, LoadOptions, Result};

/// Mutated inputs per seed file (plus the file itself).
const MUTATIONS_PER_FILE: usize = 48;
/// Splices between two seed files.
const SPLICES: usize = 200;

// ----- the fuzz target bodies --------------------------------------------------------------

fn check_err(e: &Error) {
    // Codes are the contract; every Error has one, and it renders as a stable E_* name.
    assert!(e.code.as_str().starts_with("E_"), "{e}");
}

fn body_load_bytes(data: &[u8]) {
    for weights_only in [true, false] {
        let opts = LoadOptions {
            weights_only,
            mmap: false,
            ..LoadOptions::default()
        };
        if let Err(e) = load_bytes(ByteView::from_vec(data.to_vec()), &opts) {
            check_err(&e);
        }
    }
}

struct Refuse;

impl PersistentLoad for Refuse {
    fn persistent_load(&mut self, _graph: &mut Graph, _pid: Value) -> Result<Value> {
        Err(torchsave_core::err!(MissingRecord, "fuzz: no storages"))
    }
}

fn body_unpickle(data: &[u8]) {
    for weights_only in [true, false] {
        let opts = UnpickleOptions {
            weights_only,
            ..UnpickleOptions::default()
        };
        let mut graph = Graph::new();
        match unpickle(data, &mut graph, &opts, &mut Refuse) {
            Ok(out) => assert!(out.consumed <= data.len()),
            Err(e) => check_err(&e),
        }
    }
}

fn body_safetensors_header(data: &[u8]) {
    match safetensors::read_bytes(ByteView::from_vec(data.to_vec())) {
        Ok(loaded) => {
            let limits = Limits::default();
            if let Err(e) = torchsave_core::tensor::validate_graph(&loaded.graph, &limits) {
                panic!("safetensors read succeeded with an invalid graph: {e}");
            }
        }
        Err(e) => check_err(&e),
    }
}

fn body_zip_archive(data: &[u8]) {
    match ZipArchive::parse(ByteView::from_vec(data.to_vec())) {
        Ok(archive) => {
            for entry in archive.entries() {
                for verify in [false, true] {
                    if let Err(e) = archive.read(entry, verify) {
                        check_err(&e);
                    }
                }
            }
        }
        Err(e) => check_err(&e),
    }
}

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 4] = [
    ("load_bytes", body_load_bytes),
    ("unpickle", body_unpickle),
    ("safetensors_header", body_safetensors_header),
    ("zip_archive", body_zip_archive),
];

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

/// Runs every target on `data`; on a panic, saves the input and fails with where it came from.
fn run_all(data: &[u8], what: &str) {
    for (target, body) in TARGETS {
        if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
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
    eprintln!(
        "fuzz_smoke: {} seeds, {inputs} inputs x {} targets in {:.1?}",
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
