//! The pre-0.1.10 tar format (FORMAT.md 4.3): a POSIX tar with members `sys_info`, `pickle`,
//! `tensors` and `storages`. Torchvision's oldest model-zoo files use it.
//!
//! Read order follows torch's `legacy_load`:
//! * `storages`: pickled count; per storage a pickled `(key, location, storage_type)`, an
//!   8-byte LE element count and the raw little-endian elements (zero-copy views of the input,
//!   located with the tar crate's `raw_file_position`); then a pickled list of views
//!   `(view_key, root_key, offset, numel)` in elements of the root's dtype;
//! * `tensors`: pickled count; per tensor a pickled `(key, storage_key, tensor_type)`, then
//!   int32 LE ndim, 4 padding bytes, ndim int64 sizes, ndim int64 strides, int64 offset. The
//!   dtype is the storage's (torch ignores `tensor_type` too);
//! * `pickle`: the object, whose persistent ids are the keys as strings (torch: `int(id)`)
//!   and, for module classes, `(cls, source_file, source)` tuples (→ the class).
//!
//! Keys are `_cdata` integers (pickled as ints or strings); they are compared as decimal text.
//! Torch refuses this format under `weights_only` ("Cannot use weights_only=True with files
//! saved in the legacy .tar format"): so do we, with `E_UNSAFE_GLOBAL`. `sys_info` is not read.

use super::legacy::{small_int_pickle, storage_type_dtype};
use super::torch_pickle::{self, NoPersistentIds};
use super::{LoadInfo, Loaded};
use crate::bytes::ByteView;
use crate::error::Result;
use crate::options::LoadOptions;
use crate::pickle::policy::Policy;
use crate::pickle::{self, PersistentLoad, UnpickleOptions};
use crate::value::{Format, Graph, Node, Storage, StorageId, Tensor, Value};
use std::collections::HashMap;

/// A tar header: `ustar` magic at 257 (POSIX/GNU), or a valid header checksum (v7 tar).
pub fn looks_like_tar(b: &[u8]) -> bool {
    let Some(h) = b.get(..512) else { return false };
    if h.get(257..262) == Some(b"ustar") {
        return true;
    }
    if h.iter().all(|&x| x == 0) {
        return false;
    }
    let stored = h.get(148..156).unwrap_or(&[]);
    let text: String = stored
        .iter()
        .map(|&c| c as char)
        .filter(|c| c.is_digit(8))
        .collect();
    let Ok(want) = u64::from_str_radix(&text, 8) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as u64
            }
        })
        .sum();
    sum == want
}

/// The byte range of each member, as views of the input.
pub fn members(bytes: &ByteView) -> Result<HashMap<String, ByteView>> {
    let mut out = HashMap::new();
    let mut ar = tar::Archive::new(bytes.as_slice());
    let entries = ar
        .entries()
        .map_err(|e| crate::err!(BadTar, "cannot read the tar archive: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| crate::err!(BadTar, "cannot read a tar member: {e}"))?;
        let name = entry
            .path()
            .map_err(|e| crate::err!(BadTar, "bad tar member name: {e}"))?
            .to_string_lossy()
            .into_owned();
        let start = entry.raw_file_position();
        let size = entry.size();
        let view = start
            .checked_add(size)
            .and_then(|end| Some(usize::try_from(start).ok()?..usize::try_from(end).ok()?))
            .and_then(|r| bytes.slice(r))
            .ok_or_else(|| {
                crate::err!(
                    Truncated,
                    "tar member '{name}' ({size} bytes) runs past the end of the file"
                )
                .at(start)
            })?;
        out.insert(name, view);
    }
    Ok(out)
}

/// A cursor over one member, reading pickles and little-endian integers.
struct Reader<'a> {
    member: &'a str,
    view: &'a ByteView,
    pos: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &[u8] {
        self.view.as_slice().get(self.pos..).unwrap_or(&[])
    }
    fn int_pickle(&mut self) -> Result<i128> {
        let (v, n) = small_int_pickle(self.rest()).ok_or_else(|| {
            crate::err!(BadTar, "expected a pickled integer")
                .in_record(self.member)
                .at(self.pos as u64)
        })?;
        self.pos += n;
        Ok(v)
    }
    fn count(&mut self) -> Result<u64> {
        let v = self.int_pickle()?;
        u64::try_from(v)
            .map_err(|_| crate::err!(BadTar, "negative count {v}").in_record(self.member))
    }
    /// Unpickles one tuple into `scratch` and returns its items.
    fn tuple(&mut self, scratch: &mut Graph, uopts: &UnpickleOptions) -> Result<Vec<Value>> {
        let out = pickle::unpickle(self.rest(), scratch, uopts, &mut NoPersistentIds)
            .map_err(|e| e.in_record(self.member).at(self.pos as u64))?;
        self.pos += out.consumed;
        match scratch.deref(&out.root) {
            Some(Node::Tuple(items)) | Some(Node::List(items)) => Ok(items.clone()),
            _ => Err(crate::err!(BadTar, "expected a pickled tuple")
                .in_record(self.member)
                .at(self.pos as u64)),
        }
    }
    fn bytes(&mut self, n: usize) -> Result<ByteView> {
        let v = self
            .pos
            .checked_add(n)
            .and_then(|end| self.view.slice(self.pos..end))
            .ok_or_else(|| {
                crate::err!(Truncated, "member ends inside a {n}-byte field")
                    .in_record(self.member)
                    .at(self.pos as u64)
            })?;
        self.pos += n;
        Ok(v)
    }
    fn i64(&mut self) -> Result<i64> {
        let b = self.bytes(8)?;
        Ok(i64::from_le_bytes(
            b.as_slice().try_into().unwrap_or([0; 8]),
        ))
    }
}

/// A key (`_cdata` int, or its decimal string) as canonical text.
fn key_text(graph: &Graph, v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Int(i) => Some(i.to_string()),
        Value::BigInt(i) => Some(i.to_string()),
        Value::Str(s) => Some(canonical(s)),
        Value::Bytes(b) => Some(canonical(&String::from_utf8_lossy(b))),
        Value::Ref(_) => match graph.deref(v?)? {
            Node::ByteArray(b) => Some(canonical(&String::from_utf8_lossy(b))),
            _ => None,
        },
        _ => None,
    }
}

fn canonical(s: &str) -> String {
    s.trim()
        .parse::<i128>()
        .map(|i| i.to_string())
        .unwrap_or_else(|_| s.to_string())
}

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Str(s) => Some(s.clone()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Maps the object pickle's persistent ids to the storages and tensors built from the members.
struct TarLoader {
    objects: HashMap<String, Value>,
}

impl PersistentLoad for TarLoader {
    fn persistent_load(&mut self, graph: &mut Graph, pid: Value) -> Result<Value> {
        if let Some(Node::Tuple(items)) = graph.deref(&pid) {
            // (cls, source_file, source): a module class.
            return Ok(items.first().cloned().unwrap_or(Value::None));
        }
        let key = key_text(graph, Some(&pid)).ok_or_else(|| {
            crate::err!(
                BadPickle,
                "a tar-format persistent id is neither a key nor a class tuple"
            )
        })?;
        self.objects.get(&key).cloned().ok_or_else(|| {
            crate::err!(
                MissingRecord,
                "object '{key}' is not in the tar's storages or tensors members"
            )
        })
    }
}

/// Loads a tar-format checkpoint. The caller validates the graph.
pub fn load(bytes: ByteView, opts: &LoadOptions) -> Result<Loaded> {
    let m = members(&bytes)?;
    for need in ["storages", "tensors", "pickle"] {
        if !m.contains_key(need) {
            crate::bail!(
                MissingRecord,
                "the tar archive has no '{need}' member; it is not a torch.save checkpoint"
            );
        }
    }
    let mut policy = Policy::for_load(opts);
    policy.container(Format::Tar)?;
    let uopts = torch_pickle::unpickle_options(opts);
    let mut scratch = Graph::new();
    let mut graph = Graph::new();
    let mut storages: HashMap<String, StorageId> = HashMap::new();
    let mut objects: HashMap<String, Value> = HashMap::new();
    let empty = ByteView::empty();

    let sview = m.get("storages").unwrap_or(&empty);
    let mut r = Reader {
        member: "storages",
        view: sview,
        pos: 0,
    };
    let n = r.count()?;
    for _ in 0..n {
        let t = r.tuple(&mut scratch, &uopts)?;
        let bad = || {
            crate::err!(
                BadTar,
                "a storage header is not (key, location, storage_type)"
            )
            .in_record("storages")
        };
        let key = key_text(&scratch, t.first()).ok_or_else(bad)?;
        let location = str_of(t.get(1)).ok_or_else(bad)?;
        let dtype = storage_type_dtype(&scratch, t.get(2)).ok_or_else(|| {
            crate::err!(
                UnsupportedDtype,
                "storage '{key}' has an unknown storage type"
            )
            .in_record("storages")
        })?;
        let count = u64::try_from(r.i64()?)
            .map_err(|_| crate::err!(BadTar, "negative element count").in_record("storages"))?;
        let nbytes = count
            .checked_mul(dtype.element_size() as u64)
            .and_then(|x| usize::try_from(x).ok())
            .ok_or_else(|| {
                crate::err!(StorageSize, "storage '{key}' is too large").in_record("storages")
            })?;
        let data = r.bytes(nbytes)?;
        let sid = graph.add_storage(Storage {
            key: key.clone(),
            dtype,
            untyped: false,
            numel: count,
            location,
            data,
        });
        storages.insert(key.clone(), sid);
        objects.insert(key, graph.add(Node::Storage(sid)));
    }
    let views = r.tuple(&mut scratch, &uopts)?;
    for v in views {
        let items = match scratch.deref(&v) {
            Some(Node::Tuple(items)) | Some(Node::List(items)) => items.clone(),
            _ => crate::bail!(
                BadTar,
                "a storage view is not (view_key, root_key, offset, numel)"
            ),
        };
        let bad = || {
            crate::err!(
                BadTar,
                "a storage view is not (view_key, root_key, offset, numel)"
            )
        };
        let view_key = key_text(&scratch, items.first()).ok_or_else(bad)?;
        let root_key = key_text(&scratch, items.get(1)).ok_or_else(bad)?;
        let (Some(Value::Int(off)), Some(Value::Int(numel))) = (items.get(2), items.get(3)) else {
            return Err(bad());
        };
        let root = storages
            .get(&root_key)
            .and_then(|&s| graph.storages.get(s))
            .cloned()
            .ok_or_else(|| {
                crate::err!(
                    MissingRecord,
                    "view '{view_key}' names unknown root storage '{root_key}'"
                )
            })?;
        let es = root.dtype.element_size() as i64;
        let range = off
            .checked_mul(es)
            .zip(off.checked_add(*numel).and_then(|e| e.checked_mul(es)))
            .and_then(|(a, e)| Some(usize::try_from(a).ok()?..usize::try_from(e).ok()?));
        let data = range.and_then(|r| root.data.slice(r)).ok_or_else(|| {
            crate::err!(
                StorageBounds,
                "view '{view_key}' (elements {off}..+{numel}) reaches outside storage '{root_key}'"
            )
        })?;
        let sid = graph.add_storage(Storage {
            key: view_key.clone(),
            numel: *numel as u64,
            data,
            ..root
        });
        storages.insert(view_key.clone(), sid);
        objects.insert(view_key, graph.add(Node::Storage(sid)));
    }

    let tview = m.get("tensors").unwrap_or(&empty);
    let mut r = Reader {
        member: "tensors",
        view: tview,
        pos: 0,
    };
    let n = r.count()?;
    for _ in 0..n {
        let t = r.tuple(&mut scratch, &uopts)?;
        let bad = || {
            crate::err!(
                BadTar,
                "a tensor header is not (key, storage_key, tensor_type)"
            )
            .in_record("tensors")
        };
        let key = key_text(&scratch, t.first()).ok_or_else(bad)?;
        let skey = key_text(&scratch, t.get(1)).ok_or_else(bad)?;
        let sid = *storages.get(&skey).ok_or_else(|| {
            crate::err!(
                MissingRecord,
                "tensor '{key}' views unknown storage '{skey}'"
            )
            .in_record("tensors")
        })?;
        let head = r.bytes(8)?;
        let ndim = i32::from_le_bytes(
            head.as_slice()
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .unwrap_or([0; 4]),
        );
        let ndim = usize::try_from(ndim)
            .ok()
            .filter(|&d| d <= opts.limits.max_dims)
            .ok_or_else(|| {
                crate::err!(LimitExceeded, "tensor '{key}' has {ndim} dimensions")
                    .in_record("tensors")
            })?;
        let shape = (0..ndim).map(|_| r.i64()).collect::<Result<Vec<_>>>()?;
        let stride = (0..ndim).map(|_| r.i64()).collect::<Result<Vec<_>>>()?;
        let storage_offset = r.i64()?;
        let dtype = graph
            .storages
            .get(sid)
            .map(|s| s.dtype)
            .unwrap_or(crate::dtype::DType::Float32);
        let tensor = Tensor::strided(sid, dtype, shape, stride, storage_offset);
        objects.insert(key, graph.add(Node::Tensor(tensor)));
    }

    let pview = m.get("pickle").unwrap_or(&empty);
    let mut loader = TarLoader { objects };
    let out = pickle::unpickle(pview.as_slice(), &mut graph, &uopts, &mut loader)
        .map_err(|e| e.in_record("pickle"))?;
    graph.root = Some(out.root);
    policy.note_refusal(out.weights_only_refusal);
    Ok(Loaded {
        graph,
        info: LoadInfo {
            format: Format::Tar,
            globals: out.globals,
            big_endian: false,
            pickle_protocol: out.protocol,
            archive_name: None,
            version: None,
            weights_only_refusal: policy.into_refusal(),
        },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn build_tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn members_are_views_and_tar_is_detected() {
        let t = build_tar(&[
            ("sys_info", b"abc"),
            ("pickle", b"\x80\x02N."),
            ("storages", b""),
            ("tensors", b"K\x00."),
        ]);
        assert!(looks_like_tar(&t));
        let v = ByteView::from_vec(t.clone());
        let m = members(&v).unwrap();
        assert_eq!(m["sys_info"].as_slice(), b"abc");
        assert_eq!(m["pickle"].as_slice(), b"\x80\x02N.");
        assert!(m["pickle"].same_backing(&v));
        // A v7 header (no ustar magic) is still recognised by its checksum.
        let mut v7 = t.clone();
        v7[257..263].copy_from_slice(&[0; 6]);
        let sum: u64 = v7[..512]
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    x as u64
                }
            })
            .sum();
        v7[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(looks_like_tar(&v7));
        assert!(!looks_like_tar(&[0u8; 1024]));
        assert!(!looks_like_tar(b"\x80\x02}."));
    }

    #[test]
    fn weights_only_is_refused_and_truncation_never_panics() {
        let t = build_tar(&[
            ("pickle", b"\x80\x02N."),
            ("storages", b"K\x00."),
            ("tensors", b"K\x00."),
        ]);
        let e = load(ByteView::from_vec(t.clone()), &LoadOptions::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsafeGlobal);
        let opts = LoadOptions {
            weights_only: false,
            ..LoadOptions::default()
        };
        for cut in 0..t.len() {
            let _ = load(ByteView::from_vec(t[..cut].to_vec()), &opts);
        }
        let missing = build_tar(&[("pickle", b"\x80\x02N.")]);
        assert_eq!(
            load(ByteView::from_vec(missing), &opts).unwrap_err().code,
            ErrorCode::MissingRecord
        );
    }
}
