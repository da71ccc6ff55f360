//! Options shared by loading and saving, with PyTorch's defaults.

/// How Python 2 byte strings (SHORT_BINSTRING/BINSTRING) are decoded, as `torch.load`'s
/// `encoding` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StrEncoding {
    /// UTF-8, falling back to latin-1 for byte strings that are not valid UTF-8 (torch.load
    /// raises instead; latin-1 is lossless, so we never fail on old files).
    #[default]
    Utf8,
    /// Every byte becomes one code point (what numpy arrays pickled by Python 2 need).
    Latin1,
    /// Keep them as `bytes`.
    Bytes,
}

/// Named caps on what a file may make us allocate or walk. Each has a test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of containers in the value graph.
    pub max_depth: usize,
    /// Most memo entries.
    pub max_memo: usize,
    /// Longest single string/bytes argument in a pickle.
    pub max_string_bytes: u64,
    /// Most items on the pickle stack plus its MARK stack.
    pub max_stack: usize,
    /// Most tensor dimensions.
    pub max_dims: usize,
    /// Most nodes in the value graph.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 1000,
            max_memo: 50_000_000,
            max_string_bytes: 1 << 32,
            max_stack: 10_000_000,
            max_dims: 64,
            max_nodes: 100_000_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Accept only what PyTorch's weights-only unpickler accepts (plus `safe_globals`).
    pub weights_only: bool,
    /// Extra allowed globals, as `module.qualname`.
    pub safe_globals: Vec<String>,
    /// Map the file instead of reading it (paths only; buffers are already in memory).
    pub mmap: bool,
    pub encoding: StrEncoding,
    /// Check CRC-32 of records. `None`: check data.pkl and small records always, storages
    /// only when reading eagerly (mmap must not touch every page).
    pub verify_crc: Option<bool>,
    pub limits: Limits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            weights_only: true,
            safe_globals: Vec::new(),
            mmap: true,
            encoding: StrEncoding::Utf8,
            verify_crc: None,
            limits: Limits::default(),
        }
    }
}

impl LoadOptions {
    /// The defaults of the calls that only summarise files (`convert::inspect_many`,
    /// `convert::diff`): [`LoadOptions::default`] with the weights-only policy off, since
    /// they never execute anything and must be able to describe any file.
    pub fn for_summaries() -> LoadOptions {
        LoadOptions {
            weights_only: false,
            ..LoadOptions::default()
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// The zip format torch.save writes since 1.6.
    #[default]
    Zip,
    /// The pre-1.6 stream format, for old readers.
    Legacy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaveOptions {
    pub format: SaveFormat,
    /// Pickle protocol (2 like torch.save; 3-5 accepted for callers that need them).
    pub protocol: u8,
    /// Top folder inside the zip (`archive` for streams; torch uses the file's stem).
    pub archive_name: String,
    /// Clone views so each storage holds only the bytes its tensors reach.
    pub compact: bool,
    /// Storage alignment in the zip (PyTorch: 64).
    pub alignment: u64,
    /// Saving to a path: fsync the new file and its folder before returning, so the save
    /// survives a power loss or OS crash (`true`, the default). `false` skips the fsyncs,
    /// like torch.save and `cp`; the save is still atomic (temporary file + rename), so a
    /// killed process never leaves a torn file. Streams and buffers ignore it.
    pub durable: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            format: SaveFormat::Zip,
            protocol: 2,
            archive_name: "archive".to_string(),
            compact: false,
            alignment: 64,
            durable: true,
        }
    }
}
