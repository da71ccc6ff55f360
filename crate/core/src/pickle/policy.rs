//! The `weights_only` policy, mirroring torch 2.11: one value, [`Policy`], that every
//! decision of the unpickler and the containers asks.
//!
//! Source of truth: `torch/_weights_only_unpickler.py` of the installed torch 2.11
//! (`Unpickler.load`, `_get_allowed_globals`, `_blocklisted_modules`) and the container checks
//! of `torch.serialization.load`. Names are `module.qualname` after the Python 2 name mapping
//! ([`map_py2_name`], CPython's `_compat_pickle`). The table below lists what
//! `_get_allowed_globals()` returns; `tests::allowlist_matches_torch` counts it.
//!
//! | Decision | [`Policy`] method | torch 2.11 |
//! | --- | --- | --- |
//! | opcodes | [`Policy::opcode`] | the 34 opcodes `Unpickler.load` handles (no FRAME, no text opcodes) |
//! | GLOBAL / STACK_GLOBAL / INST names | [`Policy::global`] | blocklist, then `_get_allowed_globals()` + safe globals |
//! | REDUCE / NEWOBJ / NEWOBJ_EX / INST / OBJ | [`Policy::call`] | only allowed globals may be called |
//! | BUILD on an object | [`Policy::build`] | Tensor, Parameter, OrderedDict or an allowed class |
//! | APPEND(S) on an object | [`Policy::append`] | lists only |
//! | SETITEM(S) on an object | [`Policy::set_item`] | dict, OrderedDict, Counter only |
//! | BINPERSID | [`Policy::persistent_id`] | an int, or a tuple whose first item is `'storage'` |
//! | containers | [`Policy::container`] | tar files are refused |
//!
//! Every refusal is `E_UNSAFE_GLOBAL`, with a message naming the construct and saying to load
//! with `weightsOnly: false` only if the file is trusted. Malformed input stays
//! `E_BAD_PICKLE`: the policy is only asked where loading without `weights_only` would go on.
//!
//! The same value also keeps the verdict `inspect` reports (`weights_only_ok`): whatever the
//! options, each decision also asks "would torch's *default* policy (no safe globals) accept
//! this?", and the first construct it would refuse is remembered ([`Policy::refusal`]). With
//! `weights_only: false` nothing is refused, so the run goes on past that point exactly as
//! far as a strict run would have got (the two runs are the same up to the first refusal).
//!
//! Nothing is ever executed whatever the policy says: with `weights_only: false` unknown
//! callables become inert `PyObject`s. The policy exists so that the default load accepts
//! exactly what `torch.load` accepts (no surprises in either direction) and so that the binding
//! never hands a caller an object of a class the caller did not allow.
//!
//! Blocklist: torch blocks `sys`, `os`, `posix`, `nt` even when the user allowlists them. We
//! also block their submodules and a few modules/builtins that are code-execution primitives
//! and never data (`subprocess`, `builtins.eval`, ...): allowing them can never be meaningful.

use super::kinds::value_kind;
use super::opcodes as op;
use crate::dtype::DType;
use crate::error::Result;
use crate::options::LoadOptions;
use crate::value::{Format, Graph, Node, Value};

/// The hint a refusal message ends with.
const TRUST_HINT: &str = "load with weightsOnly: false only if you trust the file";

/// The weights-only policy of one load: the rules, the user's options, and the verdict.
#[derive(Clone, Debug)]
pub struct Policy {
    weights_only: bool,
    safe_globals: Vec<String>,
    refusal: Option<String>,
    dialect: Dialect,
}

/// Which pickles the policy judges: `torch.save`'s, or the ones inside a TorchScript archive
/// (`data.pkl`, `constants.pkl`), whose unpickler knows more globals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    TorchSave,
    TorchScript,
    /// The `.metadata` pickle of a distributed checkpoint (`torch.distributed.checkpoint`):
    /// torch reads it with `pickle.load`; here its dataclasses ([`DCP_METADATA_GLOBALS`]) are
    /// known data types, every other global is judged as in a torch.save pickle.
    DcpMetadata,
}

/// The classes a DCP `.metadata` pickle (torch 2.11's `FileSystemWriter.finish`) names
/// besides torch.save's table: the dataclasses of `torch/distributed/checkpoint/metadata.py`
/// and `filesystem.py`, and the `pathlib` class of `StorageMeta.checkpoint_id`. They are
/// kept as inert objects (`PyObject`) whose state the DCP reader interprets; nothing runs.
pub const DCP_METADATA_GLOBALS: &[&str] = &[
    "torch.distributed.checkpoint.metadata.Metadata",
    "torch.distributed.checkpoint.metadata.TensorStorageMetadata",
    "torch.distributed.checkpoint.metadata.ChunkStorageMetadata",
    "torch.distributed.checkpoint.metadata.TensorProperties",
    "torch.distributed.checkpoint.metadata.BytesStorageMetadata",
    "torch.distributed.checkpoint.metadata.MetadataIndex",
    "torch.distributed.checkpoint.metadata.StorageMeta",
    "torch.distributed.checkpoint.metadata._MEM_FORMAT_ENCODING",
    "torch.distributed.checkpoint.filesystem._StorageInfo",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
];

/// The `torch.jit._pickle` helpers torch's TorchScript unpickler resolves (`readGlobal`).
pub const TORCHSCRIPT_HELPERS: &[&str] = &[
    "build_intlist",
    "build_doublelist",
    "build_boollist",
    "build_tensorlist",
    "build_complexlist",
    "build_tensor_from_id",
    "restore_type_tag",
];

/// True for the names a TorchScript archive's pickles may use beyond torch.save's table:
/// `__torch__.<qualname>` and `torch.jit._pickle.<helper>`.
pub fn is_torchscript_global(full_name: &str) -> bool {
    if let Some(rest) = full_name.strip_prefix("__torch__.") {
        return !rest.is_empty();
    }
    full_name
        .strip_prefix("torch.jit._pickle.")
        .is_some_and(|h| TORCHSCRIPT_HELPERS.contains(&h))
}

/// What a call opcode calls.
#[derive(Clone, Copy, Debug)]
pub enum Callee<'a> {
    /// A global, `module.qualname` after Python 2 mapping.
    Global(&'a str),
    /// Anything else the pickle built (its kind, for the message).
    Other(&'static str),
}

/// Whether one construct is allowed by torch's default policy and by the user's.
struct Judgement {
    by_default: bool,
    by_user: bool,
}

impl Policy {
    /// The policy for `weights_only` with extra allowed globals (`module.qualname`).
    pub fn new(weights_only: bool, safe_globals: &[String]) -> Self {
        Policy {
            weights_only,
            safe_globals: safe_globals.to_vec(),
            refusal: None,
            dialect: Dialect::TorchSave,
        }
    }

    /// The policy for the pickles of a TorchScript archive: `torch.jit.load`'s globals are
    /// allowed too, and the verdict starts as torch.load's refusal of TorchScript archives.
    pub fn for_torchscript(weights_only: bool, safe_globals: &[String]) -> Self {
        let mut p = Policy::new(weights_only, safe_globals);
        p.dialect = Dialect::TorchScript;
        p.refusal = Some(
            "Cannot use weights_only=True with TorchScript archives passed to torch.load (torch 2.11 refuses them); \
             torchsave reads them as data with torch.jit.load, allowing only the globals TorchScript's own \
             unpickler resolves (__torch__.* classes, torch.jit._pickle helpers)"
            .to_string(),
        );
        p
    }

    /// The policy for a distributed checkpoint's `.metadata` pickle: torch's table plus
    /// [`DCP_METADATA_GLOBALS`], and every opcode the VM knows (torch reads the file with
    /// `pickle.load`, protocol 4 with FRAME and MEMOIZE). The verdict counts those as
    /// accepted: `torch.distributed.checkpoint.load` reads them.
    pub fn for_dcp_metadata(weights_only: bool, safe_globals: &[String]) -> Self {
        let mut p = Policy::new(weights_only, safe_globals);
        p.dialect = Dialect::DcpMetadata;
        p
    }

    /// Which pickles this policy judges.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The policy a load with these options follows.
    pub fn for_load(opts: &LoadOptions) -> Self {
        Policy::new(opts.weights_only, &opts.safe_globals)
    }

    /// True when refusals are errors (`weights_only: true`).
    pub fn enforced(&self) -> bool {
        self.weights_only
    }

    /// The first construct torch 2.11's default weights-only policy refuses, as a message;
    /// `None` when it accepts everything seen so far.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// The verdict, taken out (see [`Policy::refusal`]).
    pub fn into_refusal(self) -> Option<String> {
        self.refusal
    }

    /// Records a refusal seen elsewhere (another pickle of the same file) if none is yet.
    pub fn note_refusal(&mut self, refusal: Option<String>) {
        if self.refusal.is_none() {
            self.refusal = refusal;
        }
    }

    /// The one place a decision becomes an error or a note.
    fn judge(&mut self, j: Judgement, message: impl FnOnce() -> String) -> Result<()> {
        if j.by_default && j.by_user {
            return Ok(());
        }
        let refuse = self.weights_only && !j.by_user;
        if !j.by_default && self.refusal.is_none() || refuse {
            let m = message();
            if refuse {
                return Err(crate::err!(UnsafeGlobal, "{m}"));
            }
            self.refusal = Some(m);
        }
        Ok(())
    }

    /// A construct no safe global can allow.
    fn never(&mut self, message: impl FnOnce() -> String) -> Result<()> {
        self.judge(
            Judgement {
                by_default: false,
                by_user: false,
            },
            message,
        )
    }

    fn name_judgement(&self, full_name: &str) -> Judgement {
        let blocked = is_blocked(full_name);
        let dcp = !blocked
            && self.dialect == Dialect::DcpMetadata
            && DCP_METADATA_GLOBALS.contains(&full_name);
        let by_default = !blocked && (is_allowed_by_default(full_name) || dcp);
        let by_dialect =
            !blocked && self.dialect == Dialect::TorchScript && is_torchscript_global(full_name);
        Judgement {
            by_default,
            by_user: by_default
                || by_dialect
                || (!blocked && self.safe_globals.iter().any(|g| g == full_name)),
        }
    }

    /// One opcode, before it runs: torch's weights-only unpickler handles 34 of the 68.
    pub fn opcode(&mut self, code: u8) -> Result<()> {
        if weights_only_accepts(code) || self.dialect == Dialect::DcpMetadata {
            return Ok(());
        }
        self.never(|| {
            format!(
                "weights_only rejects opcode {} (0x{code:02x}), as torch.load(weights_only=True) does; {TRUST_HINT}",
                op::name(code).unwrap_or("?")
            )
        })
    }

    /// One GLOBAL (also STACK_GLOBAL and INST's class), `module.qualname` after mapping.
    pub fn global(&mut self, full_name: &str) -> Result<()> {
        if is_blocked(full_name) {
            return self.never(|| {
                format!(
                    "GLOBAL {full_name} is blocked: its module can never be loaded, not even with safeGlobals \
                     (the file tries to reach code execution; do not load it unless you wrote it)"
                )
            });
        }
        let j = self.name_judgement(full_name);
        self.judge(j, || {
            format!(
                "GLOBAL {full_name} is not allowed when loading with weightsOnly: true; \
                 {TRUST_HINT}, or pass safeGlobals: ['{full_name}']"
            )
        })
    }

    /// REDUCE / NEWOBJ / NEWOBJ_EX / INST / OBJ: only allowed globals may be called.
    pub fn call(&mut self, callee: Callee<'_>) -> Result<()> {
        match callee {
            Callee::Global(full_name) => {
                let j = self.name_judgement(full_name);
                self.judge(j, || {
                    format!(
                        "weights_only: cannot call {full_name} (only allowed globals may be called); \
                         {TRUST_HINT}, or pass safeGlobals: ['{full_name}']"
                    )
                })
            }
            Callee::Other(kind) => self.never(|| {
                format!(
                    "weights_only: cannot call a {kind} (only allowed globals may be called); {TRUST_HINT}"
                )
            }),
        }
    }

    /// BUILD on an object of class `full_name` (tensors, Parameters and OrderedDicts always
    /// take state and do not ask).
    pub fn build(&mut self, full_name: &str) -> Result<()> {
        let j = self.name_judgement(full_name);
        self.judge(j, || {
            format!(
                "weights_only: cannot BUILD a {full_name}; {TRUST_HINT}, or pass safeGlobals: ['{full_name}']"
            )
        })
    }

    /// APPEND / APPENDS on an object of class `full_name` (lists do not ask).
    pub fn append(&mut self, full_name: &str) -> Result<()> {
        self.never(|| {
            format!("weights_only: can only append to lists, but got a {full_name}; {TRUST_HINT}")
        })
    }

    /// SETITEM / SETITEMS on an object of class `full_name` (dicts and OrderedDicts do not ask).
    pub fn set_item(&mut self, full_name: &str) -> Result<()> {
        if full_name == "collections.Counter" {
            return Ok(());
        }
        self.never(|| {
            format!(
                "weights_only: can only SETITEM on dict, collections.OrderedDict, collections.Counter, \
                 but got a {full_name}; {TRUST_HINT}"
            )
        })
    }

    /// A BINPERSID id, before the container's loader sees it: an int, or a tuple whose first
    /// item is `'storage'` (str, or Python 2 bytes).
    pub fn persistent_id(&mut self, graph: &Graph, pid: &Value) -> Result<()> {
        let problem = match pid {
            Value::Int(_) | Value::BigInt(_) => None,
            Value::Ref(id) => match graph.node(*id) {
                Some(Node::Tuple(items)) => match items.first() {
                    None => None,
                    Some(Value::Str(s)) if s == "storage" => None,
                    Some(Value::Bytes(b)) if b == b"storage" => None,
                    _ => Some("only ('storage', ...) persistent ids are allowed".to_string()),
                },
                Some(n) => Some(format!(
                    "a persistent id must be a tuple or an int, got {}",
                    super::kinds::kind_name(n)
                )),
                None => Some("a persistent id must be a tuple or an int".to_string()),
            },
            other => Some(format!(
                "a persistent id must be a tuple or an int, got {}",
                value_kind(other)
            )),
        };
        match problem {
            None => Ok(()),
            Some(p) => self.never(|| format!("weights_only: {p}; {TRUST_HINT}")),
        }
    }

    /// The container, before its pickles run: torch refuses tar files under weights_only.
    pub fn container(&mut self, format: Format) -> Result<()> {
        if format != Format::Tar {
            return Ok(());
        }
        self.never(|| {
            format!(
                "Cannot use weights_only=True with files saved in the legacy .tar format (torch before 0.1.10): \
                 loading it runs its pickle with full object support; {TRUST_HINT}"
            )
        })
    }
}

/// True for the opcodes torch 2.11's weights-only unpickler handles
/// (`torch/_weights_only_unpickler.py`, `Unpickler.load`); anything else raises "Unsupported
/// operand" there.
pub fn weights_only_accepts(code: u8) -> bool {
    matches!(
        code,
        op::PROTO
            | op::STOP
            | op::GLOBAL
            | op::NEWOBJ
            | op::REDUCE
            | op::BUILD
            | op::APPEND
            | op::APPENDS
            | op::SETITEM
            | op::SETITEMS
            | op::MARK
            | op::TUPLE
            | op::TUPLE1
            | op::TUPLE2
            | op::TUPLE3
            | op::NONE
            | op::NEWFALSE
            | op::NEWTRUE
            | op::EMPTY_TUPLE
            | op::EMPTY_LIST
            | op::EMPTY_DICT
            | op::EMPTY_SET
            | op::BININT
            | op::BININT1
            | op::BININT2
            | op::BINFLOAT
            | op::BINUNICODE
            | op::SHORT_BINSTRING
            | op::BINPERSID
            | op::BINGET
            | op::LONG_BINGET
            | op::BINPUT
            | op::LONG_BINPUT
            | op::LONG1
    )
}

/// Modules torch blocks (exact match or any submodule), plus execution primitives.
const BLOCKED_MODULES: &[&str] = &[
    "sys",
    "os",
    "posix",
    "nt",
    "subprocess",
    "ctypes",
    "importlib",
    "runpy",
    "pty",
    "shutil",
    "socket",
];

/// Builtins that are code execution, never data.
const BLOCKED_BUILTINS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "__import__",
    "open",
    "breakpoint",
    "input",
    "globals",
    "locals",
    "vars",
];

/// Fixed entries of torch's `_get_allowed_globals()` (dtypes, storage and tensor classes are
/// generated below).
const FIXED: &[&str] = &[
    "collections.OrderedDict",
    "collections.Counter",
    "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout",
    "torch.Size",
    "torch.Tensor",
    "torch.device",
    "_codecs.encode",
    "builtins.bytearray",
    "builtins.set",
    "builtins.complex",
    "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage",
    "torch.per_tensor_affine",
    "torch.per_tensor_symmetric",
    "torch.per_channel_affine",
    "torch.per_channel_symmetric",
    "torch.per_channel_affine_float_qparams",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor",
    "torch._tensor._rebuild_from_type_v2",
];

// Tensor and storage classes come from the one storage-class table (`dtype.rs`):
// `torch._tensor_classes` holds the dense classes of `DType::from_tensor_class` (CPU and CUDA)
// and their sparse twins less `BoolTensor`; `torch.cuda` has every storage class but the
// quantized ones.

/// `torch.sparse.<X>Tensor` / `torch.cuda.sparse.<X>Tensor`.
fn is_sparse_tensor_class(name: &str) -> bool {
    DType::from_tensor_class(name).is_some_and(|d| d != DType::Bool)
}

/// `torch.cuda.<X>Storage`.
fn is_cuda_storage_class(name: &str) -> bool {
    DType::from_storage_class(name).is_some_and(|d| !d.is_quantized())
}

/// True when `full_name` (`module.qualname`, already mapped from Python 2 names) is a module
/// or builtin that may never be allowed, not even through `safe_globals`.
pub fn is_blocked(full_name: &str) -> bool {
    let module = full_name.rsplit_once('.').map(|(m, _)| m).unwrap_or("");
    if let Some(b) = full_name.strip_prefix("builtins.") {
        if BLOCKED_BUILTINS.contains(&b) {
            return true;
        }
    }
    BLOCKED_MODULES.iter().any(|b| {
        module == *b || (module.starts_with(b) && module.as_bytes().get(b.len()) == Some(&b'.'))
    })
}

/// True when torch 2.11's weights-only unpickler accepts `full_name` with no user allowlist.
pub fn is_allowed_by_default(full_name: &str) -> bool {
    if FIXED.contains(&full_name) {
        return true;
    }
    if let Some(rest) = full_name.strip_prefix("torch.") {
        // Every dtype: the legacy-storage ones and the "new" ones (DType::ALL covers both),
        // plus uint1..7 / int1..7 which we cannot represent but torch allows.
        if DType::ALL.iter().any(|d| d.name() == rest) {
            return true;
        }
        if let Some(n) = rest
            .strip_prefix("uint")
            .or_else(|| rest.strip_prefix("int"))
        {
            if matches!(n.as_bytes(), [b'1'..=b'7']) {
                return true;
            }
        }
        if DType::from_tensor_class(rest).is_some() || DType::from_storage_class(rest).is_some() {
            return true;
        }
        if let Some(c) = rest.strip_prefix("cuda.") {
            if DType::from_tensor_class(c).is_some() || is_cuda_storage_class(c) {
                return true;
            }
            if let Some(s) = c.strip_prefix("sparse.") {
                return is_sparse_tensor_class(s);
            }
        }
        if let Some(s) = rest.strip_prefix("sparse.") {
            return is_sparse_tensor_class(s);
        }
    }
    false
}

/// CPython's `_compat_pickle.IMPORT_MAPPING` (Python 2 module → Python 3 module).
const IMPORT_MAPPING: &[(&str, &str)] = &[
    ("__builtin__", "builtins"),
    ("copy_reg", "copyreg"),
    ("Queue", "queue"),
    ("SocketServer", "socketserver"),
    ("ConfigParser", "configparser"),
    ("repr", "reprlib"),
    ("tkFileDialog", "tkinter.filedialog"),
    ("tkSimpleDialog", "tkinter.simpledialog"),
    ("tkColorChooser", "tkinter.colorchooser"),
    ("tkCommonDialog", "tkinter.commondialog"),
    ("Dialog", "tkinter.dialog"),
    ("Tkdnd", "tkinter.dnd"),
    ("tkFont", "tkinter.font"),
    ("tkMessageBox", "tkinter.messagebox"),
    ("ScrolledText", "tkinter.scrolledtext"),
    ("Tkconstants", "tkinter.constants"),
    ("Tix", "tkinter.tix"),
    ("ttk", "tkinter.ttk"),
    ("Tkinter", "tkinter"),
    ("markupbase", "_markupbase"),
    ("_winreg", "winreg"),
    ("thread", "_thread"),
    ("dummy_thread", "_dummy_thread"),
    ("dbhash", "dbm.bsd"),
    ("dumbdbm", "dbm.dumb"),
    ("dbm", "dbm.ndbm"),
    ("gdbm", "dbm.gnu"),
    ("xmlrpclib", "xmlrpc.client"),
    ("SimpleXMLRPCServer", "xmlrpc.server"),
    ("httplib", "http.client"),
    ("htmlentitydefs", "html.entities"),
    ("HTMLParser", "html.parser"),
    ("Cookie", "http.cookies"),
    ("cookielib", "http.cookiejar"),
    ("BaseHTTPServer", "http.server"),
    ("test.test_support", "test.support"),
    ("commands", "subprocess"),
    ("urlparse", "urllib.parse"),
    ("robotparser", "urllib.robotparser"),
    ("urllib2", "urllib.request"),
    ("anydbm", "dbm"),
    ("_abcoll", "collections.abc"),
    ("cPickle", "pickle"),
    ("_elementtree", "xml.etree.ElementTree"),
    ("FileDialog", "tkinter.filedialog"),
    ("SimpleDialog", "tkinter.simpledialog"),
    ("DocXMLRPCServer", "xmlrpc.server"),
    ("SimpleHTTPServer", "http.server"),
    ("CGIHTTPServer", "http.server"),
    ("UserDict", "collections"),
    ("UserList", "collections"),
    ("UserString", "collections"),
    ("whichdb", "dbm"),
    ("StringIO", "io"),
    ("cStringIO", "io"),
];

/// `_compat_pickle.NAME_MAPPING` entries, less the `exceptions.X` → `builtins.X` ones (handled
/// by rule in `map_py2_name`; the rule also covers exception names that table lacks).
type ModuleName = (&'static str, &'static str);

const NAME_MAPPING: &[(ModuleName, ModuleName)] = &[
    (("__builtin__", "xrange"), ("builtins", "range")),
    (("__builtin__", "reduce"), ("functools", "reduce")),
    (("__builtin__", "intern"), ("sys", "intern")),
    (("__builtin__", "unichr"), ("builtins", "chr")),
    (("__builtin__", "unicode"), ("builtins", "str")),
    (("__builtin__", "long"), ("builtins", "int")),
    (("itertools", "izip"), ("builtins", "zip")),
    (("itertools", "imap"), ("builtins", "map")),
    (("itertools", "ifilter"), ("builtins", "filter")),
    (("itertools", "ifilterfalse"), ("itertools", "filterfalse")),
    (("itertools", "izip_longest"), ("itertools", "zip_longest")),
    (
        ("UserDict", "IterableUserDict"),
        ("collections", "UserDict"),
    ),
    (("UserList", "UserList"), ("collections", "UserList")),
    (("UserString", "UserString"), ("collections", "UserString")),
    (("whichdb", "whichdb"), ("dbm", "whichdb")),
    (("_socket", "fromfd"), ("socket", "fromfd")),
    (
        ("_multiprocessing", "Connection"),
        ("multiprocessing.connection", "Connection"),
    ),
    (
        ("multiprocessing.process", "Process"),
        ("multiprocessing.context", "Process"),
    ),
    (
        ("multiprocessing.forking", "Popen"),
        ("multiprocessing.popen_fork", "Popen"),
    ),
    (
        ("urllib", "ContentTooShortError"),
        ("urllib.error", "ContentTooShortError"),
    ),
    (("urllib", "getproxies"), ("urllib.request", "getproxies")),
    (
        ("urllib", "pathname2url"),
        ("urllib.request", "pathname2url"),
    ),
    (("urllib", "quote_plus"), ("urllib.parse", "quote_plus")),
    (("urllib", "quote"), ("urllib.parse", "quote")),
    (("urllib", "unquote_plus"), ("urllib.parse", "unquote_plus")),
    (("urllib", "unquote"), ("urllib.parse", "unquote")),
    (
        ("urllib", "url2pathname"),
        ("urllib.request", "url2pathname"),
    ),
    (("urllib", "urlcleanup"), ("urllib.request", "urlcleanup")),
    (("urllib", "urlencode"), ("urllib.parse", "urlencode")),
    (("urllib", "urlopen"), ("urllib.request", "urlopen")),
    (("urllib", "urlretrieve"), ("urllib.request", "urlretrieve")),
    (("urllib2", "HTTPError"), ("urllib.error", "HTTPError")),
    (("urllib2", "URLError"), ("urllib.error", "URLError")),
    (
        ("multiprocessing", "AuthenticationError"),
        ("multiprocessing.context", "AuthenticationError"),
    ),
    (
        ("multiprocessing", "BufferTooShort"),
        ("multiprocessing.context", "BufferTooShort"),
    ),
    (
        ("multiprocessing", "ProcessError"),
        ("multiprocessing.context", "ProcessError"),
    ),
    (
        ("multiprocessing", "TimeoutError"),
        ("multiprocessing.context", "TimeoutError"),
    ),
    (("__builtin__", "basestring"), ("builtins", "str")),
    (("exceptions", "StandardError"), ("builtins", "Exception")),
    (("UserDict", "UserDict"), ("collections", "UserDict")),
    (("socket", "_socketobject"), ("socket", "SocketType")),
];

/// Maps a Python 2 `(module, name)` to its Python 3 spelling, as `Unpickler.find_class` does
/// with `fix_imports=True` (NAME_MAPPING first, then IMPORT_MAPPING on the module alone).
pub fn map_py2_name(module: &str, name: &str) -> (String, String) {
    if let Some((_, (m, n))) = NAME_MAPPING
        .iter()
        .find(|((m, n), _)| *m == module && *n == name)
    {
        return (m.to_string(), n.to_string());
    }
    if module == "exceptions" {
        // Every `exceptions.X` maps to `builtins.X` in _compat_pickle.
        return ("builtins".to_string(), name.to_string());
    }
    if let Some((_, m)) = IMPORT_MAPPING.iter().find(|(m, _)| *m == module) {
        return (m.to_string(), name.to_string());
    }
    (module.to_string(), name.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matches_torch() {
        // The 133 names torch 2.11's _get_allowed_globals() returns, checked by rule; a sample
        // of each family plus the counts of generated families.
        for n in [
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2",
            "torch.FloatStorage",
            "torch.cuda.FloatStorage",
            "torch.cuda.sparse.FloatTensor",
            "torch.sparse.LongTensor",
            "torch.QUInt4x2Storage",
            "torch.uint7",
            "torch.int1",
            "torch.float8_e8m0fnu",
            "torch.bits1x8",
            "torch.per_channel_affine_float_qparams",
            "torch.storage.UntypedStorage",
        ] {
            assert!(is_allowed_by_default(n), "{n}");
        }
        for n in [
            "builtins.frozenset",
            "builtins.getattr",
            "numpy.core.multiarray._reconstruct",
            "argparse.Namespace",
            "torch.cuda.QInt8Storage",
            "torch.sparse.BoolTensor",
            "torch.uint8x",
            "torch.int8x",
            "torch.float",
            "os.system",
            "collections.defaultdict",
        ] {
            assert!(!is_allowed_by_default(n), "{n}");
        }
    }

    #[test]
    fn tensor_and_storage_classes_derive_from_the_dtype_table() {
        // torch 2.11's torch._tensor_classes / torch.cuda storage classes, as torch lists them.
        let dense = [
            "BFloat16Tensor",
            "BoolTensor",
            "ByteTensor",
            "CharTensor",
            "DoubleTensor",
            "FloatTensor",
            "HalfTensor",
            "IntTensor",
            "LongTensor",
            "ShortTensor",
        ];
        let cuda_storages = [
            "BFloat16Storage",
            "BoolStorage",
            "ByteStorage",
            "CharStorage",
            "ComplexDoubleStorage",
            "ComplexFloatStorage",
            "DoubleStorage",
            "FloatStorage",
            "HalfStorage",
            "IntStorage",
            "LongStorage",
            "ShortStorage",
        ];
        let names: Vec<String> = DType::ALL
            .iter()
            .filter_map(|d| d.storage_class())
            .flat_map(|c| [c.to_string(), c.replace("Storage", "Tensor")])
            .collect();
        for n in &names {
            let n = n.as_str();
            assert_eq!(
                DType::from_tensor_class(n).is_some(),
                dense.contains(&n),
                "{n}"
            );
            assert_eq!(
                is_sparse_tensor_class(n),
                dense.contains(&n) && n != "BoolTensor",
                "{n}"
            );
            assert_eq!(is_cuda_storage_class(n), cuda_storages.contains(&n), "{n}");
        }
    }

    #[test]
    fn blocklist_wins_over_safe_globals() {
        let sg = vec![
            "os.system".to_string(),
            "posix.system".to_string(),
            "argparse.Namespace".to_string(),
        ];
        let check = |name: &str, wo: bool, sg: &[String]| Policy::new(wo, sg).global(name);
        assert!(check("os.system", true, &sg).is_err());
        assert!(check("posix.system", true, &sg).is_err());
        assert!(check("os.path.join", true, &sg).is_err());
        assert!(check("argparse.Namespace", true, &sg).is_ok());
        assert!(check("argparse.Namespace", true, &[]).is_err());
        assert!(check("ossify.x", true, &["ossify.x".to_string()]).is_ok());
        assert!(check("os.system", false, &[]).is_ok());
    }

    #[test]
    fn verdict_is_the_default_policy_whatever_the_options() {
        let sg = vec!["argparse.Namespace".to_string()];
        // Allowed by the user, not by torch's defaults: loads, and the verdict says no.
        let mut p = Policy::new(true, &sg);
        assert!(p.global("argparse.Namespace").is_ok());
        assert!(p
            .refusal()
            .is_some_and(|m| m.contains("argparse.Namespace")));
        // Without weights_only nothing is refused, and the first refusal is the one kept.
        let mut p = Policy::new(false, &[]);
        assert!(p.opcode(op::FRAME).is_ok());
        assert!(p.global("os.system").is_ok());
        assert!(p.refusal().is_some_and(|m| m.contains("FRAME")));
        let mut p = Policy::new(true, &[]);
        assert!(p.global("collections.OrderedDict").is_ok());
        assert!(p.set_item("collections.Counter").is_ok());
        assert!(p.container(Format::Zip).is_ok());
        assert_eq!(p.refusal(), None);
        let e = p.container(Format::Tar).unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::UnsafeGlobal);
        assert!(e.message.contains("only if you trust the file"));
    }

    #[test]
    fn torchscript_dialect_allows_only_torchscripts_globals() {
        let mut p = Policy::for_torchscript(true, &[]);
        assert!(p.global("__torch__.torch.nn.modules.linear.Linear").is_ok());
        assert!(p.call(Callee::Global("__torch__.Foo")).is_ok());
        assert!(p.build("__torch__.Foo").is_ok());
        assert!(p.global("torch.jit._pickle.build_intlist").is_ok());
        assert!(p.global("torch._utils._rebuild_tensor_v2").is_ok());
        assert!(p.global("torch.jit._pickle.anything_else").is_err());
        assert!(p.global("os.system").is_err());
        assert!(p.global("__torch__").is_err());
        // torch.load(weights_only=True) refuses every TorchScript archive: that is the verdict.
        assert!(p.refusal().is_some_and(|m| m.contains("TorchScript")));
        // The torch.save dialect knows none of them.
        assert!(Policy::new(true, &[]).global("__torch__.Foo").is_err());
        assert!(Policy::new(true, &[])
            .global("torch.jit._pickle.build_intlist")
            .is_err());
        // Blocked names stay blocked; without weights_only they are noted, not refused.
        assert!(Policy::for_torchscript(false, &[])
            .global("os.system")
            .is_ok());
    }

    #[test]
    fn dcp_metadata_dialect_knows_only_dcps_dataclasses() {
        let mut p = Policy::for_dcp_metadata(true, &[]);
        for n in DCP_METADATA_GLOBALS {
            assert!(p.global(n).is_ok(), "{n}");
            assert!(p.call(Callee::Global(n)).is_ok(), "{n}");
            assert!(p.build(n).is_ok(), "{n}");
        }
        // Protocol 4 framing: torch reads .metadata with pickle.load.
        assert!(p.opcode(op::FRAME).is_ok());
        assert!(p.opcode(op::MEMOIZE).is_ok());
        assert_eq!(p.refusal(), None);
        assert!(p.global("os.system").is_err());
        assert!(p.global("collections.defaultdict").is_err());
        // A torch.save pickle does not know them.
        assert!(Policy::new(true, &[])
            .global("torch.distributed.checkpoint.metadata.Metadata")
            .is_err());
    }

    #[test]
    fn py2_names() {
        assert_eq!(
            map_py2_name("__builtin__", "set"),
            ("builtins".into(), "set".into())
        );
        assert_eq!(
            map_py2_name("__builtin__", "unicode"),
            ("builtins".into(), "str".into())
        );
        assert_eq!(
            map_py2_name("copy_reg", "_reconstructor"),
            ("copyreg".into(), "_reconstructor".into())
        );
        assert_eq!(
            map_py2_name("exceptions", "ValueError"),
            ("builtins".into(), "ValueError".into())
        );
        assert_eq!(
            map_py2_name("torch", "Size"),
            ("torch".into(), "Size".into())
        );
    }
}
