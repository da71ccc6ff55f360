//! `inspect_many` (a summary over many files) and `diff` (two checkpoints, tensor by tensor).
//!
//! Both see a file as its tensors keyed by path (`graph::tensor_paths`: a state dict
//! gives its names, a checkpoint gives `model_state_dict/fc.weight`, ...). safetensors
//! aliases recorded in `__metadata__` are restored for `diff`, so a `.pt` and the
//! `.safetensors` converted from it compare equal.

use super::{load_source, Source};
use crate::cast::element_as_f64;
use crate::error::{ErrorCode, Result};
use crate::graph;
use crate::options::LoadOptions;
use crate::strided;
use crate::value::{Graph, Node, NodeId};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Per-dtype totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DtypeStat {
    pub tensors: u64,
    pub bytes: u64,
}

/// A file that could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct InputError {
    pub path: PathBuf,
    pub code: ErrorCode,
    pub message: String,
}

/// What `inspect_many` found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Files read successfully.
    pub count: usize,
    /// Format name (`zip`, `legacy`, `safetensors`, `hf-index`, ...) -> files.
    pub formats: BTreeMap<String, usize>,
    /// dtype name -> tensors and their bytes.
    pub dtypes: BTreeMap<String, DtypeStat>,
    pub tensors: u64,
    /// Bytes of the files read (shards included).
    pub total_bytes: u64,
    /// Bytes of tensor values (each distinct tensor once).
    pub tensor_bytes: u64,
    pub errors: Vec<InputError>,
}

fn tensors_of(src: &Source, max_depth: usize) -> Result<Vec<(String, NodeId)>> {
    graph::tensor_paths(&src.graph, src.graph.root(), max_depth)
}

/// `(format, file bytes, [(dtype, tensor bytes)])` of one file.
type FileFacts = (String, u64, Vec<(String, u64)>);

/// Reads every path (in parallel on rayon's global pool) and sums them up.
pub fn inspect_many(paths: &[PathBuf], opts: &LoadOptions) -> Summary {
    use rayon::prelude::*;
    let per_file: Vec<std::result::Result<FileFacts, InputError>> = paths
        .par_iter()
        .map(|p| {
            let run = || -> Result<FileFacts> {
                let src = load_source(p, opts, false)?;
                let mut seen = std::collections::HashSet::new();
                let mut ts = Vec::new();
                for (_, id) in tensors_of(&src, opts.limits.max_depth)? {
                    if !seen.insert(id) {
                        continue;
                    }
                    if let Some(Node::Tensor(t)) = src.graph.node(id) {
                        ts.push((t.dtype.name().to_string(), strided::nbytes(t)?));
                    }
                }
                Ok((src.format.name().to_string(), src.bytes_in, ts))
            };
            run().map_err(|e| {
                let e = e.in_file(p.display().to_string());
                InputError {
                    path: p.clone(),
                    code: e.code,
                    message: e.to_string(),
                }
            })
        })
        .collect();
    let mut s = Summary::default();
    for r in per_file {
        match r {
            Ok((format, bytes, ts)) => {
                s.count += 1;
                *s.formats.entry(format).or_default() += 1;
                s.total_bytes += bytes;
                for (dt, b) in ts {
                    let e = s.dtypes.entry(dt).or_default();
                    e.tensors += 1;
                    e.bytes += b;
                    s.tensors += 1;
                    s.tensor_bytes += b;
                }
            }
            Err(e) => s.errors.push(e),
        }
    }
    s
}

/// Why a tensor differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeReason {
    Dtype,
    Shape,
    Values,
}

impl ChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::Dtype => "dtype",
            ChangeReason::Shape => "shape",
            ChangeReason::Values => "values",
        }
    }
}

/// One differing tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Changed {
    pub key: String,
    pub reason: ChangeReason,
    /// Largest |a - b| over elements, when shapes match and both dtypes are real numbers
    /// (so an f32 -> f16 conversion shows its rounding error). NaN if either side has a NaN
    /// where the other does not.
    pub max_abs_diff: Option<f64>,
}

/// `diff(a, b)`: keys only in `b` (`added`), only in `a` (`removed`), and in both but
/// different, in `a`'s order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiffReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<Changed>,
    /// Keys present and identical in both.
    pub same: usize,
}

fn max_abs_diff(ga: &Graph, ia: NodeId, gb: &Graph, ib: NodeId) -> Result<Option<f64>> {
    let (Some(Node::Tensor(a)), Some(Node::Tensor(b))) = (ga.node(ia), gb.node(ib)) else {
        return Ok(None);
    };
    if a.shape != b.shape {
        return Ok(None);
    }
    let (Some(sa), Some(sb)) = (
        a.storage.and_then(|s| ga.storages.get(s)),
        b.storage.and_then(|s| gb.storages.get(s)),
    ) else {
        return Ok(None);
    };
    let probe = [0u8; 8];
    if element_as_f64(a.dtype, &probe).is_none() || element_as_f64(b.dtype, &probe).is_none() {
        return Ok(None);
    }
    let (ba, bb) = (
        strided::contiguous_bytes(a, sa)?,
        strided::contiguous_bytes(b, sb)?,
    );
    let mut m: f64 = 0.0;
    for (x, y) in ba
        .chunks_exact(a.dtype.element_size())
        .zip(bb.chunks_exact(b.dtype.element_size()))
    {
        let (x, y) = (element_as_f64(a.dtype, x), element_as_f64(b.dtype, y));
        let (Some(x), Some(y)) = (x, y) else { continue };
        if x.is_nan() && y.is_nan() || x == y {
            continue;
        }
        let d = (x - y).abs();
        if d.is_nan() {
            return Ok(Some(f64::NAN));
        }
        m = m.max(d);
    }
    Ok(Some(m))
}

/// Compares two checkpoints of any supported format.
pub fn diff(a: &Path, b: &Path, opts: &LoadOptions) -> Result<DiffReport> {
    let sa = load_source(a, opts, true)?;
    let sb = load_source(b, opts, true)?;
    let ta = tensors_of(&sa, opts.limits.max_depth)?;
    let tb = tensors_of(&sb, opts.limits.max_depth)?;
    let mb: BTreeMap<&str, NodeId> = tb.iter().map(|(k, id)| (k.as_str(), *id)).collect();
    let ma: BTreeMap<&str, NodeId> = ta.iter().map(|(k, id)| (k.as_str(), *id)).collect();
    let mut r = DiffReport::default();
    for (k, _) in &tb {
        if !ma.contains_key(k.as_str()) {
            r.added.push(k.clone());
        }
    }
    for (k, ia) in &ta {
        let Some(&ib) = mb.get(k.as_str()) else {
            r.removed.push(k.clone());
            continue;
        };
        let (Some(Node::Tensor(x)), Some(Node::Tensor(y))) =
            (sa.graph.node(*ia), sb.graph.node(ib))
        else {
            continue;
        };
        let reason = if x.dtype != y.dtype {
            Some(ChangeReason::Dtype)
        } else if x.shape != y.shape {
            Some(ChangeReason::Shape)
        } else {
            let hx = x
                .storage
                .and_then(|s| sa.graph.storages.get(s))
                .map(|s| strided::sha256_hex(x, s))
                .transpose()?;
            let hy = y
                .storage
                .and_then(|s| sb.graph.storages.get(s))
                .map(|s| strided::sha256_hex(y, s))
                .transpose()?;
            (hx != hy).then_some(ChangeReason::Values)
        };
        match reason {
            None => r.same += 1,
            Some(reason) => {
                let max_abs_diff = max_abs_diff(&sa.graph, *ia, &sb.graph, ib)?;
                r.changed.push(Changed {
                    key: k.clone(),
                    reason,
                    max_abs_diff,
                });
            }
        }
    }
    Ok(r)
}
