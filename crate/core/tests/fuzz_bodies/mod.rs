//! The fuzz target bodies, one function per target, shared by the cargo-fuzz binaries
//! (`crate/core/fuzz/fuzz_targets/*.rs` include this file with `#[path]`) and by the stable
//! replays in `tests/fuzz_smoke.rs` and `tests/fuzz_regressions.rs`, so the two cannot drift.
//!
//! Each body takes arbitrary bytes and asserts the entry point's contract: nothing panics,
//! every failure is an `Error` whose code renders as a stable `E_*` name, and what succeeds
//! is consistent (validated graphs, tensors readable, outputs that load again). A failed
//! assertion is a panic, which is what libFuzzer reports. To add a target: write
//! `pub fn body_<name>(data: &[u8])` here, add it to [`TARGETS`], add
//! `fuzz_targets/<name>.rs` (three lines, like the others) and its `[[bin]]` in the fuzz
//! crate's Cargo.toml, and give it seeds in `scripts/fuzz.sh` (`seeds_for`).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use num_bigint::BigInt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use torchsave_core::container::zip_read::ZipArchive;
use torchsave_core::container::{legacy, tar_read, torchscript};
use torchsave_core::convert::{convert_file, ConvertOptions, Target};
use torchsave_core::pickle::{unpickle, PersistentLoad, UnpickleOptions};
use torchsave_core::tensor::{contiguous_bytes, validate_graph};
use torchsave_core::value::{Node, NodeId, StorageId, Tensor};
use torchsave_core::{
    load_bytes, load_file, safetensors, save_to_vec, ByteView, DType, Error, ErrorCode, Graph,
    Limits, LoadOptions, SaveFormat, SaveOptions, Storage, Value,
};

pub type Body = fn(&[u8]);

/// Every target, by the name of its fuzz binary.
pub const TARGETS: [(&str, Body); 11] = [
    ("load_bytes", body_load_bytes),
    ("unpickle", body_unpickle),
    ("safetensors_header", body_safetensors_header),
    ("safetensors", body_safetensors),
    ("zip_archive", body_zip_archive),
    ("legacy", body_legacy),
    ("tar", body_tar),
    ("torchscript", body_torchscript),
    ("convert", body_convert),
    ("writer_roundtrip", body_writer_roundtrip),
    ("scan", body_scan),
];

/// The scanner (`torchsave scan`) on arbitrary bytes: never panics, gives a verdict or a
/// coded error, its exit codes are 0/1/2, every pickle run and finding lies inside the
/// input, and its JSON report renders.
pub fn body_scan(data: &[u8]) {
    let r = torchsave_core::scan::scan_bytes(ByteView::from_vec(data.to_vec()));
    if let Some(e) = &r.error {
        check_err(e);
    }
    for strict in [false, true] {
        let code = r.exit_code(strict);
        assert!((0..=2).contains(&code), "exit code {code}");
        let json = r.to_json("fuzz", strict);
        assert_eq!(json["exit_code"].as_i64(), Some(i64::from(code)));
    }
    let len = data.len() as u64;
    // Offsets are inside their record (a deflated record may be longer than the file); the
    // file's own pickles lie inside the input.
    for p in r.pickles.iter().filter(|p| p.record.is_empty()) {
        assert!(p.offset <= len, "pickle at {} of {len} bytes", p.offset);
        if let Some(l) = p.length {
            assert!(p.offset + l <= len, "pickle {}+{l} past {len}", p.offset);
        }
    }
}

pub fn check_err(e: &Error) {
    // Codes are the contract; every Error has one, and it renders as a stable E_* name.
    assert!(e.code.as_str().starts_with("E_"), "{e}");
}

/// Bytes a fuzz body may copy out of one tensor; bigger (broadcast) views are skipped so an
/// expanded 1-element storage cannot make the body itself run out of memory.
const TOUCH_LIMIT: u64 = 1 << 24;

/// What a caller of a successful load does next: every tensor with data can be read as
/// contiguous bytes. A validated graph must never fail that.
pub fn touch_tensors(graph: &Graph) {
    for n in &graph.nodes {
        let Node::Tensor(t) = n else { continue };
        if t.storage.is_none() {
            continue;
        }
        let bytes = t.numel().saturating_mul(t.dtype.element_size() as u64);
        if bytes > TOUCH_LIMIT {
            continue;
        }
        if let Err(e) = contiguous_bytes(graph, t) {
            panic!("a validated tensor cannot be read: {e}");
        }
    }
}

fn load_opts(weights_only: bool) -> LoadOptions {
    LoadOptions {
        weights_only,
        mmap: false,
        ..LoadOptions::default()
    }
}

// ----- readers ---------------------------------------------------------------------------------

/// Any bytes through `load_bytes`, with and without the weights-only policy.
pub fn body_load_bytes(data: &[u8]) {
    for weights_only in [true, false] {
        match load_bytes(ByteView::from_vec(data.to_vec()), &load_opts(weights_only)) {
            Ok(loaded) => touch_tensors(&loaded.graph),
            Err(e) => check_err(&e),
        }
    }
}

struct Refuse;

impl PersistentLoad for Refuse {
    fn persistent_load(
        &mut self,
        _graph: &mut Graph,
        _pid: Value,
    ) -> torchsave_core::Result<Value> {
        Err(torchsave_core::err!(MissingRecord, "fuzz: no storages"))
    }
}

/// The raw pickle VM, outside any container. Persistent ids are answered with an error, so
/// every path that reaches BINPERSID/PERSID must propagate it rather than panic.
pub fn body_unpickle(data: &[u8]) {
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

/// Any bytes as a safetensors file: header JSON, dtypes, shapes and offsets.
pub fn body_safetensors_header(data: &[u8]) {
    match safetensors::read_bytes(ByteView::from_vec(data.to_vec())) {
        Ok(loaded) => {
            if let Err(e) = validate_graph(&loaded.graph, &Limits::default()) {
                panic!("safetensors read succeeded with an invalid graph: {e}");
            }
        }
        Err(e) => check_err(&e),
    }
}

/// A safetensors file read in full: header, every tensor's bytes, aliases restored from the
/// metadata; then written back and read again, which must give the same names and bytes.
pub fn body_safetensors(data: &[u8]) {
    let mut loaded = match safetensors::read_bytes(ByteView::from_vec(data.to_vec())) {
        Ok(l) => l,
        Err(e) => return check_err(&e),
    };
    if let Err(e) = validate_graph(&loaded.graph, &Limits::default()) {
        panic!("safetensors read succeeded with an invalid graph: {e}");
    }
    touch_tensors(&loaded.graph);
    safetensors::restore_aliases(&mut loaded);
    let g = &loaded.graph;
    let entries = match safetensors::state_dict_entries(g, g.root()) {
        Ok(e) => e,
        Err(e) => panic!("a safetensors root is a flat name -> tensor map: {e}"),
    };
    let written = match safetensors::to_bytes(g, &entries, &[]) {
        Ok(b) => b,
        // Aliases restored over tensors that only partly overlap can be refused (as the
        // Python package refuses them); anything else is a coded error too.
        Err(e) => return check_err(&e),
    };
    let again = match safetensors::read_bytes(ByteView::from_vec(written)) {
        Ok(l) => l,
        Err(e) => panic!("the safetensors writer wrote a file its reader refuses: {e}"),
    };
    // Every name written reads back with the same dtype, shape and bytes.
    let g2 = &again.graph;
    let back = safetensors::state_dict_entries(g2, g2.root()).expect("flat map");
    for (name, id) in &back {
        let Some((_, orig)) = entries.iter().find(|(n, _)| n == name) else {
            panic!("'{name}' was written but not asked for");
        };
        let (Some(Node::Tensor(a)), Some(Node::Tensor(b))) = (g.node(*orig), g2.node(*id)) else {
            panic!("'{name}' is not a tensor");
        };
        assert_eq!((a.dtype, &a.shape), (b.dtype, &b.shape), "'{name}'");
        let (x, y) = (contiguous_bytes(g, a), contiguous_bytes(g2, b));
        assert_eq!(
            x.expect("read").as_ref(),
            y.expect("read back").as_ref(),
            "'{name}': bytes"
        );
    }
}

/// Any bytes as a zip archive: parse the central directory, then read (and CRC-check)
/// every entry, stored or deflated.
pub fn body_zip_archive(data: &[u8]) {
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

/// What `detect::load` does after a container's loader: validate, then read the tensors.
fn validated(r: torchsave_core::Result<torchsave_core::Loaded>) {
    match r.and_then(|l| validate_graph(&l.graph, &Limits::default()).map(|()| l)) {
        Ok(l) => touch_tensors(&l.graph),
        Err(e) => check_err(&e),
    }
}

/// The legacy (0.1.10 - 1.5) stream reader on its own, whatever the first bytes say.
pub fn body_legacy(data: &[u8]) {
    for weights_only in [true, false] {
        validated(legacy::load(
            ByteView::from_vec(data.to_vec()),
            &load_opts(weights_only),
        ));
    }
}

/// The tar (before 0.1.10) reader on its own: members, then the checkpoint in them.
pub fn body_tar(data: &[u8]) {
    let bytes = ByteView::from_vec(data.to_vec());
    if let Err(e) = tar_read::members(&bytes) {
        return check_err(&e);
    }
    for weights_only in [true, false] {
        validated(tar_read::load(bytes.clone(), &load_opts(weights_only)));
    }
}

/// The TorchScript reader: a parsed zip through `torchscript::load`, then every view
/// `load_view` offers (module, state dict, jit descriptor).
pub fn body_torchscript(data: &[u8]) {
    let bytes = ByteView::from_vec(data.to_vec());
    match ZipArchive::parse(bytes.clone()) {
        Ok(ar) => {
            for weights_only in [true, false] {
                match torchscript::load(&ar, &load_opts(weights_only), false) {
                    Ok(s) => {
                        let _ = torchscript::parse_classes("fuzz.py", "");
                        for (path, text) in &s.code {
                            let _ = torchscript::parse_classes(path, text);
                        }
                    }
                    Err(e) => check_err(&e),
                }
            }
        }
        Err(e) => check_err(&e),
    }
    for view in [
        torchscript::View::Module,
        torchscript::View::StateDict,
        torchscript::View::Jit,
    ] {
        match torchscript::load_view(bytes.clone(), &load_opts(false), false, view) {
            Ok(l) => touch_tensors(&l.graph),
            Err(e) => check_err(&e),
        }
    }
}

// ----- converter -------------------------------------------------------------------------------

static CONVERT_RUNS: AtomicUsize = AtomicUsize::new(0);

/// A folder of its own for one input, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let base = std::env::var_os("TORCHSAVE_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let n = CONVERT_RUNS.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("torchsave-fuzz-convert-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn output_loads(path: &Path, to: Target) -> torchsave_core::Result<()> {
    match to {
        Target::Safetensors => {
            let l = safetensors::read_file(path, false)?;
            validate_graph(&l.graph, &Limits::default())?;
            touch_tensors(&l.graph);
        }
        // A DCP output is a folder, which load_file reads as such.
        Target::Pt | Target::PtLegacy | Target::Dcp => {
            let l = load_file(path, &load_opts(true))?;
            touch_tensors(&l.graph);
        }
    }
    Ok(())
}

/// Any input file through the converter to every target format (default options, which
/// read weights-only; the input's last byte picks a float cast and `compact` so those paths
/// run too). Each conversion either reports a coded error or writes outputs that load.
pub fn body_convert(data: &[u8]) {
    let tmp = TempDir::new();
    let input = tmp.0.join("input.pt");
    std::fs::write(&input, data).expect("write input");
    let knob = data.last().copied().unwrap_or(0);
    let dtype = match knob % 4 {
        0 => None,
        1 => Some(DType::Float16),
        2 => Some(DType::BFloat16),
        _ => Some(DType::Float32),
    };
    for to in [
        Target::Pt,
        Target::PtLegacy,
        Target::Safetensors,
        Target::Dcp,
    ] {
        let out = tmp.0.join(to.name());
        let opts = ConvertOptions {
            to,
            dtype,
            compact: knob & 4 != 0,
            force: true,
            durable: false,
            out_dir: Some(out.clone()),
            ..ConvertOptions::default()
        };
        let report = convert_file(&input, &opts);
        match &report.error {
            Some((code, msg)) => assert!(code.as_str().starts_with("E_"), "{msg}"),
            None => {
                assert!(!report.outputs.is_empty(), "{to:?}: no error and no output");
                for p in &report.outputs {
                    if let Err(e) = output_loads(p, to) {
                        panic!("{to:?}: output {} does not load: {e}", p.display());
                    }
                }
            }
        }
    }
}

// ----- writer round trip -----------------------------------------------------------------------

/// Reads the fuzz input as a little program; past its end every read is 0, so any input
/// decodes to a finite case.
struct Dec<'a> {
    d: &'a [u8],
    i: usize,
}

impl Dec<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.d.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        self.u8() as usize % n
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0u64, |acc, _| (acc << 8) | self.u8() as u64)
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn done(&self) -> bool {
        self.i >= self.d.len()
    }
}

const SPECIAL_FLOATS: [f64; 8] = [
    f64::NAN,
    -f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -0.0,
    0.0,
    f64::MIN_POSITIVE / 2.0,
    1e308,
];

const CHARS: [char; 12] = [
    'a',
    'Z',
    '_',
    '.',
    '\0',
    '\n',
    '\'',
    '\\',
    'ü',
    '数',
    '🔥',
    '\u{10FFFF}',
];

const MAX_DEPTH: usize = 6;
const MAX_NODES: usize = 160;

struct Builder<'a> {
    dec: Dec<'a>,
    graph: Graph,
    /// Element count each storage must reach, raised as tensors are built.
    extent: Vec<i64>,
    dtypes: Vec<DType>,
    /// The bare-storage node of each storage, once made.
    storage_nodes: Vec<Option<Value>>,
    /// The node of each dtype, once made.
    dtype_nodes: HashMap<DType, Value>,
    compound: Vec<Value>,
}

fn contiguous(shape: &[i64]) -> Vec<i64> {
    let mut s = vec![0i64; shape.len()];
    let mut acc = 1i64;
    for (st, &d) in s.iter_mut().zip(shape).rev() {
        *st = acc;
        acc *= d.max(1);
    }
    s
}

impl Builder<'_> {
    fn add(&mut self, node: Node) -> Value {
        let v = self.graph.add(node);
        self.compound.push(v.clone());
        v
    }

    fn text(&mut self) -> String {
        let n = self.dec.below(10);
        (0..n)
            .map(|_| match self.dec.u8() {
                b @ 0..=127 if b.is_ascii_alphanumeric() => b as char,
                b => CHARS[b as usize % CHARS.len()],
            })
            .collect()
    }

    fn key(&mut self) -> Value {
        if self.dec.below(4) == 0 {
            Value::Int(self.dec.u64() as i64)
        } else {
            Value::Str(self.text())
        }
    }

    fn float(&mut self) -> f64 {
        if self.dec.bool() {
            SPECIAL_FLOATS[self.dec.below(SPECIAL_FLOATS.len())]
        } else {
            f64::from_bits(self.dec.u64())
        }
    }

    fn tensor(&mut self) -> Value {
        let sid = self.dec.below(self.dtypes.len());
        let dtype = self.dtypes[sid];
        let ndim = self.dec.below(4);
        let shape: Vec<i64> = (0..ndim).map(|_| self.dec.below(4) as i64).collect();
        let stride = if self.dec.bool() {
            contiguous(&shape)
        } else {
            // Any strides, 0 included (expanded views), overlapping or not.
            (0..ndim).map(|_| self.dec.below(5) as i64).collect()
        };
        let offset = self.dec.below(5) as i64;
        let flags = self.dec.u8();
        let numel: i64 = shape.iter().product();
        let end = if numel == 0 {
            offset
        } else {
            offset
                + shape
                    .iter()
                    .zip(&stride)
                    .map(|(d, s)| (d - 1) * s)
                    .sum::<i64>()
                + 1
        };
        self.extent[sid] = self.extent[sid].max(end);
        self.add(Node::Tensor(Tensor {
            requires_grad: flags & 1 != 0,
            is_parameter: flags & 2 != 0,
            ..Tensor::strided(sid, dtype, shape, stride, offset)
        }))
    }

    fn value(&mut self, depth: usize) -> Value {
        let leaf_only =
            depth >= MAX_DEPTH || self.graph.nodes.len() >= MAX_NODES || self.dec.done();
        let tag = self.dec.below(22);
        match tag {
            0 => Value::None,
            1 => Value::Bool(self.dec.bool()),
            2 => Value::Int(self.dec.u8() as i8 as i64),
            3 => Value::Int(self.dec.u64() as i64),
            4 => {
                let v = ((self.dec.u64() as i128) << 64) | self.dec.u64() as i128;
                let b = BigInt::from(v) << (32 * self.dec.below(4));
                // The reader gives Int for what fits: so must the graph we compare with.
                match i64::try_from(&b) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(b),
                }
            }
            5 | 6 => Value::Float(self.float()),
            7 => Value::Complex(self.float(), self.float()),
            8 | 9 => Value::Str(self.text()),
            10 => {
                let n = self.dec.below(12);
                Value::Bytes((0..n).map(|_| self.dec.u8()).collect())
            }
            11..=13 => self.tensor(),
            14 => {
                let n = self.dec.u8() as usize;
                if self.compound.is_empty() {
                    Value::None
                } else {
                    self.compound[n % self.compound.len()].clone()
                }
            }
            _ if leaf_only => Value::None,
            15 | 16 => {
                let n = self.dec.below(5);
                let items: Vec<Value> = (0..n).map(|_| self.value(depth + 1)).collect();
                self.add(if tag == 15 {
                    Node::List(items)
                } else {
                    Node::Tuple(items)
                })
            }
            17 | 18 => {
                let n = self.dec.below(5);
                let mut items: Vec<(Value, Value)> = Vec::new();
                for _ in 0..n {
                    let k = self.key();
                    let v = self.value(depth + 1);
                    // Python dicts have unique keys.
                    if !items.iter().any(|(x, _)| *x == k) {
                        items.push((k, v));
                    }
                }
                if tag == 17 {
                    return self.add(Node::Dict(items));
                }
                let state = if self.dec.bool() {
                    // What nn.Module.state_dict() attaches: _metadata = {prefix: {version}}.
                    let version = self.graph.add(Node::Dict(vec![(
                        Value::Str("version".into()),
                        Value::Int(1),
                    )]));
                    let md = self.graph.add(Node::OrderedDict {
                        items: vec![(Value::Str(String::new()), version)],
                        state: None,
                    });
                    Some(
                        self.graph
                            .add(Node::Dict(vec![(Value::Str("_metadata".into()), md)])),
                    )
                } else {
                    None
                };
                self.add(Node::OrderedDict { items, state })
            }
            19 => {
                // Sets of hashable scalars, without duplicates.
                let n = self.dec.below(5);
                let mut items: Vec<Value> = Vec::new();
                for _ in 0..n {
                    let k = self.key();
                    if !items.contains(&k) {
                        items.push(k);
                    }
                }
                let node = if self.dec.bool() {
                    Node::Set(items)
                } else {
                    Node::FrozenSet(items)
                };
                self.add(node)
            }
            20 => {
                let n = self.dec.below(12);
                let b = (0..n).map(|_| self.dec.u8()).collect();
                self.add(Node::ByteArray(b))
            }
            _ => match self.dec.below(4) {
                0 => {
                    let n = self.dec.below(5);
                    let dims = (0..n).map(|_| self.dec.u8() as i64).collect();
                    self.add(Node::Size(dims))
                }
                1 => {
                    let d = ["cpu", "cuda:0", "cuda", "meta"][self.dec.below(4)];
                    self.add(Node::Device(d.to_string()))
                }
                2 => {
                    // One node per dtype: torch dtypes are singletons (pickled as globals), so
                    // two dtype objects cannot keep two identities through torch either.
                    let d = DType::ALL[self.dec.below(DType::ALL.len())];
                    if let Some(v) = self.dtype_nodes.get(&d) {
                        return v.clone();
                    }
                    let v = self.add(Node::Dtype(d));
                    self.dtype_nodes.insert(d, v.clone());
                    v
                }
                _ => {
                    // One node per storage: torch.load gives one object per storage key,
                    // so two storage objects over one storage cannot keep two identities.
                    let sid = self.dec.below(self.dtypes.len());
                    match &self.storage_nodes[sid] {
                        Some(v) => v.clone(),
                        None => {
                            let v = self.add(Node::Storage(sid));
                            self.storage_nodes[sid] = Some(v.clone());
                            v
                        }
                    }
                }
            },
        }
    }
}

fn storage_bytes(dtype: DType, numel: u64, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let n = numel as usize * dtype.element_size();
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if dtype == DType::Bool {
                (x & 1) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

/// The case a fuzz input decodes to: a graph (storages of any dtypes, a value tree over
/// them) and the pickle protocol to save it with.
pub fn decode_case(data: &[u8]) -> (Graph, u8) {
    let mut dec = Dec { d: data, i: 0 };
    let protocol = 2 + dec.below(4) as u8;
    let n = 1 + dec.below(4);
    let mut specs = Vec::new();
    for _ in 0..n {
        let dtype = DType::ALL[dec.below(DType::ALL.len())];
        let location = ["cpu", "cuda:0"][dec.below(2)];
        let slack = dec.below(3) as i64;
        let seed = dec.u64();
        specs.push((dtype, location, slack, seed));
    }
    let mut b = Builder {
        dec,
        graph: Graph::new(),
        extent: vec![0; n],
        dtypes: specs.iter().map(|s| s.0).collect(),
        storage_nodes: vec![None; n],
        dtype_nodes: HashMap::new(),
        compound: Vec::new(),
    };
    let root = b.value(0);
    b.graph.root = Some(root);
    for (i, (dtype, location, slack, seed)) in specs.into_iter().enumerate() {
        let numel = (b.extent[i] + slack) as u64;
        b.graph.storages.push(Storage {
            key: i.to_string(),
            dtype,
            untyped: dtype.storage_class().is_none(),
            numel,
            location: location.into(),
            data: ByteView::from_vec(storage_bytes(dtype, numel, seed)),
        });
    }
    (b.graph, protocol)
}

/// Walks two graphs in step; the node and storage maps must be bijections.
pub struct Cmp<'a> {
    a: &'a Graph,
    b: &'a Graph,
    nodes: HashMap<NodeId, NodeId>,
    nodes_back: HashMap<NodeId, NodeId>,
    storages: HashMap<StorageId, StorageId>,
    storages_back: HashMap<StorageId, StorageId>,
}

fn biject(
    fwd: &mut HashMap<usize, usize>,
    back: &mut HashMap<usize, usize>,
    x: usize,
    y: usize,
    what: &str,
) -> Result<bool, String> {
    match (fwd.get(&x), back.get(&y)) {
        (None, None) => {
            fwd.insert(x, y);
            back.insert(y, x);
            Ok(true)
        }
        (Some(&y2), Some(&x2)) if y2 == y && x2 == x => Ok(false),
        _ => Err(format!(
            "{what} identity differs: saved {x} read back as {y}, but the maps say {:?} / {:?}",
            fwd.get(&x),
            back.get(&y)
        )),
    }
}

impl Cmp<'_> {
    fn value(&mut self, path: &str, x: &Value, y: &Value) -> Result<(), String> {
        let bits = |f: &f64| f.to_bits();
        match (x, y) {
            (Value::Float(p), Value::Float(q)) if bits(p) == bits(q) => Ok(()),
            (Value::Complex(a, b), Value::Complex(c, d))
                if bits(a) == bits(c) && bits(b) == bits(d) =>
            {
                Ok(())
            }
            (Value::Ref(p), Value::Ref(q)) => self.node(path, *p, *q),
            (Value::Float(_) | Value::Complex(..) | Value::Ref(_), _)
            | (_, Value::Float(_) | Value::Complex(..) | Value::Ref(_)) => {
                Err(format!("{path}: {x:?} read back as {y:?}"))
            }
            _ if x == y => Ok(()),
            _ => Err(format!("{path}: {x:?} read back as {y:?}")),
        }
    }

    fn items(&mut self, path: &str, x: &[Value], y: &[Value]) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!(
                "{path}: {} items read back as {}",
                x.len(),
                y.len()
            ));
        }
        for (i, (p, q)) in x.iter().zip(y).enumerate() {
            self.value(&format!("{path}[{i}]"), p, q)?;
        }
        Ok(())
    }

    fn pairs(
        &mut self,
        path: &str,
        x: &[(Value, Value)],
        y: &[(Value, Value)],
    ) -> Result<(), String> {
        if x.len() != y.len() {
            return Err(format!(
                "{path}: {} entries read back as {}",
                x.len(),
                y.len()
            ));
        }
        for (i, ((k1, v1), (k2, v2))) in x.iter().zip(y).enumerate() {
            self.value(&format!("{path}.key#{i}"), k1, k2)?;
            self.value(&format!("{path}[{k1:?}]"), v1, v2)?;
        }
        Ok(())
    }

    fn node(&mut self, path: &str, p: NodeId, q: NodeId) -> Result<(), String> {
        let (x, y) = (&self.a.nodes[p], &self.b.nodes[q]);
        // CPython does not memoize the empty tuple (it is a singleton), so two references
        // to one empty tuple read back as two: identity is not observable there.
        let empty_tuple = matches!(x, Node::Tuple(v) if v.is_empty());
        if !empty_tuple
            && !biject(&mut self.nodes, &mut self.nodes_back, p, q, "node")
                .map_err(|e| format!("{path}: {e}"))?
        {
            return Ok(());
        }
        match (x, y) {
            (Node::List(u), Node::List(v))
            | (Node::Tuple(u), Node::Tuple(v))
            | (Node::Set(u), Node::Set(v))
            | (Node::FrozenSet(u), Node::FrozenSet(v)) => self.items(path, u, v),
            (Node::Dict(u), Node::Dict(v)) => self.pairs(path, u, v),
            (
                Node::OrderedDict { items: u, state: s },
                Node::OrderedDict { items: v, state: t },
            ) => {
                self.pairs(path, u, v)?;
                match (s, t) {
                    (None, None) => Ok(()),
                    (Some(s), Some(t)) => self.value(&format!("{path}.__dict__"), s, t),
                    _ => Err(format!(
                        "{path}: OrderedDict state {s:?} read back as {t:?}"
                    )),
                }
            }
            (Node::Tensor(u), Node::Tensor(v)) => self.tensor(path, u, v),
            (Node::Storage(s), Node::Storage(t)) => self.storage(path, *s, *t),
            (
                Node::ByteArray(_) | Node::Size(_) | Node::Device(_) | Node::Dtype(_),
                Node::ByteArray(_) | Node::Size(_) | Node::Device(_) | Node::Dtype(_),
            ) if x == y => Ok(()),
            _ => Err(format!("{path}: {x:?} read back as {y:?}")),
        }
    }

    fn storage(&mut self, path: &str, su: StorageId, sv: StorageId) -> Result<(), String> {
        if biject(
            &mut self.storages,
            &mut self.storages_back,
            su,
            sv,
            "storage",
        )
        .map_err(|e| format!("{path}: {e}"))?
        {
            let (x, y) = (&self.a.storages[su], &self.b.storages[sv]);
            // Untyped storages are pickled as `UntypedStorage` of bytes, and read back so
            // (FORMAT.md 3.1): the dtype lives on the tensors that view them.
            let facts = |s: &Storage| {
                let dtype = if s.untyped { DType::UInt8 } else { s.dtype };
                (dtype, s.nbytes(), s.untyped, s.location.clone())
            };
            if facts(x) != facts(y) {
                return Err(format!(
                    "{path}: storage (dtype, nbytes, untyped, location) {:?} read back as {:?}",
                    facts(x),
                    facts(y)
                ));
            }
            if x.data.as_slice() != y.data.as_slice() {
                return Err(format!("{path}: storage bytes differ"));
            }
        }
        Ok(())
    }

    fn tensor(&mut self, path: &str, u: &Tensor, v: &Tensor) -> Result<(), String> {
        let meta = |t: &Tensor| {
            (
                t.dtype,
                t.shape.clone(),
                t.stride.clone(),
                t.storage_offset,
                t.requires_grad,
                t.is_parameter,
            )
        };
        if meta(u) != meta(v) {
            return Err(format!(
                "{path}: tensor (dtype, shape, stride, offset, requires_grad, parameter) {:?} read back as {:?}",
                meta(u),
                meta(v)
            ));
        }
        let (Some(su), Some(sv)) = (u.storage, v.storage) else {
            return Err(format!(
                "{path}: storage {:?} read back as {:?}",
                u.storage, v.storage
            ));
        };
        self.storage(path, su, sv)?;
        let cu = contiguous_bytes(self.a, u).map_err(|e| format!("{path}: saved view: {e}"))?;
        let cv = contiguous_bytes(self.b, v).map_err(|e| format!("{path}: loaded view: {e}"))?;
        if cu != cv {
            return Err(format!("{path}: contiguous bytes differ"));
        }
        Ok(())
    }
}

/// Structural equality of a saved graph and what was read back: container kinds, key order,
/// scalars (floats by bits), tensor metadata and bytes, and the identity pattern of nodes and
/// storages (a bijection between the two graphs).
pub fn compare(a: &Graph, b: &Graph) -> Result<(), String> {
    let mut c = Cmp {
        a,
        b,
        nodes: HashMap::new(),
        nodes_back: HashMap::new(),
        storages: HashMap::new(),
        storages_back: HashMap::new(),
    };
    c.value("root", a.root(), b.root())?;
    // Storages nothing reaches are not written (torch only saves what it pickles).
    let reached = c.storages.len();
    if b.storages.len() != reached {
        return Err(format!(
            "{} storages read back, {reached} reachable from the saved graph",
            b.storages.len()
        ));
    }
    Ok(())
}

/// A reachable storage or tensor whose dtype has no legacy storage class: torch cannot load
/// such a legacy file, so the legacy writer refuses the graph (`E_UNSERIALIZABLE`).
fn needs_untyped(graph: &Graph) -> bool {
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack: Vec<NodeId> = match graph.root() {
        Value::Ref(id) => vec![*id],
        _ => Vec::new(),
    };
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id], true) {
            continue;
        }
        let node = &graph.nodes[id];
        match node {
            Node::Tensor(t) if t.dtype.storage_class().is_none() => return true,
            Node::Storage(s) if graph.storages[*s].dtype.storage_class().is_none() => return true,
            _ => {}
        }
        node.for_each_child(&mut |v| {
            if let Value::Ref(c) = v {
                stack.push(*c);
            }
        });
    }
    false
}

fn roundtrip(graph: &Graph, format: SaveFormat, protocol: u8) -> Result<(), String> {
    let opts = SaveOptions {
        format,
        protocol,
        ..SaveOptions::default()
    };
    let bytes =
        save_to_vec(graph, &opts).map_err(|e| format!("{format:?} p{protocol} save: {e}"))?;
    let loaded = load_bytes(ByteView::from_vec(bytes), &load_opts(false))
        .map_err(|e| format!("{format:?} p{protocol} load: {e}"))?;
    compare(graph, &loaded.graph).map_err(|e| format!("{format:?} p{protocol}: {e}"))
}

/// An arbitrary value tree (tensors of every dtype on shared storages, strided and
/// overlapping views, dicts, OrderedDicts with `_metadata`, lists, tuples, sets, strings,
/// ints, bigints, floats by bit pattern, complex, bytes, bytearrays, sizes, devices, dtypes,
/// bare storages, shared references) saved by the writer in both formats, with the input's
/// protocol, and loaded again: it must equal itself. The legacy format refuses dtypes
/// without a legacy storage class, with `E_UNSERIALIZABLE`, and nothing else.
pub fn body_writer_roundtrip(data: &[u8]) {
    let (graph, protocol) = decode_case(data);
    if let Err(e) = validate_graph(&graph, &Limits::default()) {
        panic!("the decoder built an invalid graph: {e}");
    }
    if let Err(e) = roundtrip(&graph, SaveFormat::Zip, protocol) {
        panic!("{e}");
    }
    if needs_untyped(&graph) {
        let opts = SaveOptions {
            format: SaveFormat::Legacy,
            protocol,
            ..SaveOptions::default()
        };
        match save_to_vec(&graph, &opts) {
            Err(e) if e.code == ErrorCode::Unserializable => {}
            other => panic!(
                "legacy save of a dtype without a storage class: {:?}",
                other.map(|v| v.len())
            ),
        }
    } else if let Err(e) = roundtrip(&graph, SaveFormat::Legacy, protocol) {
        panic!("{e}");
    }
}
