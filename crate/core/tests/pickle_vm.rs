//! The VM against real CPython pickles of plain values, protocols 0-5, and a Python 2 pickle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use torchsave_core::pickle::UnpickleOptions;
use torchsave_core::value::{Node, Value};
use torchsave_core::{ErrorCode, StrEncoding};

#[test]
fn every_protocol_matches_python() {
    for p in 0..=5 {
        let name = format!("basic_p{p}");
        let side = sidecar(&name);
        let data = pkl(&name);
        let (g, out) = load_plain(&data, &opts(false)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(canon(&g, &out.root), side["canon"], "{name}");
        assert_eq!(out.protocol.to_string(), side["protocol"], "{name}");
        assert_eq!(out.consumed.to_string(), side["consumed"], "{name}");
        assert_eq!(mapped_globals(&out), side["globals"], "{name}");
    }
}

#[test]
fn shared_references_and_cycles_keep_identity() {
    let (g, out) = load_plain(&pkl("basic_p2"), &opts(false)).unwrap();
    let Some(Node::Dict(items)) = g.deref(&out.root) else {
        panic!()
    };
    let get = |k: &str| {
        items
            .iter()
            .find(|(kk, _)| *kk == Value::Str(k.into()))
            .unwrap()
            .1
            .clone()
    };
    let Some(Node::List(shared)) = g.deref(&get("shared")) else {
        panic!()
    };
    assert!(matches!(shared[0], Value::Ref(_)));
    assert_eq!(shared[0], shared[1], "same object, same node");
    let selfref = get("selfref");
    let Some(Node::List(l)) = g.deref(&selfref) else {
        panic!()
    };
    assert_eq!(l[1], selfref, "the list contains itself");
}

#[test]
fn back_to_back_pickles_report_consumed() {
    let one = pkl("basic_p2");
    let mut two = one.clone();
    two.extend_from_slice(&pkl("basic_p4"));
    let (_, a) = load_plain(&two, &opts(false)).unwrap();
    assert_eq!(a.consumed, one.len());
    let (g, b) = load_plain(&two[a.consumed..], &opts(false)).unwrap();
    assert_eq!(canon(&g, &b.root), sidecar("basic_p4")["canon"]);
    assert_eq!(b.protocol, 4);
}

#[test]
fn python2_strings_follow_the_encoding() {
    let side = sidecar("py2_strings");
    for (enc, key) in [
        (StrEncoding::Utf8, "canon_utf8"),
        (StrEncoding::Latin1, "canon_latin1"),
        (StrEncoding::Bytes, "canon_bytes"),
    ] {
        let o = UnpickleOptions {
            encoding: enc,
            ..opts(false)
        };
        let (g, out) = load_plain(&pkl("py2_strings"), &o).unwrap();
        assert_eq!(canon(&g, &out.root), side[key], "{key}");
        assert_eq!(mapped_globals(&out), side["globals"]);
    }
}

#[test]
fn weights_only_rejects_what_torch_rejects() {
    // basic_p2 holds a frozenset (`builtins.frozenset` is not allowlisted).
    let e = load_plain(&pkl("basic_p2"), &opts(true)).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
    // Protocol 0 text opcodes and protocol 4 FRAME are outside torch's opcode set.
    // Policy refusals carry the policy code (E_UNSAFE_GLOBAL), never E_BAD_PICKLE.
    assert_eq!(
        load_plain(&pkl("basic_p0"), &opts(true)).unwrap_err().code,
        ErrorCode::UnsafeGlobal
    );
    assert_eq!(
        load_plain(&pkl("basic_p4"), &opts(true)).unwrap_err().code,
        ErrorCode::UnsafeGlobal
    );
    let e = load_plain(&pkl("frame_p4_weights_only"), &opts(true)).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
    assert_eq!(e.offset, Some(2), "the FRAME opcode right after PROTO");
    assert!(load_plain(&pkl("frame_p4_weights_only"), &opts(false)).is_ok());
}

#[test]
fn every_prefix_and_byte_flip_fails_cleanly() {
    for name in ["basic_p2", "basic_p5", "py2_strings", "basic_p0"] {
        let data = pkl(name);
        for cut in (0..data.len()).step_by(1 + data.len() / 300) {
            let r = load_plain(&data[..cut], &opts(false));
            assert!(r.is_err(), "{name} cut at {cut}");
        }
        let mut seed = 0x2545F4914F6CDD1Du64;
        for _ in 0..400 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut d = data.clone();
            let i = (seed as usize) % d.len();
            d[i] = (seed >> 32) as u8;
            for wo in [false, true] {
                if let Ok((g, _)) = load_plain(&d, &opts(wo)) {
                    let _ = torchsave_core::tensor::validate_graph(&g, &Default::default());
                }
            }
        }
    }
}
