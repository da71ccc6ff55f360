//! What a pickle would import and call, recorded by the VM while it runs (the scanner's
//! input, `crate::scan`). Tracing changes nothing about what the VM builds; it only adds a
//! record per import/call/BUILD and keeps going past reconstructor errors (the value becomes
//! an inert object), because a scanner that stops where our loader would is a bypass.

/// One construct of one pickle, at the byte offset of its opcode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// Byte offset of the opcode within the pickle's bytes.
    pub offset: u64,
    /// The opcode's name (`GLOBAL`, `STACK_GLOBAL`, `INST`, `REDUCE`, ...).
    pub opcode: &'static str,
    pub what: Traced,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Traced {
    /// A name the unpickler would import (`find_class`): as written and after Python 2 mapping.
    Import {
        written: String,
        module: String,
        name: String,
    },
    /// A call (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ): the callee's `(module, qualname)`, or
    /// `None` when the pickle built the callable itself (`callee_kind` says what it is).
    /// `nested`: the first bytes argument, kept when the callee is one that unpickles bytes.
    Call {
        callee: Option<(String, String)>,
        callee_kind: &'static str,
        nested: Option<Vec<u8>>,
        /// `getattr(<global>, '<name>')`: the dotted global it evaluates to (`module`,
        /// `qualname.name`), which is what it reaches (protocol 0-3 pickle nested classes so).
        getattr_of: Option<(String, String)>,
    },
    /// BUILD (`__setstate__` or attribute setting) on an object of class `target`
    /// (`None` when the pickle built the class itself), or on a global itself
    /// (`on_global`: a class, function or module would get attributes set: monkey-patching).
    Build {
        target: Option<(String, String)>,
        on_global: bool,
    },
    /// EXT1/EXT2/EXT4: a name from the loading process's `copyreg` extension registry.
    Ext { code: i64 },
}

/// Callables that unpickle a bytes argument (their bytes are scanned as a nested pickle).
pub const NESTED_UNPICKLERS: &[&str] = &[
    "torch.storage._load_from_bytes",
    "pickle.loads",
    "pickle._loads",
    "_pickle.loads",
    "dill.loads",
    "dill._dill.loads",
    "cloudpickle.loads",
    "numpy.loads",
    "joblib.load",
];
