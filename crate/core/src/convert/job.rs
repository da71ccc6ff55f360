//! One input through the pipeline: load -> select -> drop optimizer state -> edit keys ->
//! cast -> write -> verify; its outputs are committed (fsync, name) afterwards, by the
//! caller or on a committer thread of [`super::pool`].

use super::source::file_len;
use super::write::{check_output, write_pt, write_safetensors_streamed, StreamedOut};
use super::{load_source, output_dir, output_stem, resume, transform, ConvertOptions, Target};
use crate::error::{ErrorCode, Result};
use crate::writer::atomic::Pending;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What happened to one input.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileReport {
    pub input: PathBuf,
    /// Files written (or that would be, in a dry run): shards first, then the index.
    pub outputs: Vec<PathBuf>,
    /// Input format: `zip`, `legacy`, `tar`, `pickle`, `safetensors`, `hf-index`.
    pub format: String,
    /// Tensors written.
    pub tensors: usize,
    pub bytes_in: u64,
    /// Bytes written (dry run: the exact size for safetensors, 0 for pt).
    pub bytes_out: u64,
    pub millis: u64,
    /// Outputs were re-read and matched.
    pub verified: bool,
    /// What the engine decided on its own: auto-selected key, dropped keys, aliases,
    /// skipped casts.
    pub notes: Vec<String>,
    /// `(code, message)` when the file failed.
    pub error: Option<(ErrorCode, String)>,
    /// `skip_existing` found valid outputs: nothing was read or written (`outputs` lists
    /// them, `format` is empty, `bytes_in` is the input's size).
    pub skipped: bool,
}

/// Converts one input; never panics, errors land in the report.
pub fn convert_file(input: &Path, opts: &ConvertOptions) -> FileReport {
    let w = write_file(input, opts);
    w.commit()
}

/// One input converted and written, its outputs not yet committed (fsync + name): a streamed
/// output leaves its [`Pending`] here so [`convert_many`] can commit it on another thread
/// while the worker goes on with the next file.
pub(super) struct Written {
    pub(super) report: FileReport,
    pub(super) pending: Vec<Pending>,
    /// [`ConvertOptions::durable`]: whether committing fsyncs.
    pub(super) durable: bool,
    pub(super) start: Instant,
}

impl Written {
    /// Commits the outputs in order; a failure lands in the report (and, like any failure,
    /// leaves no output of this file behind that was not committed already).
    pub(super) fn commit(mut self) -> FileReport {
        let input = self.report.input.clone();
        for p in self.pending {
            if self.report.error.is_some() {
                break; // Dropping the rest removes them.
            }
            if let Err(e) = p.commit_with(self.durable) {
                let e = e.in_file(input.display().to_string());
                self.report.error = Some((e.code, e.to_string()));
                self.report.verified = false;
            }
        }
        self.report.millis = self.start.elapsed().as_millis() as u64;
        self.report
    }
}

pub(super) fn write_file(input: &Path, opts: &ConvertOptions) -> Written {
    let start = Instant::now();
    let mut report = FileReport {
        input: input.to_path_buf(),
        ..FileReport::default()
    };
    let mut pending = Vec::new();
    if let Err(e) = convert_inner(input, opts, &mut report, &mut pending) {
        let e = e.in_file(input.display().to_string());
        report.error = Some((e.code, e.to_string()));
        report.verified = false;
        pending.clear();
    }
    report.millis = start.elapsed().as_millis() as u64;
    Written {
        report,
        pending,
        durable: opts.durable,
        start,
    }
}

/// Whether `opts` take the streamed path ([`stream`]): every safetensors output.
pub(super) fn streams(opts: &ConvertOptions) -> bool {
    opts.to == Target::Safetensors
}

pub(super) fn convert_inner(
    input: &Path,
    opts: &ConvertOptions,
    report: &mut FileReport,
    pending: &mut Vec<Pending>,
) -> Result<()> {
    opts.check()?;
    if opts.skip_existing {
        if let Some(outputs) = resume::existing_outputs(input, opts)? {
            report.skipped = true;
            report.outputs = outputs;
            report.bytes_in = file_len(input);
            report.notes.push(
                if opts.verify {
                    "skipped: the output exists and reads back in full"
                } else {
                    "skipped: the output exists (size and header checked)"
                }
                .to_string(),
            );
            return Ok(());
        }
    }
    let (stem, ext) = output_stem(input, opts.to);
    let dir = output_dir(input, opts);
    let single = super::naming::single_output(&dir, &stem, ext, opts.to);
    if opts.shard_size.is_none() {
        // Fail fast, before reading anything.
        check_output(&single, input, opts)?;
    }
    let mut src = load_source(input, &opts.load, true)?;
    report.format = src.format.name().to_string();
    report.bytes_in = src.bytes_in;

    // select
    let mut root = src.graph.root().clone();
    if let Some(sel) = &opts.select {
        root = transform::select_path(&src.graph, &root, sel)?;
    } else if opts.to == Target::Safetensors {
        if let Some((key, v)) = transform::auto_select(&src.graph, &root) {
            report.notes.push(format!("selected '{key}'"));
            root = v;
        }
    }
    if opts.drop_optimizer {
        for k in transform::drop_optimizer(&mut src.graph, &root) {
            report.notes.push(format!("dropped '{k}'"));
        }
    }
    transform::edit_keys(&mut src.graph, &root, &opts.key_edits())?;
    let mut cast_plan = None;
    if let Some(d) = opts.dtype {
        let r = if streams(opts) {
            // Cast while writing (stream.rs); decide now what the cast would do.
            let p = transform::plan_cast(&src.graph, &root, d)?;
            let r = p.report.clone();
            cast_plan = Some((p, d));
            r
        } else {
            transform::cast_floats(&mut src.graph, &root, d)?
        };
        if !r.skipped.is_empty() {
            report.notes.push(format!(
                "left {} tensors uncast ({})",
                r.skipped.len(),
                r.skipped.join(", ")
            ));
        }
    }
    src.graph.root = Some(root.clone());

    match opts.to {
        Target::Safetensors => {
            let out = StreamedOut {
                cast: cast_plan.as_ref().map(|(p, d)| (p, *d)),
                mapped: &src.mapped,
            };
            write_safetensors_streamed(input, &src.graph, &root, &dir, &stem, opts, &out, report)
                .map(|p| pending.extend(p))
        }
        Target::Pt | Target::PtLegacy => {
            write_pt(input, &src.graph, &root, &dir, &stem, ext, opts, report)
        }
        Target::Dcp => super::write::write_dcp(input, &src.graph, &root, &single, opts, report),
    }
}
