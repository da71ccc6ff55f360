//! The writer: a graph in, the bytes torch.save would write out.
//!
//! * [`pickler`] emits protocol 2 exactly as CPython's pickler does (opcodes, memo numbering,
//!   batching), with storages as persistent ids;
//! * [`zip_write`] lays records out as PyTorch's miniz writer does (FB padding to 64, data
//!   descriptors, zip64 rules, record order);
//! * [`legacy_write`] writes the pre-1.6 stream;
//! * [`compact`] implements `SaveOptions::compact`;
//! * [`file_write`] writes an archive into a file fast (CRC-32 alongside the writes, direct
//!   I/O for durable saves);
//! * [`atomic`] writes to a temporary file in the target's folder, fsyncs (`durable`) and
//!   renames.
//!
//! Order of work for the zip format: (compact) → pickle (assigns storage keys in first-seen
//! order and validates every view) → plan the archive → write (to a file: CRCs computed
//! while the data is written; to a stream: CRCs first). Nothing is
//! written before the pickle succeeded, so invalid graphs never touch the output.

pub mod atomic;
pub mod compact;
mod compat_names;
pub mod dcp_write;
pub mod file_write;
pub mod legacy_write;
pub mod pickler;
pub mod zip_write;

use crate::error::{Error, Result};
use crate::options::{SaveFormat, SaveOptions};
use crate::value::Graph;
use std::borrow::Cow;
use std::io::Write;
use std::path::Path;

/// What torch's record list looks like before the storages (`.format_version` .. `byteorder`).
fn header_records(alignment: u64) -> Vec<(String, Vec<u8>)> {
    vec![
        (".format_version".into(), b"1".to_vec()),
        (
            ".storage_alignment".into(),
            alignment.to_string().into_bytes(),
        ),
        ("byteorder".into(), b"little".to_vec()),
    ]
}

fn check_options(opts: &SaveOptions) -> Result<()> {
    pickler::check_protocol(opts.protocol)?;
    if opts.archive_name.is_empty() || opts.archive_name.contains('/') {
        crate::bail!(
            InvalidArgument,
            "archive name '{}' must be non-empty and contain no '/'",
            opts.archive_name
        );
    }
    Ok(())
}

fn prepared<'g>(graph: &'g Graph, opts: &SaveOptions) -> Result<Cow<'g, Graph>> {
    if opts.compact {
        if let Some(g) = compact::compact_graph(graph)? {
            return Ok(Cow::Owned(g));
        }
    }
    Ok(Cow::Borrowed(graph))
}

/// Pickles `graph` and hands the archive's records (in torch's order, without the
/// serialization id, which the zip writer adds) to `emit`.
fn with_zip_records<T>(
    graph: &Graph,
    opts: &SaveOptions,
    emit: impl FnOnce(&[zip_write::RecordSource<'_>]) -> Result<T>,
) -> Result<T> {
    let pickled = pickler::pickle_graph(graph, opts.protocol, pickler::PidStyle::Zip)?;
    let headers = header_records(opts.alignment);
    let mut records = vec![zip_write::RecordSource {
        name: "data.pkl".into(),
        data: &pickled.bytes,
    }];
    for (name, data) in &headers {
        records.push(zip_write::RecordSource {
            name: name.clone(),
            data,
        });
    }
    for s in &pickled.storages {
        let st = graph
            .storages
            .get(s.storage)
            .ok_or_else(|| crate::err!(Unserializable, "missing storage {}", s.storage))?;
        records.push(zip_write::RecordSource {
            name: format!("data/{}", s.key),
            data: st.data.as_slice(),
        });
    }
    let version = b"3\n".to_vec();
    records.push(zip_write::RecordSource {
        name: "version".into(),
        data: &version,
    });
    emit(&records)
}

/// `E_FILE_CHANGED` when a storage lives in a mapped file that changed (see `mapguard`):
/// checked after the bytes are written and before they are committed or handed out, since a
/// read of a truncated mapping yields zeros.
fn storages_unchanged(graph: &Graph) -> Result<()> {
    graph.storages.iter().try_for_each(|s| s.data.check())
}

/// Writes `graph` to `w` (a stream: no seeking needed).
pub fn save_to_writer<W: Write>(graph: &Graph, w: &mut W, opts: &SaveOptions) -> Result<()> {
    check_options(opts)?;
    storages_unchanged(graph)?;
    save_prepared_to_writer(&*prepared(graph, opts)?, w, opts)?;
    storages_unchanged(graph)
}

fn save_prepared_to_writer<W: Write>(graph: &Graph, w: &mut W, opts: &SaveOptions) -> Result<()> {
    match opts.format {
        SaveFormat::Zip => with_zip_records(graph, opts, |records| {
            let (plan, sid) = zip_write::plan(&opts.archive_name, records, opts.alignment)?;
            zip_write::write_stream(&plan, records, &sid, w)
        }),
        SaveFormat::Legacy => legacy_write::write_legacy(graph, opts.protocol, w),
    }
}

/// Writes `graph` into a new buffer.
pub fn save_to_vec(graph: &Graph, opts: &SaveOptions) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    save_to_writer(graph, &mut out, opts)?;
    Ok(out)
}

/// Writes `graph` to `path` atomically: the old file stays intact until the new one is
/// complete (a temporary file renamed over the target). With `opts.durable` the new file and
/// its folder are also fsynced, so it survives a power loss; big durable zip archives go to
/// the disk with direct I/O ([`file_write`]). The archive folder is `opts.archive_name`
/// (see [`archive_name_for_path`] for torch's).
pub fn save_to_path(graph: &Graph, path: &Path, opts: &SaveOptions) -> Result<()> {
    check_options(opts)?;
    storages_unchanged(graph)?;
    let original = graph;
    let graph = prepared(graph, opts)?;
    match opts.format {
        SaveFormat::Zip => with_zip_records(&graph, opts, |records| {
            atomic::replace_with_opts(path, opts.durable, |file| {
                file_write::write_file(&opts.archive_name, records, opts.alignment, file, |len| {
                    file_write::mode_for(opts.durable, len)
                })?;
                storages_unchanged(original)
            })
        }),
        SaveFormat::Legacy => atomic::replace_with_opts(path, opts.durable, |file| {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file_write::Chunked(file));
            legacy_write::write_legacy(&graph, opts.protocol, &mut w)?;
            w.flush()
                .map_err(|e| Error::io(e, "writing legacy stream"))?;
            storages_unchanged(original)
        }),
    }
}

/// The folder name `torch.save(obj, path)` uses, the one rule (the binding's default and
/// the converter's outputs call it): `archive` unless the whole path is ASCII (torch hands
/// non-ASCII paths to its writer as a stream); else the file name after the last `/` or `\`
/// (torch's `basename`, on every OS) without its last extension. Checked against torch 2.11:
/// `a.b.pt` -> `a.b`, `ckpt` -> `ckpt`, `x\y.pt` -> `y`, `/tmp/模型.pt` -> `archive`.
pub fn archive_name_for_path(path: &Path) -> String {
    let Some(p) = path.to_str().filter(|p| p.is_ascii()) else {
        return "archive".to_string();
    };
    let base = p.rsplit(['/', '\\']).next().unwrap_or(p);
    match Path::new(base).file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => "archive".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What torch 2.11's `torch.save(obj, path)` names the archive folder.
    #[test]
    fn archive_names_follow_torch() {
        for (path, want) in [
            ("/x/model.pth", "model"),
            ("a.b.pt", "a.b"),
            ("/tmp/a.b.c", "a.b"),
            ("ckpt", "ckpt"),
            ("/tmp/trail.", "trail"),
            ("/tmp/x\\y.pt", "y"),
            ("/tmp/模型.pt", "archive"),
            ("/tmp/模/m.pt", "archive"),
        ] {
            assert_eq!(archive_name_for_path(Path::new(path)), want, "{path}");
        }
    }
}
