//! torchsave-core: read and write the files `torch.save` writes, without Python and without
//! executing anything from the file.
//!
//! Layout:
//! * [`container`] detects and opens the four containers (zip, legacy stream, tar, bare pickle)
//!   and hands storages to the pickle layer;
//! * [`pickle`] is a pickle VM that never executes anything: every GLOBAL is resolved against
//!   a table, known reconstructors are interpreted, everything else becomes a [`value::PyObject`];
//! * [`value`] is the value graph both directions share, [`graph`] walks and copies parts of
//!   it, [`strided`] reads tensor views as bytes and [`cast`] converts float elements;
//! * [`tensor`] validates views against storages and produces contiguous bytes;
//! * [`writer`] pickles a graph the way CPython's protocol-2 pickler does and lays out the zip
//!   archive the way PyTorch's miniz writer does;
//! * [`safetensors`] reads and writes Hugging Face safetensors files, [`hf_index`] sharded
//!   checkpoints (`*.index.json`), and [`convert`] is the batch conversion engine over all of them;
//! * [`inspect`] summarises a loaded file (the CLI's `inspect --json`); [`scan`] reports what
//!   every pickle in a file would import and call (the CLI's `scan`).
//!
//! Nothing here knows about Node or libtorch.

pub mod bytes;
pub mod cast;
pub mod container;
pub mod convert;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod hf_index;
pub mod inspect;
pub mod mapguard;
pub mod options;
pub mod pickle;
pub mod safetensors;
pub mod scan;
pub mod strided;
pub mod tensor;
pub mod value;
pub mod writer;

pub use bytes::ByteView;
pub use container::{load_bytes, load_file, LoadInfo, Loaded};
pub use dtype::DType;
pub use error::{Error, ErrorCode, Result};
pub use options::{Limits, LoadOptions, SaveFormat, SaveOptions, StrEncoding};
pub use value::{Format, Graph, Node, Storage, Tensor, Value};
pub use writer::{archive_name_for_path, save_to_path, save_to_vec, save_to_writer};
