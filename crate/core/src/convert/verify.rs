//! `verify`: per-tensor digests of what was meant to be written, compared with what reads
//! back from the outputs.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph;
use crate::safetensors as st;
use crate::strided;
use crate::value::{Graph, Node, NodeId};
use std::path::Path;

/// `(name, dtype, shape, sha256)` of tensors, by name.
pub(crate) type Digests = Vec<(String, DType, Vec<i64>, String)>;

pub(super) fn digests_of(graph: &Graph, named: &[(String, NodeId)]) -> Result<Digests> {
    let mut out = Vec::with_capacity(named.len());
    for (name, id) in named {
        let Some(Node::Tensor(t)) = graph.node(*id) else {
            continue;
        };
        let Some(sid) = t.storage else {
            out.push((name.clone(), t.dtype, t.shape.clone(), String::new()));
            continue;
        };
        let s = graph
            .storages
            .get(sid)
            .ok_or_else(|| crate::err!(StorageBounds, "storage {sid} missing"))?;
        out.push((
            name.clone(),
            t.dtype,
            t.shape.clone(),
            strided::sha256_hex(t, s)?,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

pub(super) fn compare_digests(want: &Digests, got: &Digests, output: &Path) -> Result<()> {
    if want.len() != got.len() {
        crate::bail!(
            VerifyFailed,
            "{} holds {} tensors, expected {}",
            output.display(),
            got.len(),
            want.len()
        );
    }
    for (w, g) in want.iter().zip(got) {
        if w != g {
            crate::bail!(
                VerifyFailed,
                "{}: '{}' reads back as {} {:?} sha256 {} instead of '{}' {} {:?} sha256 {}",
                output.display(),
                g.0,
                g.1,
                g.2,
                g.3,
                w.0,
                w.1,
                w.2,
                w.3
            );
        }
    }
    Ok(())
}

/// Per-tensor digests of a written (not yet named) safetensors file, read back from disk.
pub(super) fn read_back_digests(file: &std::fs::File) -> Result<Digests> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = file;
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut buf))
        .map_err(|e| Error::io(e, "read back"))?;
    let back = st::read_bytes(crate::bytes::ByteView::from_vec(buf))?;
    let named = graph::flat_tensor_map(&back.graph, back.graph.root()).unwrap_or_default();
    digests_of(&back.graph, &named)
}
