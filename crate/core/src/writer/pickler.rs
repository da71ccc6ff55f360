//! A pickler that writes what CPython 3.11's C pickler writes for the same Python objects,
//! with storages as torch's persistent ids, so `data.pkl` is byte-identical to `torch.save`.
//!
//! Protocols 2 (torch's default) to 5 are written; others are rejected with
//! `E_INVALID_ARGUMENT`. Protocol 4 adds frames (FRAME + length around each run of about
//! 64 KiB, closed at an object boundary, with big payloads between frames), MEMOIZE,
//! SHORT_BINUNICODE, STACK_GLOBAL, EMPTY_SET/ADDITEMS, FROZENSET and NEWOBJ_EX; protocol 5
//! BYTEARRAY8. torch 2.11's weights-only loader refuses protocol 4 and 5 files (FRAME is not
//! in its opcode list): they load with `weights_only=False`, and in torchsave.
//!
//! # What has to match CPython, and how
//!
//! * **Memo.** CPython gives every memoized object the next index right after creating it
//!   (`BINPUT n`, `LONG_BINPUT n` from 256) and writes `BINGET`/`LONG_BINGET` when the same
//!   *object* is saved again. Memoized: str, bytes, non-empty tuples, lists, dicts, globals and
//!   every reduce result; not ints, floats, None, bools or the empty tuple. Graph nodes carry
//!   identity (`Value::Ref`), so a node seen again is a `BINGET`, cycles included (lists, dicts
//!   and objects are memoized before their children; a tuple reached again while its own
//!   elements are being saved is fetched with `POP`s, as CPython does).
//! * **Strings have no identity in the graph.** CPython memoizes them by object identity; we
//!   memoize them **by value**. This matches what torch writes in practice because the strings
//!   that repeat in checkpoints are the same object in Python: identifier-like literals and
//!   keyword names are interned (`'version'`, `'lr'`, `'momentum_buffer'`, `'storage'`,
//!   `'cpu'`), and the empty string and 1-character latin-1 strings are singletons (state-dict
//!   `_metadata` keys like `'0'` come from slicing). Strings we know torch or CPython creates
//!   afresh each time are written "fresh" (memo index taken, never looked up): storage keys
//!   (memoized per storage instead: `id_map.setdefault` returns the same str for a storage seen
//!   again), locations containing `:` (`"cuda:" + str(index)`), tensor-metadata keys (built in
//!   C++), `torch.device` type names, layout names, nested-global name parts, numpy type codes.
//!   A user value like `{'a': s1, 'b': s2}` with two *distinct but equal* runtime-built strings
//!   is where we differ (one `BINGET` where CPython writes the string twice); both load equal.
//! * **Bytes** (protocol 2: `_codecs.encode(latin1_str, 'latin1')`) are memoized by value too.
//! * **Batching.** Exact lists/dicts: one item → `APPEND`/`SETITEM`; otherwise batches of 1000
//!   under `MARK ... APPENDS/SETITEMS` — and for exact dicts CPython's loop writes a trailing
//!   empty `MARK SETITEMS` when the size is a multiple of 1000. Items coming from an iterator
//!   (`OrderedDict`, objects' list/dict items): batches of 1000, a final batch of one item
//!   written as `APPEND`/`SETITEM`.
//! * **Globals** under protocol < 3 get their Python 2 names (`builtins` → `__builtin__`,
//!   [`super::compat_names`]); nested qualnames (`Outer.Inner`) become
//!   `getattr(Outer, 'Inner')` via `__builtin__ getattr`.
//! * **Tensors** follow torch 2.11's `Tensor._reduce_ex_internal`, `Parameter.__reduce_ex__`
//!   and `torch.serialization._save`'s `persistent_id` (FORMAT.md 3.1-3.4); the storage keys
//!   are `"0"`, `"1"`, ... in order of first encounter while pickling (keys in the graph are
//!   ignored).
//!
//! What must change together: the `PidStyle::Legacy` tuple with `legacy_write`, the dtype →
//! storage class rules with `dtype.rs`, and the tensor forms with the reader's interpreter.

use super::compat_names;
use crate::dtype::DType;
use crate::error::{Error, ErrorCode, Result};
use crate::value::{
    Graph, NdArray, Node, NodeId, NpScalar, ObjectKind, PyObject, SparseTensor, StorageId, Tensor,
    Value,
};
use num_bigint::BigInt;
// FxHash: the memo is consulted for every string, global and node the writer emits, and its
// keys come from our own graph, so SipHash's flood resistance buys nothing here.
use rustc_hash::FxHashMap as HashMap;

/// CPython's `BATCHSIZE` for APPENDS/SETITEMS.
const BATCHSIZE: usize = 1000;
/// Protocol 4 framing (pickle.py's `_Framer`): a frame is closed at the first object boundary
/// once it holds this much; frames under FRAME_SIZE_MIN bytes get no FRAME header; payloads of
/// this size or more (str, bytes, bytearray) are written between frames.
const FRAME_SIZE_TARGET: usize = 64 * 1024;
const FRAME_SIZE_MIN: usize = 4;
const FRAME_HEADER: usize = 9;
/// Deepest nesting we recurse into (CPython's default recursion limit is also 1000).
const MAX_DEPTH: usize = 1000;
/// Stack for the pickler thread: MAX_DEPTH levels at a few KiB each in debug builds.
const PICKLER_STACK: usize = 256 << 20;

// The opcode table is the reader's: one definition for both directions.
use crate::pickle::opcodes as op;

/// Which persistent-id tuple storages get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PidStyle {
    /// `('storage', cls, key, location, numel)`, keys `"0"`, `"1"`, ... (zip format).
    Zip,
    /// `('storage', cls, key, location, numel, None)`, keys look like torch's `str(_cdata)`
    /// (legacy stream format).
    Legacy,
}

/// A storage the pickle refers to, in key order (first encounter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedStorage {
    pub storage: StorageId,
    pub key: String,
    /// Element type of the first persistent id naming it (`UInt8` for untyped storages): the
    /// legacy format writes the element count in these units.
    pub dtype: DType,
    pub nbytes: u64,
}

/// The result of pickling a graph.
#[derive(Clone, Debug)]
pub struct Pickled {
    pub bytes: Vec<u8>,
    pub storages: Vec<SavedStorage>,
}

/// Pickles `graph.root()` with torch's persistent ids.
pub fn pickle_graph(graph: &Graph, protocol: u8, style: PidStyle) -> Result<Pickled> {
    check_protocol(protocol)?;
    // The pickler recurses once per nesting level (like CPython). Callers' threads may have
    // small stacks (test threads: 2 MiB, some thread pools less), so it runs on its own thread
    // with room for MAX_DEPTH levels even in debug builds.
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("torchsave-pickler".into())
            .stack_size(PICKLER_STACK)
            .spawn_scoped(scope, || {
                let mut p = Pickler::new(graph, protocol, style);
                p.dump(graph.root())?;
                Ok(Pickled {
                    bytes: p.out,
                    storages: p.storages,
                })
            });
        match worker {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| crate::bail!(Unserializable, "the pickler thread failed")),
            Err(e) => Err(Error::io(e, "starting the pickler thread")),
        }
    })
}

/// Pickles a value that contains no graph nodes (ints, strings, ...), e.g. the legacy header.
pub fn pickle_value(graph: &Graph, value: &Value, protocol: u8) -> Result<Vec<u8>> {
    check_protocol(protocol)?;
    let mut p = Pickler::new(graph, protocol, PidStyle::Zip);
    p.dump(value)?;
    if !p.storages.is_empty() {
        crate::bail!(Unserializable, "this pickle cannot carry storages");
    }
    Ok(p.out)
}

pub(crate) fn check_protocol(protocol: u8) -> Result<()> {
    if !(2..=5).contains(&protocol) {
        crate::bail!(
            InvalidArgument,
            "pickle protocol {protocol} is not supported for writing; use 2 (torch.save's default) to 5"
        );
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum MemoKey {
    Node(NodeId),
    Str(String),
    Bytes(Vec<u8>),
    Global(String, String),
    StorageKey(StorageId),
    NpDtype(String),
    Layout(String),
    /// A global's module or name string (protocol 4's STACK_GLOBAL operands).
    GlobalPart(String),
    /// A module name as a `sys.modules` key (see `save_global_found`).
    ModulesKey(String),
}

/// One step from the root, for error messages.
#[derive(Clone, Debug)]
enum PathSeg {
    Key(Value),
    Index(usize),
    Attr(&'static str),
}

struct Pickler<'g> {
    graph: &'g Graph,
    out: Vec<u8>,
    proto: u8,
    style: PidStyle,
    memo: HashMap<MemoKey, u32>,
    next_memo: u32,
    storages: Vec<SavedStorage>,
    storage_slot: HashMap<StorageId, usize>,
    path: Vec<PathSeg>,
    depth: usize,
    /// Protocol 4+: where the open frame's 9-byte header slot starts in `out`.
    frame_start: Option<usize>,
}

/// How CPython would have created a string: shared (interned/literal/singleton) or new.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fresh {
    /// Interned or literal: memoized by value.
    No,
    /// Built at runtime: memoized by value only if CPython would hand out a singleton
    /// (empty or one latin-1 character, e.g. from slicing).
    Yes,
    /// Built at runtime by a path that never returns the singletons (the latin-1 text of a
    /// bytes object in protocol 2 — observed with CPython 3.11).
    Always,
}

impl<'g> Pickler<'g> {
    fn new(graph: &'g Graph, proto: u8, style: PidStyle) -> Self {
        Pickler {
            graph,
            out: Vec::with_capacity(4096),
            proto,
            style,
            memo: HashMap::default(),
            next_memo: 0,
            storages: Vec::new(),
            storage_slot: HashMap::default(),
            path: Vec::new(),
            depth: 0,
            frame_start: None,
        }
    }

    fn dump(&mut self, v: &Value) -> Result<()> {
        self.out.push(op::PROTO);
        self.out.push(self.proto);
        if self.proto >= 4 {
            self.open_frame();
        }
        self.save(v)?;
        self.out.push(op::STOP);
        self.close_frame();
        self.frame_start = None;
        Ok(())
    }

    // ----- protocol 4 frames (pickle.py's _Framer, which _pickle.c matches byte for byte) --

    fn open_frame(&mut self) {
        self.frame_start = Some(self.out.len());
        self.out.extend_from_slice(&[0; FRAME_HEADER]);
    }

    /// Ends the open frame: fills its header, or drops the header slot of a frame too small
    /// to get one. The next frame is not opened.
    fn close_frame(&mut self) {
        let Some(fs) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - fs - FRAME_HEADER;
        if len >= FRAME_SIZE_MIN {
            let mut h = [op::FRAME; FRAME_HEADER];
            for (d, s) in h.iter_mut().skip(1).zip((len as u64).to_le_bytes()) {
                *d = s;
            }
            if let Some(slot) = self.out.get_mut(fs..fs + FRAME_HEADER) {
                slot.copy_from_slice(&h);
            }
        } else {
            self.out.drain(fs..fs + FRAME_HEADER);
        }
    }

    /// Where CPython's `save()` begins (every object, memo hits included): a frame that has
    /// reached the target size is closed and a new one opened.
    fn boundary(&mut self) {
        if let Some(fs) = self.frame_start {
            if self.out.len() - fs - FRAME_HEADER >= FRAME_SIZE_TARGET {
                self.close_frame();
                self.open_frame();
            }
        }
    }

    /// `boundary`, then one opcode (an object saved by its opcode alone).
    fn op_obj(&mut self, code: u8) {
        self.boundary();
        self.out.push(code);
    }

    /// A header and a payload; a payload of FRAME_SIZE_TARGET bytes or more goes between
    /// frames (pickle.py's `write_large_bytes`).
    fn write_payload(&mut self, header: &[u8], payload: &[u8]) {
        if payload.len() >= FRAME_SIZE_TARGET && self.frame_start.is_some() {
            self.close_frame();
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
            self.open_frame();
        } else {
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(payload);
        }
    }

    // ----- errors -----------------------------------------------------------------------

    fn path_string(&self) -> String {
        let mut s = String::from("root");
        for seg in &self.path {
            match seg {
                PathSeg::Key(Value::Str(k)) => s.push_str(&format!("[{k:?}]")),
                PathSeg::Key(Value::Int(i)) => s.push_str(&format!("[{i}]")),
                PathSeg::Key(_) => s.push_str("[<key>]"),
                PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
                PathSeg::Attr(a) => {
                    s.push('.');
                    s.push_str(a)
                }
            }
        }
        s
    }

    fn fail(&self, code: ErrorCode, msg: String) -> Error {
        Error::new(code, format!("cannot save {}: {msg}", self.path_string()))
    }

    // ----- memo -------------------------------------------------------------------------

    fn put(&mut self) -> Result<u32> {
        let idx = self.next_memo;
        self.next_memo = idx
            .checked_add(1)
            .ok_or_else(|| self.fail(ErrorCode::LimitExceeded, "too many objects".into()))?;
        if self.proto >= 4 {
            self.out.push(op::MEMOIZE);
        } else if idx < 256 {
            self.out.push(op::BINPUT);
            self.out.push(idx as u8);
        } else {
            self.out.push(op::LONG_BINPUT);
            self.out.extend_from_slice(&idx.to_le_bytes());
        }
        Ok(idx)
    }

    fn put_key(&mut self, key: MemoKey) -> Result<()> {
        let idx = self.put()?;
        self.memo.insert(key, idx);
        Ok(())
    }

    fn get(&mut self, idx: u32) {
        if idx < 256 {
            self.out.push(op::BINGET);
            self.out.push(idx as u8);
        } else {
            self.out.push(op::LONG_BINGET);
            self.out.extend_from_slice(&idx.to_le_bytes());
        }
    }

    /// Writes a `BINGET` if `key` is memoized.
    fn try_get(&mut self, key: &MemoKey) -> bool {
        match self.memo.get(key).copied() {
            Some(idx) => {
                self.get(idx);
                true
            }
            None => false,
        }
    }

    // ----- scalars ----------------------------------------------------------------------

    fn save_bool(&mut self, b: bool) {
        self.op_obj(if b { op::NEWTRUE } else { op::NEWFALSE });
    }

    fn save_int(&mut self, i: i64) {
        self.boundary();
        if (0..=0xff).contains(&i) {
            self.out.push(op::BININT1);
            self.out.push(i as u8);
        } else if (0..=0xffff).contains(&i) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if i32::try_from(i).is_ok() {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&(i as i32).to_le_bytes());
        } else {
            self.save_long(&BigInt::from(i));
        }
    }

    fn save_u64(&mut self, n: u64) {
        match i64::try_from(n) {
            Ok(i) => self.save_int(i),
            Err(_) => self.save_long(&BigInt::from(n)),
        }
    }

    fn save_bigint(&mut self, b: &BigInt) {
        match i64::try_from(b) {
            Ok(i) => self.save_int(i),
            Err(_) => self.save_long(b),
        }
    }

    /// LONG1/LONG4: minimal little-endian two's complement, as `pickle.encode_long`.
    fn save_long(&mut self, b: &BigInt) {
        self.boundary();
        let bytes = if b.sign() == num_bigint::Sign::NoSign {
            Vec::new()
        } else {
            b.to_signed_bytes_le()
        };
        if bytes.len() < 256 {
            self.out.push(op::LONG1);
            self.out.push(bytes.len() as u8);
        } else {
            self.out.push(op::LONG4);
            self.out
                .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
        self.out.extend_from_slice(&bytes);
    }

    fn save_float(&mut self, f: f64) {
        self.op_obj(op::BINFLOAT);
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    /// True for the strings CPython keeps as singletons (empty, one latin-1 character).
    fn is_singleton_str(s: &str) -> bool {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (None, _) => true,
            (Some(c), None) => (c as u32) < 256,
            _ => false,
        }
    }

    fn save_str(&mut self, s: &str, fresh: Fresh) -> Result<()> {
        self.boundary();
        let shared = match fresh {
            Fresh::No => true,
            Fresh::Yes => Self::is_singleton_str(s),
            Fresh::Always => false,
        };
        if shared && self.try_get(&MemoKey::Str(s.to_string())) {
            return Ok(());
        }
        self.save_str_raw(s)?;
        if shared {
            self.put_key(MemoKey::Str(s.to_string()))
        } else {
            self.put().map(|_| ())
        }
    }

    fn save_bytes(&mut self, data: &[u8], fresh: Fresh) -> Result<()> {
        self.boundary();
        let shared = fresh == Fresh::No || (fresh == Fresh::Yes && data.len() <= 1);
        if shared && self.try_get(&MemoKey::Bytes(data.to_vec())) {
            return Ok(());
        }
        if self.proto >= 3 {
            if data.len() < 256 {
                self.write_payload(&[op::SHORT_BINBYTES, data.len() as u8], data);
            } else if let Ok(n) = u32::try_from(data.len()) {
                let mut h = [op::BINBYTES; 5];
                h[1..].copy_from_slice(&n.to_le_bytes());
                self.write_payload(&h, data);
            } else if self.proto >= 4 {
                let mut h = [op::BINBYTES8; 9];
                h[1..].copy_from_slice(&(data.len() as u64).to_le_bytes());
                self.write_payload(&h, data);
            } else {
                return Err(self.fail(
                    ErrorCode::Unserializable,
                    "bytes longer than 4 GiB (protocol 4 or higher can hold them)".into(),
                ));
            }
        } else if data.is_empty() {
            // CPython: save_reduce(bytes, ()) for b''.
            self.save_global("builtins", "bytes")?;
            self.op_obj(op::EMPTY_TUPLE);
            self.out.push(op::REDUCE);
        } else {
            // Protocol 2 has no bytes opcode: `_codecs.encode(str(obj, 'latin1'), 'latin1')`.
            self.save_global("_codecs", "encode")?;
            let latin1: String = data.iter().map(|&b| b as char).collect();
            self.save_str(&latin1, Fresh::Always)?;
            self.save_str("latin1", Fresh::No)?;
            self.out.push(op::TUPLE2);
            self.put()?;
            self.out.push(op::REDUCE);
        }
        if shared {
            self.put_key(MemoKey::Bytes(data.to_vec()))
        } else {
            self.put().map(|_| ())
        }
    }

    // ----- globals ----------------------------------------------------------------------

    fn save_global(&mut self, module: &str, name: &str) -> Result<()> {
        self.save_global_as(module, name, false)
    }

    /// `save_global` for an object CPython finds by searching `sys.modules` (what a
    /// `__reduce__` returning a name does for instances without `__module__`, such as torch's
    /// dtypes): under protocol 4 its module string is the `sys.modules` key, not the module's
    /// `__name__` other globals carry.
    fn save_global_found(&mut self, module: &str, name: &str) -> Result<()> {
        self.save_global_as(module, name, true)
    }

    fn save_global_as(&mut self, module: &str, name: &str, found: bool) -> Result<()> {
        self.boundary();
        let key = MemoKey::Global(module.to_string(), name.to_string());
        if self.try_get(&key) {
            return Ok(());
        }
        if self.proto >= 4 {
            // save(module_name); save(qualname); STACK_GLOBAL (dotted names need no getattr).
            if module.is_empty() || name.is_empty() {
                return Err(self.fail(
                    ErrorCode::Unserializable,
                    format!("invalid global name '{module}.{name}'"),
                ));
            }
            let module_key = if found {
                MemoKey::ModulesKey(module.to_string())
            } else {
                MemoKey::GlobalPart(module.to_string())
            };
            self.save_global_part(module, module_key)?;
            self.save_global_part(name, MemoKey::GlobalPart(name.to_string()))?;
            self.out.push(op::STACK_GLOBAL);
            return self.put_key(key);
        }
        if module.is_empty() || name.is_empty() || module.contains('\n') || name.contains('\n') {
            return Err(self.fail(
                ErrorCode::Unserializable,
                format!("invalid global name '{module}.{name}'"),
            ));
        }
        if let Some((parent, last)) = name.rsplit_once('.') {
            // CPython < 4: save_reduce((getattr, (parent, last))) without memoizing the call,
            // then memoizes the object itself.
            self.save_global("builtins", "getattr")?;
            self.save_global(module, parent)?;
            self.save_str(last, Fresh::Yes)?;
            self.out.push(op::TUPLE2);
            self.put()?;
            self.out.push(op::REDUCE);
        } else {
            let (m, n) = if self.proto < 3 {
                match compat_names::map_name(module, name) {
                    Some((m, n)) => (m.to_string(), n.to_string()),
                    None => (
                        compat_names::map_module(module)
                            .unwrap_or(module)
                            .to_string(),
                        name.to_string(),
                    ),
                }
            } else {
                (module.to_string(), name.to_string())
            };
            self.out.push(op::GLOBAL);
            self.out.extend_from_slice(m.as_bytes());
            self.out.push(b'\n');
            self.out.extend_from_slice(n.as_bytes());
            self.out.push(b'\n');
        }
        self.put_key(key)
    }

    /// A global's module or qualified name as a string object (protocol 4+). CPython takes
    /// them from `__module__` / `__qualname__`: one object per module, shared by its globals,
    /// and never the object a data string equal to it is (a C type's qualname is even made
    /// anew on each lookup), so they get a memo of their own, apart from data strings.
    fn save_global_part(&mut self, s: &str, key: MemoKey) -> Result<()> {
        self.boundary();
        if self.try_get(&key) {
            return Ok(());
        }
        self.save_str_raw(s)?;
        self.put_key(key)
    }

    // ----- tuples, lists, dicts ---------------------------------------------------------

    /// Closes a tuple of `n` already-written elements (n > 0) and memoizes it as fresh.
    fn close_tuple(&mut self, n: usize, marked: bool) -> Result<()> {
        if marked {
            self.out.push(op::TUPLE);
        } else {
            self.out.push(match n {
                1 => op::TUPLE1,
                2 => op::TUPLE2,
                _ => op::TUPLE3,
            });
        }
        self.put().map(|_| ())
    }

    /// Writes a new tuple whose elements `f` saves (`n` of them).
    fn tuple_with<F>(&mut self, n: usize, f: F) -> Result<()>
    where
        F: FnOnce(&mut Self) -> Result<()>,
    {
        self.boundary();
        if n == 0 {
            self.out.push(op::EMPTY_TUPLE);
            return f(self);
        }
        let marked = n > 3;
        if marked {
            self.out.push(op::MARK);
        }
        f(self)?;
        self.close_tuple(n, marked)
    }

    fn save_int_tuple(&mut self, items: &[i64]) -> Result<()> {
        self.tuple_with(items.len(), |p| {
            for &i in items {
                p.save_int(i);
            }
            Ok(())
        })
    }

    fn save_tuple_node(&mut self, id: NodeId, items: &[Value]) -> Result<()> {
        if items.is_empty() {
            self.out.push(op::EMPTY_TUPLE);
            return Ok(());
        }
        let marked = items.len() > 3;
        if marked {
            self.out.push(op::MARK);
        }
        for (i, v) in items.iter().enumerate() {
            self.path.push(PathSeg::Index(i));
            self.save(v)?;
            self.path.pop();
        }
        // A tuple reached again through its own elements is already memoized: drop what
        // we pushed and fetch it (CPython's recursive-tuple rule).
        if let Some(idx) = self.memo.get(&MemoKey::Node(id)).copied() {
            if marked {
                self.out.push(op::POP_MARK);
            } else {
                self.out.extend(std::iter::repeat_n(op::POP, items.len()));
            }
            self.get(idx);
            return Ok(());
        }
        if marked {
            self.out.push(op::TUPLE);
        } else {
            self.out.push(match items.len() {
                1 => op::TUPLE1,
                2 => op::TUPLE2,
                _ => op::TUPLE3,
            });
        }
        self.put_key(MemoKey::Node(id))
    }

    fn save_items(&mut self, items: &[Value]) -> Result<()> {
        for (i, v) in items.iter().enumerate() {
            self.path.push(PathSeg::Index(i));
            self.save(v)?;
            self.path.pop();
        }
        Ok(())
    }

    /// `batch_list_exact`: a list object's own items.
    fn batch_appends_exact(&mut self, items: &[Value]) -> Result<()> {
        if items.len() == 1 {
            self.save_items(items)?;
            self.out.push(op::APPEND);
            return Ok(());
        }
        self.marked_batches(items, op::APPENDS)
    }

    /// Items in batches of BATCHSIZE, each `MARK items... close` (APPENDS, ADDITEMS).
    fn marked_batches(&mut self, items: &[Value], close: u8) -> Result<()> {
        let mut base = 0;
        for chunk in items.chunks(BATCHSIZE) {
            self.out.push(op::MARK);
            for (i, v) in chunk.iter().enumerate() {
                self.path.push(PathSeg::Index(base + i));
                self.save(v)?;
                self.path.pop();
            }
            base += chunk.len();
            self.out.push(close);
        }
        Ok(())
    }

    /// `batch_list` over an iterator (objects' list items).
    fn batch_appends_iter(&mut self, items: &[Value]) -> Result<()> {
        let mut base = 0;
        for chunk in items.chunks(BATCHSIZE) {
            if let [only] = chunk {
                self.path.push(PathSeg::Index(base));
                self.save(only)?;
                self.path.pop();
                self.out.push(op::APPEND);
            } else {
                self.out.push(op::MARK);
                for (i, v) in chunk.iter().enumerate() {
                    self.path.push(PathSeg::Index(base + i));
                    self.save(v)?;
                    self.path.pop();
                }
                self.out.push(op::APPENDS);
            }
            base += chunk.len();
        }
        Ok(())
    }

    fn save_pair(&mut self, k: &Value, v: &Value, fresh_keys: bool) -> Result<()> {
        match (k, fresh_keys) {
            (Value::Str(s), true) => self.save_str(s, Fresh::Yes)?,
            _ => self.save(k)?,
        }
        self.path.push(PathSeg::Key(k.clone()));
        self.save(v)?;
        self.path.pop();
        Ok(())
    }

    /// `batch_dict_exact`: a dict object's own items (note the trailing empty batch when the
    /// size is a multiple of 1000, exactly as CPython's loop writes it).
    fn batch_setitems_exact(&mut self, items: &[(Value, Value)], fresh_keys: bool) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        if let [(k, v)] = items {
            self.save_pair(k, v, fresh_keys)?;
            self.out.push(op::SETITEM);
            return Ok(());
        }
        let mut rest = items;
        loop {
            let n = rest.len().min(BATCHSIZE);
            let (chunk, tail) = rest.split_at(n);
            self.out.push(op::MARK);
            for (k, v) in chunk {
                self.save_pair(k, v, fresh_keys)?;
            }
            self.out.push(op::SETITEMS);
            rest = tail;
            if n != BATCHSIZE {
                break;
            }
        }
        Ok(())
    }

    /// `batch_dict` over an iterator (OrderedDict, objects' dict items).
    fn batch_setitems_iter(&mut self, items: &[(Value, Value)]) -> Result<()> {
        for chunk in items.chunks(BATCHSIZE) {
            if let [(k, v)] = chunk {
                self.save_pair(k, v, false)?;
                self.out.push(op::SETITEM);
            } else {
                self.out.push(op::MARK);
                for (k, v) in chunk {
                    self.save_pair(k, v, false)?;
                }
                self.out.push(op::SETITEMS);
            }
        }
        Ok(())
    }

    /// `reduce` tail shared by objects: list items, dict items, then state + BUILD.
    fn save_reduce_tail(
        &mut self,
        list: &[Value],
        dict: &[(Value, Value)],
        state: Option<&Value>,
    ) -> Result<()> {
        if !list.is_empty() {
            self.batch_appends_iter(list)?;
        }
        if !dict.is_empty() {
            self.batch_setitems_iter(dict)?;
        }
        if let Some(s) = state {
            self.path.push(PathSeg::Attr("__state__"));
            self.save(s)?;
            self.path.pop();
            self.out.push(op::BUILD);
        }
        Ok(())
    }

    // ----- the dispatcher ---------------------------------------------------------------

    fn save(&mut self, v: &Value) -> Result<()> {
        self.boundary();
        match v {
            Value::None => self.out.push(op::NONE),
            Value::Bool(b) => self.save_bool(*b),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(b) => self.save_bigint(b),
            Value::Float(f) => self.save_float(*f),
            Value::Complex(re, im) => {
                self.save_global("builtins", "complex")?;
                self.save_float(*re);
                self.save_float(*im);
                self.close_tuple(2, false)?;
                self.out.push(op::REDUCE);
                self.put()?;
            }
            Value::Str(s) => self.save_str(s, Fresh::No)?,
            Value::Bytes(b) => self.save_bytes(b, Fresh::No)?,
            Value::Ref(id) => {
                if self.try_get(&MemoKey::Node(*id)) {
                    return Ok(());
                }
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.fail(
                        ErrorCode::LimitExceeded,
                        format!("nesting deeper than {MAX_DEPTH}"),
                    ));
                }
                let r = self.save_node(*id);
                self.depth -= 1;
                r?;
            }
        }
        Ok(())
    }

    fn save_node(&mut self, id: NodeId) -> Result<()> {
        self.boundary();
        let graph = self.graph;
        let node = graph.node(id).ok_or_else(|| {
            self.fail(
                ErrorCode::Unserializable,
                format!("reference to missing node {id}"),
            )
        })?;
        match node {
            Node::Tuple(items) => self.save_tuple_node(id, items)?,
            Node::List(items) => {
                self.out.push(op::EMPTY_LIST);
                self.put_key(MemoKey::Node(id))?;
                if !items.is_empty() {
                    self.batch_appends_exact(items)?;
                }
            }
            Node::Dict(items) => {
                self.out.push(op::EMPTY_DICT);
                self.put_key(MemoKey::Node(id))?;
                self.batch_setitems_exact(items, false)?;
            }
            Node::OrderedDict { items, state } => {
                self.save_global("collections", "OrderedDict")?;
                self.op_obj(op::EMPTY_TUPLE);
                self.out.push(op::REDUCE);
                self.put_key(MemoKey::Node(id))?;
                self.save_reduce_tail(&[], items, state.as_ref())?;
            }
            Node::Set(items) if self.proto >= 4 => {
                self.out.push(op::EMPTY_SET);
                self.put_key(MemoKey::Node(id))?;
                self.marked_batches(items, op::ADDITEMS)?;
            }
            Node::FrozenSet(items) if self.proto >= 4 => {
                self.out.push(op::MARK);
                self.save_items(items)?;
                // Reached again through its own items: drop them, fetch it (pickle.py).
                if let Some(idx) = self.memo.get(&MemoKey::Node(id)).copied() {
                    self.out.push(op::POP_MARK);
                    self.get(idx);
                } else {
                    self.out.push(op::FROZENSET);
                    self.put_key(MemoKey::Node(id))?;
                }
            }
            Node::ByteArray(data) if self.proto >= 5 => {
                let mut h = [op::BYTEARRAY8; 9];
                h[1..].copy_from_slice(&(data.len() as u64).to_le_bytes());
                self.write_payload(&h, data);
                self.put_key(MemoKey::Node(id))?;
            }
            Node::Set(items) | Node::FrozenSet(items) => {
                let name = if matches!(node, Node::Set(_)) {
                    "set"
                } else {
                    "frozenset"
                };
                self.save_global("builtins", name)?;
                // (cls, (list(self),)): a fresh exact list.
                self.out.push(op::EMPTY_LIST);
                self.put()?;
                if !items.is_empty() {
                    self.batch_appends_exact(items)?;
                }
                self.close_tuple(1, false)?;
                self.out.push(op::REDUCE);
                self.put_key(MemoKey::Node(id))?;
            }
            Node::ByteArray(data) => {
                self.save_global("builtins", "bytearray")?;
                if data.is_empty() {
                    self.op_obj(op::EMPTY_TUPLE);
                } else {
                    self.save_bytes(data, Fresh::Yes)?;
                    self.close_tuple(1, false)?;
                }
                self.out.push(op::REDUCE);
                self.put_key(MemoKey::Node(id))?;
            }
            Node::Tensor(t) => self.save_tensor(id, t)?,
            Node::SparseTensor(s) => self.save_sparse(id, s)?,
            Node::Storage(sid) => self.save_bare_storage(*sid)?,
            Node::Size(dims) => {
                self.save_global("torch", "Size")?;
                self.tuple_with(1, |p| p.save_int_tuple(dims))?;
                self.out.push(op::REDUCE);
                self.put_key(MemoKey::Node(id))?;
            }
            Node::Device(d) => self.save_device(id, d)?,
            Node::Dtype(d) => self.save_global_found("torch", d.name())?,
            Node::Layout(name) => self.save_layout(name)?,
            Node::Global { module, name } => self.save_global(module, name)?,
            Node::NdArray(a) => self.save_ndarray(id, a)?,
            Node::NpScalar(s) => self.save_npscalar(id, s)?,
            Node::Object(o) => self.save_object(id, o)?,
        }
        Ok(())
    }

    fn save_device(&mut self, id: NodeId, d: &str) -> Result<()> {
        self.save_global("torch", "device")?;
        match d.split_once(':') {
            Some((ty, idx)) => {
                let idx: i64 = idx.parse().map_err(|_| {
                    self.fail(ErrorCode::Unserializable, format!("invalid device '{d}'"))
                })?;
                self.tuple_with(2, |p| {
                    p.save_str(ty, Fresh::Yes)?;
                    p.save_int(idx);
                    Ok(())
                })?;
            }
            None => self.tuple_with(1, |p| p.save_str(d, Fresh::Yes))?,
        }
        self.out.push(op::REDUCE);
        self.put_key(MemoKey::Node(id))
    }

    /// Layouts are reduced by torch's copyreg entry: `_get_layout(str(layout))`.
    fn save_layout(&mut self, name: &str) -> Result<()> {
        let key = MemoKey::Layout(name.to_string());
        if self.try_get(&key) {
            return Ok(());
        }
        self.save_global("torch.serialization", "_get_layout")?;
        let full = format!("torch.{name}");
        self.tuple_with(1, |p| p.save_str(&full, Fresh::Yes))?;
        self.out.push(op::REDUCE);
        self.put_key(key)
    }

    fn save_object(&mut self, id: NodeId, o: &PyObject) -> Result<()> {
        match o.kind {
            ObjectKind::Reduce | ObjectKind::Inst => {
                self.save_global(&o.module, &o.name)?;
                self.path.push(PathSeg::Attr("__args__"));
                self.save(&o.args)?;
                self.path.pop();
                self.out.push(op::REDUCE);
            }
            ObjectKind::NewObj => {
                self.save_global(&o.module, &o.name)?;
                self.path.push(PathSeg::Attr("__args__"));
                match &o.args {
                    Value::None => self.op_obj(op::EMPTY_TUPLE),
                    a => self.save(a)?,
                }
                self.path.pop();
                self.out.push(op::NEWOBJ);
            }
            ObjectKind::NewObjEx if self.proto >= 4 => {
                self.save_global(&o.module, &o.name)?;
                match &o.args {
                    Value::None => self.op_obj(op::EMPTY_TUPLE),
                    a => self.save(a)?,
                }
                match &o.kwargs {
                    Some(k) => self.save(k)?,
                    None => {
                        self.op_obj(op::EMPTY_DICT);
                        self.put()?;
                    }
                }
                self.out.push(op::NEWOBJ_EX);
            }
            ObjectKind::NewObjEx => {
                // Protocol < 4 has no NEWOBJ_EX; copyreg.__newobj_ex__(cls, args, kwargs)
                // builds the same object on load (CPython itself would go through
                // functools.partial here).
                self.save_global("copyreg", "__newobj_ex__")?;
                self.tuple_with(3, |p| {
                    p.save_global(&o.module, &o.name)?;
                    match &o.args {
                        Value::None => p.op_obj(op::EMPTY_TUPLE),
                        a => p.save(a)?,
                    }
                    match &o.kwargs {
                        Some(k) => p.save(k),
                        None => {
                            p.op_obj(op::EMPTY_DICT);
                            p.put().map(|_| ())
                        }
                    }
                })?;
                self.out.push(op::REDUCE);
            }
        }
        self.put_key(MemoKey::Node(id))?;
        self.save_reduce_tail(&o.list_items, &o.dict_items, o.state.as_ref())
    }

    // ----- numpy ------------------------------------------------------------------------

    /// `numpy.dtype(code, False, True)` + BUILD of its state; builtin dtypes are singletons in
    /// numpy, so one per descr.
    fn save_np_dtype(&mut self, descr: &str) -> Result<()> {
        let key = MemoKey::NpDtype(descr.to_string());
        if self.try_get(&key) {
            return Ok(());
        }
        let (order, code) = match descr.chars().next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
            _ => ('|', descr),
        };
        let (code, flags) = if code == "O" {
            ("O8".to_string(), 63)
        } else {
            (code.to_string(), 0)
        };
        self.save_global("numpy", "dtype")?;
        self.tuple_with(3, |p| {
            p.save_str(&code, Fresh::Yes)?;
            p.save_bool(false);
            p.save_bool(true);
            Ok(())
        })?;
        self.out.push(op::REDUCE);
        self.put_key(key)?;
        let order = order.to_string();
        self.tuple_with(8, |p| {
            p.save_int(3);
            p.save_str(&order, Fresh::No)?;
            p.out.extend_from_slice(&[op::NONE, op::NONE, op::NONE]);
            p.save_int(-1);
            p.save_int(-1);
            p.save_int(flags);
            Ok(())
        })?;
        self.out.push(op::BUILD);
        Ok(())
    }

    fn save_ndarray(&mut self, id: NodeId, a: &NdArray) -> Result<()> {
        self.save_global(&a.module, "_reconstruct")?;
        self.tuple_with(3, |p| {
            p.save_global("numpy", "ndarray")?;
            p.save_int_tuple(&[0])?;
            p.save_bytes(b"b", Fresh::No)
        })?;
        self.out.push(op::REDUCE);
        self.put_key(MemoKey::Node(id))?;
        self.tuple_with(5, |p| {
            p.save_int(1);
            p.save_int_tuple(&a.shape)?;
            p.save_np_dtype(&a.descr)?;
            p.save_bool(a.fortran_order);
            match &a.items {
                Some(items) => p.save(items),
                None => p.save_bytes(&a.data, Fresh::Yes),
            }
        })?;
        self.out.push(op::BUILD);
        Ok(())
    }

    fn save_npscalar(&mut self, id: NodeId, s: &NpScalar) -> Result<()> {
        self.save_global(&s.module, "scalar")?;
        self.tuple_with(2, |p| {
            p.save_np_dtype(&s.descr)?;
            p.save_bytes(&s.data, Fresh::Yes)
        })?;
        self.out.push(op::REDUCE);
        self.put_key(MemoKey::Node(id))
    }

    // ----- tensors and storages ---------------------------------------------------------

    /// Writes the persistent id of storage `sid` viewed as `dtype` (a tensor's dtype, or the
    /// storage's own for bare storages) and returns nothing; records the storage.
    fn save_storage_pid(
        &mut self,
        sid: StorageId,
        view_dtype: DType,
        force_untyped: bool,
    ) -> Result<()> {
        let graph = self.graph;
        let st = graph.storages.get(sid).ok_or_else(|| {
            self.fail(
                ErrorCode::Unserializable,
                format!("reference to missing storage {sid}"),
            )
        })?;
        let nbytes = st.data.len() as u64;
        if st.nbytes() != nbytes {
            return Err(self.fail(
                ErrorCode::StorageSize,
                format!(
                    "storage {sid} declares {} bytes but holds {nbytes}",
                    st.nbytes()
                ),
            ));
        }
        // The class and element count torch puts in the id.
        let (module, class, numel, pickled_dtype) = match view_dtype.storage_class() {
            Some(class) if !force_untyped => {
                let es = view_dtype.element_size() as u64;
                if !nbytes.is_multiple_of(es) {
                    return Err(self.fail(
                        ErrorCode::Unserializable,
                        format!("storage {sid} holds {nbytes} bytes, not a whole number of {view_dtype} elements"),
                    ));
                }
                ("torch", class, nbytes / es, view_dtype)
            }
            _ => {
                if self.style == PidStyle::Legacy {
                    // torch 2.11's legacy loader fails on UntypedStorage ids
                    // ("type object 'torch.storage.UntypedStorage' has no attribute 'dtype'").
                    return Err(self.fail(
                        ErrorCode::Unserializable,
                        format!("the legacy format cannot carry {view_dtype} (untyped) storages; torch cannot load them; use the zip format"),
                    ));
                }
                ("torch.storage", "UntypedStorage", nbytes, DType::UInt8)
            }
        };
        // torch: "Cannot save multiple tensors or storages that view the same data as
        // different types".
        let slot = match self.storage_slot.get(&sid).copied() {
            Some(slot) => {
                let first = self.storages.get(slot).map(|s| s.dtype);
                if first != Some(pickled_dtype) {
                    return Err(self.fail(
                        ErrorCode::Unserializable,
                        format!(
                            "storage {sid} is viewed both as {} and as {pickled_dtype}; torch cannot save multiple tensors or storages that view the same data as different types",
                            first.map(|d| d.name()).unwrap_or("?")
                        ),
                    ));
                }
                slot
            }
            None => {
                let slot = self.storages.len();
                let key = match self.style {
                    PidStyle::Zip => slot.to_string(),
                    // Looks like torch's `str(storage._cdata)` (a heap address); unique per save.
                    PidStyle::Legacy => (94_000_000_000_000u64 + (slot as u64) * 64).to_string(),
                };
                self.storages.push(SavedStorage {
                    storage: sid,
                    key,
                    dtype: pickled_dtype,
                    nbytes,
                });
                self.storage_slot.insert(sid, slot);
                slot
            }
        };
        let key = self
            .storages
            .get(slot)
            .map(|s| s.key.clone())
            .unwrap_or_default();
        let location = st.location.clone();
        let n = if self.style == PidStyle::Legacy { 6 } else { 5 };
        self.tuple_with(n, |p| {
            p.save_str("storage", Fresh::No)?;
            p.save_global(module, class)?;
            match p.style {
                PidStyle::Zip => {
                    if !p.try_get(&MemoKey::StorageKey(sid)) {
                        p.save_str_raw(&key)?;
                        p.put_key(MemoKey::StorageKey(sid))?;
                    }
                }
                // `str(storage._cdata)` is computed afresh on every call.
                PidStyle::Legacy => p.save_str(&key, Fresh::Yes)?,
            }
            // `_cpu_tag` returns a literal; `_cuda_tag` builds "cuda:" + str(index).
            let fresh = if location.contains(':') {
                Fresh::Yes
            } else {
                Fresh::No
            };
            p.save_str(&location, fresh)?;
            p.save_u64(numel);
            if p.style == PidStyle::Legacy {
                p.op_obj(op::NONE);
            }
            Ok(())
        })?;
        self.out.push(op::BINPERSID);
        Ok(())
    }

    /// A string's opcode and UTF-8 bytes, without memo handling (the caller memoizes).
    fn save_str_raw(&mut self, s: &str) -> Result<()> {
        let b = s.as_bytes();
        if self.proto >= 4 && b.len() <= 0xff {
            self.write_payload(&[op::SHORT_BINUNICODE, b.len() as u8], b);
        } else if let Ok(n) = u32::try_from(b.len()) {
            let mut h = [op::BINUNICODE; 5];
            h[1..].copy_from_slice(&n.to_le_bytes());
            self.write_payload(&h, b);
        } else if self.proto >= 4 {
            let mut h = [op::BINUNICODE8; 9];
            h[1..].copy_from_slice(&(b.len() as u64).to_le_bytes());
            self.write_payload(&h, b);
        } else {
            return Err(self.fail(
                ErrorCode::Unserializable,
                "string longer than 4 GiB (protocol 4 or higher can hold it)".into(),
            ));
        }
        Ok(())
    }

    fn save_bare_storage(&mut self, sid: StorageId) -> Result<()> {
        let st = self.graph.storages.get(sid).ok_or_else(|| {
            self.fail(
                ErrorCode::Unserializable,
                format!("reference to missing storage {sid}"),
            )
        })?;
        let (dtype, untyped) = (st.dtype, st.untyped || st.dtype.storage_class().is_none());
        self.save_storage_pid(sid, if untyped { DType::UInt8 } else { dtype }, untyped)
    }

    /// Checks that the view lies inside its storage ([`crate::strided::check_view`]).
    fn check_view(&self, t: &Tensor, sid: StorageId) -> Result<()> {
        let st = self.graph.storages.get(sid).ok_or_else(|| {
            self.fail(
                ErrorCode::Unserializable,
                format!("reference to missing storage {sid}"),
            )
        })?;
        crate::strided::check_view(t, st)
            .map(|_| ())
            .map_err(|e| self.fail(e.code, e.message))
    }

    fn empty_ordered_dict(&mut self) -> Result<()> {
        self.save_global("collections", "OrderedDict")?;
        self.op_obj(op::EMPTY_TUPLE);
        self.out.push(op::REDUCE);
        self.put().map(|_| ())
    }

    /// The metadata dict from `torch._C._get_tensor_metadata` (keys made in C++, so fresh).
    fn save_tensor_metadata(&mut self, m: &Value) -> Result<()> {
        match self.graph.deref(m) {
            Some(Node::Dict(items)) => {
                self.op_obj(op::EMPTY_DICT);
                self.put()?;
                self.batch_setitems_exact(items, true)
            }
            _ => self.save(m),
        }
    }

    fn metadata_of(&self, t: &Tensor) -> Option<Value> {
        match &t.metadata {
            None | Some(Value::None) => None,
            Some(v) => match self.graph.deref(v) {
                Some(Node::Dict(items)) if items.is_empty() => None,
                _ => Some(v.clone()),
            },
        }
    }

    /// The rebuild function `Tensor._reduce_ex_internal` picks for a dense tensor.
    fn tensor_func(&self, t: &Tensor) -> Result<&'static str> {
        let Some(sid) = t.storage else {
            return Ok("_rebuild_meta_tensor_no_storage");
        };
        self.check_view(t, sid)?;
        Ok(if t.quantizer.is_some() {
            "_rebuild_qtensor"
        } else if t.dtype.storage_class().is_none() {
            "_rebuild_tensor_v3"
        } else {
            "_rebuild_tensor_v2"
        })
    }

    /// The args tuple of `Tensor._reduce_ex_internal` for `func` (from [`Self::tensor_func`]).
    /// `requires_grad` is passed because a Parameter's `.data` is saved with False.
    fn save_tensor_args(&mut self, t: &Tensor, func: &str, requires_grad: bool) -> Result<()> {
        let Some(sid) = t.storage else {
            // _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)
            return self.tuple_with(4, |p| {
                p.save_global("torch", t.dtype.name())?;
                p.save_int_tuple(&t.shape)?;
                p.save_int_tuple(&t.stride)?;
                p.save_bool(requires_grad);
                Ok(())
            });
        };
        if let (Some(q), "_rebuild_qtensor") = (&t.quantizer, func) {
            return self.tuple_with(7, |p| {
                p.save_storage_pid(sid, t.dtype, false)?;
                p.save_int(t.storage_offset);
                p.save_int_tuple(&t.shape)?;
                p.save_int_tuple(&t.stride)?;
                p.tuple_with(1 + q.params.len(), |p| {
                    p.save_global("torch", &q.scheme)?;
                    p.save_items(&q.params)
                })?;
                p.save_bool(requires_grad);
                p.empty_ordered_dict()
            });
        }
        let metadata = self.metadata_of(t);
        let v3 = func == "_rebuild_tensor_v3";
        let n = 6 + usize::from(v3) + usize::from(metadata.is_some());
        self.tuple_with(n, |p| {
            p.save_storage_pid(sid, t.dtype, v3)?;
            p.save_int(t.storage_offset);
            p.save_int_tuple(&t.shape)?;
            p.save_int_tuple(&t.stride)?;
            p.save_bool(requires_grad);
            p.empty_ordered_dict()?;
            if v3 {
                p.save_global("torch", t.dtype.name())?;
            }
            if let Some(m) = &metadata {
                p.save_tensor_metadata(m)?;
            }
            Ok(())
        })
    }

    fn save_tensor(&mut self, id: NodeId, t: &Tensor) -> Result<()> {
        let func = self.tensor_func(t)?;
        if t.is_parameter {
            // Parameter.__reduce_ex__: (_rebuild_parameter[_with_state], (self.data, rg, hooks[, state])).
            let state = t.parameter_state.as_ref().filter(|s| **s != Value::None);
            let outer = if state.is_some() {
                "_rebuild_parameter_with_state"
            } else {
                "_rebuild_parameter"
            };
            self.save_global("torch._utils", outer)?;
            self.tuple_with(3 + usize::from(state.is_some()), |p| {
                // `self.data` is a new plain tensor object each time: memoized, never reused.
                p.save_global("torch._utils", func)?;
                p.save_tensor_args(t, func, false)?;
                p.out.push(op::REDUCE);
                p.put()?;
                p.save_bool(t.requires_grad);
                p.empty_ordered_dict()?;
                if let Some(s) = state {
                    p.save(s)?;
                }
                Ok(())
            })?;
        } else if let Some(sub) = &t.subclass {
            // Tensor.__reduce_ex__ with Python state: _rebuild_from_type_v2(func, type, args, state).
            self.save_global("torch._tensor", "_rebuild_from_type_v2")?;
            self.tuple_with(4, |p| {
                p.save_global("torch._utils", func)?;
                p.save_global(&sub.module, &sub.name)?;
                p.save_tensor_args(t, func, t.requires_grad)?;
                p.save(&sub.state)
            })?;
        } else {
            self.save_global("torch._utils", func)?;
            self.save_tensor_args(t, func, t.requires_grad)?;
        }
        self.out.push(op::REDUCE);
        self.put_key(MemoKey::Node(id))
    }

    fn save_sparse(&mut self, id: NodeId, s: &SparseTensor) -> Result<()> {
        self.save_global("torch._utils", "_rebuild_sparse_tensor")?;
        self.tuple_with(2, |p| {
            p.save_layout(&s.layout)?;
            p.tuple_with(s.args.len(), |p| p.save_items(&s.args))
        })?;
        self.out.push(op::REDUCE);
        self.put_key(MemoKey::Node(id))
    }
}
