//! TorchScript archives (`torch.jit.save` / `torch.jit.trace(...).save`), read as data: the
//! module's attributes, parameters and buffers, never its code.
//!
//! Layout (torch 1.4+, `torch/csrc/jit/serialization/export_module.cpp`; what torch 2.11
//! writes and reads), under the zip's top folder:
//! * `data.pkl`: the module object. Each module or class instance is
//!   `GLOBAL '__torch__.<qualname>'`, `NEWOBJ ()`, `BUILD {attribute: value, ...}` with the
//!   attributes in the class type's order; tensors are torch.save's `_rebuild_tensor_v2` over
//!   `('storage', <type>, key, location, numel)` ids whose bytes are `data/<key>`; typed lists
//!   and dicts go through `torch.jit._pickle` helpers (`build_intlist([...])`,
//!   `restore_type_tag({...}, 'Dict[str, float]')`), which we resolve to the list or dict;
//! * `constants.pkl`: a tuple of the tensors and values the code names `CONSTANTS.c<i>`,
//!   storages in `constants/<key>`;
//! * `code/<qualname path>.py`: the TorchScript source of every class, whose header says what
//!   torch needs to classify attributes: `class Linear(Module):`, `__parameters__ = [...]`,
//!   `__buffers__ = [...]` (the `.debug_pkl` twins are source ranges, ignored);
//! * `extra/<name>`: `_extra_files`, bytes as written; `version` or `.data/version`,
//!   `byteorder`; `traced_inputs.pkl` and `.data/serialization_id` are not read.
//!
//! The pre-1.4 layout (`model.json`, `attributes.pkl`, `tensors/`) is refused with
//! `E_UNSUPPORTED_VERSION`: torch 2.11 cannot read it either.
//!
//! Nothing runs: `__torch__.*` classes are inert [`crate::value::PyObject`]s. The pickles are
//! judged by [`Policy::for_torchscript`]: torch's table plus the globals TorchScript's own
//! unpickler resolves, so a `data.pkl` naming `os.system` is refused under `weights_only`
//! and inert without it.
//!
//! Parameters and buffers are classified as torch does, from the class type (the code
//! header's `__parameters__` / `__buffers__`); submodules are the attributes whose class is a
//! `Module`. [`ScriptModuleInfo::state_dict`] then follows `nn.Module.state_dict` on a
//! `RecursiveScriptModule`: each module's parameters, then its buffers, then its submodules
//! with a `name.` prefix, in attribute order, `None` values skipped.
//!
//! Three views of one load ([`View`]): the module object as the graph root (`torch.load`,
//! `inspect`), the state dict (`convert`), and the descriptor the `jit` binding hands to TS.

use super::zip_read::{self, in_byte_order, ZipArchive};
use super::{source, torch_pickle, LoadInfo, Loaded};
use crate::bytes::ByteView;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::LoadOptions;
use crate::pickle::{self, policy::Policy, StorageSource};
use crate::value::{Format, Graph, Node, NodeId, Value};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// True when a parsed zip is a TorchScript archive (either layout), not a torch.package.
pub fn is_torchscript(ar: &ZipArchive) -> bool {
    !zip_read::is_torch_package(ar)
        && (ar.find("constants.pkl").is_some()
            || (ar.find("model.json").is_some() && ar.find("data.pkl").is_none()))
}

/// True when `bytes` are a zip whose directory says TorchScript (convert's sniffing).
pub fn sniff(bytes: &ByteView) -> bool {
    bytes.as_slice().starts_with(b"PK\x03\x04")
        && ZipArchive::parse(bytes.clone()).is_ok_and(|ar| is_torchscript(&ar))
}

/// What the graph root of a loaded TorchScript archive is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The module object (`__torch__.<qualname>` with its attributes as state).
    Module,
    /// An `OrderedDict` equal to `torch.jit.load(p).state_dict()`.
    StateDict,
    /// The descriptor `torch.jit.load` in TS is built from (see [`ScriptArchive::descriptor`]).
    Jit,
}

/// One class of the archive's `code/`, as its header declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassDecl {
    /// `__torch__.torch.nn.modules.linear.Linear`.
    pub qualname: String,
    /// `class X(Module):` (else a TorchScript class or interface).
    pub is_module: bool,
    pub parameters: Vec<String>,
    pub buffers: Vec<String>,
    /// The source of `def forward`, as written in `code/` (for display).
    pub forward: Option<String>,
}

/// One module of the tree, classified the way torch's class type classifies it.
#[derive(Clone, Debug)]
pub struct ScriptModuleInfo {
    pub qualname: String,
    /// The module object in the graph.
    pub object: Value,
    pub training: Option<bool>,
    pub parameters: Vec<(String, Value)>,
    pub buffers: Vec<(String, Value)>,
    pub children: Vec<(String, ScriptModuleInfo)>,
    /// Every other attribute (`training` included), in the class's order.
    pub attributes: Vec<(String, Value)>,
    pub forward: Option<String>,
}

impl ScriptModuleInfo {
    /// `module.state_dict()`: parameters, buffers, then submodules, `None` values skipped.
    pub fn state_dict(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.state_dict_into("", &mut out);
        out
    }

    fn state_dict_into(&self, prefix: &str, out: &mut Vec<(String, Value)>) {
        for (name, v) in self.parameters.iter().chain(&self.buffers) {
            if *v != Value::None {
                out.push((format!("{prefix}{name}"), v.clone()));
            }
        }
        for (name, child) in &self.children {
            child.state_dict_into(&format!("{prefix}{name}."), out);
        }
    }
}

/// A loaded TorchScript archive.
#[derive(Clone, Debug)]
pub struct ScriptArchive {
    /// The graph; its root is the module object.
    pub graph: Graph,
    pub info: LoadInfo,
    pub module: ScriptModuleInfo,
    /// `constants.pkl`'s tuple.
    pub constants: Value,
    /// `code/` sources: path under `code/` → text (`.py` files only).
    pub code: Vec<(String, String)>,
    /// `extra/` files: name → bytes.
    pub extra: Vec<(String, ByteView)>,
    pub classes: Vec<ClassDecl>,
}

/// Storages of one pickle: `data/<key>` for `data.pkl`, `constants/<key>` for `constants.pkl`.
struct ScriptStorages<'a> {
    ar: &'a ZipArchive,
    prefix: &'static str,
    big_endian: bool,
    verify: bool,
    cache: HashMap<String, ByteView>,
}

impl StorageSource for ScriptStorages<'_> {
    fn storage(&mut self, key: &str, dtype: DType, nbytes: u64) -> Result<Option<ByteView>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(Some(v.clone()));
        }
        let rel = format!("{}{key}", self.prefix);
        let full = format!("{}/{rel}", self.ar.folder());
        let (_, entry) = self.ar.storage_entry(&rel, key, dtype, nbytes)?;
        let raw = self
            .ar
            .read(entry, self.verify)
            .map_err(|e| e.in_record(full.clone()))?;
        let data = in_byte_order(raw, dtype, self.big_endian);
        self.cache.insert(key.to_string(), data.clone());
        Ok(Some(data))
    }
}

/// Loads a TorchScript archive already parsed. `mmapped`: the bytes are a file mapping (CRC
/// of storages then unchecked by default, as for torch.save zips). The caller validates.
pub fn load(ar: &ZipArchive, opts: &LoadOptions, mmapped: bool) -> Result<ScriptArchive> {
    let folder = ar.folder().to_string();
    if ar.find("data.pkl").is_none() {
        crate::bail!(
            UnsupportedVersion,
            "this is a TorchScript archive of the pre-1.4 layout ({folder}/model.json, attributes.pkl, tensors/), \
             which torch 2.11's torch.jit.load no longer reads either; re-export it with torch.jit.save from a \
             PyTorch that reads it (1.4 to 1.x)"
        );
    }
    let verify_small = opts.verify_crc != Some(false);
    let verify_storages = opts.verify_crc.unwrap_or(!mmapped);
    let small = |rel: &str| -> Result<Option<ByteView>> {
        match ar.find(rel) {
            None => Ok(None),
            Some(e) => ar
                .read(e, verify_small)
                .map(Some)
                .map_err(|err| err.in_record(e.name.clone())),
        }
    };
    let version_rel = if ar.find(".data/version").is_some() {
        ".data/version"
    } else {
        "version"
    };
    let Some(version) = small(version_rel)? else {
        return Err(crate::err!(
            MissingRecord,
            "the TorchScript archive has no '{folder}/version' record"
        )
        .in_record(format!("{folder}/version")));
    };
    zip_read::parse_version(version.as_slice())
        .map_err(|e| e.in_record(format!("{folder}/{version_rel}")))?;
    let big_endian = match small("byteorder")? {
        None => false,
        Some(v) => match v.as_slice() {
            b"little" => false,
            b"big" => true,
            other => {
                return Err(crate::err!(
                    BadZip,
                    "byteorder record is '{}'; it must be 'little' or 'big'",
                    String::from_utf8_lossy(other).escape_debug()
                )
                .in_record(format!("{folder}/byteorder")))
            }
        },
    };
    let uopts = torch_pickle::unpickle_options(opts);
    let mut graph = Graph::new();
    let run = |graph: &mut Graph, rel: &str, prefix: &'static str| -> Result<_> {
        let Some(pkl) = small(rel)? else {
            return Err(crate::err!(
                MissingRecord,
                "the TorchScript archive has no '{folder}/{rel}'"
            )
            .in_record(format!("{folder}/{rel}")));
        };
        let mut src = ScriptStorages {
            ar,
            prefix,
            big_endian,
            verify: verify_storages,
            cache: HashMap::new(),
        };
        let mut loader = torch_pickle::torch_loader(&mut src);
        let policy = Policy::for_torchscript(opts.weights_only, &opts.safe_globals);
        pickle::unpickle_with_policy(pkl.as_slice(), graph, &uopts, &mut loader, policy)
            .map_err(|e| e.in_record(format!("{folder}/{rel}")))
    };
    let consts = run(&mut graph, "constants.pkl", "constants/")?;
    // Constants' storages have keys of their own ('0', '1', ...), which data.pkl reuses for
    // other records: name them by record so the two sets stay apart.
    for st in &mut graph.storages {
        st.key = format!("constants/{}", st.key);
    }
    let out = run(&mut graph, "data.pkl", "data/")?;
    resolve_helpers(&mut graph)?;

    let mut code = Vec::new();
    let mut extra = Vec::new();
    let prefix = format!("{folder}/");
    for e in ar.entries() {
        let Some(rel) = e.name.strip_prefix(&prefix) else {
            continue;
        };
        if let Some(path) = rel.strip_prefix("code/").filter(|p| p.ends_with(".py")) {
            let text = small(rel)?.unwrap_or_else(ByteView::empty);
            code.push((
                path.to_string(),
                String::from_utf8_lossy(text.as_slice()).into_owned(),
            ));
        } else if let Some(name) = rel.strip_prefix("extra/") {
            extra.push((
                name.to_string(),
                small(rel)?.unwrap_or_else(ByteView::empty),
            ));
        }
    }
    let classes: Vec<ClassDecl> = code
        .iter()
        .flat_map(|(path, text)| parse_classes(path, text))
        .collect();
    let module = module_info(&graph, &out.root, &classes, &mut HashSet::new())?;
    let mut globals = out.globals;
    for g in consts.globals {
        if !globals.contains(&g) {
            globals.push(g);
        }
    }
    graph.root = Some(out.root);
    Ok(ScriptArchive {
        graph,
        info: LoadInfo {
            format: Format::TorchScript,
            globals,
            big_endian,
            pickle_protocol: out.protocol,
            archive_name: Some(folder),
            version: Some(
                String::from_utf8_lossy(version.as_slice())
                    .trim()
                    .to_string(),
            ),
            weights_only_refusal: out.weights_only_refusal.or(consts.weights_only_refusal),
        },
        module,
        constants: consts.root,
        code,
        extra,
        classes,
    })
}

/// `torch.jit._pickle` helpers become what they return: the typed list or dict they wrap.
fn resolve_helpers(graph: &mut Graph) -> Result<()> {
    for id in 0..graph.nodes.len() {
        let Some(Node::Object(o)) = graph.node(id) else {
            continue;
        };
        if o.module != "torch.jit._pickle" {
            continue;
        }
        let args = match graph.deref(&o.args) {
            Some(Node::Tuple(items)) => items.clone(),
            _ => Vec::new(),
        };
        let name = o.name.clone();
        let replacement = match name.as_str() {
            "build_intlist" | "build_doublelist" | "build_boollist" | "build_tensorlist"
            | "build_complexlist" => match args.first().and_then(|v| graph.deref(v)) {
                Some(Node::List(items)) => Node::List(items.clone()),
                _ => crate::bail!(
                    BadPickle,
                    "torch.jit._pickle.{name} expects one list argument"
                ),
            },
            "restore_type_tag" => match args.first().and_then(|v| graph.deref(v)) {
                Some(n @ (Node::Dict(_) | Node::List(_))) => n.clone(),
                _ => crate::bail!(
                    BadPickle,
                    "torch.jit._pickle.restore_type_tag expects a dict or list and a type string"
                ),
            },
            "build_tensor_from_id" => crate::bail!(
                BadPickle,
                "torch.jit._pickle.build_tensor_from_id names a tensor table, which only RPC and mobile \
                 pickles carry; a torch.jit.save archive never uses it"
            ),
            other => crate::bail!(BadPickle, "unknown helper torch.jit._pickle.{other}"),
        };
        if let Some(n) = graph.node_mut(id) {
            *n = replacement;
        }
    }
    Ok(())
}

/// The classes declared in one `code/` file (`__torch__/torch/nn/modules/linear.py`).
pub fn parse_classes(path: &str, text: &str) -> Vec<ClassDecl> {
    let module = path.trim_end_matches(".py").replace('/', ".");
    let mut out: Vec<ClassDecl> = Vec::new();
    let mut in_forward = false;
    let mut forward = String::new();
    let finish = |out: &mut Vec<ClassDecl>, forward: &mut String| {
        if let Some(c) = out.last_mut() {
            if !forward.is_empty() && c.forward.is_none() {
                c.forward = Some(std::mem::take(forward).trim_end().to_string());
            }
        }
        forward.clear();
    };
    for line in text.lines() {
        if in_forward {
            if line.starts_with("  def ") || (!line.is_empty() && !line.starts_with(' ')) {
                finish(&mut out, &mut forward);
                in_forward = false;
            } else {
                forward.push_str(line);
                forward.push('\n');
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("class ") {
            let name_end = rest.find(['(', ':']).unwrap_or(rest.len());
            let name = rest.get(..name_end).unwrap_or("").trim();
            let base = rest
                .get(name_end..)
                .and_then(|r| r.strip_prefix('('))
                .and_then(|r| r.split(')').next())
                .unwrap_or("");
            out.push(ClassDecl {
                qualname: format!("{module}.{name}"),
                is_module: base.trim() == "Module",
                parameters: Vec::new(),
                buffers: Vec::new(),
                forward: None,
            });
            continue;
        }
        let Some(c) = out.last_mut() else { continue };
        if let Some(list) = line.strip_prefix("  __parameters__ = ") {
            c.parameters = quoted(list);
        } else if let Some(list) = line.strip_prefix("  __buffers__ = ") {
            c.buffers = quoted(list);
        } else if line.starts_with("  def forward(") {
            in_forward = true;
            forward.push_str(line.get(2..).unwrap_or(""));
            forward.push('\n');
        }
    }
    if in_forward {
        finish(&mut out, &mut forward);
    }
    // Body lines are indented by the class: show `forward` as a top-level def.
    for c in &mut out {
        if let Some(f) = &c.forward {
            let lines: Vec<&str> = f
                .lines()
                .enumerate()
                .map(|(i, l)| {
                    if i == 0 {
                        l
                    } else {
                        l.strip_prefix("  ").unwrap_or(l)
                    }
                })
                .collect();
            c.forward = Some(lines.join("\n"));
        }
    }
    out
}

/// The strings of a Python list literal as the TorchScript printer writes it (`["a", "b", ]`).
fn quoted(list: &str) -> Vec<String> {
    list.split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn object_class(graph: &Graph, v: &Value) -> Option<(NodeId, String)> {
    match (v, graph.deref(v)) {
        (Value::Ref(id), Some(Node::Object(o))) if o.module.starts_with("__torch__") => {
            Some((*id, format!("{}.{}", o.module, o.name)))
        }
        _ => None,
    }
}

fn state_items(graph: &Graph, id: NodeId) -> Vec<(String, Value)> {
    let Some(Node::Object(o)) = graph.node(id) else {
        return Vec::new();
    };
    match o.state.as_ref().and_then(|s| graph.deref(s)) {
        Some(Node::Dict(items)) | Some(Node::OrderedDict { items, .. }) => items
            .iter()
            .filter_map(|(k, v)| match k {
                Value::Str(s) => Some((s.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn is_module(graph: &Graph, v: &Value, classes: &[ClassDecl]) -> bool {
    let Some((id, q)) = object_class(graph, v) else {
        return false;
    };
    match classes.iter().find(|c| c.qualname == q) {
        Some(c) => c.is_module,
        // No code for the class: a module has a `training` flag.
        None => state_items(graph, id).iter().any(|(k, _)| k == "training"),
    }
}

fn module_info(
    graph: &Graph,
    root: &Value,
    classes: &[ClassDecl],
    stack: &mut HashSet<NodeId>,
) -> Result<ScriptModuleInfo> {
    let Some((id, qualname)) = object_class(graph, root) else {
        crate::bail!(
            BadPickle,
            "the TorchScript archive's data.pkl does not hold a __torch__ module object"
        );
    };
    if !stack.insert(id) {
        crate::bail!(
            BadPickle,
            "module {qualname} contains itself; TorchScript modules form a tree"
        );
    }
    let decl = classes.iter().find(|c| c.qualname == qualname);
    let mut m = ScriptModuleInfo {
        qualname: qualname.clone(),
        object: root.clone(),
        training: None,
        parameters: Vec::new(),
        buffers: Vec::new(),
        children: Vec::new(),
        attributes: Vec::new(),
        forward: decl.and_then(|d| d.forward.clone()),
    };
    for (name, v) in state_items(graph, id) {
        // A declared parameter or buffer that is None (`Linear(bias=False)`) is listed by
        // neither named_parameters nor named_buffers: it stays an attribute.
        let set = v != Value::None;
        if set && decl.is_some_and(|d| d.parameters.contains(&name)) {
            m.parameters.push((name, v));
        } else if set && decl.is_some_and(|d| d.buffers.contains(&name)) {
            m.buffers.push((name, v));
        } else if is_module(graph, &v, classes) {
            let child = module_info(graph, &v, classes, stack)?;
            m.children.push((name, child));
        } else {
            if name == "training" {
                if let Value::Bool(b) = v {
                    m.training = Some(b);
                }
            }
            m.attributes.push((name, v));
        }
    }
    stack.remove(&id);
    Ok(m)
}

fn odict(graph: &mut Graph, items: Vec<(String, Value)>) -> Value {
    let items = items.into_iter().map(|(k, v)| (Value::Str(k), v)).collect();
    graph.add(Node::OrderedDict { items, state: None })
}

fn str_or_none(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::None, |s| Value::Str(s.clone()))
}

fn module_descriptor(graph: &mut Graph, m: &ScriptModuleInfo) -> Value {
    let parameters = odict(graph, m.parameters.clone());
    let buffers = odict(graph, m.buffers.clone());
    let children: Vec<(String, Value)> = m
        .children
        .iter()
        .map(|(n, c)| (n.clone(), module_descriptor(graph, c)))
        .collect();
    let children = odict(graph, children);
    let attributes = odict(graph, m.attributes.clone());
    let items = vec![
        ("qualname".to_string(), Value::Str(m.qualname.clone())),
        ("object".to_string(), m.object.clone()),
        (
            "training".to_string(),
            m.training.map_or(Value::None, Value::Bool),
        ),
        ("parameters".to_string(), parameters),
        ("buffers".to_string(), buffers),
        ("children".to_string(), children),
        ("attributes".to_string(), attributes),
        ("forward".to_string(), str_or_none(&m.forward)),
    ];
    odict(graph, items)
}

impl ScriptArchive {
    /// The state dict as an `OrderedDict` node (tensors shared with the module).
    pub fn state_dict_value(&mut self) -> Value {
        let sd = self.module.state_dict();
        odict(&mut self.graph, sd)
    }

    /// The descriptor TS builds a `ScriptModule` from: an OrderedDict with `module` (per
    /// module: `qualname`, `object`, `training`, `parameters`, `buffers`, `children`,
    /// `attributes`, `forward`), `state_dict`, `constants`, `code` (path → text),
    /// `extra_files` (name → bytes) and `version`. Values are the graph's own nodes.
    pub fn descriptor(&mut self) -> Value {
        let module = module_descriptor(&mut self.graph, &self.module.clone());
        let state_dict = self.state_dict_value();
        let code: Vec<(String, Value)> = self
            .code
            .iter()
            .map(|(p, t)| (p.clone(), Value::Str(t.clone())))
            .collect();
        let code = odict(&mut self.graph, code);
        let extra: Vec<(String, Value)> = self
            .extra
            .iter()
            .map(|(n, b)| (n.clone(), Value::Bytes(b.as_slice().to_vec())))
            .collect();
        let extra = odict(&mut self.graph, extra);
        let items = vec![
            ("module".to_string(), module),
            ("state_dict".to_string(), state_dict),
            ("constants".to_string(), self.constants.clone()),
            ("code".to_string(), code),
            ("extra_files".to_string(), extra),
            ("version".to_string(), str_or_none(&self.info.version)),
        ];
        odict(&mut self.graph, items)
    }

    /// The archive as a [`Loaded`] whose root is `view`.
    pub fn into_loaded(mut self, view: View) -> Loaded {
        let root = match view {
            View::Module => self.graph.root.clone().unwrap_or(Value::None),
            View::StateDict => self.state_dict_value(),
            View::Jit => self.descriptor(),
        };
        self.graph.root = Some(root);
        Loaded {
            graph: self.graph,
            info: self.info,
        }
    }
}

fn not_torchscript(what: &str) -> crate::error::Error {
    crate::err!(
        UnknownFormat,
        "not a TorchScript archive ({what}); torch.jit.load reads files written by torch.jit.save — \
         read torch.save checkpoints with torch.load"
    )
}

/// Loads TorchScript from bytes (`from_file`: the bytes are `source::open`'s map when
/// `opts.mmap`), validated, with `view` as the root. Anything else is `E_UNKNOWN_FORMAT`
/// (a torch.package archive: `E_TORCH_PACKAGE`).
pub fn load_view(
    bytes: ByteView,
    opts: &LoadOptions,
    from_file: bool,
    view: View,
) -> Result<Loaded> {
    if !bytes.as_slice().starts_with(b"PK\x03\x04") {
        return Err(not_torchscript("it is not a zip archive"));
    }
    let ar = ZipArchive::parse(bytes)?;
    if zip_read::is_torch_package(&ar) {
        // The zip reader's coded refusal, which names the format.
        zip_read::load_archive(&ar, opts, false)?;
    }
    if !is_torchscript(&ar) {
        return Err(not_torchscript(
            "it is a zip without constants.pkl, e.g. a torch.save checkpoint",
        ));
    }
    let loaded = load(&ar, opts, from_file && opts.mmap)?.into_loaded(view);
    crate::tensor::validate_graph(&loaded.graph, &opts.limits)?;
    Ok(loaded)
}

/// [`load_view`] of a file: storages view the mapped file, or with `opts.mmap == false`
/// buffers of their own.
pub fn load_file(path: &Path, opts: &LoadOptions, view: View) -> Result<Loaded> {
    let in_file = |e: crate::error::Error| e.in_file(path.display().to_string());
    let bytes = source::open(path, true).map_err(in_file)?;
    let mut loaded = load_view(bytes.clone(), opts, true, view).map_err(in_file)?;
    if !opts.mmap {
        super::eager::own_storages(&mut loaded.graph, &bytes);
    }
    Ok(loaded)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn class_headers_say_parameters_buffers_and_forward() {
        let text = "class BatchNorm1d(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n  \
                    __buffers__ = [\"running_mean\", ]\n  weight : Tensor\n  def forward(self: X,\n    \
                    input: Tensor) -> Tensor:\n    return input\n  def _check(self) -> None:\n    pass\n\
                    class Point:\n  x : int\n";
        let c = parse_classes("__torch__/torch/nn/modules/batchnorm.py", text);
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[0].qualname,
            "__torch__.torch.nn.modules.batchnorm.BatchNorm1d"
        );
        assert!(c[0].is_module);
        assert_eq!(c[0].parameters, ["weight", "bias"]);
        assert_eq!(c[0].buffers, ["running_mean"]);
        assert_eq!(
            c[0].forward.as_deref(),
            Some("def forward(self: X,\n  input: Tensor) -> Tensor:\n  return input")
        );
        assert_eq!(c[1].qualname, "__torch__.torch.nn.modules.batchnorm.Point");
        assert!(!c[1].is_module);
        assert_eq!(
            parse_classes("__torch__.py", "class A(Module):\n")[0].qualname,
            "__torch__.A"
        );
    }
}
