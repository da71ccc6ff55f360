//! The scanner on committed fixtures and on hand-assembled bypass pickles (the generated
//! attack corpus made by real pickle/torch is tested by `__test__/scan.test.ts`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use torchsave_core::scan::{scan_bytes, scan_file, ScanReport, Verdict};
use torchsave_core::ByteView;

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(rel)
}

fn dangerous(r: &ScanReport) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.verdict == Some(Verdict::Dangerous))
        .map(|f| f.name.clone())
        .collect()
}

fn bytes(b: &[u8]) -> ScanReport {
    scan_bytes(ByteView::from_vec(b.to_vec()))
}

fn g(m: &str, n: &str) -> Vec<u8> {
    format!("c{m}\n{n}\n").into_bytes()
}

fn u(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn committed_fixtures() {
    for f in [
        "evil_os_system.pkl",
        "evil_posix_system.pkl",
        "evil_eval.pkl",
        "evil_popen_newobj.pkl",
    ] {
        let r = scan_file(&here(&format!("pickles/{f}")));
        assert_eq!(r.exit_code(false), 1, "{f}");
    }
    // Protocol 2 pickles nested classes as getattr(Outer, 'Inner'): judged by what it reaches.
    let r = scan_file(&here("pickles/getattr_nested.pkl"));
    assert!(dangerous(&r).is_empty(), "{:?}", r.findings);
    assert_eq!(r.exit_code(false), 0);
    assert_eq!(r.exit_code(true), 1, "__main__.Outer.Inner is unknown");
    // torch.package archives hold Python code.
    let r = scan_file(&here("wild/torch_package.pt"));
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == "package" && f.verdict == Some(Verdict::Dangerous)));
    for f in [
        "zip_default.pt",
        "legacy.pt",
        "tar.pt",
        "zip_bigendian.pt",
        "zip_deflated.pt",
    ] {
        let r = scan_file(&here(&format!("containers/{f}")));
        assert_eq!(
            (r.exit_code(true), r.error.clone()),
            (0, None),
            "{f}: {:?}",
            r.findings
        );
        assert!(r.findings.iter().all(|f| f.verdict == Some(Verdict::Safe)));
    }
    // A legacy stream is five pickles: magic, protocol, sys_info, the object, the storage keys.
    let r = scan_file(&here("containers/legacy.pt"));
    assert_eq!(
        (r.format, r.pickles.len()),
        ("legacy", 5),
        "{:?}",
        r.pickles
    );
    assert!(r.pickles.iter().all(|p| p.error.is_none()));
}

#[test]
fn bypass_patterns() {
    let call_touch: &[u8] = b"\x8c\x05touch\x85R.";
    // Memo confusion: MEMOIZE stores at len(memo) whatever BINPUT indices came before.
    let memo = cat(&[
        b"\x80\x04",
        &u("torch._utils"),
        b"\x94",
        &u("_rebuild_tensor_v2"),
        b"\x94",
        &u("os"),
        b"q\x05",
        &u("system"),
        b"\x94",
        b"0000h\x05h\x03\x93",
        call_touch,
    ]);
    let r = bytes(&memo);
    assert_eq!(dangerous(&r), ["os.system", "os.system"]);
    let stack_global = r.findings.iter().find(|f| f.kind == "import").unwrap();
    assert_eq!(
        (stack_global.opcode, stack_global.offset),
        (Some("STACK_GLOBAL"), Some(61))
    );
    // INST (protocol 0) and Python 2 names.
    let r = bytes(b"(S'x'\nicommands\ngetoutput\n.");
    assert_eq!(
        dangerous(&r),
        ["subprocess.getoutput", "subprocess.getoutput"]
    );
    assert_eq!(r.findings[0].written.as_deref(), Some("commands.getoutput"));
    // getattr on a call result, and a dotted qualname through another module's attributes.
    let r = bytes(&cat(&[
        b"\x80\x02",
        &g("builtins", "getattr"),
        b"(",
        &g("importlib", "import_module"),
        b"(",
        &u("os"),
        b"tR",
        &u("system"),
        b"tR.",
    ]));
    assert!(dangerous(&r).contains(&"importlib.import_module".to_string()));
    assert!(dangerous(&r).contains(&"builtins.getattr".to_string()));
    let r = bytes(&cat(&[
        b"\x80\x04",
        &u("torch.serialization"),
        &u("os.system"),
        b"\x93.",
    ]));
    assert_eq!(dangerous(&r), ["torch.serialization.os.system"]);
    // BUILD on a global (monkey-patching), EXT codes.
    let r = bytes(&cat(&[
        b"\x80\x04",
        &u("torch"),
        &u("_utils"),
        b"\x93N}\x86b.",
    ]));
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == "build" && f.verdict == Some(Verdict::Dangerous)));
    let r = bytes(b"\x80\x02\x82\x07.");
    assert!(r
        .findings
        .iter()
        .any(|f| f.kind == "ext" && f.verdict == Some(Verdict::Unknown)));
    // A second pickle after STOP, and a pickle nested in _load_from_bytes' bytes.
    let clean = cat(&[b"\x80\x02", &g("collections", "OrderedDict"), b")R."]);
    let evil = cat(&[b"\x80\x02", &g("posix", "system"), call_touch]);
    assert_eq!(dangerous(&bytes(&cat(&[&clean, &evil]))).len(), 2);
    let mut nested = cat(&[b"\x80\x02", &g("torch.storage", "_load_from_bytes"), b"(C"]);
    nested.push(evil.len() as u8);
    nested.extend(&evil);
    nested.extend(b"tR.");
    let r = bytes(&nested);
    let f = r.findings.iter().find(|f| f.name == "os.system").unwrap();
    assert_eq!(
        f.record,
        format!("@{}", nested.len() - 2),
        "the REDUCE of _load_from_bytes"
    );
}

#[test]
fn damaged_zip_is_scanned_from_its_local_headers() {
    let evil = cat(&[b"\x80\x02", &g("posix", "system"), b"(\x8c\x01x\x85R."]);
    let mut z = Vec::new();
    {
        // A one-record stored zip, by hand: local header, data, then junk instead of a directory.
        z.extend(b"PK\x03\x04");
        z.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        z.extend(crc(&evil).to_le_bytes());
        z.extend((evil.len() as u32).to_le_bytes());
        z.extend((evil.len() as u32).to_le_bytes());
        let name = b"archive/data.pkl";
        z.extend((name.len() as u16).to_le_bytes());
        z.extend(0u16.to_le_bytes());
        z.extend(name);
        z.extend(&evil);
        z.extend([0xee; 64]);
    }
    let r = bytes(&z);
    assert_eq!(r.exit_code(false), 1);
    assert!(r.notes.iter().any(|n| n.contains("local entry headers")));
    assert_eq!(r.findings[0].record, "archive/data.pkl");
}

fn crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(b);
    h.finalize()
}

#[test]
fn not_a_checkpoint_is_an_error_not_clean() {
    let r = bytes(b"abc");
    assert_eq!(r.exit_code(false), 2);
    let r = bytes(b"\x80\x02\xff.");
    assert_eq!(r.exit_code(false), 2);
}

#[test]
fn a_folder_walk_finds_pickles_and_zips_whatever_their_names() {
    let dir = std::env::temp_dir().join(format!("torchsave-scan-walk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // protocol 2: os.system('x'), named as if it were data.
    let evil = b"\x80\x02cos\nsystem\nX\x01\x00\x00\x00x\x85R.";
    std::fs::write(dir.join("weights.dat"), evil).unwrap();
    std::fs::write(dir.join("model.jit"), b"PK\x03\x04rest").unwrap();
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    let found = torchsave_core::scan::discover::discover(&[dir.display().to_string()]).unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["model.jit", "weights.dat"]);
    // the import and the call
    assert_eq!(
        dangerous(&scan_file(&dir.join("weights.dat"))),
        ["os.system", "os.system"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
