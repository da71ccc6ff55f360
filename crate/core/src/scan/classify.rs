//! Names → verdicts, allowlist-first: a name is `safe` only when the one weights-only
//! [`Policy`](crate::pickle::policy) allows it, `data` only when it is in the short table of
//! classes known to unpickle into harmless data, `dangerous` when it is an execution, import,
//! file, network, process, attribute-access or code-object primitive (or reaches one through an
//! attribute chain), and `unknown` otherwise.
//!
//! Names are first resolved as Python resolves them: the VM has already applied pickle's
//! `fix_imports` mapping (`__builtin__` → `builtins`, `commands` → `subprocess`, ...); here the
//! platform and C-accelerator aliases follow (`posix`/`nt` → `os`, `_io` → `io`, `_pickle` →
//! `pickle`, ...). A dotted name (`torch.serialization.os.system`, protocol 4 qualnames) is
//! judged as a whole and then by every attribute path inside it, because `find_class` walks
//! it with `getattr` from the imported module: any module that imported `os` is a way to it.

use crate::pickle::policy::{self, Dialect};

/// How far a construct is from inert data (ordered: the worst finding is a file's verdict).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Allowed by PyTorch's weights-only loader (the [`Policy`](crate::pickle::policy::Policy) table).
    Safe,
    /// A class known to unpickle into harmless data (numpy arrays, argparse.Namespace, ...).
    Data,
    /// Not known to be harmless: user classes, unlisted library functions.
    Unknown,
    /// Execution, import, file/network/process access, attribute access, code objects.
    Dangerous,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Safe => "safe",
            Verdict::Data => "data",
            Verdict::Unknown => "unknown",
            Verdict::Dangerous => "dangerous",
        }
    }
}

/// Module aliases Python resolves to the same objects (platform modules, C accelerators).
const ALIASES: &[(&str, &str)] = &[
    ("posix", "os"),
    ("nt", "os"),
    ("_io", "io"),
    ("_pickle", "pickle"),
    ("_operator", "operator"),
    ("_functools", "functools"),
    ("_socket", "socket"),
    ("_posixsubprocess", "subprocess"),
    ("_imp", "importlib"),
    ("_frozen_importlib", "importlib"),
    ("_frozen_importlib_external", "importlib"),
    ("_ctypes", "ctypes"),
    ("_thread", "threading"),
    ("_signal", "signal"),
    ("_winapi", "subprocess"),
    ("_lsprof", "cProfile"),
    ("_collections", "collections"),
];

/// `module.name` as Python would find it (after the VM's Python 2 mapping).
pub fn resolve(module: &str, name: &str) -> String {
    let (head, tail) = match module.split_once('.') {
        Some((h, t)) => (h, Some(t)),
        None => (module, None),
    };
    let head = ALIASES
        .iter()
        .find(|(a, _)| *a == head)
        .map(|(_, b)| *b)
        .unwrap_or(head);
    match tail {
        Some(t) => format!("{head}.{t}.{name}"),
        None => format!("{head}.{name}"),
    }
}

/// Whole modules (and their submodules) that are execution, import, file, network or process
/// primitives: nothing in them is checkpoint data.
const DANGEROUS_MODULES: &[(&str, &str)] = &[
    ("os", "operating-system access (processes, files)"),
    ("sys", "interpreter internals"),
    ("subprocess", "runs processes"),
    ("pty", "spawns processes on a terminal"),
    ("socket", "network access"),
    ("ssl", "network access"),
    ("asyncio", "runs processes and network I/O"),
    ("multiprocessing", "runs processes"),
    ("threading", "runs callables in threads"),
    ("signal", "signal handlers"),
    ("ctypes", "calls native code"),
    ("cffi", "calls native code"),
    ("importlib", "imports modules"),
    ("pkgutil", "imports modules (pkgutil.resolve_name)"),
    ("zipimport", "imports modules"),
    ("imp", "imports modules"),
    ("runpy", "runs modules"),
    ("code", "runs Python source"),
    ("codeop", "compiles Python source"),
    ("pdb", "runs Python source (debugger)"),
    ("bdb", "runs Python source (debugger)"),
    ("cProfile", "runs Python source (profiler)"),
    ("profile", "runs Python source (profiler)"),
    ("timeit", "runs Python source"),
    ("trace", "runs Python source"),
    ("doctest", "runs Python source"),
    ("webbrowser", "starts programs"),
    ("http", "network access"),
    ("urllib", "network access"),
    ("ftplib", "network access"),
    ("smtplib", "network access"),
    ("telnetlib", "network access"),
    ("poplib", "network access"),
    ("imaplib", "network access"),
    ("nntplib", "network access"),
    ("xmlrpc", "network access"),
    ("socketserver", "network access"),
    ("requests", "network access"),
    ("mailcap", "runs shell commands (mailcap.findmatch)"),
    ("marshal", "loads code objects"),
    ("pickle", "unpickles without restriction"),
    ("dill", "unpickles without restriction"),
    ("cloudpickle", "unpickles without restriction"),
    ("joblib", "unpickles without restriction"),
    ("shelve", "unpickles without restriction"),
    ("dbm", "file access"),
    ("shutil", "file access"),
    ("tempfile", "file access"),
    ("fileinput", "file access"),
    ("io", "file access (io.open, FileIO)"),
    ("types", "builds functions and code objects"),
    ("gc", "reaches every live object"),
    ("inspect", "reaches frames and globals"),
    ("platform", "runs processes"),
    ("sysconfig", "interpreter internals"),
    ("site", "imports modules"),
    ("distutils", "runs build commands"),
    ("setuptools", "runs build commands"),
    ("venv", "runs processes"),
    ("ensurepip", "runs processes"),
    ("builtins.__import__", "imports modules"),
    (
        "numpy.testing",
        "runs Python source (numpy.testing runstring)",
    ),
    ("numpy.f2py", "compiles and loads native code"),
    ("numpy.distutils", "runs build commands"),
    ("numpy.ctypeslib", "loads native libraries"),
    ("numpy.lib.npyio", "unpickles files (allow_pickle)"),
    ("numpy.lib.format", "unpickles arrays (allow_pickle)"),
    ("numpy.lib.utils", "evaluates source (safe_eval)"),
    ("numpy.lib._datasource", "file and network access"),
    ("torch.hub", "downloads and runs code (torch.hub.load)"),
    ("torch.package", "imports packaged Python code"),
    (
        "torch.utils.cpp_extension",
        "compiles and loads native code",
    ),
    ("torch.utils.collect_env", "runs processes"),
    (
        "torch._dynamo",
        "compiles and runs Python code (PyTorch advisories)",
    ),
    (
        "torch.fx",
        "generates and runs Python code (PyTorch advisories)",
    ),
    ("torch._inductor", "compiles and runs generated code"),
    ("torch.distributed", "network access and remote calls"),
    ("torch.multiprocessing", "runs processes"),
    ("torch.jit._serialization", "loads TorchScript code"),
    ("torch.library", "registers operators"),
    (
        "torch._ops",
        "loads native libraries (torch.ops.load_library)",
    ),
    ("torch.testing._internal", "runs Python source"),
];

/// Single functions and classes that are primitives (exact names).
const DANGEROUS_NAMES: &[(&str, &str)] = &[
    ("builtins.eval", "evaluates Python source"),
    ("builtins.exec", "runs Python source"),
    ("builtins.compile", "compiles Python source"),
    ("builtins.open", "file access"),
    ("builtins.getattr", "attribute access: reaches any function"),
    ("builtins.setattr", "sets attributes (monkey-patching)"),
    ("builtins.delattr", "deletes attributes"),
    ("builtins.globals", "reaches module globals"),
    ("builtins.locals", "reaches frame locals"),
    ("builtins.vars", "reaches object dicts"),
    ("builtins.breakpoint", "starts a debugger"),
    ("builtins.input", "reads the terminal"),
    ("builtins.exit", "exits the process"),
    ("builtins.quit", "exits the process"),
    ("builtins.help", "runs a pager"),
    ("builtins.type", "builds classes"),
    ("builtins.__build_class__", "builds classes"),
    ("builtins.memoryview", "raw memory access"),
    (
        "operator.attrgetter",
        "attribute access: reaches any function",
    ),
    ("operator.methodcaller", "calls any method"),
    ("operator.call", "calls any callable"),
    ("functools.partial", "binds and calls any callable"),
    ("functools.partialmethod", "binds and calls any callable"),
    ("functools.reduce", "calls any callable"),
    ("numpy.load", "unpickles files (allow_pickle=True)"),
    ("numpy.loads", "unpickles bytes"),
    ("numpy.fromfile", "file access"),
    ("numpy.loadtxt", "file access"),
    ("numpy.genfromtxt", "file access"),
    ("numpy.memmap", "file access"),
    ("numpy.save", "file access"),
    ("numpy.savez", "file access"),
    ("numpy.savetxt", "file access"),
    ("numpy.ndarray.tofile", "file access"),
    ("numpy.DataSource", "file and network access"),
    ("torch.load", "loads files (weights_only may be turned off)"),
    (
        "torch.serialization.load",
        "loads files (weights_only may be turned off)",
    ),
    (
        "torch.serialization._load",
        "unpickles without weights_only",
    ),
    (
        "torch.serialization._legacy_load",
        "unpickles without weights_only",
    ),
    ("torch.save", "writes files"),
    ("torch.jit.load", "loads TorchScript code"),
    ("torch.compile", "compiles and runs code"),
    ("torch.export.load", "loads exported programs"),
    ("torch.ops.load_library", "loads native libraries"),
    ("pathlib.Path.write_text", "file access"),
    ("pathlib.Path.write_bytes", "file access"),
    ("pathlib.Path.open", "file access"),
    ("pathlib.Path.unlink", "file access"),
];

/// Known harmless classes and reconstructors beyond the weights-only table (their objects are
/// plain data in Python and inert `PyObject`s, arrays or scalars in torchsave).
const DATA_NAMES: &[&str] = &[
    "copyreg._reconstructor",
    "copyreg.__newobj__",
    "copyreg.__newobj_ex__",
    "builtins.object",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.range",
    "builtins.list",
    "builtins.dict",
    "builtins.tuple",
    "builtins.bytes",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "collections.defaultdict",
    "collections.deque",
    "collections.ChainMap",
    "collections.UserDict",
    "collections.UserList",
    "collections.UserString",
    "argparse.Namespace",
    "types.SimpleNamespace",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "uuid.UUID",
    "pathlib.Path",
    "pathlib.PosixPath",
    "pathlib.WindowsPath",
    "pathlib.PurePath",
    "pathlib.PurePosixPath",
    "pathlib.PureWindowsPath",
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.ma.core._mareconstruct",
    "torch.nn.parameter.Buffer",
    "torch.nn.parameter.UninitializedParameter",
    "torch.nn.parameter.UninitializedBuffer",
];

/// numpy scalar types (`numpy.float32`, ...) and numpy 2's `numpy.dtypes.*DType` classes.
fn is_numpy_data(full: &str) -> bool {
    const SCALARS: &[&str] = &[
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "longdouble",
        "complex64",
        "complex128",
        "str_",
        "bytes_",
        "void",
        "intc",
        "uintc",
        "longlong",
        "ulonglong",
        "half",
        "single",
        "double",
        "datetime64",
        "timedelta64",
    ];
    if let Some(n) = full.strip_prefix("numpy.") {
        if SCALARS.contains(&n) {
            return true;
        }
        if let Some(d) = n.strip_prefix("dtypes.") {
            return d.ends_with("DType") && !d.contains('.');
        }
    }
    false
}

/// torch.nn's layer classes (a whole pickled model names them): `torch.nn.modules.<m>.<Class>`.
fn is_torch_module_class(full: &str) -> bool {
    full.strip_prefix("torch.nn.modules.").is_some_and(|rest| {
        let parts: Vec<&str> = rest.split('.').collect();
        parts.len() == 2
            && parts
                .last()
                .is_some_and(|c| c.chars().next().is_some_and(char::is_uppercase))
    })
}

fn in_module(full: &str, module: &str) -> bool {
    full == module || (full.starts_with(module) && full.as_bytes().get(module.len()) == Some(&b'.'))
}

fn dunder(seg: &str) -> bool {
    seg.len() > 4 && seg.starts_with("__") && seg.ends_with("__")
}

/// The verdict for one exact name (no attribute-path search).
fn exact(full: &str, dialect: Dialect) -> Option<(Verdict, String)> {
    if policy::is_blocked(full) {
        return Some((
            Verdict::Dangerous,
            "blocked by the weights-only policy: an execution primitive".to_string(),
        ));
    }
    let allowed = policy::is_allowed_by_default(full)
        || (dialect == Dialect::TorchScript && policy::is_torchscript_global(full));
    if allowed {
        return Some((
            Verdict::Safe,
            "allowed by PyTorch's weights-only loader".to_string(),
        ));
    }
    // Exact names before the torch.distributed module rule: the dataclasses a DCP `.metadata`
    // names (the one list, the Policy's) construct plain field holders and paths.
    if crate::pickle::policy::DCP_METADATA_GLOBALS.contains(&full) {
        return Some((
            Verdict::Data,
            "a torch.distributed.checkpoint metadata dataclass (fields only)".to_string(),
        ));
    }
    if let Some((_, why)) = DANGEROUS_NAMES.iter().find(|(n, _)| *n == full) {
        return Some((Verdict::Dangerous, why.to_string()));
    }
    if let Some((m, why)) = DANGEROUS_MODULES.iter().find(|(m, _)| in_module(full, m)) {
        return Some((Verdict::Dangerous, format!("{m}: {why}")));
    }
    if DATA_NAMES.contains(&full) || is_numpy_data(full) || is_torch_module_class(full) {
        return Some((
            Verdict::Data,
            "a class known to unpickle into harmless data".to_string(),
        ));
    }
    None
}

/// Classifies `module.name` (as the VM resolved it, after the Python 2 mapping): the whole
/// name first, then every attribute path inside `name`.
pub fn classify(module: &str, name: &str, dialect: Dialect) -> (Verdict, String) {
    let full = resolve(module, name);
    if let Some(v) = exact(&full, dialect) {
        return v;
    }
    // The attribute path find_class walks with getattr: a dunder or a dangerous module reached
    // through another module's attributes (`torch.serialization.os.system`).
    let segs: Vec<&str> = name.split('.').collect();
    for (i, seg) in segs.iter().enumerate() {
        if dunder(seg) {
            return (
                Verdict::Dangerous,
                format!("attribute chain through {seg}: reaches arbitrary objects"),
            );
        }
        let path = segs.get(i..).unwrap_or(&[]).join(".");
        let reached = if i + 1 < segs.len() {
            let (m, n) = path.split_once('.').unwrap_or((&path, ""));
            exact(&resolve(m, n), dialect)
        } else {
            // The last segment alone: a dangerous module object itself (`x.os`).
            let head = ALIASES
                .iter()
                .find(|(a, _)| *a == path)
                .map(|(_, b)| *b)
                .unwrap_or(&path);
            DANGEROUS_MODULES
                .iter()
                .find(|(m, _)| *m == head)
                .map(|(m, why)| (Verdict::Dangerous, format!("{m}: {why}")))
        };
        if let Some((Verdict::Dangerous, why)) = reached {
            return (
                Verdict::Dangerous,
                format!("reaches {path} through {module}'s attributes ({why})"),
            );
        }
    }
    (
        Verdict::Unknown,
        "not known to be harmless (not in the weights-only allowlist or the data table)"
            .to_string(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(m: &str, n: &str) -> Verdict {
        classify(m, n, Dialect::TorchSave).0
    }

    #[test]
    fn resolution_and_chains() {
        assert_eq!(v("posix", "system"), Verdict::Dangerous);
        assert_eq!(v("nt", "system"), Verdict::Dangerous);
        assert_eq!(v("_io", "open"), Verdict::Dangerous);
        assert_eq!(v("torch.serialization", "os.system"), Verdict::Dangerous);
        assert_eq!(v("torch._utils", "os"), Verdict::Dangerous);
        assert_eq!(v("mymodel", "Net.__reduce__"), Verdict::Dangerous);
        assert_eq!(v("mymodel", "Net"), Verdict::Unknown);
        assert_eq!(v("__main__", "Net"), Verdict::Unknown);
        assert_eq!(v("torch._utils", "_rebuild_tensor_v2"), Verdict::Safe);
        assert_eq!(v("torch.nn.modules.linear", "Linear"), Verdict::Data);
        assert_eq!(v("numpy.core.multiarray", "_reconstruct"), Verdict::Data);
        assert_eq!(v("numpy", "load"), Verdict::Dangerous);
        assert_eq!(v("torch.storage", "_load_from_bytes"), Verdict::Unknown);
    }

    #[test]
    fn the_policy_is_the_one_allowlist() {
        // Every name the weights-only Policy blocks is dangerous here, and nothing the Policy
        // allows is dangerous: the scanner's `safe` is the Policy's table, not a copy of it.
        for n in [
            "os.system",
            "posix.system",
            "nt.system",
            "sys.modules",
            "subprocess.Popen",
            "builtins.eval",
            "builtins.exec",
            "builtins.__import__",
            "importlib.import_module",
            "runpy._run_code",
            "pty.spawn",
            "shutil.rmtree",
            "socket.socket",
            "ctypes.CDLL",
        ] {
            assert!(policy::is_blocked(n) || n.starts_with("nt."), "{n}");
            let (m, name) = n.rsplit_once('.').unwrap();
            assert_eq!(v(m, name), Verdict::Dangerous, "{n}");
        }
        for n in [
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor_v2",
            "torch.FloatStorage",
            "torch.Size",
            "torch.device",
            "_codecs.encode",
            "builtins.set",
            "torch.float32",
            "torch.cuda.sparse.FloatTensor",
            "torch._tensor._rebuild_from_type_v2",
        ] {
            assert!(policy::is_allowed_by_default(n), "{n}");
            let (m, name) = n.rsplit_once('.').unwrap();
            assert_eq!(v(m, name), Verdict::Safe, "{n}");
        }
        // No entry of the scanner's own tables is something the Policy allows.
        for (n, _) in DANGEROUS_NAMES.iter().chain(DANGEROUS_MODULES.iter()) {
            assert!(!policy::is_allowed_by_default(n), "{n}");
        }
        for n in DATA_NAMES {
            assert!(
                !policy::is_allowed_by_default(n) && !policy::is_blocked(n),
                "{n}"
            );
        }
        assert_eq!(
            classify("__torch__.m", "Net", Dialect::TorchScript).0,
            Verdict::Safe
        );
        assert_eq!(
            classify("__torch__.m", "Net", Dialect::TorchSave).0,
            Verdict::Unknown
        );
    }
}
