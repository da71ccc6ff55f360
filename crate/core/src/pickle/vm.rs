//! The pickle virtual machine: protocols 0-5, every opcode of CPython's `pickle.py`, and
//! nothing ever executed.
//!
//! Shape of the machine (CPython's `_Unpickler.load`, flattened):
//! * `stack` holds values; `marks` holds the stack heights where MARKs were pushed (CPython
//!   keeps a stack of stacks; one vector plus heights is the same thing without moves). No
//!   pop may go below the innermost mark: that is CPython's C unpickler's "fence", and it
//!   keeps MARK discipline (`E_BAD_PICKLE` on violation).
//! * Compound objects are created as nodes in the `Graph` arena at once, so a value on the
//!   stack or in the memo is a `Value::Ref`. BINGET therefore returns the *same* object
//!   (identity), and APPEND/SETITEM mutate the node in place, which is how memo cycles
//!   (`l = []; l.append(l)`) come out as cycles.
//! * GLOBAL/STACK_GLOBAL resolve names through the Python 2 mapping and the policy, then ask
//!   [`super::interpret`] for a node; REDUCE/NEWOBJ/NEWOBJ_EX/INST/OBJ/BUILD go to the
//!   interpreter, which knows the torch reconstructors and makes inert `PyObject`s of the rest.
//! * No recursion: every opcode does bounded work, so a 100k-deep nesting costs stack *data*,
//!   not native stack; depth is bounded later by `tensor::validate_graph`.
//!
//! Every length is checked against `Limits::max_string_bytes` (E_LIMIT_EXCEEDED) and then
//! against the remaining input (E_TRUNCATED) before anything is allocated. Errors carry the
//! byte offset of the opcode that failed.
//!
//! Text decoding: BINUNICODE/SHORT_BINUNICODE/BINUNICODE8 are UTF-8 with Python's
//! `surrogatepass`; a Rust `String` cannot hold a lone surrogate, so each encoded surrogate
//! becomes U+FFFD (documented loss; real checkpoints do not contain them). Python 2 byte
//! strings (STRING/BINSTRING/SHORT_BINSTRING) are decoded per `StrEncoding`.

use super::interpret;
use super::kinds::{kind_name, value_kind};
use super::opcodes as op;
use super::policy::{self, Policy};
use super::reconstruct::Ctx;
use super::trace::{TraceEvent, Traced, NESTED_UNPICKLERS};
use super::{PersistentLoad, UnpickleOptions, UnpickleOutput};
use crate::error::{Error, Result};
use crate::options::StrEncoding;
use crate::value::{Graph, Node, ObjectKind, PyObject, Value};
use num_bigint::BigInt;
use std::collections::{HashMap, HashSet};

/// Runs one pickle from the start of `bytes` up to and including its STOP.
pub fn unpickle(
    bytes: &[u8],
    graph: &mut Graph,
    opts: &UnpickleOptions,
    loader: &mut dyn PersistentLoad,
) -> Result<UnpickleOutput> {
    unpickle_with_policy(bytes, graph, opts, loader, opts.policy())
}

/// [`unpickle`] under a given policy (TorchScript archives: [`Policy::for_torchscript`]).
pub fn unpickle_with_policy(
    bytes: &[u8],
    graph: &mut Graph,
    opts: &UnpickleOptions,
    loader: &mut dyn PersistentLoad,
    policy: Policy,
) -> Result<UnpickleOutput> {
    let mut vm = Vm::new(bytes, opts, policy, false);
    let root = vm.run(graph, loader)?;
    Ok(vm.output(root))
}

/// One traced run: what the pickle would import and call, in opcode order, and how the run
/// ended (events before an error are kept: Python's unpickler would have acted on them).
#[derive(Debug)]
pub struct TraceRun {
    pub result: Result<UnpickleOutput>,
    pub events: Vec<TraceEvent>,
}

/// Runs one pickle like [`unpickle_with_policy`] while recording every import, call, BUILD
/// on a non-data object and EXT code ([`super::trace`]). Reconstructor and persistent-load
/// errors do not stop a traced run (the value becomes inert); malformed input and limits do.
pub fn trace(
    bytes: &[u8],
    graph: &mut Graph,
    opts: &UnpickleOptions,
    loader: &mut dyn PersistentLoad,
    policy: Policy,
) -> TraceRun {
    let mut vm = Vm::new(bytes, opts, policy, true);
    let result = vm.run(graph, loader);
    let events = std::mem::take(&mut vm.events);
    TraceRun {
        result: result.map(|root| vm.output(root)),
        events,
    }
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    globals: Vec<String>,
    seen_globals: HashSet<String>,
    protocol: u8,
    opts: &'a UnpickleOptions,
    /// Asked before every opcode and every risky construct.
    policy: Policy,
    /// Offset of the opcode being run.
    at: usize,
    /// Recording for the scanner ([`trace`]).
    tracing: bool,
    events: Vec<TraceEvent>,
}

impl<'a> Vm<'a> {
    fn new(data: &'a [u8], opts: &'a UnpickleOptions, policy: Policy, tracing: bool) -> Self {
        Vm {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            globals: Vec::new(),
            seen_globals: HashSet::new(),
            protocol: 0,
            opts,
            policy,
            at: 0,
            tracing,
            events: Vec::new(),
        }
    }

    fn output(&mut self, root: Value) -> UnpickleOutput {
        UnpickleOutput {
            root,
            consumed: self.pos,
            globals: std::mem::take(&mut self.globals),
            protocol: self.protocol,
            weights_only_refusal: self.policy.refusal().map(str::to_string),
        }
    }

    fn record(&mut self, opcode: &'static str, what: Traced) {
        if self.tracing {
            self.events.push(TraceEvent {
                offset: self.at as u64,
                opcode,
                what,
            });
        }
    }

    /// A call opcode: recorded, then interpreted. A traced run keeps going past
    /// reconstructor errors (the value becomes an inert object); limits still stop it.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        graph: &mut Graph,
        loader: &mut dyn PersistentLoad,
        opcode: &'static str,
        kind: ObjectKind,
        callable: Value,
        args: Value,
        kwargs: Option<Value>,
    ) -> Result<Value> {
        if self.tracing {
            let callee = super::args::global_name(graph, &callable);
            let nested = match &callee {
                Some((m, n)) if NESTED_UNPICKLERS.contains(&format!("{m}.{n}").as_str()) => {
                    first_bytes(graph, &args)
                }
                _ => None,
            };
            let getattr_of = match (&callee, graph.deref(&args)) {
                (Some((m, n)), Some(Node::Tuple(items))) if m == "builtins" && n == "getattr" => {
                    match items.as_slice() {
                        [owner, Value::Str(attr)] => super::args::global_name(graph, owner)
                            .map(|(om, on)| (om, format!("{on}.{attr}"))),
                        _ => None,
                    }
                }
                _ => None,
            };
            let callee_kind = super::kinds::any_kind(graph, &callable);
            self.record(
                opcode,
                Traced::Call {
                    callee,
                    callee_kind,
                    nested,
                    getattr_of,
                },
            );
        }
        if !self.tracing {
            return interpret::call(&mut self.ctx(graph, loader), kind, callable, args, kwargs);
        }
        let r = interpret::call(
            &mut self.ctx(graph, loader),
            kind,
            callable,
            args.clone(),
            kwargs.clone(),
        );
        match r {
            Err(e) if e.code != crate::error::ErrorCode::LimitExceeded => {
                Ok(super::args::object(graph, "", "", kind, args, kwargs))
            }
            other => other,
        }
    }

    fn run(&mut self, graph: &mut Graph, loader: &mut dyn PersistentLoad) -> Result<Value> {
        loop {
            let at = self.pos;
            self.at = at;
            let code = self
                .u8()
                .map_err(|e| Error::new(e.code, format!("{} (no STOP opcode)", e.message)))?;
            match self.step(code, graph, loader) {
                Ok(Some(root)) => return Ok(root),
                Ok(None) => {}
                Err(e) => return Err(e.at(at as u64)),
            }
            if graph.nodes.len() > self.opts.limits.max_nodes {
                return Err(crate::err!(
                    LimitExceeded,
                    "the pickle builds more than {} objects (Limits::max_nodes)",
                    self.opts.limits.max_nodes
                )
                .at(at as u64));
            }
        }
    }

    /// Executes one opcode; `Some(root)` after STOP.
    fn step(
        &mut self,
        code: u8,
        graph: &mut Graph,
        loader: &mut dyn PersistentLoad,
    ) -> Result<Option<Value>> {
        let Some(opname) = op::name(code) else {
            crate::bail!(
                UnknownOpcode,
                "unknown pickle opcode 0x{code:02x} at byte {}",
                self.pos - 1
            );
        };
        self.policy.opcode(code)?;
        match code {
            op::PROTO => {
                let p = self.u8()?;
                if p > op::HIGHEST_PROTOCOL {
                    crate::bail!(
                        UnsupportedVersion,
                        "pickle protocol {p} is newer than the highest supported (5)"
                    );
                }
                self.protocol = p;
            }
            op::FRAME => {
                // Frames only batch reads; the content is ordinary opcodes.
                let n = self.u64()?;
                if n > self.remaining() as u64 {
                    crate::bail!(
                        Truncated,
                        "FRAME of {n} bytes but only {} bytes remain",
                        self.remaining()
                    );
                }
            }
            op::STOP => {
                let root = self.pop()?;
                return Ok(Some(root));
            }
            op::MARK => {
                self.check_stack(1)?;
                self.marks.push(self.stack.len());
            }
            op::POP => {
                if self.stack.len() > self.fence() {
                    self.stack.pop();
                } else {
                    // CPython: POP on an empty (fenced) stack discards the mark.
                    self.pop_mark()?;
                }
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let v = self.top()?.clone();
                self.push(v)?;
            }

            // Scalars.
            op::NONE => self.push(Value::None)?,
            op::NEWTRUE => self.push(Value::Bool(true))?,
            op::NEWFALSE => self.push(Value::Bool(false))?,
            op::BININT => {
                let b = self.take(4)?;
                let v = i32::from_le_bytes([byte(b, 0), byte(b, 1), byte(b, 2), byte(b, 3)]);
                self.push(Value::Int(v as i64))?;
            }
            op::BININT1 => {
                let v = self.u8()?;
                self.push(Value::Int(v as i64))?;
            }
            op::BININT2 => {
                let b = self.take(2)?;
                self.push(Value::Int(
                    u16::from_le_bytes([byte(b, 0), byte(b, 1)]) as i64
                ))?;
            }
            op::LONG1 => {
                let n = self.u8()? as u64;
                let b = self.take_len(n)?;
                self.push(decode_long(b))?;
            }
            op::LONG4 => {
                let n = self.i32()?;
                if n < 0 {
                    crate::bail!(BadPickle, "LONG4 with negative byte count {n}");
                }
                let b = self.take_len(n as u64)?;
                self.push(decode_long(b))?;
            }
            op::INT => {
                let line = self.line()?;
                let v = match line {
                    b"00" => Value::Bool(false),
                    b"01" => Value::Bool(true),
                    _ => parse_int_text(line)?,
                };
                self.push(v)?;
            }
            op::LONG => {
                let line = self.line()?;
                let line = line.strip_suffix(b"L").unwrap_or(line);
                let v = parse_int_text(line)?;
                self.push(v)?;
            }
            op::BINFLOAT => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                self.push(Value::Float(f64::from_be_bytes(a)))?;
            }
            op::FLOAT => {
                let line = self.line()?;
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .ok_or_else(|| crate::err!(BadPickle, "FLOAT argument is not a number"))?;
                self.push(Value::Float(v))?;
            }

            // Strings and bytes.
            op::BINUNICODE => {
                let n = self.u32()? as u64;
                let b = self.take_len(n)?;
                self.push(Value::Str(decode_utf8_surrogatepass(b)?))?;
            }
            op::SHORT_BINUNICODE => {
                let n = self.u8()? as u64;
                let b = self.take_len(n)?;
                self.push(Value::Str(decode_utf8_surrogatepass(b)?))?;
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                let b = self.take_len(n)?;
                self.push(Value::Str(decode_utf8_surrogatepass(b)?))?;
            }
            op::UNICODE => {
                let line = self.line()?;
                self.push(Value::Str(decode_raw_unicode_escape(line)))?;
            }
            op::SHORT_BINSTRING => {
                let n = self.u8()? as u64;
                let b = self.take_len(n)?;
                let v = decode_py2_str(b, self.opts.encoding);
                self.push(v)?;
            }
            op::BINSTRING => {
                let n = self.i32()?;
                if n < 0 {
                    crate::bail!(BadPickle, "BINSTRING with negative length {n}");
                }
                let b = self.take_len(n as u64)?;
                let v = decode_py2_str(b, self.opts.encoding);
                self.push(v)?;
            }
            op::STRING => {
                let line = self.line()?;
                let inner = match line {
                    [q, inner @ .., q2] if q == q2 && (*q == b'"' || *q == b'\'') => inner,
                    _ => crate::bail!(BadPickle, "the STRING opcode argument must be quoted"),
                };
                let raw = escape_decode(inner)?;
                let v = decode_py2_str(&raw, self.opts.encoding);
                self.push(v)?;
            }
            op::SHORT_BINBYTES => {
                let n = self.u8()? as u64;
                let b = self.take_len(n)?.to_vec();
                self.push(Value::Bytes(b))?;
            }
            op::BINBYTES => {
                let n = self.u32()? as u64;
                let b = self.take_len(n)?.to_vec();
                self.push(Value::Bytes(b))?;
            }
            op::BINBYTES8 => {
                let n = self.u64()?;
                let b = self.take_len(n)?.to_vec();
                self.push(Value::Bytes(b))?;
            }
            op::BYTEARRAY8 => {
                let n = self.u64()?;
                let b = self.take_len(n)?.to_vec();
                let v = graph.add(Node::ByteArray(b));
                self.push(v)?;
            }
            op::NEXT_BUFFER | op::READONLY_BUFFER => {
                crate::bail!(
                    BadPickle,
                    "{opname}: out-of-band buffers (pickle protocol 5 buffer_callback) are not supported; \
                     re-save the file without buffer_callback"
                );
            }

            // Containers.
            op::EMPTY_TUPLE => {
                let v = graph.add(Node::Tuple(Vec::new()));
                self.push(v)?;
            }
            op::TUPLE => {
                let items = self.pop_mark()?;
                let v = graph.add(Node::Tuple(items));
                self.push(v)?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                let items = self.pop_n(n)?;
                let v = graph.add(Node::Tuple(items));
                self.push(v)?;
            }
            op::EMPTY_LIST => {
                let v = graph.add(Node::List(Vec::new()));
                self.push(v)?;
            }
            op::LIST => {
                let items = self.pop_mark()?;
                let v = graph.add(Node::List(items));
                self.push(v)?;
            }
            op::EMPTY_DICT => {
                let v = graph.add(Node::Dict(Vec::new()));
                self.push(v)?;
            }
            op::DICT => {
                let items = self.pop_mark()?;
                let pairs = pairs(items, "DICT")?;
                let v = graph.add(Node::Dict(pairs));
                self.push(v)?;
            }
            op::EMPTY_SET => {
                let v = graph.add(Node::Set(Vec::new()));
                self.push(v)?;
            }
            op::FROZENSET => {
                let items = self.pop_mark()?;
                let v = graph.add(Node::FrozenSet(items));
                self.push(v)?;
            }
            op::APPEND => {
                let item = self.pop()?;
                let target = self.top()?.clone();
                interpret::append(graph, &target, vec![item], &mut self.policy)?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                interpret::append(graph, &target, items, &mut self.policy)?;
            }
            op::ADDITEMS => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                match target_node(graph, &target)? {
                    Node::Set(s) => s.extend(items),
                    other => crate::bail!(
                        BadPickle,
                        "ADDITEMS on a {}, expected a set",
                        kind_name(other)
                    ),
                }
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                interpret::set_items(graph, &target, vec![(k, v)], &mut self.policy)?;
            }
            op::SETITEMS => {
                let items = self.pop_mark()?;
                let pairs = pairs(items, "SETITEMS")?;
                let target = self.top()?.clone();
                interpret::set_items(graph, &target, pairs, &mut self.policy)?;
            }

            // Memo.
            op::PUT => {
                let idx = parse_index(self.line()?, "PUT")?;
                self.memo_put(idx)?;
            }
            op::BINPUT => {
                let idx = self.u8()? as u64;
                self.memo_put(idx)?;
            }
            op::LONG_BINPUT => {
                let idx = self.u32()? as u64;
                self.memo_put(idx)?;
            }
            op::MEMOIZE => {
                let idx = self.memo.len() as u64;
                self.memo_put(idx)?;
            }
            op::GET => {
                let idx = parse_index(self.line()?, "GET")?;
                self.memo_get(idx)?;
            }
            op::BINGET => {
                let idx = self.u8()? as u64;
                self.memo_get(idx)?;
            }
            op::LONG_BINGET => {
                let idx = self.u32()? as u64;
                self.memo_get(idx)?;
            }

            // Globals and calls.
            op::GLOBAL => {
                let module = utf8_line(self.line()?, "GLOBAL module")?;
                let name = utf8_line(self.line()?, "GLOBAL name")?;
                let v = self.global(graph, "GLOBAL", &module, &name)?;
                self.push(v)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    crate::bail!(BadPickle, "STACK_GLOBAL requires two str arguments");
                };
                let v = self.global(graph, "STACK_GLOBAL", &module, &name)?;
                self.push(v)?;
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.call(
                    graph,
                    loader,
                    opname,
                    ObjectKind::Reduce,
                    callable,
                    args,
                    None,
                )?;
                self.push(v)?;
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.call(graph, loader, opname, ObjectKind::NewObj, cls, args, None)?;
                self.push(v)?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let v = self.call(
                    graph,
                    loader,
                    opname,
                    ObjectKind::NewObjEx,
                    cls,
                    args,
                    Some(kwargs),
                )?;
                self.push(v)?;
            }
            op::INST => {
                let module = utf8_line(self.line()?, "INST module")?;
                let name = utf8_line(self.line()?, "INST name")?;
                let items = self.pop_mark()?;
                let cls = self.global(graph, "INST", &module, &name)?;
                let args = graph.add(Node::Tuple(items));
                let v = self.call(graph, loader, opname, ObjectKind::Inst, cls, args, None)?;
                self.push(v)?;
            }
            op::OBJ => {
                let mut items = self.pop_mark()?.into_iter();
                let Some(cls) = items.next() else {
                    crate::bail!(BadPickle, "OBJ without a class");
                };
                let args = graph.add(Node::Tuple(items.collect()));
                let v = self.call(graph, loader, opname, ObjectKind::Inst, cls, args, None)?;
                self.push(v)?;
            }
            op::BUILD => {
                let state = self.pop()?;
                let inst = self.top()?.clone();
                if self.tracing {
                    let target = match graph.deref(&inst) {
                        Some(Node::Object(o)) if o.module.is_empty() => Some((None, false)),
                        Some(Node::Object(o)) => {
                            Some((Some((o.module.clone(), o.name.clone())), false))
                        }
                        Some(Node::Global { module, name }) => {
                            Some((Some((module.clone(), name.clone())), true))
                        }
                        _ => None,
                    };
                    if let Some((target, on_global)) = target {
                        self.record(opname, Traced::Build { target, on_global });
                    }
                }
                let r = interpret::build(&mut self.ctx(graph, loader), &inst, state);
                if !self.tracing
                    || r.as_ref()
                        .is_err_and(|e| e.code == crate::error::ErrorCode::LimitExceeded)
                {
                    r?;
                }
            }
            op::EXT1 | op::EXT2 | op::EXT4 => {
                let code_num = match code {
                    op::EXT1 => self.u8()? as i64,
                    op::EXT2 => {
                        let b = self.take(2)?;
                        u16::from_le_bytes([byte(b, 0), byte(b, 1)]) as i64
                    }
                    _ => self.i32()? as i64,
                };
                self.record(opname, Traced::Ext { code: code_num });
                // The extension registry lives in the writer's process; keep the code as data.
                let v = graph.add(Node::Object(PyObject {
                    module: "copyreg".into(),
                    name: "_extension_registry".into(),
                    kind: ObjectKind::Reduce,
                    args: Value::Int(code_num),
                    kwargs: None,
                    state: None,
                    list_items: Vec::new(),
                    dict_items: Vec::new(),
                }));
                self.push(v)?;
            }

            // Persistent ids.
            op::BINPERSID => {
                let pid = self.pop()?;
                self.policy.persistent_id(graph, &pid)?;
                let v = match loader.persistent_load(graph, pid) {
                    Err(_) if self.tracing => Value::None,
                    r => r?,
                };
                self.push(v)?;
            }
            op::PERSID => {
                let line = self.line()?;
                let Ok(s) = std::str::from_utf8(line) else {
                    crate::bail!(BadPickle, "PERSID argument is not ASCII");
                };
                let v = match loader.persistent_load(graph, Value::Str(s.to_string())) {
                    Err(_) if self.tracing => Value::None,
                    r => r?,
                };
                self.push(v)?;
            }
            _ => crate::bail!(
                UnknownOpcode,
                "opcode {opname} (0x{code:02x}) is not handled"
            ),
        }
        Ok(None)
    }

    fn ctx<'g>(&'g mut self, graph: &'g mut Graph, loader: &'g mut dyn PersistentLoad) -> Ctx<'g> {
        Ctx {
            graph,
            loader,
            policy: &mut self.policy,
        }
    }

    /// Maps, records, checks and builds one GLOBAL.
    fn global(
        &mut self,
        graph: &mut Graph,
        opcode: &'static str,
        module: &str,
        name: &str,
    ) -> Result<Value> {
        // Recorded as written in the file (`__builtin__.set`), like torch's
        // get_unsafe_globals_in_checkpoint; checked and built after Python 2 name mapping.
        let written = format!("{module}.{name}");
        if self.seen_globals.insert(written.clone()) {
            self.globals.push(written);
        }
        let written_module = module;
        let written_name = name;
        let (module, name) = policy::map_py2_name(module, name);
        self.record(
            opcode,
            Traced::Import {
                written: format!("{written_module}.{written_name}"),
                module: module.clone(),
                name: name.clone(),
            },
        );
        let full = format!("{module}.{name}");
        self.policy.global(&full)?;
        Ok(interpret::global(graph, &module, &name))
    }

    // ---- stack -------------------------------------------------------------------------

    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn check_stack(&self, extra: usize) -> Result<()> {
        let used = self
            .stack
            .len()
            .saturating_add(self.marks.len())
            .saturating_add(extra);
        if used > self.opts.limits.max_stack {
            crate::bail!(
                LimitExceeded,
                "the pickle stack grows beyond {} entries (Limits::max_stack)",
                self.opts.limits.max_stack
            );
        }
        Ok(())
    }

    fn push(&mut self, v: Value) -> Result<()> {
        self.check_stack(1)?;
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value> {
        if self.stack.len() <= self.fence() {
            crate::bail!(BadPickle, "pickle stack underflow");
        }
        self.stack
            .pop()
            .ok_or_else(|| crate::err!(BadPickle, "pickle stack underflow"))
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Value>> {
        if self.stack.len() < self.fence().saturating_add(n) {
            crate::bail!(BadPickle, "pickle stack underflow");
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&self) -> Result<&Value> {
        if self.stack.len() <= self.fence() {
            crate::bail!(BadPickle, "pickle stack underflow");
        }
        self.stack
            .last()
            .ok_or_else(|| crate::err!(BadPickle, "pickle stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(m) = self.marks.pop() else {
            crate::bail!(
                BadPickle,
                "opcode needs a MARK but none is open (MARK underflow)"
            );
        };
        if m > self.stack.len() {
            crate::bail!(BadPickle, "MARK above the stack top");
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, idx: u64) -> Result<()> {
        let v = self.top()?.clone();
        if !self.memo.contains_key(&idx) && self.memo.len() >= self.opts.limits.max_memo {
            crate::bail!(
                LimitExceeded,
                "more than {} memo entries (Limits::max_memo)",
                self.opts.limits.max_memo
            );
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u64) -> Result<()> {
        let Some(v) = self.memo.get(&idx).cloned() else {
            crate::bail!(
                BadPickle,
                "memo index {idx} was never stored (memo has {} entries)",
                self.memo.len()
            );
        };
        self.push(v)
    }

    // ---- input -------------------------------------------------------------------------

    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                crate::err!(
                    Truncated,
                    "pickle ends early: {n} bytes needed, {} remain",
                    self.remaining()
                )
            })?;
        let data: &'a [u8] = self.data;
        let s = data
            .get(self.pos..end)
            .ok_or_else(|| crate::err!(Truncated, "pickle ends early"))?;
        self.pos = end;
        Ok(s)
    }

    /// A length-prefixed argument: the named limit first, then the input that is left.
    fn take_len(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > self.opts.limits.max_string_bytes {
            crate::bail!(
                LimitExceeded,
                "a {n}-byte string/bytes argument exceeds Limits::max_string_bytes ({})",
                self.opts.limits.max_string_bytes
            );
        }
        if n > self.remaining() as u64 {
            crate::bail!(
                Truncated,
                "pickle ends early: argument of {n} bytes, {} remain",
                self.remaining()
            );
        }
        self.take(n as usize)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(byte(self.take(1)?, 0))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([
            byte(b, 0),
            byte(b, 1),
            byte(b, 2),
            byte(b, 3),
        ]))
    }

    fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A newline-terminated argument, without the newline.
    fn line(&mut self) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let rest = data.get(self.pos..).unwrap_or(&[]);
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            crate::bail!(Truncated, "pickle ends inside a text argument (no newline)");
        };
        if n as u64 > self.opts.limits.max_string_bytes {
            crate::bail!(
                LimitExceeded,
                "a {n}-byte text argument exceeds Limits::max_string_bytes"
            );
        }
        let s = rest.get(..n).unwrap_or(&[]);
        self.pos += n + 1;
        Ok(s)
    }
}

/// The first bytes value among a call's arguments (the nested pickle of `_load_from_bytes`).
fn first_bytes(graph: &Graph, args: &Value) -> Option<Vec<u8>> {
    match graph.deref(args) {
        Some(Node::Tuple(items)) => items.iter().find_map(|v| match v {
            Value::Bytes(b) => Some(b.clone()),
            Value::Ref(_) => match graph.deref(v) {
                Some(Node::ByteArray(b)) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        }),
        _ => None,
    }
}

fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

fn target_node<'g>(graph: &'g mut Graph, v: &Value) -> Result<&'g mut Node> {
    match v {
        Value::Ref(id) => graph
            .node_mut(*id)
            .ok_or_else(|| crate::err!(BadPickle, "dangling reference")),
        other => crate::bail!(
            BadPickle,
            "expected a container on the stack, found {}",
            value_kind(other)
        ),
    }
}

fn pairs(items: Vec<Value>, what: &str) -> Result<Vec<(Value, Value)>> {
    if items.len() & 1 == 1 {
        crate::bail!(
            BadPickle,
            "{what} with an odd number of items ({})",
            items.len()
        );
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

fn utf8_line(b: &[u8], what: &str) -> Result<String> {
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| crate::err!(BadPickle, "{what} is not UTF-8"))
}

fn parse_index(line: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| crate::err!(BadPickle, "{what} argument is not a memo index"))
}

/// Little-endian two's complement (LONG1/LONG4), minimal or not.
fn decode_long(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let neg = b.last().is_some_and(|&x| x & 0x80 != 0);
        let mut a = [if neg { 0xff } else { 0 }; 8];
        if let Some(dst) = a.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        return Value::Int(i64::from_le_bytes(a));
    }
    normalize_int(BigInt::from_signed_bytes_le(b))
}

/// `BigInt` → `Int` when it fits (values keep one representation per number).
pub(crate) fn normalize_int(b: BigInt) -> Value {
    match i64::try_from(&b) {
        Ok(v) => Value::Int(v),
        Err(_) => Value::BigInt(b),
    }
}

fn parse_int_text(line: &[u8]) -> Result<Value> {
    let s = std::str::from_utf8(line)
        .map_err(|_| crate::err!(BadPickle, "INT/LONG argument is not ASCII"))?;
    let s = s.trim();
    if let Ok(v) = s.parse::<i64>() {
        return Ok(Value::Int(v));
    }
    s.parse::<BigInt>()
        .map(normalize_int)
        .map_err(|_| crate::err!(BadPickle, "INT/LONG argument '{s}' is not an integer"))
}

/// Python 2 `str` per `torch.load`'s `encoding` (FORMAT.md 5.6).
fn decode_py2_str(b: &[u8], enc: StrEncoding) -> Value {
    match enc {
        StrEncoding::Bytes => Value::Bytes(b.to_vec()),
        StrEncoding::Latin1 => Value::Str(b.iter().map(|&c| c as char).collect()),
        StrEncoding::Utf8 => match std::str::from_utf8(b) {
            Ok(s) => Value::Str(s.to_string()),
            Err(_) => Value::Str(b.iter().map(|&c| c as char).collect()),
        },
    }
}

/// UTF-8 with Python's `surrogatepass`: an encoded surrogate (ED A0..BF xx) is accepted and
/// becomes U+FFFD, since Rust strings cannot hold lone surrogates. Other invalid UTF-8 is an
/// error, as in Python.
pub(crate) fn decode_utf8_surrogatepass(b: &[u8]) -> Result<String> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(b.len());
    let mut rest = b;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                match bad {
                    [0xED, b1, b2, ..]
                        if (0xA0..=0xBF).contains(b1) && (0x80..=0xBF).contains(b2) =>
                    {
                        out.push('\u{FFFD}');
                        rest = bad.get(3..).unwrap_or(&[]);
                    }
                    _ => crate::bail!(BadPickle, "string is not valid UTF-8"),
                }
            }
        }
    }
    Ok(out)
}

/// Python's `raw-unicode-escape` decoder (protocol 0 UNICODE): bytes are latin-1 code points
/// except `\uXXXX` and `\UXXXXXXXX`.
fn decode_raw_unicode_escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            let width = match b.get(i + 1) {
                Some(b'u') => 4,
                Some(b'U') => 8,
                _ => 0,
            };
            if width > 0 {
                if let Some(hex) = b.get(i + 2..i + 2 + width) {
                    if let Some(cp) = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                    {
                        out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                        i += 2 + width;
                        continue;
                    }
                }
            }
        }
        out.push(c as char);
        i += 1;
    }
    out
}

/// Python's `codecs.escape_decode` (protocol 0 STRING payloads).
fn escape_decode(b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else {
            crate::bail!(BadPickle, "STRING ends with a lone backslash");
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'x' => {
                let hex = b.get(i..i + 2).and_then(|h| std::str::from_utf8(h).ok());
                let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                    crate::bail!(BadPickle, "invalid \\x escape in STRING");
                };
                out.push(v);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match b.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs() {
        assert_eq!(decode_long(&[]), Value::Int(0));
        assert_eq!(decode_long(&[0xff]), Value::Int(-1));
        assert_eq!(decode_long(&[0x00, 0x80]), Value::Int(-32768));
        assert_eq!(decode_long(&[0x00, 0x80, 0x00]), Value::Int(32768));
        assert_eq!(decode_long(&[0xff; 9]), Value::Int(-1));
        assert_eq!(
            decode_long(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Value::BigInt(BigInt::from(1u128 << 64))
        );
    }

    #[test]
    fn surrogates() {
        assert_eq!(
            decode_utf8_surrogatepass(b"a\xed\xa0\x80b").ok(),
            Some("a\u{FFFD}b".to_string())
        );
        assert!(decode_utf8_surrogatepass(b"\xff").is_err());
        assert_eq!(
            decode_raw_unicode_escape(b"a\\u00e9\\U0001f600\\x"),
            "a\u{e9}\u{1f600}\\x"
        );
        assert_eq!(
            escape_decode(b"a\\x41\\101\\n\\'").ok(),
            Some(b"aAA\n'".to_vec())
        );
    }
}
