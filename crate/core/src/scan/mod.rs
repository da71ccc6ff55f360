//! `torchsave scan`: what every pickle in a file would import and call, with a verdict per
//! construct, found by running our pickle VM (real memo and stack semantics, nothing ever
//! imported or executed) in tracing mode ([`crate::pickle::trace`]).
//!
//! * [`walk`] finds the pickles: zip records (also from local headers when the directory is
//!   damaged), tar members, legacy streams and bare pickles, pickle after pickle past each STOP;
//! * every traced import (GLOBAL, STACK_GLOBAL incl. names assembled from memo strings, INST),
//!   call (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ), BUILD on a non-data object and EXT code
//!   becomes a [`Finding`] classified by [`classify`] (allowlist-first, the `safe` list is the
//!   weights-only `Policy`);
//! * bytes a known reconstructor would unpickle (`torch.storage._load_from_bytes`,
//!   `pickle.loads`, ...) are scanned as a nested file, record `<record>@<offset>`.
//!
//! The document ([`ScanReport::to_json`]) is the CLI's `scan --json` schema (docs/scan.md).

pub mod classify;
pub mod discover;
mod walk;

pub use classify::Verdict;

use crate::bytes::ByteView;
use crate::error::{Error, ErrorCode};
use crate::pickle::policy::{Dialect, Policy};
use crate::pickle::trace::{TraceEvent, Traced};
use crate::pickle::{StorageSource, TorchPersistentLoader, UnpickleOptions};
use crate::value::Graph;
use serde_json::{json, Value as Json};
use std::collections::HashMap;
use std::path::Path;

/// Deepest nesting of pickles inside pickles that is followed.
const MAX_NESTING: usize = 4;

/// One construct (deduplicated: `count` times in this record, first at `offset`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// `None`: information only (TorchScript code), no verdict.
    pub verdict: Option<Verdict>,
    /// `import`, `call`, `build`, `ext`, `code`, `package`.
    pub kind: &'static str,
    /// `module.qualname` as Python resolves it (`os.system` for a written `posix.system`).
    pub name: String,
    /// The name as written in the file, when it differs.
    pub written: Option<String>,
    /// The record (`archive/data.pkl`, a tar member, `""` for the file itself).
    pub record: String,
    /// Byte offset of the opcode in the record.
    pub offset: Option<u64>,
    pub opcode: Option<&'static str>,
    pub count: u64,
    pub reason: String,
}

/// One pickle that was run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PickleRun {
    pub record: String,
    /// Where the pickle starts in the record.
    pub offset: u64,
    pub protocol: u8,
    /// Bytes it spans up to its STOP (`None` when it did not end).
    pub length: Option<u64>,
    /// Why the run stopped early (malformed pickle: Python's unpickler stops there too).
    pub error: Option<Error>,
}

/// The scan of one file.
#[derive(Clone, Debug)]
pub struct ScanReport {
    /// `zip`, `torchscript`, `torch.package`, `legacy`, `tar`, `pickle`, `safetensors`, `unknown`.
    pub format: &'static str,
    pub findings: Vec<Finding>,
    pub pickles: Vec<PickleRun>,
    /// Damage worked around, records not scanned.
    pub notes: Vec<String>,
    /// Set when no verdict can be given: the file cannot be read, no pickle in it could be run
    /// to its STOP (not a checkpoint, or too damaged), or a pickle stopped at one of our limits
    /// (Python would have gone on).
    pub error: Option<Error>,
}

impl ScanReport {
    /// The worst verdict among the findings (`None`: no findings with a verdict).
    pub fn worst(&self) -> Option<Verdict> {
        self.findings.iter().filter_map(|f| f.verdict).max()
    }

    /// 1 flagged (a dangerous finding; with `strict`, also an unknown one), else 2 when no
    /// verdict can be given ([`ScanReport::error`]), else 0 clean.
    pub fn exit_code(&self, strict: bool) -> i32 {
        match (self.worst(), &self.error) {
            (Some(Verdict::Dangerous), _) => 1,
            (_, Some(_)) => 2,
            (Some(Verdict::Unknown), None) if strict => 1,
            _ => 0,
        }
    }

    /// How many findings (deduplicated constructs) have each verdict.
    pub fn counts(&self) -> [(&'static str, usize); 5] {
        let n = |v: Option<Verdict>| self.findings.iter().filter(|f| f.verdict == v).count();
        [
            ("safe", n(Some(Verdict::Safe))),
            ("data", n(Some(Verdict::Data))),
            ("unknown", n(Some(Verdict::Unknown))),
            ("dangerous", n(Some(Verdict::Dangerous))),
            ("info", n(None)),
        ]
    }

    /// The `scan --json` document for this file (docs/scan.md).
    pub fn to_json(&self, path: &str, strict: bool) -> Json {
        let err = |e: &Error| {
            json!({
                "code": e.code.as_str(),
                "message": e.message,
                "record": e.record,
                "offset": e.offset,
            })
        };
        let exit = self.exit_code(strict);
        json!({
            "path": path,
            "format": self.format,
            "status": match exit { 0 => "clean", 1 => "flagged", _ => "error" },
            "exit_code": exit,
            "strict": strict,
            "worst": self.worst().map(Verdict::as_str),
            "counts": self.counts().iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "findings": self.findings.iter().map(|f| json!({
                "severity": f.verdict.map(Verdict::as_str).unwrap_or("info"),
                "kind": f.kind,
                "name": f.name,
                "written": f.written,
                "record": f.record,
                "offset": f.offset,
                "opcode": f.opcode,
                "count": f.count,
                "reason": f.reason,
            })).collect::<Vec<_>>(),
            "pickles": self.pickles.iter().map(|p| json!({
                "record": p.record,
                "offset": p.offset,
                "protocol": p.protocol,
                "length": p.length,
                "error": p.error.as_ref().map(err),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
            "error": self.error.as_ref().map(err),
        })
    }
}

/// Scans a file (mapped, guarded like every load). Never fails: errors are in the report.
pub fn scan_file(path: &Path) -> ScanReport {
    match crate::container::source::open(path, true) {
        Ok(bytes) => {
            let mut r = scan_bytes(bytes.clone());
            if let Err(e) = bytes.check() {
                r.error = Some(e);
            }
            r
        }
        Err(e) => ScanReport {
            format: "unknown",
            findings: Vec::new(),
            pickles: Vec::new(),
            notes: Vec::new(),
            error: Some(e.in_file(path.display().to_string())),
        },
    }
}

/// Scans bytes already in memory.
pub fn scan_bytes(bytes: ByteView) -> ScanReport {
    let mut s = Scanner {
        findings: Vec::new(),
        index: HashMap::new(),
        pickles: Vec::new(),
        notes: Vec::new(),
        error: None,
    };
    let format = s.scan(&bytes, "", 0);
    let completed = s.pickles.iter().any(|p| p.error.is_none());
    if !completed && format != "safetensors" {
        // Nothing could be judged as a whole: the first failure says why.
        let first = s.pickles.iter().find_map(|p| p.error.clone());
        s.error.get_or_insert_with(|| {
            first.unwrap_or_else(|| {
                crate::err!(
                    UnknownFormat,
                    "no pickle found: not a PyTorch checkpoint, pickle or safetensors file"
                )
            })
        });
    }
    ScanReport {
        format,
        findings: s.findings,
        pickles: s.pickles,
        notes: s.notes,
        error: s.error,
    }
}

/// Storages are not needed to judge a pickle: every storage is "bytes not known yet".
struct NoStorages;
impl StorageSource for NoStorages {
    fn storage(
        &mut self,
        _: &str,
        _: crate::DType,
        _: u64,
    ) -> crate::error::Result<Option<ByteView>> {
        Ok(None)
    }
}

type Key = (
    String,
    &'static str,
    String,
    Option<Verdict>,
    Option<&'static str>,
);

struct Scanner {
    findings: Vec<Finding>,
    index: HashMap<Key, usize>,
    pickles: Vec<PickleRun>,
    notes: Vec<String>,
    error: Option<Error>,
}

impl Scanner {
    fn add(&mut self, f: Finding) {
        let key = (
            f.record.clone(),
            f.kind,
            f.name.clone(),
            f.verdict,
            f.opcode,
        );
        if let Some(&i) = self.index.get(&key) {
            if let Some(g) = self.findings.get_mut(i) {
                g.count += 1;
            }
            return;
        }
        self.index.insert(key, self.findings.len());
        self.findings.push(f);
    }

    /// Walks `bytes` (a file, or bytes a reconstructor would unpickle) and scans its pickles.
    fn scan(&mut self, bytes: &ByteView, prefix: &str, depth: usize) -> &'static str {
        let w = walk::walk(bytes);
        let join = |r: &str| match (prefix.is_empty(), r.is_empty()) {
            (true, _) => r.to_string(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}/{r}"),
        };
        self.notes.extend(w.notes);
        for x in w.extras {
            match x {
                walk::Extra::TorchScriptCode { files, record } => self.add(Finding {
                    verdict: None,
                    kind: "code",
                    name: "TorchScript code".to_string(),
                    written: None,
                    record: join(&record),
                    offset: None,
                    opcode: None,
                    count: files as u64,
                    reason: format!(
                        "{files} TorchScript source file(s) under code/: compiled by libtorch when the module is \
                         loaded with torch.jit.load and run when its methods are called; torchsave never runs them"
                    ),
                }),
                walk::Extra::PackageCode { files, record } => self.add(Finding {
                    verdict: Some(Verdict::Dangerous),
                    kind: "package",
                    name: "torch.package".to_string(),
                    written: None,
                    record: join(&record),
                    offset: None,
                    opcode: None,
                    count: files as u64,
                    reason: format!(
                        "a torch.package archive: contains Python code ({files} .py file(s)) that \
                         torch.package.PackageImporter imports and runs"
                    ),
                }),
            }
        }
        for blob in w.blobs {
            let record = join(&blob.record);
            self.scan_blob(&blob, &record, depth);
        }
        w.format
    }

    fn scan_blob(&mut self, blob: &walk::Blob, record: &str, depth: usize) {
        let b = blob.bytes.as_slice();
        let opts = UnpickleOptions::default();
        let mut pos = 0usize;
        let mut first = true;
        while pos < b.len() {
            let rest = b.get(pos..).unwrap_or(&[]);
            let starts =
                walk::looks_like_pickle(rest) || (first && walk::opens_pickle(rest, record));
            if !starts {
                if !blob.resync {
                    break;
                }
                match walk::next_pickle_start(b, pos + 1) {
                    Some(p) => {
                        pos = p;
                        first = false;
                        continue;
                    }
                    None => break,
                }
            }
            let mut graph = Graph::new();
            let mut src = NoStorages;
            let mut loader = TorchPersistentLoader::new(&mut src);
            let policy = match blob.dialect {
                Dialect::TorchSave => Policy::new(false, &[]),
                Dialect::TorchScript => Policy::for_torchscript(false, &[]),
                Dialect::DcpMetadata => Policy::for_dcp_metadata(false, &[]),
            };
            let run = crate::pickle::trace(rest, &mut graph, &opts, &mut loader, policy);
            let keep = first || !run.events.is_empty() || run.result.is_ok();
            for ev in &run.events {
                self.event(ev, pos as u64, record, blob.dialect, depth);
            }
            match run.result {
                Ok(out) => {
                    self.pickles.push(PickleRun {
                        record: record.to_string(),
                        offset: pos as u64,
                        protocol: out.protocol,
                        length: Some(out.consumed as u64),
                        error: None,
                    });
                    pos += out.consumed.max(1);
                }
                Err(e) => {
                    let e = if record.is_empty() {
                        e
                    } else {
                        e.in_record(record.to_string())
                    };
                    if e.code == ErrorCode::LimitExceeded {
                        self.error.get_or_insert_with(|| {
                            crate::err!(
                                LimitExceeded,
                                "the scan of record '{record}' stopped at a limit ({}); Python would go on, so no verdict can be given",
                                e.message
                            )
                            .in_record(record.to_string())
                        });
                    }
                    if keep {
                        self.pickles.push(PickleRun {
                            record: record.to_string(),
                            offset: pos as u64,
                            protocol: 0,
                            length: None,
                            error: Some(e),
                        });
                    }
                    if !blob.resync {
                        break;
                    }
                    pos += 1;
                }
            }
            first = false;
        }
    }

    fn event(&mut self, ev: &TraceEvent, base: u64, record: &str, dialect: Dialect, depth: usize) {
        let offset = Some(base + ev.offset);
        let opcode = Some(ev.opcode);
        let mk = |verdict, kind, name: String, written, reason: String| Finding {
            verdict: Some(verdict),
            kind,
            name,
            written,
            record: record.to_string(),
            offset,
            opcode,
            count: 1,
            reason,
        };
        match &ev.what {
            Traced::Import {
                written,
                module,
                name,
            } => {
                let (v, why) = if classify::resolve(module, name) == "builtins.getattr" {
                    (
                        Verdict::Unknown,
                        "attribute access: each call is judged by the attribute it reaches".to_string(),
                    )
                } else {
                    classify::classify(module, name, dialect)
                };
                let full = classify::resolve(module, name);
                let written = (*written != full).then(|| written.clone());
                self.add(mk(v, "import", full, written, why));
            }
            Traced::Call {
                callee,
                callee_kind,
                nested,
                getattr_of,
            } => {
                let f = match (callee, getattr_of) {
                    (_, Some((m, n))) => {
                        let (v, why) = classify::classify(m, n, dialect);
                        let why = format!("getattr reaching {}: {why}", classify::resolve(m, n));
                        mk(v, "call", classify::resolve(m, n), Some("builtins.getattr".to_string()), why)
                    }
                    (Some((m, n)), None) if classify::resolve(m, n) == "builtins.getattr" => mk(
                        Verdict::Dangerous,
                        "call",
                        "builtins.getattr".to_string(),
                        None,
                        "getattr on a value the pickle built (not a named global): reaches any attribute".to_string(),
                    ),
                    (Some((m, n)), None) => {
                        let (v, why) = classify::classify(m, n, dialect);
                        mk(v, "call", classify::resolve(m, n), None, why)
                    }
                    (None, None) => mk(
                        Verdict::Dangerous,
                        "call",
                        format!("<{callee_kind}>"),
                        None,
                        format!(
                            "calls a {callee_kind} the pickle built itself (e.g. a getattr result), not a named global"
                        ),
                    ),
                };
                let name = f.name.clone();
                self.add(f);
                if let Some(bytes) = nested {
                    let inner = format!("{record}@{}", base + ev.offset);
                    if depth + 1 >= MAX_NESTING {
                        self.notes.push(format!(
                            "{inner}: pickles nested deeper than {MAX_NESTING} levels were not scanned"
                        ));
                        self.add(mk(
                            Verdict::Unknown,
                            "call",
                            name,
                            None,
                            "nested pickle too deep to scan".to_string(),
                        ));
                    } else {
                        let view = ByteView::from_vec(bytes.clone());
                        self.scan(&view, &inner, depth + 1);
                    }
                }
            }
            Traced::Build { target, on_global } => {
                let f = match (target, on_global) {
                    (Some((m, n)), true) => mk(
                        Verdict::Dangerous,
                        "build",
                        classify::resolve(m, n),
                        None,
                        "BUILD sets attributes on a class, function or module itself (monkey-patching: a later \
                         GLOBAL of an allowed name can then resolve to anything)"
                            .to_string(),
                    ),
                    (Some((m, n)), false) => {
                        let (v, why) = classify::classify(m, n, dialect);
                        mk(v, "build", classify::resolve(m, n), None, why)
                    }
                    (None, _) => mk(
                        Verdict::Unknown,
                        "build",
                        "<object>".to_string(),
                        None,
                        "BUILD on an object whose class the pickle built itself".to_string(),
                    ),
                };
                self.add(f);
            }
            Traced::Ext { code } => self.add(mk(
                Verdict::Unknown,
                "ext",
                format!("copyreg extension {code}"),
                None,
                "EXT names whatever copyreg.add_extension registered in the loading process (a stock Python \
                 has none, so the load fails there)"
                    .to_string(),
            )),
        }
    }
}
