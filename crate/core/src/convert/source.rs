//! Reading any input: sniffing what a file is (a distributed checkpoint folder, a sharded
//! checkpoint's index, safetensors by name or by its bytes, a TorchScript archive by its zip
//! directory, else a torch file) and loading it mapped.

use super::stream;
use crate::container::torchscript;
use crate::error::{Error, Result};
use crate::hf_index;
use crate::options::LoadOptions;
use crate::safetensors as st;
use crate::value::{Format, Graph};
use std::path::{Path, PathBuf};

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Torch(Format),
    Safetensors,
    HfIndex,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Torch(f) => f.as_str(),
            SourceFormat::Safetensors => "safetensors",
            SourceFormat::HfIndex => "hf-index",
        }
    }
}

/// A loaded input of any kind.
#[derive(Clone, Debug)]
pub struct Source {
    pub graph: Graph,
    pub format: SourceFormat,
    /// The files read (the index's shards for a sharded checkpoint).
    pub files: Vec<PathBuf>,
    pub bytes_in: u64,
    /// safetensors `__metadata__` (single files only).
    pub metadata: Vec<(String, String)>,
    /// The mapped files storages point into (single mapped files, a distributed
    /// checkpoint's data files), for streamed reads.
    pub mapped: Vec<stream::MappedInput>,
}

pub(super) fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Loads any input: `*.index.json` as a sharded checkpoint, safetensors (by its `.safetensors`
/// name or sniffed from the bytes), anything else through the torch reader. `restore_aliases` re-adds names a
/// safetensors writer dropped as shared (see [`st::restore_aliases`]).
pub fn load_source(path: &Path, opts: &LoadOptions, restore_aliases: bool) -> Result<Source> {
    if crate::container::dcp::is_dcp_dir(path) {
        let (loaded, maps) = crate::container::dcp::load_dir_with_maps(path, opts)?;
        let mapped = maps
            .iter()
            .filter_map(|(p, view)| stream::MappedInput::open(p, view))
            .collect();
        let mut files = vec![path.to_path_buf()];
        if let Ok(rd) = std::fs::read_dir(path) {
            let mut data: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            data.sort();
            files.extend(data);
        }
        let bytes_in = files.iter().skip(1).map(|p| file_len(p)).sum();
        return Ok(Source {
            graph: loaded.graph,
            format: SourceFormat::Torch(Format::Dcp),
            files,
            bytes_in,
            metadata: Vec::new(),
            mapped,
        });
    }
    if hf_index::is_index_path(path) {
        let s = hf_index::load_sharded(path, opts)?;
        let bytes_in = file_len(path) + s.shards.iter().map(|p| file_len(p)).sum::<u64>();
        let mut files = s.shards;
        files.insert(0, path.to_path_buf());
        return Ok(Source {
            graph: s.graph,
            format: SourceFormat::HfIndex,
            files,
            bytes_in,
            metadata: Vec::new(),
            mapped: Vec::new(),
        });
    }
    let in_file = |e: Error| e.in_file(path.display().to_string());
    let bytes = crate::container::source::open(path, opts.mmap).map_err(in_file)?;
    let bytes_in = bytes.len() as u64;
    // Like torch.load, a `.safetensors` name is enough; otherwise sniff the bytes.
    let named_st = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let mapped: Vec<stream::MappedInput> = if opts.mmap {
        stream::MappedInput::open(path, &bytes)
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    if named_st || st::looks_like_safetensors(bytes.as_slice()) {
        let mut loaded = st::read_bytes(bytes).map_err(in_file)?;
        if restore_aliases {
            st::restore_aliases(&mut loaded);
        }
        return Ok(Source {
            graph: loaded.graph,
            format: SourceFormat::Safetensors,
            files: vec![path.to_path_buf()],
            bytes_in,
            metadata: loaded.metadata,
            mapped,
        });
    }
    // A TorchScript archive converts as its state dict (`torch.jit.load(p).state_dict()`),
    // not as the module object with its non-tensor attributes.
    if torchscript::sniff(&bytes) {
        let loaded = if opts.mmap {
            torchscript::load_view(bytes, opts, true, torchscript::View::StateDict)
                .map_err(in_file)?
        } else {
            drop(bytes);
            torchscript::load_file(path, opts, torchscript::View::StateDict)?
        };
        return Ok(Source {
            graph: loaded.graph,
            format: SourceFormat::Torch(loaded.info.format),
            files: vec![path.to_path_buf()],
            bytes_in,
            metadata: Vec::new(),
            mapped,
        });
    }
    // A mapped load parses the map already open (what `load_file` does with `mmap`).
    let loaded = if opts.mmap {
        crate::container::detect::load(bytes, opts, true).map_err(in_file)?
    } else {
        drop(bytes);
        crate::container::load_file(path, opts)?
    };
    Ok(Source {
        graph: loaded.graph,
        format: SourceFormat::Torch(loaded.info.format),
        files: vec![path.to_path_buf()],
        bytes_in,
        metadata: Vec::new(),
        mapped,
    })
}
