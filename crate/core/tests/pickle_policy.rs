//! Every construct the weights-only policy can refuse, as a tiny pickle: with
//! `weights_only: true` it fails with the policy code `E_UNSAFE_GLOBAL` (never `E_BAD_PICKLE`,
//! which means malformed), with `weights_only: false` it loads as inert data, and either way
//! the policy's verdict (what `inspect` reports as `weights_only_ok`) is "refused".
#![allow(clippy::unwrap_used, clippy::panic)]

use torchsave_core::error::{ErrorCode, Result};
use torchsave_core::pickle::policy::Policy;
use torchsave_core::pickle::{unpickle, PersistentLoad, UnpickleOptions};
use torchsave_core::value::{Graph, Value};

/// Accepts any persistent id as `None`, so only the policy can refuse one.
struct AnyPid;
impl PersistentLoad for AnyPid {
    fn persistent_load(&mut self, _: &mut Graph, _: Value) -> Result<Value> {
        Ok(Value::None)
    }
}

fn run(data: &[u8], weights_only: bool, safe: &[&str]) -> Result<Option<String>> {
    let opts = UnpickleOptions {
        weights_only,
        safe_globals: safe.iter().map(|s| s.to_string()).collect(),
        ..UnpickleOptions::default()
    };
    let mut graph = Graph::new();
    unpickle(data, &mut graph, &opts, &mut AnyPid).map(|o| o.weights_only_refusal)
}

fn p2(body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 2];
    v.extend_from_slice(body);
    v.push(b'.');
    v
}

fn bu(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn every_policy_refusal_is_unsafe_global_and_inert_without_weights_only() {
    let ns: &[&str] = &["argparse.Namespace"];
    let getattr: &[&str] = &["builtins.getattr"];
    let namespace = b"cargparse\nNamespace\n)R".to_vec();
    let frame = {
        let mut v = vec![0x80, 4, 0x95];
        v.extend(2u64.to_le_bytes());
        v.extend(b"N.");
        v
    };
    #[rustfmt::skip]
    let table: Vec<(&str, Vec<u8>, &[&str])> = vec![
        // Opcodes outside torch's 34.
        ("FRAME", frame, &[]),
        ("INT (text)", b"I7\n.".to_vec(), &[]),
        ("LONG (text)", b"L7L\n.".to_vec(), &[]),
        ("FLOAT (text)", b"F1.5\n.".to_vec(), &[]),
        ("STRING", b"S'a'\n.".to_vec(), &[]),
        ("UNICODE", b"Va\n.".to_vec(), &[]),
        ("BINSTRING", p2(b"T\x01\x00\x00\x00a"), &[]),
        ("SHORT_BINUNICODE", p2(b"\x8c\x01a"), &[]),
        ("BINUNICODE8", p2(&cat(&[b"\x8d", &1u64.to_le_bytes(), b"a"])), &[]),
        ("BINBYTES", p2(b"B\x01\x00\x00\x00a"), &[]),
        ("SHORT_BINBYTES", p2(b"C\x01a"), &[]),
        ("BINBYTES8", p2(&cat(&[b"\x8e", &1u64.to_le_bytes(), b"a"])), &[]),
        ("BYTEARRAY8", p2(&cat(&[b"\x96", &1u64.to_le_bytes(), b"a"])), &[]),
        ("LONG4", p2(b"\x8b\x01\x00\x00\x00\x07"), &[]),
        ("DUP", p2(b"N2\x86"), &[]),
        ("POP", p2(b"NN0"), &[]),
        ("POP_MARK", p2(b"N(N1"), &[]),
        ("LIST", p2(b"(Nl"), &[]),
        ("DICT", p2(b"(NNd"), &[]),
        ("FROZENSET", p2(b"(N\x91"), &[]),
        ("ADDITEMS", p2(b"\x8f(N\x90"), &[]),
        ("MEMOIZE", p2(b"N\x94"), &[]),
        ("PUT/GET (text)", p2(b"Np0\ng0\n\x86"), &[]),
        ("EXT1", p2(b"\x82\x07"), &[]),
        ("STACK_GLOBAL", p2(&cat(&[&bu("collections"), &bu("OrderedDict"), b"\x93"])), &[]),
        ("INST", p2(b"(icollections\nOrderedDict\n"), &[]),
        ("OBJ", p2(b"(ccollections\nOrderedDict\no"), &[]),
        ("NEWOBJ_EX", p2(b"ccollections\nOrderedDict\n)}\x92"), &[]),
        ("PERSID", p2(b"P0\n"), &[]),
        // Globals: not allowlisted, and blocked (even when the user allows it).
        ("GLOBAL not allowed", p2(b"c__main__\nNet\n"), &[]),
        ("GLOBAL blocked", p2(b"cos\nsystem\n"), &["os.system"]),
        ("GLOBAL blocked builtin", p2(b"cbuiltins\neval\n"), &[]),
        // Calls on something that is not an allowed global.
        ("REDUCE on a non-global", p2(b"])R"), &[]),
        ("NEWOBJ on a non-global", p2(b"])\x81"), &[]),
        ("REDUCE on a getattr-built global", p2(&cat(&[b"cbuiltins\ngetattr\nccollections\nOrderedDict\n", &bu("fromkeys"), b"\x86R)R"])), getattr),
        // APPEND / SETITEM on an object (only lists / dict, OrderedDict, Counter take them).
        ("APPEND on an object", p2(&cat(&[&namespace, b"Na"])), ns),
        ("APPENDS on an object", p2(&cat(&[&namespace, b"(Ne"])), ns),
        ("SETITEM on an object", p2(&cat(&[&namespace, b"NNs"])), ns),
        ("SETITEMS on an object", p2(&cat(&[&namespace, b"(NNu"])), ns),
        // Persistent ids: only ints and ('storage', ...) tuples.
        ("BINPERSID ('module', ...)", p2(&cat(&[b"(", &bu("module"), b"ccollections\nOrderedDict\ntQ"])), &[]),
        ("BINPERSID str", p2(&cat(&[&bu("x"), b"Q"])), &[]),
        ("BINPERSID list", p2(b"]Q"), &[]),
    ];
    for (what, data, safe) in &table {
        let e = run(data, true, safe).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsafeGlobal, "{what}: {}", e.message);
        assert!(
            e.message
                .contains("weightsOnly: false only if you trust the file")
                || e.message.contains("blocked"),
            "{what}: {}",
            e.message
        );
        let verdict = run(data, false, safe).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(verdict.is_some(), "{what}: the verdict must say refused");
    }
    // What torch accepts loads either way with a clean verdict.
    for ok in [
        p2(b"ccollections\nOrderedDict\n)R"),
        p2(&cat(&[b"ccollections\nCounter\n)R", b"NNs"])),
        p2(&cat(&[b"(", &bu("storage"), b"tQ"])),
        p2(b"K\x07Q"),
        p2(b"]Na}NNs\x8f\x86"),
    ] {
        assert_eq!(run(&ok, true, &[]).unwrap(), None);
        assert_eq!(run(&ok, false, &[]).unwrap(), None);
    }
    // A user-allowed global loads under weights_only, but torch's default policy refuses it.
    assert!(run(&p2(&namespace), true, ns).unwrap().is_some());
}

#[test]
fn build_and_containers_ask_the_same_policy() {
    // BUILD on an object of a class the policy does not allow (unreachable through a pickle
    // under weights_only, since the call that made the object was refused first).
    let e = Policy::new(true, &[])
        .build("argparse.Namespace")
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
    let allowed = ["argparse.Namespace".to_string()];
    assert!(Policy::new(true, &allowed)
        .build("argparse.Namespace")
        .is_ok());
    assert!(Policy::new(true, &[]).build("collections.Counter").is_ok());
    let e = Policy::new(true, &[])
        .container(torchsave_core::value::Format::Tar)
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsafeGlobal);
    let mut p = Policy::new(false, &[]);
    assert!(p.container(torchsave_core::value::Format::Tar).is_ok());
    assert!(p.refusal().is_some());
}
