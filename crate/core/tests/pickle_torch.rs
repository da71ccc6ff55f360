//! `data.pkl` records from real `torch.save` zips, with their real storage bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use torchsave_core::pickle::{unpickle, TorchPersistentLoader};
use torchsave_core::tensor::validate_graph;
use torchsave_core::value::{Graph, Node, Value};
use torchsave_core::{DType, ErrorCode};

const TORCH: [&str; 5] = [
    "torch_state_dict",
    "torch_weights",
    "torch_numpy_namespace",
    "torch_quantized",
    "torch_sparse",
];

#[test]
fn values_match_torch_load() {
    for name in TORCH {
        let side = sidecar(name);
        let (g, out) = load_torch(name, &opts(false)).unwrap_or_else(|e| panic!("{name}: {e}"));
        validate_graph(&g, &Default::default()).unwrap();
        assert_eq!(canon(&g, &out.root), side["canon"], "{name}");
        assert_eq!(mapped_globals(&out), side["globals"], "{name}");
        assert_eq!(out.protocol, 2);
        // One storage per data/<key> record, in first-seen order.
        let keys: Vec<&str> = g.storages.iter().map(|s| s.key.as_str()).collect();
        let want: Vec<&str> = side["storages"]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(keys, want, "{name}");
    }
}

#[test]
fn weights_only_agrees_with_torch() {
    for name in TORCH {
        let ok = sidecar(name)["weights_only_ok"] == "1";
        let r = load_torch(name, &opts(true));
        assert_eq!(r.is_ok(), ok, "{name}: {:?}", r.err());
        if let Err(e) = r {
            assert_eq!(e.code, ErrorCode::UnsafeGlobal, "{name}");
        }
    }
    // numpy + Namespace load once their globals are allowed by the user.
    let o = torchsave_core::pickle::UnpickleOptions {
        safe_globals: [
            "numpy._core.multiarray._reconstruct",
            "numpy.ndarray",
            "numpy.dtype",
            "numpy._core.multiarray.scalar",
            "argparse.Namespace",
        ]
        .map(String::from)
        .to_vec(),
        ..opts(true)
    };
    let (g, out) = load_torch("torch_numpy_namespace", &o).unwrap();
    assert_eq!(
        canon(&g, &out.root),
        sidecar("torch_numpy_namespace")["canon"]
    );
}

fn entry<'g>(g: &'g Graph, root: &Value, key: &str) -> &'g Node {
    let items = match g.deref(root).unwrap() {
        Node::Dict(i) | Node::OrderedDict { items: i, .. } => i,
        _ => panic!(),
    };
    g.deref(
        &items
            .iter()
            .find(|(k, _)| *k == Value::Str(key.into()))
            .unwrap()
            .1,
    )
    .unwrap()
}

#[test]
fn storages_are_shared_by_key_and_tensors_by_identity() {
    let (g, out) = load_torch("torch_weights", &opts(true)).unwrap();
    let (Node::Tensor(base), Node::Tensor(view)) =
        (entry(&g, &out.root, "base"), entry(&g, &out.root, "view"))
    else {
        panic!()
    };
    assert_eq!(base.storage, view.storage);
    assert_eq!(view.storage_offset, 1);
    assert!(std::ptr::eq(
        entry(&g, &out.root, "tied_a"),
        entry(&g, &out.root, "tied_b")
    ));
    let Node::Tensor(u16t) = entry(&g, &out.root, "u16") else {
        panic!()
    };
    assert_eq!(u16t.dtype, DType::UInt16);
    let s = &g.storages[u16t.storage.unwrap()];
    assert!(s.untyped);
    assert_eq!((s.dtype, s.numel), (DType::UInt8, 4));
    let Node::Tensor(p) = entry(&g, &out.root, "param") else {
        panic!()
    };
    assert!(p.is_parameter && p.requires_grad);
    let Node::Tensor(m) = entry(&g, &out.root, "meta") else {
        panic!()
    };
    assert_eq!((m.storage, m.device.as_deref()), (None, Some("meta")));
}

#[test]
fn state_dict_metadata_arrives_as_state() {
    let (g, out) = load_torch("torch_state_dict", &opts(true)).unwrap();
    let Some(Node::OrderedDict {
        items,
        state: Some(state),
    }) = g.deref(&out.root)
    else {
        panic!()
    };
    let keys: Vec<_> = items.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys[0], Value::Str("0.weight".into()));
    let Some(Node::Dict(st)) = g.deref(state) else {
        panic!()
    };
    assert_eq!(st[0].0, Value::Str("_metadata".into()));
    assert!(matches!(g.deref(&st[0].1), Some(Node::OrderedDict { .. })));
}

#[test]
fn deferred_storages_are_pending_until_filled() {
    let data = pkl("torch_weights");
    let mut src = BlobSource::new("torch_weights");
    src.defer = true;
    let mut g = Graph::new();
    let pending: Vec<(usize, String)>;
    {
        let mut loader = TorchPersistentLoader::new(&mut src);
        let out = unpickle(&data, &mut g, &opts(false), &mut loader).unwrap();
        g.root = Some(out.root);
        pending = loader
            .pending()
            .iter()
            .map(|&id| (id, g.storages[id].key.clone()))
            .collect();
        assert_eq!(pending.len(), g.storages.len());
    }
    // Empty data fails validation until the container fills it in.
    assert_eq!(
        validate_graph(&g, &Default::default()).unwrap_err().code,
        ErrorCode::StorageSize
    );
    for (id, key) in &pending {
        g.storages[*id].data = src.bytes(key);
    }
    validate_graph(&g, &Default::default()).unwrap();
    assert_eq!(
        canon(&g, g.root.as_ref().unwrap()),
        sidecar("torch_weights")["canon"]
    );
    // The source was asked with numel * element_size.
    assert!(src
        .asked
        .iter()
        .any(|(k, d, n)| k == "0" && *d == DType::Float32 && *n == 16));
}

#[test]
fn wrong_record_size_is_a_storage_size_error() {
    struct Short;
    impl torchsave_core::pickle::StorageSource for Short {
        fn storage(
            &mut self,
            _: &str,
            _: DType,
            n: u64,
        ) -> torchsave_core::Result<Option<torchsave_core::bytes::ByteView>> {
            Ok(Some(torchsave_core::bytes::ByteView::from_vec(vec![
                0;
                n as usize
                    + 1
            ])))
        }
    }
    let mut src = Short;
    let mut loader = TorchPersistentLoader::new(&mut src);
    let e = unpickle(
        &pkl("torch_state_dict"),
        &mut Graph::new(),
        &opts(true),
        &mut loader,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::StorageSize);
}

#[test]
fn torch_pickles_fail_cleanly_when_cut_or_flipped() {
    for name in TORCH {
        let data = pkl(name);
        for cut in 0..data.len() {
            assert!(
                load_torch_bytes(name, &data[..cut]).is_err(),
                "{name} cut at {cut}"
            );
        }
        let mut seed = 0x9E3779B97F4A7C15u64;
        for _ in 0..300 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut d = data.clone();
            let i = (seed as usize) % d.len();
            d[i] ^= (seed >> 40) as u8 | 1;
            if let Ok(g) = load_torch_bytes(name, &d) {
                if validate_graph(&g, &Default::default()).is_ok() {
                    // Whatever loaded must be renderable (every tensor within bounds).
                    let _ = canon(&g, g.root.as_ref().unwrap());
                }
            }
        }
    }
}

fn load_torch_bytes(name: &str, data: &[u8]) -> torchsave_core::Result<Graph> {
    struct Any(BlobSource);
    impl torchsave_core::pickle::StorageSource for Any {
        fn storage(
            &mut self,
            key: &str,
            _: DType,
            n: u64,
        ) -> torchsave_core::Result<Option<torchsave_core::bytes::ByteView>> {
            // Unknown keys (flipped bytes) get zeros of the declared size, capped.
            match self.0.entries.get(key) {
                Some(_) if self.0.bytes(key).len() as u64 == n => Ok(Some(self.0.bytes(key))),
                _ => Ok(Some(torchsave_core::bytes::ByteView::from_vec(
                    vec![0; n.min(1 << 16) as usize],
                ))),
            }
        }
    }
    let mut src = Any(BlobSource::new(name));
    let mut loader = TorchPersistentLoader::new(&mut src);
    let mut g = Graph::new();
    let out = unpickle(data, &mut g, &opts(false), &mut loader)?;
    g.root = Some(out.root);
    Ok(g)
}
