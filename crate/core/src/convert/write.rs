//! The writers: safetensors (one file through [`super::stream`], or shards), torch files
//! (zip or legacy, one file or shards). Every output is checked first (never the input,
//! never an existing file without `force`) and written atomically.

use super::source::file_len;
use super::verify::{compare_digests, digests_of, read_back_digests, Digests};
use super::{stream, transform, ConvertOptions, FileReport, Target};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph;
use crate::hf_index;
use crate::options::{SaveFormat, SaveOptions};
use crate::safetensors as st;
use crate::strided;
use crate::value::{Graph, Node, NodeId, Tensor, Value};
use crate::writer::atomic::{write_atomic, Pending};
use std::path::{Path, PathBuf};

pub(super) fn check_output(path: &Path, input: &Path, opts: &ConvertOptions) -> Result<()> {
    let same = match (path.canonicalize(), input.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        crate::bail!(
            InvalidArgument,
            "output {} would replace the input; choose an output folder",
            path.display()
        );
    }
    if path.exists() && !opts.force {
        crate::bail!(
            OutputExists,
            "{} exists (pass force to overwrite)",
            path.display()
        );
    }
    Ok(())
}

pub(super) fn ensure_dir(dir: &Path, opts: &ConvertOptions) -> Result<()> {
    if opts.dry_run || dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(e, &format!("create folder {}", dir.display())))
}

/// One safetensors output: path, `name -> tensor`, `__metadata__`.
pub(super) type ShardOut = (PathBuf, Vec<(String, NodeId)>, Vec<(String, String)>);

/// How a streamed output reads and casts.
pub(super) struct StreamedOut<'a> {
    pub(super) cast: Option<(&'a transform::CastPlan, DType)>,
    pub(super) mapped: &'a [stream::MappedInput],
}

/// A safetensors output through [`stream`], one file or Hugging Face shards (`--shard-size`,
/// split by the tensors' output sizes, this worker's part of them) plus the index: planned
/// from the uncast graph with the cast's dtypes, each file written to a temporary file and
/// verified there (a file that fails `verify` is never named), returned uncommitted (empty
/// in a dry run). The only safetensors writer of `convert`: memory stays one step per thread
/// whatever the shard size.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_safetensors_streamed(
    input: &Path,
    graph: &Graph,
    root: &Value,
    dir: &Path,
    stem: &str,
    opts: &ConvertOptions,
    how: &StreamedOut,
    report: &mut FileReport,
) -> Result<Vec<Pending>> {
    let entries = st::state_dict_entries(graph, root)?;
    let d = st::dedupe_shared(graph, &entries)?;
    for (dropped, kept) in &d.removed {
        report.notes.push(format!(
            "'{dropped}' shares memory with '{kept}': kept once, recorded in __metadata__"
        ));
    }
    let out_dtype = |id: NodeId, t: &Tensor| match how.cast {
        Some((c, to)) if c.tensors.contains(&id) => to,
        _ => t.dtype,
    };
    // (path, entries, metadata) per output file; aliases go with the file that holds the
    // kept tensor.
    let mut files: Vec<ShardOut> = Vec::new();
    let mut index: Option<(PathBuf, String)> = None;
    match opts.shard_size {
        Some(max) => {
            let size = |id: NodeId, t: &Tensor| -> Result<u64> {
                Ok(strided::numel(t)? * out_dtype(id, t).element_size() as u64)
            };
            let plan = workers_part(
                plan_shards_sized(graph, &d.kept, max, dir, stem, "safetensors", &size)?,
                opts,
            );
            for shard in plan.shards {
                let removed: Vec<(String, String)> = d
                    .removed
                    .iter()
                    .filter(|(_, kept)| shard.entries.iter().any(|(k, _)| k == kept))
                    .cloned()
                    .collect();
                files.push((
                    dir.join(&shard.file),
                    shard.entries,
                    st::file_metadata(&[], &removed),
                ));
            }
            index = plan.index;
        }
        None => files.push((
            dir.join(format!("{stem}.safetensors")),
            d.kept.clone(),
            st::file_metadata(&[], &d.removed),
        )),
    }
    for (p, _, _) in &files {
        check_output(p, input, opts)?;
    }
    if let Some((p, _)) = &index {
        check_output(p, input, opts)?;
    }
    let mut plans = Vec::with_capacity(files.len());
    for (p, es, md) in &files {
        plans.push((p.clone(), st::plan_with(graph, es, md, &out_dtype)?));
    }
    report.tensors = d.kept.len();
    report.outputs = plans.iter().map(|(p, _)| p.clone()).collect();
    if let Some((p, _)) = &index {
        report.outputs.push(p.clone());
    }
    if opts.dry_run {
        report.bytes_out = plans.iter().map(|(_, pl)| pl.file_len).sum::<u64>()
            + index.as_ref().map_or(0, |(_, t)| t.len() as u64);
        return Ok(Vec::new());
    }
    ensure_dir(dir, opts)?;
    let mut pending = Vec::with_capacity(plans.len() + 1);
    report.bytes_out = 0;
    for (path, plan) in &plans {
        let p = Pending::create(path)?;
        let (bytes, want) =
            stream::write_streamed(graph, plan, how.cast, how.mapped, p.file(), opts.verify)
                .map_err(|e| e.in_file(path.display().to_string()))?;
        report.bytes_out += bytes;
        if let Some(want) = want {
            let got =
                read_back_digests(p.file()).map_err(|e| e.in_file(path.display().to_string()))?;
            compare_digests(&want, &got, path)?;
        }
        pending.push(p);
    }
    report.verified = opts.verify;
    if let Some((path, text)) = &index {
        let p = Pending::create(path)?;
        std::io::Write::write_all(&mut p.file(), text.as_bytes())
            .map_err(|e| crate::error::Error::io(e, &format!("write {}", path.display())))?;
        report.bytes_out += text.len() as u64;
        pending.push(p);
    }
    Ok(pending)
}

/// One shard of a sharded output: its file name and its `name -> tensor` entries.
pub(super) struct Shard {
    pub(super) file: String,
    pub(super) entries: Vec<(String, NodeId)>,
}

/// How a sharded output is laid out, the one plan both writers follow: the entries split
/// into shards of at most `max` bytes (Hugging Face's `{stem}-00001-of-0000N.{ext}`), and,
/// when there is more than one shard, the index `{stem}.{ext}.index.json` with its text.
pub(super) struct ShardPlan {
    pub(super) shards: Vec<Shard>,
    pub(super) index: Option<(PathBuf, String)>,
}

/// The part of a shard plan this worker writes ([`ConvertOptions::output_share`]): the same
/// plan on every machine, so the shard names and the index agree byte for byte.
fn workers_part(mut plan: ShardPlan, opts: &ConvertOptions) -> ShardPlan {
    if let Some((index, count)) = opts.output_share {
        plan.shards = std::mem::take(&mut plan.shards)
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % count == index)
            .map(|(_, s)| s)
            .collect();
        if index != 0 {
            plan.index = None;
        }
    }
    plan
}

pub(super) fn plan_shards(
    graph: &Graph,
    entries: &[(String, NodeId)],
    max: u64,
    dir: &Path,
    stem: &str,
    ext: &str,
) -> Result<ShardPlan> {
    plan_shards_sized(graph, entries, max, dir, stem, ext, &|_, t| {
        strided::nbytes(t)
    })
}

/// A tensor's size in the output (its dtype there may differ: a cast while writing).
type OutSize<'a> = dyn Fn(NodeId, &Tensor) -> Result<u64> + 'a;

/// [`plan_shards`] with each tensor's output size given by `size`.
fn plan_shards_sized(
    graph: &Graph,
    entries: &[(String, NodeId)],
    max: u64,
    dir: &Path,
    stem: &str,
    ext: &str,
    size: &OutSize,
) -> Result<ShardPlan> {
    let items = split_items(graph, entries, size)?;
    let split = hf_index::split_into_shards(&items, max);
    let n = split.shards.len();
    let mut weight_map = Vec::new();
    let mut shards = Vec::with_capacity(n);
    for (i, names) in split.shards.iter().enumerate() {
        let file = hf_index::shard_file_name(stem, ext, i + 1, n);
        let es: Vec<(String, NodeId)> = names
            .iter()
            .filter_map(|nm| entries.iter().find(|(k, _)| k == nm).cloned())
            .collect();
        for (k, _) in &es {
            weight_map.push((k.clone(), file.clone()));
        }
        shards.push(Shard { file, entries: es });
    }
    let index = (n > 1).then(|| {
        (
            dir.join(format!("{stem}.{ext}.index.json")),
            hf_index::index_json(split.total_size, &weight_map),
        )
    });
    Ok(ShardPlan { shards, index })
}

/// Sizes and storage identities for the shard splitter.
fn split_items(
    graph: &Graph,
    entries: &[(String, NodeId)],
    size: &OutSize,
) -> Result<Vec<hf_index::SplitItem>> {
    entries
        .iter()
        .map(|(name, id)| {
            let Some(Node::Tensor(t)) = graph.node(*id) else {
                crate::bail!(Unserializable, "'{name}' is not a tensor");
            };
            Ok(hf_index::SplitItem {
                name: name.clone(),
                size: size(*id, t)?,
                storage: t.storage.map(|s| s as u64),
            })
        })
        .collect()
}

/// One distributed checkpoint folder at `path` (`writer::dcp_write`, one data file),
/// verified by reading it back through the DCP reader.
pub(super) fn write_dcp(
    input: &Path,
    graph: &Graph,
    root: &Value,
    path: &Path,
    opts: &ConvertOptions,
    report: &mut FileReport,
) -> Result<()> {
    check_output(path, input, opts)?;
    let max_depth = opts.load.limits.max_depth;
    let mut g = graph.clone();
    g.root = Some(root.clone());
    let named = graph::tensor_paths(&g, g.root(), max_depth)?;
    report.tensors = named.len();
    report.outputs = vec![path.to_path_buf()];
    if opts.dry_run {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        ensure_dir(parent, opts)?;
    }
    let mut want = digests_of(&g, &named)?;
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let w = crate::writer::dcp_write::save_dcp(
        &g,
        path,
        &crate::writer::dcp_write::DcpSaveOptions {
            durable: opts.durable,
            ..Default::default()
        },
    )?;
    report.bytes_out = w.bytes;
    if opts.verify {
        let back = crate::container::load_file(path, &opts.load)?;
        let named = graph::tensor_paths(&back.graph, back.graph.root(), max_depth)?;
        let mut got = digests_of(&back.graph, &named)?;
        got.sort_by(|a, b| a.0.cmp(&b.0));
        compare_digests(&want, &got, path)?;
        report.verified = true;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn write_pt(
    input: &Path,
    graph: &Graph,
    root: &Value,
    dir: &Path,
    stem: &str,
    ext: &str,
    opts: &ConvertOptions,
    report: &mut FileReport,
) -> Result<()> {
    let save = |archive: &str| SaveOptions {
        format: if opts.to == Target::PtLegacy {
            SaveFormat::Legacy
        } else {
            SaveFormat::Zip
        },
        archive_name: archive.to_string(),
        compact: opts.compact,
        durable: opts.durable,
        ..SaveOptions::default()
    };
    let max_depth = opts.load.limits.max_depth;
    // Outputs: (path, graph).
    let mut outs: Vec<(PathBuf, Graph)> = Vec::new();
    let mut index: Option<(PathBuf, String)> = None;
    match opts.shard_size {
        Some(max) => {
            let entries = st::state_dict_entries(graph, root)?;
            let plan = workers_part(plan_shards(graph, &entries, max, dir, stem, ext)?, opts);
            for shard in plan.shards {
                let mut g = Graph::new();
                let mut imp = graph::Importer::new(graph);
                let mut items = Vec::new();
                for (k, id) in &shard.entries {
                    items.push((Value::Str(k.clone()), imp.value(&mut g, &Value::Ref(*id))?));
                }
                let r = g.add(Node::OrderedDict { items, state: None });
                g.root = Some(r);
                outs.push((dir.join(shard.file), g));
            }
            index = plan.index;
        }
        None => {
            let mut g = graph.clone();
            g.root = Some(root.clone());
            outs.push((dir.join(format!("{stem}.{ext}")), g));
        }
    }
    for (p, _) in &outs {
        check_output(p, input, opts)?;
    }
    if let Some((p, _)) = &index {
        check_output(p, input, opts)?;
    }
    report.outputs = outs.iter().map(|(p, _)| p.clone()).collect();
    if let Some((p, _)) = &index {
        report.outputs.push(p.clone());
    }
    let mut want: Digests = Vec::new();
    for (_, g) in &outs {
        let named = graph::tensor_paths(g, g.root(), max_depth)?;
        report.tensors += named.len();
        want.extend(digests_of(g, &named)?);
    }
    want.sort_by(|a, b| a.0.cmp(&b.0));
    if opts.dry_run {
        return Ok(());
    }
    ensure_dir(dir, opts)?;
    for (p, g) in &outs {
        let archive = crate::writer::archive_name_for_path(p);
        crate::writer::save_to_path(g, p, &save(&archive))?;
        report.bytes_out += file_len(p);
    }
    if let Some((p, text)) = &index {
        report.bytes_out += write_atomic(p, opts.durable, &mut |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| Error::io(e, "write"))
        })?;
    }
    if opts.verify {
        let mut got: Digests = Vec::new();
        let check_path = match &index {
            Some((ip, _)) => {
                let s = hf_index::load_sharded(ip, &opts.load)?;
                let named = graph::tensor_paths(&s.graph, s.graph.root(), max_depth)?;
                got.extend(digests_of(&s.graph, &named)?);
                ip.clone()
            }
            None => {
                for (p, _) in &outs {
                    let back = crate::container::load_file(p, &opts.load)?;
                    let named = graph::tensor_paths(&back.graph, back.graph.root(), max_depth)?;
                    got.extend(digests_of(&back.graph, &named)?);
                }
                outs.first().map(|o| o.0.clone()).unwrap_or_default()
            }
        };
        got.sort_by(|a, b| a.0.cmp(&b.0));
        compare_digests(&want, &got, &check_path)?;
        report.verified = true;
    }
    Ok(())
}
