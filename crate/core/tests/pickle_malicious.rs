//! Attack and malformed pickles built by make_pickles.py: each must fail with a specific code
//! (or, with weights_only off, load as inert data), never panic, never execute anything.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use torchsave_core::pickle::UnpickleOptions;
use torchsave_core::tensor::validate_graph;
use torchsave_core::value::{Node, ObjectKind};
use torchsave_core::{ErrorCode, Limits};

fn code(name: &str, o: &UnpickleOptions) -> ErrorCode {
    load_plain(&pkl(name), o).map(|_| ()).unwrap_err().code
}

fn with_safe(globals: &[&str]) -> UnpickleOptions {
    UnpickleOptions {
        safe_globals: globals.iter().map(|s| s.to_string()).collect(),
        ..opts(true)
    }
}

#[test]
fn code_execution_globals_are_refused() {
    for (name, global) in [
        ("evil_os_system", "os.system"),
        ("evil_posix_system", "posix.system"),
        ("evil_eval", "builtins.eval"),
        ("evil_popen_newobj", "subprocess.Popen"),
    ] {
        assert_eq!(code(name, &opts(true)), ErrorCode::UnsafeGlobal, "{name}");
        // The blocklist wins over the user's allowlist.
        assert_eq!(
            code(name, &with_safe(&[global])),
            ErrorCode::UnsafeGlobal,
            "{name}"
        );
        assert_eq!(sidecar(name)["globals"], global);
    }
}

#[test]
fn without_weights_only_they_are_inert_objects() {
    let (g, out) = load_plain(&pkl("evil_os_system"), &opts(false)).unwrap();
    let Some(Node::Object(o)) = g.deref(&out.root) else {
        panic!()
    };
    assert_eq!(
        (o.module.as_str(), o.name.as_str(), o.kind),
        ("os", "system", ObjectKind::Reduce)
    );
    let (g, out) = load_plain(&pkl("evil_popen_newobj"), &opts(false)).unwrap();
    let Some(Node::Object(o)) = g.deref(&out.root) else {
        panic!()
    };
    assert_eq!(
        (o.module.as_str(), o.name.as_str(), o.kind),
        ("subprocess", "Popen", ObjectKind::NewObj)
    );
}

#[test]
fn safe_globals_allow_exactly_what_they_name() {
    assert_eq!(
        code("safe_global_only", &opts(true)),
        ErrorCode::UnsafeGlobal
    );
    assert_eq!(
        code("safe_global_only", &with_safe(&["argparse.Other"])),
        ErrorCode::UnsafeGlobal
    );
    let (g, out) = load_plain(
        &pkl("safe_global_only"),
        &with_safe(&["argparse.Namespace"]),
    )
    .unwrap();
    assert_eq!(canon(&g, &out.root), "obj(argparse.Namespace;{s61:i1})");
}

#[test]
fn nested_classes_via_getattr() {
    let (g, out) = load_plain(&pkl("getattr_nested"), &opts(false)).unwrap();
    assert_eq!(canon(&g, &out.root), "g(__main__.Outer.Inner)");
    assert_eq!(code("getattr_nested", &opts(true)), ErrorCode::UnsafeGlobal);
}

#[test]
fn deep_nesting_is_bounded_by_max_depth() {
    for wo in [false, true] {
        let (g, _) = load_plain(&pkl("deep_nesting"), &opts(wo)).unwrap();
        assert_eq!(g.nodes.len(), 100_000);
        let e = validate_graph(&g, &Limits::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::LimitExceeded);
        let roomy = Limits {
            max_depth: 100_000,
            ..Limits::default()
        };
        validate_graph(&g, &roomy).unwrap();
    }
}

#[test]
fn malformed_streams_have_codes() {
    for (name, want) in [
        ("memo_out_of_range", ErrorCode::BadPickle),
        ("huge_binunicode", ErrorCode::Truncated),
        ("truncated", ErrorCode::Truncated),
        ("no_stop", ErrorCode::Truncated),
        ("unknown_opcode", ErrorCode::UnknownOpcode),
        ("mark_underflow", ErrorCode::BadPickle),
        ("pop_below_mark", ErrorCode::BadPickle),
        ("protocol_6", ErrorCode::UnsupportedVersion),
    ] {
        for wo in [false, true] {
            assert_eq!(code(name, &opts(wo)), want, "{name} weights_only={wo}");
        }
    }
    let e = load_plain(&pkl("unknown_opcode"), &opts(false))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(e.offset, Some(2));
}

fn limited(l: Limits) -> UnpickleOptions {
    UnpickleOptions {
        limits: l,
        ..opts(false)
    }
}

#[test]
fn each_limit_is_enforced() {
    let small_strings = Limits {
        max_string_bytes: 1000,
        ..Limits::default()
    };
    assert_eq!(
        code("huge_binunicode", &limited(small_strings)),
        ErrorCode::LimitExceeded
    );
    let small_memo = Limits {
        max_memo: 10,
        ..Limits::default()
    };
    assert_eq!(
        code("basic_p2", &limited(small_memo)),
        ErrorCode::LimitExceeded
    );
    let small_stack = Limits {
        max_stack: 1000,
        ..Limits::default()
    };
    assert_eq!(
        code("deep_nesting", &limited(small_stack)),
        ErrorCode::LimitExceeded
    );
    let small_nodes = Limits {
        max_nodes: 10,
        ..Limits::default()
    };
    assert_eq!(
        code("basic_p2", &limited(small_nodes)),
        ErrorCode::LimitExceeded
    );
    // The same files load with the defaults.
    assert!(load_plain(&pkl("basic_p2"), &opts(false)).is_ok());
}
