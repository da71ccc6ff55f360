//! Shared helpers for the pickle tests: fixture loading, a storage source over the committed
//! `.bin` blobs, and the canonical rendering `make_pickles.py` documents (Python renders the
//! unpickled object, we render the Graph; equal strings mean equal values, identity included).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::fmt::Write;
use torchsave_core::bytes::ByteView;
use torchsave_core::pickle::{
    unpickle, StorageSource, TorchPersistentLoader, UnpickleOptions, UnpickleOutput,
};
use torchsave_core::value::{Graph, Node, NodeId, Value};
use torchsave_core::{DType, Result};

pub fn dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pickles")
}

pub fn pkl(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.pkl"))).expect("fixture; run make_pickles.py")
}

/// The sidecar: a flat JSON object of strings.
pub fn sidecar(name: &str) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json"))).expect("sidecar");
    parse_flat_json(&text)
}

fn parse_flat_json(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = text.chars().peekable();
    let mut strings = Vec::new();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next().unwrap() {
                    'n' => s.push('\n'),
                    'u' => {
                        let h: String = (0..4).map(|_| chars.next().unwrap()).collect();
                        s.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap());
                    }
                    o => s.push(o),
                },
                c => s.push(c),
            }
        }
        strings.push(s);
    }
    for kv in strings.chunks(2) {
        out.insert(kv[0].clone(), kv[1].clone());
    }
    out
}

/// Serves storages from `<name>.bin` as the sidecar's `storages` lists them.
pub struct BlobSource {
    pub blob: ByteView,
    pub entries: HashMap<String, (usize, usize)>,
    /// When set, answer `Ok(None)` (legacy-style: bytes come later).
    pub defer: bool,
    pub asked: Vec<(String, DType, u64)>,
}

impl BlobSource {
    pub fn new(name: &str) -> Self {
        let blob = std::fs::read(dir().join(format!("{name}.bin"))).unwrap_or_default();
        let mut entries = HashMap::new();
        let side = sidecar(name);
        for e in side
            .get("storages")
            .map(String::as_str)
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let p: Vec<&str> = e.split(':').collect();
            entries.insert(
                p[0].to_string(),
                (p[1].parse().unwrap(), p[2].parse().unwrap()),
            );
        }
        BlobSource {
            blob: ByteView::from_vec(blob),
            entries,
            defer: false,
            asked: Vec::new(),
        }
    }

    pub fn bytes(&self, key: &str) -> ByteView {
        let (off, len) = self.entries[key];
        self.blob.slice(off..off + len).unwrap()
    }
}

impl StorageSource for BlobSource {
    fn storage(&mut self, key: &str, dtype: DType, nbytes: u64) -> Result<Option<ByteView>> {
        self.asked.push((key.to_string(), dtype, nbytes));
        if self.defer {
            return Ok(None);
        }
        Ok(Some(self.bytes(key)))
    }
}

/// Unpickles a torch fixture with its real storage bytes.
pub fn load_torch(name: &str, opts: &UnpickleOptions) -> Result<(Graph, UnpickleOutput)> {
    let data = pkl(name);
    let mut src = BlobSource::new(name);
    let mut loader = TorchPersistentLoader::new(&mut src);
    let mut g = Graph::new();
    let out = unpickle(&data, &mut g, opts, &mut loader)?;
    g.root = Some(out.root.clone());
    Ok((g, out))
}

/// A loader for pickles that must not contain persistent ids.
pub struct NoStorages;
impl StorageSource for NoStorages {
    fn storage(&mut self, key: &str, _: DType, _: u64) -> Result<Option<ByteView>> {
        panic!("unexpected storage {key}")
    }
}

pub fn load_plain(data: &[u8], opts: &UnpickleOptions) -> Result<(Graph, UnpickleOutput)> {
    let mut src = NoStorages;
    let mut loader = TorchPersistentLoader::new(&mut src);
    let mut g = Graph::new();
    let out = unpickle(data, &mut g, opts, &mut loader)?;
    g.root = Some(out.root.clone());
    Ok((g, out))
}

pub fn opts(weights_only: bool) -> UnpickleOptions {
    UnpickleOptions {
        weights_only,
        ..UnpickleOptions::default()
    }
}

pub fn canon(g: &Graph, v: &Value) -> String {
    let mut c = Canon {
        g,
        ids: HashMap::new(),
        out: String::new(),
    };
    c.value(v);
    c.out
}

struct Canon<'g> {
    g: &'g Graph,
    ids: HashMap<NodeId, usize>,
    out: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fl(f: f64) -> String {
    hex(&f.to_be_bytes())
}

fn join(v: &[i64]) -> String {
    v.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Canon<'_> {
    fn list(&mut self, items: &[Value]) {
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.value(v);
        }
    }

    fn pairs(&mut self, items: &[(Value, Value)]) {
        for (i, (k, v)) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.value(k);
            self.out.push(':');
            self.value(v);
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::None => self.out.push('N'),
            Value::Bool(b) => self.out.push(if *b { 'T' } else { 'F' }),
            Value::Int(i) => write!(self.out, "i{i}").unwrap(),
            Value::BigInt(i) => write!(self.out, "i{i}").unwrap(),
            Value::Float(f) => write!(self.out, "f{}", fl(*f)).unwrap(),
            Value::Complex(r, i) => write!(self.out, "c{},{}", fl(*r), fl(*i)).unwrap(),
            Value::Str(s) => write!(self.out, "s{}", hex(s.as_bytes())).unwrap(),
            Value::Bytes(b) => write!(self.out, "b{}", hex(b)).unwrap(),
            Value::Ref(id) => self.node(*id),
        }
    }

    fn node(&mut self, id: NodeId) {
        let g = self.g;
        let node = g.node(id).expect("dangling ref");
        match node {
            Node::Tuple(items) => {
                self.out.push('(');
                self.list(items);
                self.out.push(')');
                return;
            }
            Node::FrozenSet(items) => {
                self.out.push_str("fs{");
                self.list(items);
                self.out.push('}');
                return;
            }
            Node::Size(d) => return write!(self.out, "Size({})", join(d)).unwrap(),
            Node::Device(d) => return write!(self.out, "dev({d})").unwrap(),
            Node::Dtype(d) => return write!(self.out, "dt({})", d.name()).unwrap(),
            Node::Layout(l) => return write!(self.out, "layout({l})").unwrap(),
            Node::Global { module, name } => {
                return write!(self.out, "g({module}.{name})").unwrap()
            }
            Node::Storage(s) => return write!(self.out, "storage({s})").unwrap(),
            Node::NpScalar(s) => {
                return write!(self.out, "ns({};{})", s.descr, hex(&s.data)).unwrap()
            }
            _ => {}
        }
        if let Some(n) = self.ids.get(&id) {
            write!(self.out, "@{n}").unwrap();
            return;
        }
        self.ids.insert(id, self.ids.len());
        match node {
            Node::ByteArray(b) => write!(self.out, "ba{}", hex(b)).unwrap(),
            Node::List(items) => {
                self.out.push('[');
                self.list(items);
                self.out.push(']');
            }
            Node::Dict(p) => {
                self.out.push('{');
                self.pairs(p);
                self.out.push('}');
            }
            Node::OrderedDict { items, state } => {
                self.out.push_str("od{");
                self.pairs(items);
                self.out.push('}');
                if let Some(s) = state {
                    self.out.push_str("|state=");
                    self.value(s);
                }
            }
            Node::Set(items) => {
                self.out.push_str("set{");
                self.list(items);
                self.out.push('}');
            }
            Node::Tensor(t) => {
                let data = if t.device.as_deref() == Some("meta") {
                    "meta".to_string()
                } else {
                    hex(&torchsave_core::tensor::contiguous_bytes(g, t).expect("tensor bytes"))
                };
                write!(
                    self.out,
                    "T({};{};{};{};{};{};{}",
                    t.dtype.name(),
                    join(&t.shape),
                    join(&t.stride),
                    t.storage_offset,
                    t.requires_grad as u8,
                    t.is_parameter as u8,
                    data
                )
                .unwrap();
                if let Some(q) = &t.quantizer {
                    write!(self.out, ";q={},", q.scheme).unwrap();
                    self.list(&q.params);
                }
                if let Some(m) = &t.metadata {
                    self.out.push_str(";m=");
                    self.value(m);
                }
                if let Some(s) = &t.subclass {
                    write!(self.out, ";sub={}.{},", s.module, s.name).unwrap();
                    self.value(&s.state);
                }
                self.out.push(')');
            }
            Node::SparseTensor(s) => {
                write!(self.out, "S({};(", s.layout).unwrap();
                self.list(&s.args);
                self.out.push_str("))");
            }
            Node::NdArray(a) => write!(
                self.out,
                "nd({};{};{};{})",
                a.descr,
                join(&a.shape),
                a.fortran_order as u8,
                hex(&a.data)
            )
            .unwrap(),
            Node::Object(o) => {
                write!(self.out, "obj({}.{};", o.module, o.name).unwrap();
                match &o.state {
                    Some(s) => self.value(s),
                    None => self.out.push('N'),
                }
                self.out.push(')');
            }
            _ => unreachable!(),
        }
    }
}

/// `UnpickleOutput.globals` lists names as written; sidecars list them after Python 2 mapping.
pub fn mapped_globals(out: &UnpickleOutput) -> String {
    out.globals
        .iter()
        .map(|g| {
            let (m, n) = g.rsplit_once('.').unwrap();
            let (m, n) = torchsave_core::pickle::policy::map_py2_name(m, n);
            format!("{m}.{n}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
