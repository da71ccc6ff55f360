//! One error type for the whole core, with a stable code per kind of failure.
//!
//! Codes are the contract with JS (`err.code`) and with tests: never match on message text.
//! A message says where (file, record, byte offset, opcode, key, global) and what to do next.

use std::fmt;

/// Declares [`ErrorCode`], its strings and [`ErrorCode::ALL`] from one list, so a new code is
/// one line here (the binding exports the list, `npm run build` regenerates the TS types).
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident => $s:literal,)+) => {
        /// Stable error codes: every `E_*` string JS can see as `err.code`, from the core, the
        /// bindings, the libtorch addon and the TS facade. Adding a code is fine; renaming one
        /// is a breaking change.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order (exported to JS by the node binding).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The string JS sees as `err.code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $s,)+
                }
            }
        }
    };
}

error_codes! {
    /// Operating-system I/O failure (open, read, write, rename, fsync).
    Io => "E_IO",
    /// The input ended before a structure it announced was complete.
    Truncated => "E_TRUNCATED",
    /// The bytes are not any format torch.save has written.
    UnknownFormat => "E_UNKNOWN_FORMAT",
    /// A torch.package archive (`torch.package.PackageExporter`): it holds packaged Python
    /// source that only `torch.package.PackageImporter` can run, and no checkpoint to read.
    TorchPackage => "E_TORCH_PACKAGE",
    /// The zip container is malformed (directory, headers, zip64 fields, duplicate names).
    BadZip => "E_BAD_ZIP",
    /// A record's CRC-32 does not match its bytes.
    BadCrc => "E_BAD_CRC",
    /// A record the format requires (data.pkl, data/<key>, version) is missing.
    MissingRecord => "E_MISSING_RECORD",
    /// The legacy stream's magic number or protocol version is wrong.
    BadMagic => "E_BAD_MAGIC",
    /// The file's format version is newer than this reader supports.
    UnsupportedVersion => "E_UNSUPPORTED_VERSION",
    /// The tar container is malformed.
    BadTar => "E_BAD_TAR",
    /// The pickle stream is malformed (stack underflow, bad memo index, bad argument). Never a
    /// policy refusal: that is `E_UNSAFE_GLOBAL`.
    BadPickle => "E_BAD_PICKLE",
    /// An opcode this reader does not know.
    UnknownOpcode => "E_UNKNOWN_OPCODE",
    /// The one policy code: the weights-only policy refused the file (a global, an opcode such
    /// as FRAME, a call/BUILD/APPEND/SETITEM on something it does not allow, a persistent-id
    /// form, a tar container). The message names the construct; load with `weightsOnly: false`
    /// only if you trust the file (nothing is executed either way).
    UnsafeGlobal => "E_UNSAFE_GLOBAL",
    /// A known reconstructor was called with arguments of the wrong shape.
    BadReconstruct => "E_BAD_RECONSTRUCT",
    /// A tensor view reaches outside its storage, or sizes/strides are invalid.
    StorageBounds => "E_STORAGE_BOUNDS",
    /// A storage's declared size disagrees with its record's length.
    StorageSize => "E_STORAGE_SIZE",
    /// A numpy array's (or numpy scalar's) data is not shape x itemsize bytes long, or an
    /// object array's item list does not match its shape.
    ArraySize => "E_ARRAY_SIZE",
    /// A dtype or storage type this library cannot represent (or, in the libtorch addon,
    /// one libtorch cannot compute in).
    UnsupportedDtype => "E_UNSUPPORTED_DTYPE",
    /// A named limit (depth, memo size, string size, element count) was exceeded.
    LimitExceeded => "E_LIMIT_EXCEEDED",
    /// A value cannot be written in the requested format.
    Unserializable => "E_UNSERIALIZABLE",
    /// The caller's options or arguments are invalid (also: a call on a freed/disposed
    /// libtorch tensor).
    InvalidArgument => "E_INVALID_ARGUMENT",
    /// A device (cuda, mps, ...) is needed and unavailable, or the libtorch addon is missing.
    DeviceUnavailable => "E_DEVICE_UNAVAILABLE",
    /// The operation was cancelled by the caller.
    Cancelled => "E_CANCELLED",
    /// A safetensors file is malformed (header JSON, offsets, sizes, duplicate names).
    BadSafetensors => "E_BAD_SAFETENSORS",
    /// A Hugging Face `*.index.json` for a sharded checkpoint is malformed or inconsistent
    /// with its shards.
    BadIndex => "E_BAD_INDEX",
    /// A distributed checkpoint folder (`.metadata` + `*.distcp`) is malformed or inconsistent:
    /// metadata that is not a DCP `Metadata`, chunks that do not tile their tensor or do not
    /// match their records, stream transforms this reader does not apply.
    BadDcp => "E_BAD_DCP",
    /// The output file exists and overwriting was not requested.
    OutputExists => "E_OUTPUT_EXISTS",
    /// A written file, read back, does not hold the values that were meant to be written.
    VerifyFailed => "E_VERIFY_FAILED",
    /// A bug on our side: a panic caught in a binding (or a Node-API call that failed); never
    /// produced by bad input on purpose. Please report it.
    Internal => "E_INTERNAL",
    /// libtorch refused an op (shapes, dtypes, autograd state); the message is libtorch's.
    /// Thrown by the libtorch addon only.
    Compute => "E_COMPUTE",
    /// The prebuilt native addon could not be loaded (thrown by the TS facade, with the
    /// loader's reasons).
    NativeMissing => "E_NATIVE_MISSING",
    /// A method a subclass must provide is missing (`nn.Module` without `forward`, as
    /// PyTorch's NotImplementedError). Thrown by the TS facade.
    NotImplemented => "E_NOT_IMPLEMENTED",
    /// `loadStateDict` found missing/unexpected keys or mismatched shapes, or an optimizer's
    /// state dict does not match its parameter groups. Thrown by the TS facade.
    StateDictMismatch => "E_STATE_DICT_MISMATCH",
    /// A pickled object is not of the class an API needs (a submodule that is not an
    /// `nn.Module`, a module pickle without module state). Thrown by the TS facade.
    UnsupportedClass => "E_UNSUPPORTED_CLASS",
    /// A file loaded with mmap changed on disk after it was loaded: it was truncated (the
    /// pages past its new end read as zeros) or modified in place (its size or mtime differ;
    /// tensors may show the new bytes). Load it again (crate/core/src/mapguard.rs).
    FileChanged => "E_FILE_CHANGED",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The core's error: a code, a message, and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// The file path, when known (added by the outermost caller).
    pub path: Option<String>,
    /// The record inside a container (`archive/data.pkl`, `data/3`, `storages`), when known.
    pub record: Option<String>,
    /// Byte offset in the record or stream, when known.
    pub offset: Option<u64>,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            path: None,
            record: None,
            offset: None,
        }
    }
    pub fn at(mut self, offset: u64) -> Self {
        self.offset.get_or_insert(offset);
        self
    }
    pub fn in_record(mut self, record: impl Into<String>) -> Self {
        if self.record.is_none() {
            self.record = Some(record.into());
        }
        self
    }
    pub fn in_file(mut self, path: impl Into<String>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.into());
        }
        self
    }
    pub fn io(err: std::io::Error, what: &str) -> Self {
        Error::new(ErrorCode::Io, format!("{what}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.code)?;
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        if let Some(r) = &self.record {
            write!(f, "record {r}: ")?;
        }
        if let Some(o) = self.offset {
            write!(f, "at byte {o}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `bail!(Code, "fmt", args)` returns an `Err(Error)` with that code.
#[macro_export]
macro_rules! bail {
    ($code:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorCode::$code, format!($($arg)*)))
    };
}

/// `err!(Code, "fmt", args)` builds an `Error` with that code.
#[macro_export]
macro_rules! err {
    ($code:ident, $($arg:tt)*) => {
        $crate::error::Error::new($crate::error::ErrorCode::$code, format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The strings are the JS contract: unique, `E_` + SCREAMING_SNAKE.
    #[test]
    fn codes_are_unique_screaming_snake() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            let rest = s.strip_prefix("E_").unwrap_or_default();
            assert!(
                !rest.is_empty()
                    && !rest.starts_with('_')
                    && !rest.ends_with('_')
                    && !rest.contains("__")
                    && rest
                        .chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_'),
                "{s} is not E_SCREAMING_SNAKE"
            );
        }
        assert_eq!(seen.len(), ErrorCode::ALL.len());
    }
}
