//! Many inputs at once: a dedicated rayon pool of `jobs` workers and the committer threads
//! that fsync and name their outputs.

use super::job::{write_file, Written};
use super::{common_root, ConvertOptions, FileReport};
use crate::error::{ErrorCode, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// A progress event: `report` is `None` when a file starts, `Some` when it is done.
#[derive(Clone, Debug)]
pub struct Progress {
    pub index: usize,
    pub total: usize,
    /// Files finished so far (including this one when `report` is set).
    pub done: usize,
    pub input: PathBuf,
    pub report: Option<FileReport>,
}

pub(super) fn cancelled_check(cancel: Option<&AtomicBool>) -> Result<()> {
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        crate::bail!(Cancelled, "cancelled");
    }
    Ok(())
}

/// Threads that commit written outputs (fsync, name) for [`convert_many`]. They mostly wait
/// on the disk; several fsyncs in flight share the file system's journal commits, which is
/// most of the gain (one output at a time pays a journal commit and a cache flush each).
const COMMITTERS: usize = 4;

/// Converts many inputs on a dedicated pool of `jobs` threads (at most `jobs` files in
/// flight). Reports come back in input order; `progress` is called from worker threads as
/// files start and finish; once `cancel` is set, files not yet started report
/// `E_CANCELLED`. `keep_tree` without `root_dir` uses the inputs' common folder.
///
/// A streamed output is committed (fsync, then named) on one of [`COMMITTERS`] threads
/// while its worker goes on with the next file; its file is reported done (progress, and
/// its slot in the result) once committed. At most `2 * jobs` written files wait for a
/// commit at a time.
pub fn convert_many(
    inputs: &[PathBuf],
    opts: &ConvertOptions,
    jobs: usize,
    progress: &(dyn Fn(Progress) + Sync),
    cancel: &AtomicBool,
) -> Vec<FileReport> {
    use rayon::prelude::*;
    use std::sync::mpsc;
    use std::sync::Mutex;
    let mut opts = opts.clone();
    if opts.keep_tree && opts.root_dir.is_none() {
        opts.root_dir = common_root(inputs);
    }
    let total = inputs.len();
    let done = AtomicUsize::new(0);
    // Reports finished on committer threads, by input index.
    let committed: Mutex<Vec<(usize, FileReport)>> = Mutex::new(Vec::new());
    let finished = |index: usize, report: FileReport| -> FileReport {
        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress(Progress {
            index,
            total,
            done: d,
            input: report.input.clone(),
            report: Some(report.clone()),
        });
        report
    };
    let (tx, rx) = mpsc::sync_channel::<(usize, Written)>(2 * jobs.max(1));
    let rx = Mutex::new(rx);
    let committer = || loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((index, w)) = job else { return };
        let report = finished(index, w.commit());
        if let Ok(mut c) = committed.lock() {
            c.push((index, report));
        }
    };
    let mut reports: Vec<Option<FileReport>> = std::thread::scope(|scope| {
        let started = (0..COMMITTERS)
            .filter(|i| {
                std::thread::Builder::new()
                    .name(format!("torchsave-commit-{i}"))
                    .spawn_scoped(scope, committer)
                    .is_ok()
            })
            .count();
        // No committer thread: commit on the worker.
        let tx = (started > 0).then_some(tx);
        let run = |(index, input): (usize, &PathBuf)| -> Option<FileReport> {
            progress(Progress {
                index,
                total,
                done: done.load(Ordering::Relaxed),
                input: input.clone(),
                report: None,
            });
            let w = match cancelled_check(Some(cancel)) {
                Err(e) => Written {
                    report: FileReport {
                        input: input.clone(),
                        error: Some((e.code, e.in_file(input.display().to_string()).to_string())),
                        ..FileReport::default()
                    },
                    pending: Vec::new(),
                    durable: opts.durable,
                    start: Instant::now(),
                },
                Ok(()) => write_file(input, &opts),
            };
            let w = match (&tx, w.pending.is_empty()) {
                (Some(tx), false) => match tx.send((index, w)) {
                    Ok(()) => return None,
                    // Every committer is gone: commit here.
                    Err(mpsc::SendError((_, w))) => w,
                },
                _ => w,
            };
            Some(finished(index, w.commit()))
        };
        let out = match rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .thread_name(|i| format!("torchsave-convert-{i}"))
            .build()
        {
            Ok(pool) => pool.install(|| {
                inputs
                    .par_iter()
                    .enumerate()
                    .with_max_len(1)
                    .map(run)
                    .collect()
            }),
            // No threads available: do the work here, one file at a time.
            Err(_) => inputs.iter().enumerate().map(run).collect(),
        };
        // Closing the channel lets the committers finish the queue and exit; the scope
        // waits for them.
        drop(tx);
        out
    });
    let committed = committed.into_inner().unwrap_or_else(|e| e.into_inner());
    for (index, report) in committed {
        if let Some(slot) = reports.get_mut(index) {
            *slot = Some(report);
        }
    }
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| FileReport {
                input: inputs.get(i).cloned().unwrap_or_default(),
                error: Some((ErrorCode::Io, "the output was never committed".into())),
                ..FileReport::default()
            })
        })
        .collect()
}
