//! `skip_existing`: a retried batch (after Ctrl-C, a killed job, a preempted node) skips the
//! inputs whose outputs are already there and valid, so re-running a finished batch
//! succeeds instead of failing every file with `E_OUTPUT_EXISTS`.
//!
//! Outputs are written atomically (temporary file, then rename), so an output this engine
//! named was complete when it was named; the check guards against files something else put
//! there or damaged since. The default check is cheap (no tensor data is read):
//! - safetensors: the 8-byte length, the JSON header, and data offsets that cover exactly
//!   the rest of the file ([`st::parse_header`]);
//! - pt (zip): the central directory parses, every record lies inside the file, and
//!   `data.pkl` is there ([`ZipArchive::parse`]);
//! - pt-legacy: the stream has no directory, so the file is loaded (pickles parsed,
//!   storage sizes checked against the file).
//!
//! With `verify` the existing outputs are read in full instead (zip: every record's CRC-32
//! checked). A sharded output counts when its index exists and it and every shard it names
//! load. An output that exists but fails the check is `E_OUTPUT_EXISTS` (never silently
//! overwritten: pass `force` for that).

use super::{load_source, output_dir, output_stem, ConvertOptions, Target};
use crate::container::{source, zip_read::ZipArchive};
use crate::error::{Error, Result};
use crate::hf_index;
use crate::options::LoadOptions;
use crate::safetensors as st;
use std::path::{Path, PathBuf};

/// The outputs of `input` when they all exist and pass the check (shards first, then the
/// index), `None` when there is no output yet (convert as usual).
pub(super) fn existing_outputs(
    input: &Path,
    opts: &ConvertOptions,
) -> Result<Option<Vec<PathBuf>>> {
    let (stem, ext) = output_stem(input, opts.to);
    let dir = output_dir(input, opts);
    let single = super::naming::single_output(&dir, &stem, ext, opts.to);
    let index = dir.join(format!("{stem}.{ext}.index.json"));
    if opts.shard_size.is_some() && index.exists() {
        let s = hf_index::load_sharded(&index, &check_load_options(opts))
            .map_err(|e| invalid(&index, opts, &e))?;
        let mut outs = s.shards;
        outs.push(index);
        return Ok(Some(outs));
    }
    if !single.exists() {
        return Ok(None);
    }
    check_file(&single, opts).map_err(|e| invalid(&single, opts, &e))?;
    Ok(Some(vec![single]))
}

/// How an existing output is read back: the inputs' policy, and CRC-32s with `verify`.
fn check_load_options(opts: &ConvertOptions) -> LoadOptions {
    LoadOptions {
        verify_crc: Some(opts.verify),
        ..opts.load.clone()
    }
}

fn check_file(path: &Path, opts: &ConvertOptions) -> Result<()> {
    if opts.verify || opts.to == Target::PtLegacy || opts.to == Target::Dcp {
        load_source(path, &check_load_options(opts), false)?;
        return Ok(());
    }
    let bytes = source::open(path, true)?;
    match opts.to {
        Target::Safetensors => {
            st::parse_header(bytes.as_slice())?;
        }
        _ => {
            let zip = ZipArchive::parse(bytes)?;
            if zip.find("data.pkl").is_none() {
                crate::bail!(BadZip, "no data.pkl record");
            }
        }
    }
    Ok(())
}

fn invalid(path: &Path, opts: &ConvertOptions, e: &Error) -> Error {
    crate::err!(
        OutputExists,
        "{} exists but is not a valid {} output ({}); remove it or pass force to overwrite it",
        path.display(),
        opts.to.name(),
        e
    )
}
