//! JS option objects → core options. Names are the TS facade's (camelCase); defaults are
//! PyTorch's (weightsOnly true, mmap true, protocol 2, zip).

use napi_derive::napi;
use std::path::Path;
use torchsave_core::{
    archive_name_for_path, Error as CoreError, ErrorCode, LoadOptions, SaveFormat, SaveOptions,
    StrEncoding,
};

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct NativeLoadOptions {
    /// Accept only what PyTorch's weights-only unpickler accepts (default true).
    pub weights_only: Option<bool>,
    /// Extra allowed globals, `module.qualname`.
    pub safe_globals: Option<Vec<String>>,
    /// Map the file instead of reading it (default true; paths only).
    pub mmap: Option<bool>,
    /// `utf8` (default), `latin1` or `bytes`: how Python 2 byte strings decode.
    pub encoding: Option<String>,
    /// Check CRC-32 of every record (default: small records always, storages when not mmapped).
    pub verify_crc: Option<bool>,
    /// Expose storages as external memory (default true); false copies each storage.
    pub external_buffers: Option<bool>,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct NativeSaveOptions {
    /// `zip` (default) or `legacy`.
    #[napi(ts_type = "'zip' | 'legacy'")]
    pub format: Option<String>,
    /// Pickle protocol (default 2).
    pub protocol: Option<u32>,
    /// Top folder inside the zip; default: the file's stem for ASCII paths, else `archive`.
    pub archive_name: Option<String>,
    /// Write only the bytes each storage's tensors reach.
    pub compact: Option<bool>,
    /// Saving to a path: fsync the file and its folder before returning (default true).
    /// `false` skips the fsyncs (like torch.save and `cp`); the save stays atomic.
    pub durable: Option<bool>,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct NativeInspectOptions {
    /// Add a sha256 per tensor.
    pub sha256: Option<bool>,
    /// Refuse files the weights-only policy refuses (default true, like load; the CLI's
    /// `inspect` passes false unless `--weights-only`).
    pub weights_only: Option<bool>,
    pub safe_globals: Option<Vec<String>>,
}

pub struct LoadConfig {
    pub core: LoadOptions,
    pub external: bool,
}

/// The policy options every reading call takes, applied over the call's core defaults
/// (`LoadOptions::default()` for load/inspect/convert, `LoadOptions::for_summaries()` for
/// inspectMany/diff): only what the caller gave is set.
pub fn policy_options(
    mut core: LoadOptions,
    weights_only: Option<bool>,
    safe_globals: Option<Vec<String>>,
) -> LoadOptions {
    if let Some(w) = weights_only {
        core.weights_only = w;
    }
    if let Some(g) = safe_globals {
        core.safe_globals = g;
    }
    core
}

pub fn load_config(o: Option<NativeLoadOptions>) -> Result<LoadConfig, CoreError> {
    let o = o.unwrap_or_default();
    let mut core = policy_options(LoadOptions::default(), o.weights_only, o.safe_globals);
    if let Some(m) = o.mmap {
        core.mmap = m;
    }
    if let Some(e) = o.encoding {
        core.encoding = match e.to_ascii_lowercase().as_str() {
            "utf8" | "utf-8" | "ascii" => StrEncoding::Utf8,
            "latin1" | "latin-1" | "iso-8859-1" => StrEncoding::Latin1,
            "bytes" => StrEncoding::Bytes,
            other => {
                return Err(CoreError::new(
                    ErrorCode::InvalidArgument,
                    format!("encoding must be 'utf8', 'latin1' or 'bytes', got '{other}'"),
                ))
            }
        };
    }
    core.verify_crc = o.verify_crc;
    Ok(LoadConfig {
        core,
        external: o.external_buffers.unwrap_or(true),
    })
}

/// `inspect`'s load options: core's defaults (weights-only, like load) and what was given.
pub fn inspect_config(o: &Option<NativeInspectOptions>) -> LoadOptions {
    match o {
        Some(o) => policy_options(
            LoadOptions::default(),
            o.weights_only,
            o.safe_globals.clone(),
        ),
        None => LoadOptions::default(),
    }
}

/// torch.save's archive folder for a save to `path` ([`archive_name_for_path`], the one
/// rule); streams and buffers use `archive`.
pub fn archive_name_for(path: Option<&str>) -> String {
    path.map_or_else(
        || "archive".to_string(),
        |p| archive_name_for_path(Path::new(p)),
    )
}

pub fn save_config(
    o: Option<NativeSaveOptions>,
    path: Option<&str>,
) -> Result<SaveOptions, CoreError> {
    let o = o.unwrap_or_default();
    let mut core = SaveOptions::default();
    if let Some(f) = o.format {
        core.format = match f.as_str() {
            "zip" => SaveFormat::Zip,
            "legacy" => SaveFormat::Legacy,
            other => {
                return Err(CoreError::new(
                    ErrorCode::InvalidArgument,
                    format!("format must be 'zip' or 'legacy', got '{other}'"),
                ))
            }
        };
    }
    if let Some(p) = o.protocol {
        if !(2..=5).contains(&p) {
            return Err(CoreError::new(
                ErrorCode::InvalidArgument,
                format!("pickleProtocol must be 2..5, got {p}"),
            ));
        }
        core.protocol = p as u8;
    }
    core.archive_name = o.archive_name.unwrap_or_else(|| archive_name_for(path));
    if let Some(c) = o.compact {
        core.compact = c;
    }
    if let Some(d) = o.durable {
        core.durable = d;
    }
    Ok(core)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_follow_torch() {
        assert_eq!(archive_name_for(Some("/x/model.pth")), "model");
        assert_eq!(archive_name_for(Some("a.b.pt")), "a.b");
        assert_eq!(archive_name_for(Some("ckpt")), "ckpt");
        assert_eq!(archive_name_for(Some("/tmp/模型.pt")), "archive");
        assert_eq!(archive_name_for(None), "archive");
    }

    /// The binding sets only what JS gave; the defaults are core's (BRIEF: load and inspect
    /// weights-only, inspectMany/diff not).
    #[test]
    fn weights_only_defaults_are_cores() {
        assert_eq!(
            load_config(None).map(|c| c.core).ok(),
            Some(LoadOptions::default())
        );
        assert!(inspect_config(&None).weights_only);
        assert!(!policy_options(LoadOptions::for_summaries(), None, None).weights_only);
        assert!(policy_options(LoadOptions::for_summaries(), Some(true), None).weights_only);
        let given = NativeInspectOptions {
            weights_only: Some(false),
            ..Default::default()
        };
        assert!(!inspect_config(&Some(given)).weights_only);
    }

    #[test]
    fn durable_defaults_to_true() {
        let on = |durable| {
            save_config(
                Some(NativeSaveOptions {
                    durable,
                    ..Default::default()
                }),
                None,
            )
            .map(|o| o.durable)
            .ok()
        };
        assert_eq!(on(None), Some(true));
        assert_eq!(on(Some(true)), Some(true));
        assert_eq!(on(Some(false)), Some(false));
    }

    #[test]
    fn bad_options_have_codes() {
        let e = save_config(
            Some(NativeSaveOptions {
                format: Some("tar".into()),
                ..Default::default()
            }),
            None,
        )
        .err();
        assert_eq!(e.map(|e| e.code), Some(ErrorCode::InvalidArgument));
        let e = load_config(Some(NativeLoadOptions {
            encoding: Some("koi8".into()),
            ..Default::default()
        }))
        .err();
        assert_eq!(e.map(|e| e.code), Some(ErrorCode::InvalidArgument));
    }
}
