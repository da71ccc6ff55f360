//! One error type for the whole core, with a stable code per kind of failure.
//!
//! Codes are the contract with JS (`err.code`) and with tests: never match on message text.
//! A message says where (file, record, byte offset, opcode, key, global) and what to do next.

use std::fmt;

/// Stable error codes. Adding a code is fine; renaming one is a breaking change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Operating-system I/O failure (open, read, write, rename, fsync).
    Io,
    /// The input ended before a structure it announced was complete.
    Truncated,
    /// The bytes are not any format torch.save has written.
    UnknownFormat,
    /// The zip container is malformed (directory, headers, zip64 fields, duplicate names).
    BadZip,
    /// A record's CRC-32 does not match its bytes.
    BadCrc,
    /// A record the format requires (data.pkl, data/<key>, version) is missing.
    MissingRecord,
    /// The legacy stream's magic number or protocol version is wrong.
    BadMagic,
    /// The file's format version is newer than this reader supports.
    UnsupportedVersion,
    /// The tar container is malformed.
    BadTar,
    /// The pickle stream is malformed (stack underflow, bad memo index, bad argument).
    BadPickle,
    /// An opcode this reader does not know.
    UnknownOpcode,
    /// A GLOBAL that the weights-only policy does not allow (or that is never allowed).
    UnsafeGlobal,
    /// A known reconstructor was called with arguments of the wrong shape.
    BadReconstruct,
    /// A tensor view reaches outside its storage, or sizes/strides are invalid.
    StorageBounds,
    /// A storage's declared size disagrees with its record's length.
    StorageSize,
    /// A dtype or storage type this library cannot represent.
    UnsupportedDtype,
    /// A named limit (depth, memo size, string size, element count) was exceeded.
    LimitExceeded,
    /// A value cannot be written in the requested format.
    Unserializable,
    /// The caller's options are invalid.
    InvalidArgument,
    /// A device (cuda, mps, ...) is needed and unavailable.
    DeviceUnavailable,
    /// The operation was cancelled by the caller.
    Cancelled,
    /// A safetensors file is malformed (header JSON, offsets, sizes, duplicate names).
    BadSafetensors,
    /// A Hugging Face `*.index.json` for a sharded checkpoint is malformed or inconsistent
    /// with its shards.
    BadIndex,
    /// The output file exists and overwriting was not requested.
    OutputExists,
    /// A written file, read back, does not hold the values that were meant to be written.
    VerifyFailed,
}

impl ErrorCode {
    /// The string JS sees as `err.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Io => "E_IO",
            ErrorCode::Truncated => "E_TRUNCATED",
            ErrorCode::UnknownFormat => "E_UNKNOWN_FORMAT",
            ErrorCode::BadZip => "E_BAD_ZIP",
            ErrorCode::BadCrc => "E_BAD_CRC",
            ErrorCode::MissingRecord => "E_MISSING_RECORD",
            ErrorCode::BadMagic => "E_BAD_MAGIC",
            ErrorCode::UnsupportedVersion => "E_UNSUPPORTED_VERSION",
            ErrorCode::BadTar => "E_BAD_TAR",
            ErrorCode::BadPickle => "E_BAD_PICKLE",
            ErrorCode::UnknownOpcode => "E_UNKNOWN_OPCODE",
            ErrorCode::UnsafeGlobal => "E_UNSAFE_GLOBAL",
            ErrorCode::BadReconstruct => "E_BAD_RECONSTRUCT",
            ErrorCode::StorageBounds => "E_STORAGE_BOUNDS",
            ErrorCode::StorageSize => "E_STORAGE_SIZE",
            ErrorCode::UnsupportedDtype => "E_UNSUPPORTED_DTYPE",
            ErrorCode::LimitExceeded => "E_LIMIT_EXCEEDED",
            ErrorCode::Unserializable => "E_UNSERIALIZABLE",
            ErrorCode::InvalidArgument => "E_INVALID_ARGUMENT",
            ErrorCode::DeviceUnavailable => "E_DEVICE_UNAVAILABLE",
            ErrorCode::Cancelled => "E_CANCELLED",
            ErrorCode::BadSafetensors => "E_BAD_SAFETENSORS",
            ErrorCode::BadIndex => "E_BAD_INDEX",
            ErrorCode::OutputExists => "E_OUTPUT_EXISTS",
            ErrorCode::VerifyFailed => "E_VERIFY_FAILED",
        }
    }
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
