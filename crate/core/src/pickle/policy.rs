//! The `weights_only` policy: which globals a pickle may name, mirroring torch 2.11.
//!
//! Source of truth: `torch/_weights_only_unpickler.py` of the installed torch 2.11
//! (`_get_allowed_globals`, `_blocklisted_modules`). Names are `module.qualname` after the
//! Python 2 name mapping ([`map_py2_name`], CPython's `_compat_pickle`). The table below lists
//! what `_get_allowed_globals()` returns; `tests::allowlist_matches_torch` counts it.
//!
//! Nothing is ever executed whatever the policy says: with `weights_only: false` unknown
//! callables become inert `PyObject`s. The policy exists so that the default load accepts
//! exactly what `torch.load` accepts (no surprises in either direction) and so that the binding
//! never hands a caller an object of a class the caller did not allow.
//!
//! Blocklist: torch blocks `sys`, `os`, `posix`, `nt` even when the user allowlists them. We
//! also block their submodules and a few modules/builtins that are code-execution primitives
//! and never data (`subprocess`, `builtins.eval`, ...): allowing them can never be meaningful.

use crate::dtype::DType;

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

/// `torch._tensor_classes` element names (dense CPU/CUDA, sparse CPU/CUDA).
const DENSE_TENSOR_CLASSES: &[&str] = &[
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
const SPARSE_TENSOR_CLASSES: &[&str] = &[
    "BFloat16Tensor",
    "ByteTensor",
    "CharTensor",
    "DoubleTensor",
    "FloatTensor",
    "HalfTensor",
    "IntTensor",
    "LongTensor",
    "ShortTensor",
];

/// `torch._storage_classes` in `torch.cuda` (no quantized CUDA storages there).
const CUDA_STORAGE_CLASSES: &[&str] = &[
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
        if DENSE_TENSOR_CLASSES.contains(&rest) || DType::from_storage_class(rest).is_some() {
            return true;
        }
        if let Some(c) = rest.strip_prefix("cuda.") {
            if DENSE_TENSOR_CLASSES.contains(&c) || CUDA_STORAGE_CLASSES.contains(&c) {
                return true;
            }
            if let Some(s) = c.strip_prefix("sparse.") {
                return SPARSE_TENSOR_CLASSES.contains(&s);
            }
        }
        if let Some(s) = rest.strip_prefix("sparse.") {
            return SPARSE_TENSOR_CLASSES.contains(&s);
        }
    }
    false
}

/// The decision for one GLOBAL under the given options.
pub(crate) fn check_global(
    full_name: &str,
    weights_only: bool,
    safe_globals: &[String],
) -> crate::Result<()> {
    if !weights_only {
        return Ok(());
    }
    if is_blocked(full_name) {
        crate::bail!(
            UnsafeGlobal,
            "GLOBAL {full_name} is blocked: its module can never be loaded, not even with safeGlobals \
             (the file tries to reach code execution; do not load it unless you wrote it)"
        );
    }
    if is_allowed_by_default(full_name) || safe_globals.iter().any(|g| g == full_name) {
        return Ok(());
    }
    crate::bail!(
        UnsafeGlobal,
        "GLOBAL {full_name} is not allowed when loading with weightsOnly: true; \
         pass weightsOnly: false if you trust the file, or safeGlobals: ['{full_name}']"
    )
}

/// True when the user explicitly allowed `full_name` (so BUILD/NEWOBJ on it are accepted).
pub(crate) fn is_user_allowed(full_name: &str, safe_globals: &[String]) -> bool {
    safe_globals.iter().any(|g| g == full_name) && !is_blocked(full_name)
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
    fn blocklist_wins_over_safe_globals() {
        let sg = vec![
            "os.system".to_string(),
            "posix.system".to_string(),
            "argparse.Namespace".to_string(),
        ];
        assert!(check_global("os.system", true, &sg).is_err());
        assert!(check_global("posix.system", true, &sg).is_err());
        assert!(check_global("os.path.join", true, &sg).is_err());
        assert!(check_global("argparse.Namespace", true, &sg).is_ok());
        assert!(check_global("argparse.Namespace", true, &[]).is_err());
        assert!(check_global("ossify.x", true, &["ossify.x".to_string()]).is_ok());
        assert!(check_global("os.system", false, &[]).is_ok());
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
