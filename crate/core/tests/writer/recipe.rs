//! Parses the recipes `make_fixtures.py` writes (format in its docstring) into a `Graph`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use num_bigint::BigInt;
use std::collections::HashMap;
use torchsave_core::value::{ObjectKind, PyObject, TensorType};
use torchsave_core::{ByteView, DType, Graph, Node, Storage, Tensor, Value};

struct P<'a> {
    toks: std::vec::IntoIter<&'a str>,
    g: Graph,
    ids: HashMap<usize, usize>,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
fn text(s: &str) -> String {
    String::from_utf8(unhex(s)).unwrap()
}
fn fbits(s: &str) -> f64 {
    f64::from_bits(u64::from_str_radix(s, 16).unwrap())
}

impl<'a> P<'a> {
    fn tok(&mut self) -> &'a str {
        self.toks.next().expect("recipe ended early")
    }
    fn num<T: std::str::FromStr>(&mut self) -> T
    where
        T::Err: std::fmt::Debug,
    {
        self.tok().parse().unwrap()
    }
    /// Reserves the node for recipe id `rid` (so children can refer back to it).
    fn reserve(&mut self) -> usize {
        let rid: usize = self.num();
        let nid = self.g.nodes.len();
        self.g.nodes.push(Node::List(Vec::new()));
        self.ids.insert(rid, nid);
        nid
    }
    fn set(&mut self, nid: usize, node: Node) -> Value {
        self.g.nodes[nid] = node;
        Value::Ref(nid)
    }
    fn opt(&mut self) -> Option<Value> {
        match self.tok() {
            "0" => None,
            _ => Some(self.value()),
        }
    }
    fn items(&mut self) -> Vec<Value> {
        let n: usize = self.num();
        (0..n).map(|_| self.value()).collect()
    }
    fn pairs(&mut self) -> Vec<(Value, Value)> {
        let n: usize = self.num();
        (0..n).map(|_| (self.value(), self.value())).collect()
    }
    fn value(&mut self) -> Value {
        match self.tok() {
            "N" => Value::None,
            "T" => Value::Bool(true),
            "F" => Value::Bool(false),
            "i" => {
                let b: BigInt = self.num();
                match i64::try_from(&b) {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::BigInt(b),
                }
            }
            "f" => Value::Float(fbits(self.tok())),
            "c" => Value::Complex(fbits(self.tok()), fbits(self.tok())),
            "s" => Value::Str(text(self.tok())),
            "b" => Value::Bytes(unhex(self.tok())),
            "@" => {
                let rid: usize = self.num();
                Value::Ref(self.ids[&rid])
            }
            "L" => {
                let n = self.reserve();
                let v = self.items();
                self.set(n, Node::List(v))
            }
            "U" => {
                let n = self.reserve();
                let v = self.items();
                self.set(n, Node::Tuple(v))
            }
            "S" => {
                let n = self.reserve();
                let v = self.items();
                self.set(n, Node::Set(v))
            }
            "Z" => {
                let n = self.reserve();
                let v = self.items();
                self.set(n, Node::FrozenSet(v))
            }
            "D" => {
                let n = self.reserve();
                let v = self.pairs();
                self.set(n, Node::Dict(v))
            }
            "O" => {
                let n = self.reserve();
                let items = self.pairs();
                let state = self.opt();
                self.set(n, Node::OrderedDict { items, state })
            }
            "A" => {
                let n = self.reserve();
                let b = unhex(self.tok());
                self.set(n, Node::ByteArray(b))
            }
            "Y" => {
                let n = self.reserve();
                let k: usize = self.num();
                let dims = (0..k).map(|_| self.num()).collect();
                self.set(n, Node::Size(dims))
            }
            "V" => {
                let n = self.reserve();
                let d = text(self.tok());
                self.set(n, Node::Device(d))
            }
            "d" => {
                let n = self.reserve();
                let d = DType::from_name(self.tok()).unwrap();
                self.set(n, Node::Dtype(d))
            }
            "G" => {
                let n = self.reserve();
                let (module, name) = (text(self.tok()), text(self.tok()));
                self.set(n, Node::Global { module, name })
            }
            "t" => {
                let n = self.reserve();
                let storage: usize = self.num();
                let dtype = DType::from_name(self.tok()).unwrap();
                let nd: usize = self.num();
                let shape = (0..nd).map(|_| self.num()).collect();
                let stride = (0..nd).map(|_| self.num()).collect();
                let storage_offset = self.num();
                let requires_grad = self.tok() == "1";
                let is_parameter = self.tok() == "1";
                let metadata = self.opt();
                let parameter_state = self.opt();
                let subclass = match self.tok() {
                    "0" => None,
                    _ => {
                        let (module, name) = (text(self.tok()), text(self.tok()));
                        let state = self.value();
                        Some(TensorType {
                            module,
                            name,
                            state,
                        })
                    }
                };
                let t = Tensor {
                    storage: Some(storage),
                    dtype,
                    shape,
                    stride,
                    storage_offset,
                    requires_grad,
                    is_parameter,
                    parameter_state,
                    quantizer: None,
                    metadata,
                    subclass,
                    device: None,
                };
                self.set(n, Node::Tensor(t))
            }
            "P" => {
                let n = self.reserve();
                let kind = if self.tok() == "n" {
                    ObjectKind::NewObj
                } else {
                    ObjectKind::Reduce
                };
                let (module, name) = (text(self.tok()), text(self.tok()));
                let args = self.value();
                let state = self.opt();
                let list_items = self.items();
                let dict_items = self.pairs();
                let o = PyObject {
                    module,
                    name,
                    kind,
                    args,
                    kwargs: None,
                    state,
                    list_items,
                    dict_items,
                };
                self.set(n, Node::Object(o))
            }
            "Q" => {
                let n = self.reserve();
                let module = text(self.tok());
                let descr = text(self.tok());
                let fortran_order = self.tok() == "1";
                let nd: usize = self.num();
                let shape = (0..nd).map(|_| self.num()).collect();
                let data = unhex(self.tok());
                let a = torchsave_core::value::NdArray {
                    module,
                    descr,
                    shape,
                    fortran_order,
                    data,
                    items: None,
                };
                self.set(n, Node::NdArray(a))
            }
            "q" => {
                let n = self.reserve();
                let module = text(self.tok());
                let descr = text(self.tok());
                let data = unhex(self.tok());
                self.set(
                    n,
                    Node::NpScalar(torchsave_core::value::NpScalar {
                        module,
                        descr,
                        data,
                    }),
                )
            }
            other => panic!("unknown recipe token {other}"),
        }
    }
}

pub fn parse(src: &str) -> Graph {
    let mut lines = src.lines();
    let head = lines.next().unwrap();
    let n: usize = head.strip_prefix("storages ").unwrap().parse().unwrap();
    let mut g = Graph::new();
    for _ in 0..n {
        let f: Vec<&str> = lines.next().unwrap().split(' ').collect();
        g.add_storage(Storage {
            key: "ignored".into(),
            dtype: DType::from_name(f[0]).unwrap(),
            untyped: f[1] == "1",
            numel: f[2].parse().unwrap(),
            location: text(f[3]),
            data: ByteView::from_vec(unhex(f[4])),
        });
    }
    let rest: Vec<&str> = lines.flat_map(|l| l.split_whitespace()).collect();
    let mut p = P {
        toks: rest.into_iter(),
        g,
        ids: HashMap::new(),
    };
    let root = p.value();
    p.g.root = Some(root);
    p.g
}
