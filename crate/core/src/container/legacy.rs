//! The legacy stream format (torch 0.1.10 – 1.5 default; `_use_new_zipfile_serialization=False`
//! still writes it). FORMAT.md 4.1. Five pickles back to back, then raw storages:
//!
//! 1. the magic number `0x1950a86a20f9469cfc6c` (LONG1 in protocol 2, `L...L\n` in 0/1);
//! 2. the protocol version, 1001;
//! 3. `sys_info` (`protocol_version`, `little_endian`, `type_sizes`);
//! 4. the object, storages as persistent ids `('storage', type, key, location, numel, view)`
//!    and, for whole modules, `('module', cls, source_file, source)`;
//! 5. the list of storage keys;
//! 6. per key, in list order: an 8-byte little-endian element count, then the raw elements.
//!
//! Storages come after the object pickle, so [`LegacySource`] answers "not known yet" and the
//! persistent loader creates them with empty data; [`load`] then fills `Storage::data` by key
//! with zero-copy views of the input (mmap or memory alike). The element count must equal the
//! persistent id's numel (`E_STORAGE_SIZE`), as torch's `_set_from_file` checks.
//!
//! Views: files from before 1.0 may carry `view_metadata = (view_key, offset, size)`, meaning
//! "storage `view_key` is elements `offset..offset+size` of root storage `key`". The wrapper
//! loader rewrites such ids to plain ids for `view_key` and records the slice; after the tail
//! is read, each view storage gets its window of the root's bytes.
//!
//! Byte order: torch >= 1.0 always writes little-endian counts and data (big-endian hosts
//! convert) and ignores `sys_info`. Torch 0.x wrote native order, so a file with
//! `little_endian: False` may hold big-endian data. We decide from the bytes: when sys_info says
//! big-endian and the first count only matches its persistent id read as big-endian, every
//! count and element is big-endian and storages are swapped into owned buffers
//! (`LoadInfo::big_endian`).

use super::torch_pickle::{self, NoPersistentIds};
use super::{LoadInfo, Loaded};
use crate::bytes::{byteswapped, ByteView};
use crate::dtype::DType;
use crate::error::Result;
use crate::options::LoadOptions;
use crate::pickle::{self, PersistentLoad, StorageSource, TorchPersistentLoader};
use crate::value::{Format, Graph, Node, Value};
use std::collections::HashMap;

/// The magic number every legacy stream starts with.
pub const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
/// The protocol version of the legacy stream (1000 was the tar era).
pub const PROTOCOL_VERSION: i128 = 1001;

/// Parses a pickle that holds one integer: `[PROTO n] (LONG1|BININT|BININT1|BININT2|INT|LONG) STOP`.
/// Returns the value and the bytes consumed, or `None` when the bytes are not such a pickle.
pub fn small_int_pickle(b: &[u8]) -> Option<(i128, usize)> {
    let mut p = 0usize;
    if b.first() == Some(&0x80) {
        p = 2;
    }
    // Protocol 4+ wraps every pickle in a FRAME (opcode + u64 length); skip it.
    if b.get(p) == Some(&0x95) {
        p += 9;
    }
    let op = *b.get(p)?;
    p += 1;
    let value: i128 = match op {
        0x8a => {
            let n = *b.get(p)? as usize;
            p += 1;
            if n > 16 {
                return None;
            }
            let bytes = b.get(p..p + n)?;
            p += n;
            let mut buf = if bytes.last().is_some_and(|&x| x & 0x80 != 0) {
                [0xffu8; 16]
            } else {
                [0u8; 16]
            };
            buf.get_mut(..n)?.copy_from_slice(bytes);
            i128::from_le_bytes(buf)
        }
        b'J' => {
            let v = i32::from_le_bytes(b.get(p..p + 4)?.try_into().ok()?);
            p += 4;
            v as i128
        }
        b'K' => {
            p += 1;
            *b.get(p - 1)? as i128
        }
        b'M' => {
            let v = u16::from_le_bytes(b.get(p..p + 2)?.try_into().ok()?);
            p += 2;
            v as i128
        }
        b'I' | b'L' => {
            let end = p + b.get(p..)?.iter().take(64).position(|&c| c == b'\n')?;
            let text = std::str::from_utf8(b.get(p..end)?).ok()?;
            p = end + 1;
            text.trim_end_matches('L').parse().ok()?
        }
        _ => return None,
    };
    if b.get(p) != Some(&b'.') {
        return None;
    }
    Some((value, p + 1))
}

/// True when the bytes start with the pickled legacy magic number.
pub fn has_legacy_magic(b: &[u8]) -> bool {
    small_int_pickle(b).is_some_and(|(v, _)| v == MAGIC_NUMBER)
}

/// Storages are not known while the object pickle runs; this records what was asked.
#[derive(Default)]
struct LegacySource {
    /// key -> (dtype, numel) from the first persistent id naming it.
    requested: HashMap<String, (DType, u64)>,
}

impl StorageSource for LegacySource {
    fn storage(&mut self, key: &str, dtype: DType, nbytes: u64) -> Result<Option<ByteView>> {
        let es = dtype.element_size() as u64;
        self.requested
            .entry(key.to_string())
            .or_insert((dtype, nbytes / es.max(1)));
        Ok(None)
    }
}

/// A view storage: `view_key` is `size` elements of `root_key` starting at element `offset`.
#[derive(Clone, Debug)]
struct LegacyView {
    view_key: String,
    root_key: String,
    dtype: DType,
    root_numel: u64,
    offset: u64,
    size: u64,
}

/// Wraps torch's loader: handles `'module'` ids and storage views, passes the rest through.
/// Under `weights_only` a `'module'` id never gets here: the unpickler's policy refuses every
/// persistent id that is not `('storage', ...)` first (`Policy::persistent_id`), as torch does.
struct LegacyLoader<'a> {
    inner: TorchPersistentLoader<'a>,
    views: Vec<LegacyView>,
}

fn as_str(graph: &Graph, v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::Int(i) => Some(i.to_string()),
        Value::Ref(_) => match graph.deref(v?)? {
            Node::ByteArray(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

/// The dtype a pickled storage class names (`torch.FloatStorage` GLOBAL).
pub(crate) fn storage_type_dtype(graph: &Graph, v: Option<&Value>) -> Option<DType> {
    match graph.deref(v?)? {
        Node::Global { name, .. } => {
            DType::from_storage_class(name.rsplit('.').next().unwrap_or(name))
        }
        Node::Dtype(d) => Some(*d),
        _ => None,
    }
}

impl PersistentLoad for LegacyLoader<'_> {
    fn persistent_load(&mut self, graph: &mut Graph, pid: Value) -> Result<Value> {
        let items = match graph.deref(&pid) {
            Some(Node::Tuple(items)) => items.clone(),
            _ => return self.inner.persistent_load(graph, pid),
        };
        match as_str(graph, items.first()).as_deref() {
            Some("module") => Ok(items.get(1).cloned().unwrap_or(Value::None)),
            Some("storage") if items.len() == 6 && items.get(5) != Some(&Value::None) => {
                let view = match items.get(5).and_then(|v| graph.deref(v)) {
                    Some(Node::Tuple(v)) => v.clone(),
                    _ => crate::bail!(
                        BadPickle,
                        "legacy storage view metadata is not a (key, offset, size) tuple"
                    ),
                };
                let bad = || {
                    crate::err!(
                        BadPickle,
                        "legacy storage view metadata is not a (key, offset, size) tuple"
                    )
                };
                let view_key = as_str(graph, view.first()).ok_or_else(bad)?;
                let offset = as_u64(view.get(1)).ok_or_else(bad)?;
                let size = as_u64(view.get(2)).ok_or_else(bad)?;
                let root_key = as_str(graph, items.get(2)).ok_or_else(bad)?;
                let root_numel = as_u64(items.get(4)).ok_or_else(bad)?;
                let dtype = storage_type_dtype(graph, items.get(1)).ok_or_else(|| {
                    crate::err!(UnsupportedDtype, "unknown storage type in a legacy view")
                })?;
                if !self.views.iter().any(|v| v.view_key == view_key) {
                    self.views.push(LegacyView {
                        view_key: view_key.clone(),
                        root_key,
                        dtype,
                        root_numel,
                        offset,
                        size,
                    });
                }
                let size_v = i64::try_from(size).map_err(|_| bad())?;
                let plain = graph.add(Node::Tuple(vec![
                    items.first().cloned().unwrap_or(Value::None),
                    items.get(1).cloned().unwrap_or(Value::None),
                    Value::Str(view_key),
                    items.get(3).cloned().unwrap_or(Value::None),
                    Value::Int(size_v),
                    Value::None,
                ]));
                self.inner.persistent_load(graph, plain)
            }
            _ => self.inner.persistent_load(graph, pid),
        }
    }
}

fn rest(b: &[u8], pos: usize) -> &[u8] {
    b.get(pos..).unwrap_or(&[])
}

/// Reads the `little_endian` flag of a sys_info dict (default true).
fn sys_info_little_endian(graph: &Graph, root: &Value) -> bool {
    if let Some(Node::Dict(items)) = graph.deref(root) {
        for (k, v) in items {
            if matches!(k, Value::Str(s) if s == "little_endian") {
                return !matches!(v, Value::Bool(false) | Value::Int(0));
            }
        }
    }
    true
}

/// Where each storage's bytes are in the stream, per key.
#[derive(Debug, Default)]
pub struct StorageTail {
    pub data: HashMap<String, ByteView>,
    /// The counts and data were big-endian (torch 0.x on a big-endian host).
    pub big_endian: bool,
    /// Offset just past the last storage.
    pub end: usize,
}

/// Reads the raw storages that follow the key list, starting at `pos`. `expected` gives each
/// key's dtype and element count (from its persistent id). `maybe_big_endian`: sys_info said
/// the writer was big-endian.
pub fn read_storage_tail(
    bytes: &ByteView,
    mut pos: usize,
    keys: &[String],
    expected: &HashMap<String, (DType, u64)>,
    maybe_big_endian: bool,
) -> Result<StorageTail> {
    let b = bytes.as_slice();
    let mut out = StorageTail::default();
    let mut order: Option<bool> = None; // Some(true) = big-endian, decided by the first storage.
    for key in keys {
        let Some(&(dtype, numel)) = expected.get(key) else {
            crate::bail!(
                BadPickle,
                "storage key '{key}' is in the key list but no persistent id names it"
            );
        };
        let raw: [u8; 8] = b
            .get(pos..pos.saturating_add(8))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                crate::err!(Truncated, "the stream ends before storage '{key}'").at(pos as u64)
            })?;
        let (le, be) = (u64::from_le_bytes(raw), u64::from_be_bytes(raw));
        let big = *order.get_or_insert(maybe_big_endian && le != numel && be == numel);
        let count = if big { be } else { le };
        if count != numel {
            return Err(crate::err!(
                StorageSize,
                "storage '{key}' holds {count} elements in the stream but its persistent id says {numel} ({dtype})"
            )
            .at(pos as u64));
        }
        let nbytes = count
            .checked_mul(dtype.element_size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                crate::err!(
                    StorageSize,
                    "storage '{key}' is too large ({count} elements)"
                )
            })?;
        let start = pos + 8;
        let view = start
            .checked_add(nbytes)
            .and_then(|end| bytes.slice(start..end))
            .ok_or_else(|| {
                crate::err!(
                    Truncated,
                    "the stream ends inside storage '{key}' ({nbytes} bytes)"
                )
                .at(start as u64)
            })?;
        pos = start + nbytes;
        let view = if big && dtype.swap_unit() > 1 {
            ByteView::from_vec(byteswapped(view.as_slice(), dtype.swap_unit()))
        } else {
            view
        };
        out.data.insert(key.clone(), view);
    }
    out.big_endian = order == Some(true);
    out.end = pos;
    Ok(out)
}

/// Loads a legacy stream. The caller validates the graph.
pub fn load(bytes: ByteView, opts: &LoadOptions) -> Result<Loaded> {
    let b = bytes.as_slice();
    let Some((magic, n1)) = small_int_pickle(b).filter(|&(v, _)| v == MAGIC_NUMBER) else {
        crate::bail!(
            BadMagic,
            "invalid magic number: this is not a legacy torch.save stream, or it is corrupt"
        );
    };
    let Some((version, n2)) = small_int_pickle(rest(b, n1)) else {
        return Err(crate::err!(
            BadMagic,
            "the legacy stream's protocol version is unreadable; corrupt file?"
        )
        .at(n1 as u64));
    };
    let _ = magic;
    if version != PROTOCOL_VERSION {
        crate::bail!(
            UnsupportedVersion,
            "legacy protocol version {version} is not supported (expected {PROTOCOL_VERSION})"
        );
    }
    let mut pos = n1 + n2;
    let uopts = torch_pickle::unpickle_options(opts);
    let mut scratch = Graph::new();
    let sys = pickle::unpickle(rest(b, pos), &mut scratch, &uopts, &mut NoPersistentIds)
        .map_err(|e| e.in_record("sys_info").at(pos as u64))?;
    let little = sys_info_little_endian(&scratch, &sys.root);
    pos += sys.consumed;

    let mut src = LegacySource::default();
    let mut graph = Graph::new();
    let (out, views) = {
        let mut loader = LegacyLoader {
            inner: torch_pickle::torch_loader(&mut src),
            views: Vec::new(),
        };
        let out = pickle::unpickle(rest(b, pos), &mut graph, &uopts, &mut loader)
            .map_err(|e| e.in_record("object pickle").at(pos as u64))?;
        (out, loader.views)
    };
    pos += out.consumed;

    let keys_out = pickle::unpickle(rest(b, pos), &mut scratch, &uopts, &mut NoPersistentIds)
        .map_err(|e| e.in_record("storage key list").at(pos as u64))?;
    pos += keys_out.consumed;
    let keys: Vec<String> = match scratch.deref(&keys_out.root) {
        Some(Node::List(items)) | Some(Node::Tuple(items)) => items
            .iter()
            .map(|k| as_str(&scratch, Some(k)))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                crate::err!(
                    BadPickle,
                    "the storage key list holds something other than strings"
                )
            })?,
        _ => crate::bail!(BadPickle, "the storage key list is not a list"),
    };

    let mut expected = src.requested;
    for v in &views {
        expected
            .entry(v.root_key.clone())
            .or_insert((v.dtype, v.root_numel));
    }
    let tail = read_storage_tail(&bytes, pos, &keys, &expected, !little)?;
    attach(&mut graph, &tail.data, &views)?;
    graph.root = Some(out.root);
    Ok(Loaded {
        graph,
        info: LoadInfo {
            format: Format::Legacy,
            globals: out.globals,
            big_endian: tail.big_endian,
            pickle_protocol: out.protocol,
            archive_name: None,
            version: None,
            weights_only_refusal: sys
                .weights_only_refusal
                .or(out.weights_only_refusal)
                .or(keys_out.weights_only_refusal),
        },
    })
}

/// Fills every storage of the graph from the tail (by key) or as a view of its root.
fn attach(graph: &mut Graph, data: &HashMap<String, ByteView>, views: &[LegacyView]) -> Result<()> {
    for s in &mut graph.storages {
        let bytes = if let Some(d) = data.get(&s.key) {
            d.clone()
        } else if let Some(v) = views.iter().find(|v| v.view_key == s.key) {
            let root = data.get(&v.root_key).ok_or_else(|| {
                crate::err!(
                    MissingRecord,
                    "view '{}' names root storage '{}', which the stream lacks",
                    v.view_key,
                    v.root_key
                )
            })?;
            let es = v.dtype.element_size() as u64;
            let range = v
                .offset
                .checked_mul(es)
                .zip(v.offset.checked_add(v.size).and_then(|e| e.checked_mul(es)))
                .and_then(|(a, e)| Some(usize::try_from(a).ok()?..usize::try_from(e).ok()?));
            range.and_then(|r| root.slice(r)).ok_or_else(|| {
                crate::err!(
                    StorageBounds,
                    "view '{}' (elements {}..+{}) reaches outside root storage '{}'",
                    v.view_key,
                    v.offset,
                    v.size,
                    v.root_key
                )
            })?
        } else {
            crate::bail!(
                MissingRecord,
                "storage '{}' is not in the stream's key list",
                s.key
            );
        };
        if bytes.len() as u64 != s.nbytes() {
            crate::bail!(
                StorageSize,
                "storage '{}' has {} bytes but its persistent id says {} ({} elements of {})",
                s.key,
                bytes.len(),
                s.nbytes(),
                s.numel,
                s.dtype
            );
        }
        s.data = bytes;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn small_ints() {
        let magic = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
        assert_eq!(small_int_pickle(magic), Some((MAGIC_NUMBER, 15)));
        assert_eq!(
            small_int_pickle(b"\x80\x02\x4d\xe9\x03\x2e"),
            Some((1001, 6))
        );
        assert_eq!(
            small_int_pickle(b"L119547037146038801333356L\n."),
            Some((MAGIC_NUMBER, 28))
        );
        assert_eq!(small_int_pickle(b"I1001\n."), Some((1001, 7)));
        assert_eq!(small_int_pickle(b"K\x05."), Some((5, 3)));
        assert_eq!(small_int_pickle(b"J\xff\xff\xff\xff."), Some((-1, 6)));
        assert_eq!(small_int_pickle(b"\x8a\x01\xff."), Some((-1, 4)));
        assert_eq!(small_int_pickle(b"K\x05"), None);
        assert_eq!(small_int_pickle(b"\x8a\x20"), None);
        for n in 0..magic.len() {
            assert!(!has_legacy_magic(&magic[..n]));
        }
    }

    fn tail_bytes(parts: &[(u64, &[u8])], big: bool) -> ByteView {
        let mut v = b"prefix".to_vec();
        for (n, d) in parts {
            v.extend_from_slice(&if big {
                n.to_be_bytes()
            } else {
                n.to_le_bytes()
            });
            v.extend_from_slice(d);
        }
        ByteView::from_vec(v)
    }

    #[test]
    fn storage_tail_is_zero_copy_and_checked() {
        let bytes = tail_bytes(&[(2, &[1, 0, 0, 0, 2, 0, 0, 0]), (3, &[7, 8, 9])], false);
        let keys = vec!["a".to_string(), "b".to_string()];
        let mut exp = HashMap::new();
        exp.insert("a".to_string(), (DType::Int32, 2));
        exp.insert("b".to_string(), (DType::UInt8, 3));
        let t = read_storage_tail(&bytes, 6, &keys, &exp, false).unwrap();
        assert_eq!(t.data["a"].as_slice(), &[1, 0, 0, 0, 2, 0, 0, 0]);
        assert!(t.data["a"].same_backing(&bytes));
        assert_eq!(t.data["b"].as_slice(), &[7, 8, 9]);
        assert_eq!(t.end, bytes.len());
        assert!(!t.big_endian);

        exp.insert("b".to_string(), (DType::UInt8, 4));
        assert_eq!(
            read_storage_tail(&bytes, 6, &keys, &exp, false)
                .unwrap_err()
                .code,
            ErrorCode::StorageSize
        );
        exp.insert("b".to_string(), (DType::UInt8, 3));
        for cut in 6..bytes.len() {
            let short = bytes.slice(0..cut).unwrap();
            assert_eq!(
                read_storage_tail(&short, 6, &keys, &exp, false)
                    .unwrap_err()
                    .code,
                ErrorCode::Truncated
            );
        }
        let missing = vec!["zz".to_string()];
        assert_eq!(
            read_storage_tail(&bytes, 6, &missing, &exp, false)
                .unwrap_err()
                .code,
            ErrorCode::BadPickle
        );
    }

    #[test]
    fn big_endian_tail_is_swapped() {
        let bytes = tail_bytes(&[(2, &[0, 0, 0, 1, 0, 0, 0, 2])], true);
        let keys = vec!["a".to_string()];
        let mut exp = HashMap::new();
        exp.insert("a".to_string(), (DType::Int32, 2));
        let t = read_storage_tail(&bytes, 6, &keys, &exp, true).unwrap();
        assert!(t.big_endian);
        assert_eq!(t.data["a"].as_slice(), &[1, 0, 0, 0, 2, 0, 0, 0]);
        // Without the sys_info hint a big-endian count is simply wrong.
        assert_eq!(
            read_storage_tail(&bytes, 6, &keys, &exp, false)
                .unwrap_err()
                .code,
            ErrorCode::StorageSize
        );
    }
}
