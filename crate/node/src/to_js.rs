//! Graph → JS: the "raw tree" the TS layer turns into classes.
//!
//! Format (`RawLoaded` in ts/raw.ts is the typed mirror; keep both in step):
//! * scalars: `None` → `null`, bool → boolean, int → number (BigInt beyond ±2^53, or when the
//!   int is outside i64), str → string, bytes → `Uint8Array` (a copy);
//! * a float → number, except an *integral* float (`2.0`, `-0.0`), which becomes
//!   `{t:'float', v}` so the TS layer can re-save it as a float;
//! * complex → `{t:'complex', re, im}`;
//! * list → a plain JS array; every other compound node → an object tagged by `t`
//!   (`tuple`, `dict`, `odict`, `set`, `frozenset`, `bytearray`, `tensor`, `sparse`,
//!   `storage`, `size`, `device`, `dtype`, `layout`, `global`, `ndarray`, `npscalar`,
//!   `object`); dict-like items are flat `[k0, v0, k1, v1, ...]` arrays.
//!
//! Identity: each node becomes one JS value, cached by `NodeId` before its children are
//! converted, so shared objects stay shared and cycles close. The recursion is pre-order
//! with children in order, like `validate_graph`, so the depth limit the core enforced on
//! the graph also bounds this recursion (checked again here).
//!
//! Storages: each distinct backing (normally one mmapped file) becomes ONE external
//! ArrayBuffer (V8 refuses two with the same start pointer); a storage is
//! `{key, dtype, untyped, numel, location, buffer, byteOffset, byteLength}`. With
//! `external = false`, or when the runtime refuses external memory (Electron), each storage
//! is copied into its own JS-owned ArrayBuffer at offset 0.
//!
//! Eager loads (`mmap: false` from a path): the file is parsed through a map and each
//! storage gets a JS-owned ArrayBuffer (V8's allocator, filled by [`Fills::run`] from the
//! map), not a Rust buffer behind an external one. Why: V8 frees its own buffers inside the
//! garbage collection that finds them dead, while an external buffer's finalizer waits for a
//! later event-loop turn; so a synchronous loop of loads reuses the memory the last load
//! dropped (no fresh page faults: glibc hands the same chunks back), instead of holding every
//! result until it yields. Nested storages (legacy views) share their container's buffer.

use crate::js::{External, Js, V};
use napi::{Error, Result, Status};
use std::sync::Arc;
use torchsave_core::bytes::{Backing, ByteView};
use torchsave_core::value::{Node, ObjectKind, PyObject, Tensor};
use torchsave_core::{ErrorCode, Graph, LoadInfo, Value};

pub struct ToJs<'g> {
    js: Js,
    graph: &'g Graph,
    cache: Vec<Option<V>>,
    depth: usize,
    max_depth: usize,
}

impl<'g> ToJs<'g> {
    pub fn new(js: Js, graph: &'g Graph, max_depth: usize) -> Self {
        ToJs {
            js,
            graph,
            cache: vec![None; graph.nodes.len()],
            depth: 0,
            max_depth,
        }
    }

    /// `{root, storages, info}`.
    pub fn loaded(&mut self, info: Option<&LoadInfo>, external: bool) -> Result<V> {
        let (out, fills) = self.loaded_eager(info, external, None)?;
        debug_assert!(fills.is_empty());
        Ok(out)
    }

    /// [`ToJs::loaded`], giving the storages that live in `eager` (the file's map) JS-owned
    /// buffers of their own; their bytes are copied by running the returned [`Fills`] before
    /// JS sees the value.
    pub fn loaded_eager(
        &mut self,
        info: Option<&LoadInfo>,
        external: bool,
        eager: Option<&ByteView>,
    ) -> Result<(V, Fills)> {
        let js = self.js;
        let out = js.object()?;
        let (storages, fills) = storages(js, self.graph, external, eager)?;
        js.set(out, c"storages", storages)?;
        let root = self.value(self.graph.root())?;
        js.set(out, c"root", root)?;
        if let Some(info) = info {
            js.set(out, c"info", info_to_js(js, info)?)?;
        }
        Ok((out, fills))
    }

    pub fn value(&mut self, v: &Value) -> Result<V> {
        let js = self.js;
        match v {
            Value::None => js.null(),
            Value::Bool(b) => js.bool(*b),
            Value::Int(i) => js.int(*i),
            Value::BigInt(b) => {
                let (sign, words) = b.to_u64_digits();
                js.bigint_words(sign == num_bigint::Sign::Minus, &words)
            }
            Value::Float(f) => {
                if f.is_finite() && f.fract() == 0.0 {
                    let o = tagged(js, c"float")?;
                    js.set(o, c"v", js.f64(*f)?)?;
                    Ok(o)
                } else {
                    js.f64(*f)
                }
            }
            Value::Complex(re, im) => {
                let o = tagged(js, c"complex")?;
                js.set(o, c"re", js.f64(*re)?)?;
                js.set(o, c"im", js.f64(*im)?)?;
                Ok(o)
            }
            Value::Str(s) => js.string(s),
            Value::Bytes(b) => js.uint8array_copy(b),
            Value::Ref(id) => self.node(*id),
        }
    }

    fn values(&mut self, items: &[Value]) -> Result<V> {
        let arr = self.js.array(items.len())?;
        for (i, x) in items.iter().enumerate() {
            let v = self.value(x)?;
            self.js.set_index(arr, i, v)?;
        }
        Ok(arr)
    }

    fn pairs(&mut self, items: &[(Value, Value)]) -> Result<V> {
        let arr = self.js.array(items.len().saturating_mul(2))?;
        for (i, (k, v)) in items.iter().enumerate() {
            let kv = self.value(k)?;
            self.js.set_index(arr, 2 * i, kv)?;
            let vv = self.value(v)?;
            self.js.set_index(arr, 2 * i + 1, vv)?;
        }
        Ok(arr)
    }

    fn node(&mut self, id: usize) -> Result<V> {
        if let Some(Some(v)) = self.cache.get(id) {
            return Ok(*v);
        }
        let graph = self.graph;
        let node = graph.node(id).ok_or_else(|| {
            Error::new(Status::InvalidArg, format!("dangling node reference {id}"))
        })?;
        if self.depth >= self.max_depth {
            let e = crate::error::core(
                ErrorCode::LimitExceeded,
                format!("value nesting deeper than {} levels", self.max_depth),
            );
            return Err(crate::error::to_napi_js(self.js, &e));
        }
        self.depth += 1;
        let r = self.node_inner(id, node);
        self.depth -= 1;
        r
    }

    /// Creates the JS value for `node`, caches it, then fills in its children.
    fn node_inner(&mut self, id: usize, node: &Node) -> Result<V> {
        let js = self.js;
        let out = match node {
            Node::List(_) => js.array(0)?,
            Node::Tuple(_) => tagged(js, c"tuple")?,
            Node::Dict(_) => tagged(js, c"dict")?,
            Node::OrderedDict { .. } => tagged(js, c"odict")?,
            Node::Set(_) => tagged(js, c"set")?,
            Node::FrozenSet(_) => tagged(js, c"frozenset")?,
            Node::ByteArray(_) => tagged(js, c"bytearray")?,
            Node::Tensor(_) => tagged(js, c"tensor")?,
            Node::SparseTensor(_) => tagged(js, c"sparse")?,
            Node::Storage(_) => tagged(js, c"storage")?,
            Node::Size(_) => tagged(js, c"size")?,
            Node::Device(_) => tagged(js, c"device")?,
            Node::Dtype(_) => tagged(js, c"dtype")?,
            Node::Layout(_) => tagged(js, c"layout")?,
            Node::Global { .. } => tagged(js, c"global")?,
            Node::NdArray(_) => tagged(js, c"ndarray")?,
            Node::NpScalar(_) => tagged(js, c"npscalar")?,
            Node::Object(_) => tagged(js, c"object")?,
        };
        if let Some(slot) = self.cache.get_mut(id) {
            *slot = Some(out);
        }
        match node {
            Node::List(items) => {
                for (i, x) in items.iter().enumerate() {
                    let v = self.value(x)?;
                    js.set_index(out, i, v)?;
                }
            }
            Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items) => {
                let a = self.values(items)?;
                js.set(out, c"items", a)?;
            }
            Node::Dict(items) => {
                let a = self.pairs(items)?;
                js.set(out, c"items", a)?;
            }
            Node::OrderedDict { items, state } => {
                let a = self.pairs(items)?;
                js.set(out, c"items", a)?;
                if let Some(s) = state {
                    let sv = self.value(s)?;
                    js.set(out, c"state", sv)?;
                }
            }
            Node::ByteArray(b) => js.set(out, c"data", js.uint8array_copy(b)?)?,
            Node::Tensor(t) => self.tensor(out, t)?,
            Node::SparseTensor(s) => {
                js.set(out, c"layout", js.string(&s.layout)?)?;
                let a = self.values(&s.args)?;
                js.set(out, c"args", a)?;
                js.set(out, c"requiresGrad", js.bool(s.requires_grad)?)?;
            }
            Node::Storage(sid) => js.set(out, c"storage", js.f64(*sid as f64)?)?,
            Node::Size(dims) => js.set(out, c"dims", ints(js, dims)?)?,
            Node::Device(d) => js.set(out, c"v", js.string(d)?)?,
            Node::Dtype(d) => js.set(out, c"v", js.string(d.name())?)?,
            Node::Layout(l) => js.set(out, c"v", js.string(l)?)?,
            Node::Global { module, name } => {
                js.set(out, c"module", js.string(module)?)?;
                js.set(out, c"name", js.string(name)?)?;
            }
            Node::NdArray(a) => {
                js.set(out, c"module", js.string(&a.module)?)?;
                js.set(out, c"descr", js.string(&a.descr)?)?;
                js.set(out, c"shape", ints(js, &a.shape)?)?;
                js.set(out, c"fortran", js.bool(a.fortran_order)?)?;
                js.set(out, c"data", js.uint8array_copy(&a.data)?)?;
                if let Some(items) = &a.items {
                    let v = self.value(items)?;
                    js.set(out, c"items", v)?;
                }
            }
            Node::NpScalar(s) => {
                js.set(out, c"module", js.string(&s.module)?)?;
                js.set(out, c"descr", js.string(&s.descr)?)?;
                js.set(out, c"data", js.uint8array_copy(&s.data)?)?;
            }
            Node::Object(o) => self.object(out, o)?,
        }
        Ok(out)
    }

    fn tensor(&mut self, out: V, t: &Tensor) -> Result<()> {
        let js = self.js;
        let storage = match t.storage {
            Some(s) => js.f64(s as f64)?,
            None => js.null()?,
        };
        js.set(out, c"storage", storage)?;
        js.set(out, c"dtype", js.string(t.dtype.name())?)?;
        js.set(out, c"shape", ints(js, &t.shape)?)?;
        js.set(out, c"stride", ints(js, &t.stride)?)?;
        js.set(out, c"offset", js.f64(t.storage_offset as f64)?)?;
        js.set(out, c"requiresGrad", js.bool(t.requires_grad)?)?;
        js.set(out, c"parameter", js.bool(t.is_parameter)?)?;
        if let Some(s) = &t.parameter_state {
            let v = self.value(s)?;
            js.set(out, c"parameterState", v)?;
        }
        if let Some(q) = &t.quantizer {
            let qo = js.object()?;
            js.set(qo, c"scheme", js.string(&q.scheme)?)?;
            let p = self.values(&q.params)?;
            js.set(qo, c"params", p)?;
            js.set(out, c"quantizer", qo)?;
        }
        if let Some(m) = &t.metadata {
            let v = self.value(m)?;
            js.set(out, c"metadata", v)?;
        }
        if let Some(sc) = &t.subclass {
            let so = js.object()?;
            js.set(so, c"module", js.string(&sc.module)?)?;
            js.set(so, c"name", js.string(&sc.name)?)?;
            let st = self.value(&sc.state)?;
            js.set(so, c"state", st)?;
            js.set(out, c"subclass", so)?;
        }
        if let Some(d) = &t.device {
            js.set(out, c"device", js.string(d)?)?;
        }
        Ok(())
    }

    fn object(&mut self, out: V, o: &PyObject) -> Result<()> {
        let js = self.js;
        js.set(out, c"module", js.string(&o.module)?)?;
        js.set(out, c"name", js.string(&o.name)?)?;
        let kind = match o.kind {
            ObjectKind::Reduce => "reduce",
            ObjectKind::NewObj => "newobj",
            ObjectKind::NewObjEx => "newobj_ex",
            ObjectKind::Inst => "inst",
        };
        js.set(out, c"kind", js.string(kind)?)?;
        let args = self.value(&o.args)?;
        js.set(out, c"args", args)?;
        if let Some(k) = &o.kwargs {
            let v = self.value(k)?;
            js.set(out, c"kwargs", v)?;
        }
        if let Some(s) = &o.state {
            let v = self.value(s)?;
            js.set(out, c"state", v)?;
        }
        let li = self.values(&o.list_items)?;
        js.set(out, c"listItems", li)?;
        let di = self.pairs(&o.dict_items)?;
        js.set(out, c"dictItems", di)?;
        Ok(())
    }
}

fn tagged(js: Js, tag: &std::ffi::CStr) -> Result<V> {
    let o = js.object()?;
    let t = js.string(
        tag.to_str()
            .map_err(|_| Error::new(Status::InvalidArg, "tag"))?,
    )?;
    js.set(o, c"t", t)?;
    Ok(o)
}

fn ints(js: Js, xs: &[i64]) -> Result<V> {
    let arr = js.array(xs.len())?;
    for (i, x) in xs.iter().enumerate() {
        js.set_index(arr, i, js.int(*x)?)?;
    }
    Ok(arr)
}

fn info_to_js(js: Js, info: &LoadInfo) -> Result<V> {
    let o = js.object()?;
    js.set(o, c"format", js.string(info.format.as_str())?)?;
    let g = js.array(info.globals.len())?;
    for (i, s) in info.globals.iter().enumerate() {
        js.set_index(g, i, js.string(s)?)?;
    }
    js.set(o, c"globals", g)?;
    js.set(o, c"bigEndian", js.bool(info.big_endian)?)?;
    js.set(
        o,
        c"pickleProtocol",
        js.f64(f64::from(info.pickle_protocol))?,
    )?;
    if let Some(a) = &info.archive_name {
        js.set(o, c"archiveName", js.string(a)?)?;
    }
    if let Some(v) = &info.version {
        js.set(o, c"version", js.string(v)?)?;
    }
    Ok(o)
}

/// One copy from the file's map into a JS-owned buffer.
struct Fill {
    dst: usize,
    src: usize,
    len: usize,
}

/// A stored zip record's CRC-32, checked by [`Fills::run`] on the copy of that exact range.
pub struct RecordCrc {
    pub start: usize,
    pub len: usize,
    pub crc: u32,
    pub name: String,
}

/// The copies an eager load still has to make (the JS buffers exist, their bytes do not yet).
/// Plain addresses, so the copies can run on a worker thread: the buffers stay alive because
/// the value holding them is referenced until the copies are done, and JS cannot see them.
#[derive(Default)]
pub struct Fills {
    jobs: Vec<Fill>,
}

/// Copies run in pieces of this size on rayon's threads; after each piece the map's pages of
/// it are dropped, so the file pages never add a second copy's worth to RSS.
const FILL_PIECE: usize = 8 << 20;

impl Fills {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Copies every piece from `map` (the file map the storages were parsed from), checking
    /// the CRC-32 of each copy whose range is a record of `crc` on the copied bytes (still in
    /// cache): `E_BAD_CRC` names the record.
    pub fn run(&self, map: &ByteView, crc: &[RecordCrc]) -> torchsave_core::Result<()> {
        use rayon::prelude::*;
        let src_all = map.backing().bytes();
        // (fill index, dst, src, len) per piece, in order.
        let pieces: Vec<(usize, usize, usize, usize)> = self
            .jobs
            .iter()
            .enumerate()
            .flat_map(|(j, f)| {
                (0..f.len.div_ceil(FILL_PIECE)).map(move |k| {
                    let at = k * FILL_PIECE;
                    (j, f.dst + at, f.src + at, FILL_PIECE.min(f.len - at))
                })
            })
            .collect();
        let want: Vec<Option<&RecordCrc>> = self
            .jobs
            .iter()
            .map(|f| crc.iter().find(|r| r.start == f.src && r.len == f.len))
            .collect();
        let hashes: Vec<Option<crc32fast::Hasher>> = pieces
            .par_iter()
            .map(|&(j, dst, src, len)| {
                let from = src_all.get(src..src + len)?;
                // SAFETY: `dst..dst+len` lies in a JS-owned buffer made for this fill, written
                // by this piece only, and alive while the load's value is referenced.
                unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), dst as *mut u8, len) };
                drop_pages(from);
                want.get(j).copied().flatten()?;
                let mut h = crc32fast::Hasher::new();
                // SAFETY: the bytes just written.
                h.update(unsafe { std::slice::from_raw_parts(dst as *const u8, len) });
                Some(h)
            })
            .collect();
        let mut acc: Vec<Option<crc32fast::Hasher>> = vec![None; self.jobs.len()];
        for (&(j, ..), h) in pieces.iter().zip(hashes) {
            if let (Some(h), Some(slot)) = (h, acc.get_mut(j)) {
                match slot {
                    Some(a) => a.combine(&h),
                    None => *slot = Some(h),
                }
            }
        }
        // The copies read the file's mapping: one truncated meanwhile gave zeros, not SIGBUS.
        map.check()?;
        for (w, a) in want.iter().zip(acc) {
            let (Some(r), Some(a)) = (w, a) else { continue };
            let actual = a.finalize();
            if actual != r.crc {
                return Err(torchsave_core::error::Error::new(
                    torchsave_core::ErrorCode::BadCrc,
                    format!(
                        "CRC-32 of record '{}' is {actual:08x} but the archive says {:08x}: the file is corrupted",
                        r.name, r.crc
                    ),
                )
                .in_record(r.name.clone()));
            }
        }
        Ok(())
    }
}

/// Drops the map's pages of `bytes` from this process (the file stays in the page cache).
/// Only the whole pages inside are dropped; the map is private and never written here.
fn drop_pages(bytes: &[u8]) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = (bytes.as_ptr() as usize).div_ceil(PAGE) * PAGE;
        let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: a page-aligned range inside a private file mapping that nothing writes;
            // MADV_DONTNEED makes later reads fetch the file's bytes again.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

/// The storages array, exposing each backing at most once; storages inside `eager` get
/// JS-owned buffers (outermost ranges own one, nested ranges view it) to be filled.
fn storages(
    js: Js,
    graph: &Graph,
    mut external: bool,
    eager: Option<&ByteView>,
) -> Result<(V, Fills)> {
    let arr = js.array(graph.storages.len())?;
    let mut fills = Fills::default();
    // Per storage in the map: (its buffer, offset in it).
    let mut owned: Vec<Option<(V, usize)>> = vec![None; graph.storages.len()];
    if let Some(map) = eager {
        // Collecting for these bytes happened at the load's entry (`tasks::before_load`); the
        // buffers made here are tracked for the next one.
        let env = napi::Env::from_raw(js.raw_env());
        let mut ranges: Vec<(usize, usize, usize)> = graph
            .storages
            .iter()
            .enumerate()
            .filter(|(_, st)| !st.data.is_empty() && st.data.same_backing(map))
            .map(|(i, st)| {
                let start = st.data.offset_in_backing();
                (i, start, start + st.data.len())
            })
            .collect();
        ranges.sort_by_key(|&(_, start, end)| (start, std::cmp::Reverse(end)));
        let mut root: Option<(V, usize, usize)> = None; // (buffer, start, end)
        for (i, start, end) in ranges {
            let inside = matches!(root, Some((_, rs, re)) if start >= rs && end <= re);
            if !inside {
                let len = end - start;
                // Pooled memory for big storages where the runtime allows external buffers
                // (napi-common's `pool`), else a JS-owned buffer; either is tracked for
                // `pressure` when big. Small ones stay JS-owned: a mapping per 4-byte storage
                // made a 2,000-tensor load 2,000 mappings (and the process's map count finite).
                let big = len >= torchsave_napi_common::pool::POOL_FROM;
                let pooled = if external && big {
                    let made = js.arraybuffer_pooled(len)?;
                    external = made.is_some();
                    made
                } else {
                    None
                };
                let (ab, ptr) = match pooled {
                    Some(made) => made,
                    None => {
                        let (ab, ptr) = js.arraybuffer_uninit(len)?;
                        // SAFETY: `ab` is the buffer just made on this env.
                        unsafe { torchsave_napi_common::pressure::track(&env, ab, len) };
                        (ab, ptr)
                    }
                };
                fills.jobs.push(Fill {
                    dst: ptr as usize,
                    src: start,
                    len: end - start,
                });
                root = Some((ab, start, end));
            }
            if let (Some((ab, rs, _)), Some(slot)) = (root, owned.get_mut(i)) {
                *slot = Some((ab, start - rs));
            }
        }
    }
    // (backing identity, its ArrayBuffer); a file has one backing, so a Vec scan is cheap.
    let mut exposed: Vec<(*const u8, V)> = Vec::new();
    let mut mapped: Vec<V> = Vec::new();
    for (i, s) in graph.storages.iter().enumerate() {
        let o = js.object()?;
        js.set(o, c"key", js.string(&s.key)?)?;
        js.set(o, c"dtype", js.string(s.dtype.name())?)?;
        js.set(o, c"untyped", js.bool(s.untyped)?)?;
        js.set(o, c"numel", js.f64(s.numel as f64)?)?;
        js.set(o, c"location", js.string(&s.location)?)?;
        let (buffer, offset) = if let Some(Some(b)) = owned.get(i) {
            *b
        } else if s.data.is_empty() {
            (js.arraybuffer_copy(&[])?, 0)
        } else {
            let backing: &Arc<dyn Backing> = s.data.backing();
            let id = Arc::as_ptr(backing) as *const u8;
            let found = exposed.iter().find(|(p, _)| *p == id).map(|(_, v)| *v);
            match found {
                Some(ab) => (ab, s.data.offset_in_backing()),
                None if external => match js.arraybuffer_external(backing)? {
                    External::Created(ab) => {
                        exposed.push((id, ab));
                        if torchsave_core::mapguard::is_guarded(backing.bytes().as_ptr()) {
                            mapped.push(ab);
                        }
                        (ab, s.data.offset_in_backing())
                    }
                    External::NotAllowed => {
                        external = false;
                        (js.arraybuffer_copy(s.data.as_slice())?, 0)
                    }
                },
                None => (js.arraybuffer_copy(s.data.as_slice())?, 0),
            }
        };
        js.set(o, c"buffer", buffer)?;
        if mapped.contains(&buffer) {
            // The TS facade checks such storages at its library calls (`checkMapping`).
            js.set(o, c"mapped", js.bool(true)?)?;
        }
        js.set(o, c"byteOffset", js.f64(offset as f64)?)?;
        js.set(o, c"byteLength", js.f64(s.data.len() as f64)?)?;
        js.set_index(arr, i, o)?;
    }
    // Copies read the file's mapping: a file truncated meanwhile gave zeros, not SIGBUS.
    for s in &graph.storages {
        s.data
            .check()
            .map_err(|e| crate::error::to_napi_js(js, &e))?;
    }
    Ok((arr, fills))
}
