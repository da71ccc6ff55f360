//! The batch conversion engine behind `torchsave convert`, plus `inspect_many` and `diff`.
//!
//! One file goes through: load (torch file through the reader, safetensors through
//! [`crate::safetensors`], a sharded checkpoint through [`crate::hf_index`], a distributed
//! checkpoint folder through [`crate::container::dcp`]; all mmapped) ->
//! select a sub-object -> drop optimizer state -> edit keys -> cast floats -> write (pt through
//! the writer's `save_to_path`; one safetensors file through [`stream`], which casts while
//! writing instead of materialising casts; both atomic) -> optionally re-read and compare
//! per-tensor sha256. [`convert_many`] runs files on a dedicated rayon pool of `jobs`
//! threads, so at most `jobs` files are in flight and memory stays at about `jobs` mapped
//! inputs plus the casts' new storages (none when streamed); streamed outputs are committed
//! (fsync, name) on [`COMMITTERS`] background threads; a failing file becomes a report with
//! an error code and never stops the others; outputs are never overwritten without `force`,
//! and with `skip_existing` an input whose outputs exist and pass a check is reported
//! `skipped` (a retried batch succeeds).
//!
//! Output naming: `a/model.pth` -> `OUT/model.safetensors` (`OUT` = `out_dir`, or the input's
//! folder); with `keep_tree` the input's folder relative to the inputs' common root is
//! recreated under `OUT`. Hugging Face names follow their convention: `pytorch_model.bin`
//! becomes `model.safetensors` and back to `pytorch_model.bin`; sharded outputs are
//! `{stem}-00001-of-0000N.{ext}` plus `{stem}.{ext}.index.json`. Torch outputs keep the
//! input's extension when it is `.pt/.pth/.bin/.ckpt`, else `.pt`. A distributed checkpoint
//! output (`Target::Dcp`) is the folder `OUT/{stem}` ([`naming::single_output`]); a DCP folder
//! input is read through [`crate::container::dcp`].
//!
//! What must change together: [`Target::extension`], [`output_stem`] and the index naming in
//! [`crate::hf_index`]; [`INPUT_EXTENSIONS`] and [`discover_inputs`].
//!
//! Files, by job: `options` (what can be asked, with the defaults), `discover` (inputs),
//! `source` (sniffing and loading an input), `naming` (output paths), `job` (one input
//! through the pipeline), `write` (the writers and the one shard plan they share), `verify`
//! (digests read back), `resume` (`skip_existing`: which outputs already exist and are
//! valid), `pool` (many inputs on `jobs` threads, committers), plus
//! [`transform`] (select, key edits, casts), [`stream`] (the streamed safetensors writer)
//! and [`diff`] (`inspect_many`, `diff`). Everything public is re-exported here.

pub mod diff;
mod discover;
mod job;
mod naming;
mod options;
mod pool;
mod resume;
mod source;
pub mod stream;
pub mod transform;
mod verify;
mod write;

pub use diff::{
    diff, inspect_many, ChangeReason, Changed, DiffReport, DtypeStat, InputError, Summary,
};
pub use discover::{
    check_worker_share, discover_inputs, discover_share, discover_share_with_outputs, shard_inputs,
    INPUT_EXTENSIONS,
};
pub use job::{convert_file, FileReport};
pub use naming::{common_root, output_dir, output_stem};
pub use options::{
    jobs_or_default, parse_cast_dtype, parse_rename, rename_rule, shard_size_from_number,
    ConvertOptions, Target,
};
pub use pool::{convert_many, Progress};
pub use source::{load_source, Source, SourceFormat};
pub use transform::KeyEdits;
pub(crate) use verify::Digests;
