//! The streamed safetensors path of `convert` (convert/stream.rs) against the materialising
//! one (cast every storage with `cast_floats`, then `safetensors::to_bytes`): the same inputs
//! must give byte-identical files, for every float cast, strided views and offsets, tensors
//! larger than one streaming step, special float values, inputs read through pread (mapped
//! zip, legacy and safetensors files) and from memory (eager loads, a big-endian file whose
//! storages were byte-swapped). Plus the batch runner's deferred commits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "convert/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use support::*;
use torchsave_core::convert::{self, transform, ConvertOptions};
use torchsave_core::safetensors as st;
use torchsave_core::value::{Graph, Node};
use torchsave_core::{DType, LoadOptions, SaveFormat, SaveOptions};

fn f64_bytes(v: impl IntoIterator<Item = f64>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u16_bytes(v: impl IntoIterator<Item = u16>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Values that stress every cast: signed zeros, infinities, NaNs with payloads, subnormals
/// of each width, ties for round-to-nearest-even, overflow to inf in half precision.
fn specials_f32() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7FA0_0001), // signalling NaN with payload
        f32::from_bits(0xFFC0_1234),
        1e-40,     // f32 subnormal
        6.0e-8,    // f16 subnormal
        65504.0,   // f16 max
        65520.0,   // rounds to inf in f16
        1.0009766, // f16 tie region
        3.0e38,    // overflows bf16? no: rounds
        f32::MIN_POSITIVE,
        1.0 + f32::EPSILON,
    ]
}

/// A state dict of many layouts and dtypes (names sort differently from insertion order).
fn graph() -> Graph {
    let mut g = Graph::new();
    let mut items: Vec<(String, torchsave_core::Value)> = Vec::new();
    let mut add = |g: &mut Graph, name: &str, t: torchsave_core::Tensor| {
        let v = g.add(Node::Tensor(t));
        items.push((name.to_string(), v));
    };
    // float32: specials, a transposed view, a strided slice with an offset, a big tensor
    // crossing several streaming steps with an odd length and an odd offset.
    let s = g.add_storage(storage(DType::Float32, f32_bytes(specials_f32())));
    add(&mut g, "f32.specials", contiguous(s, DType::Float32, &[17]));
    let s = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..24).map(|x| x as f32 * 0.37 - 3.0)),
    ));
    add(
        &mut g,
        "f32.t",
        view(s, DType::Float32, &[6, 4], &[1, 6], 0),
    );
    let s = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..40).map(|x| (x as f32).sin())),
    ));
    add(
        &mut g,
        "f32.slice",
        view(s, DType::Float32, &[3, 4], &[10, 2], 5),
    );
    let big = 200_003usize;
    let s = g.add_storage(storage(
        DType::Float32,
        f32_bytes((0..big + 3).map(|x| (x as f32 * 0.001).cos() * 1e3)),
    ));
    add(
        &mut g,
        "f32.big",
        view(s, DType::Float32, &[big as i64], &[1], 3),
    );
    // float64 (double rounding to half types), float16 and bfloat16 with specials.
    let s = g.add_storage(storage(
        DType::Float64,
        f64_bytes(
            specials_f32()
                .into_iter()
                .map(|x| x as f64)
                .chain([
                    1e-310,
                    1.0 + 2f64.powi(-11) + 2f64.powi(-40),
                    f64::NAN,
                    1e300,
                ])
                .chain((0..70_000).map(|x| x as f64 / 7.0)),
        ),
    ));
    add(&mut g, "f64.all", contiguous(s, DType::Float64, &[70_021]));
    let s = g.add_storage(storage(
        DType::Float16,
        u16_bytes([
            0x0000, 0x8000, 0x3C00, 0x7C00, 0xFC00, 0x7E00, 0x7D01, 0x0001, 0x03FF, 0x7BFF,
        ]),
    ));
    add(
        &mut g,
        "f16.specials",
        view(s, DType::Float16, &[5], &[2], 0),
    );
    let s = g.add_storage(storage(
        DType::BFloat16,
        u16_bytes([
            0x0000, 0x8000, 0x3F80, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x0001, 0x7F7F,
        ]),
    ));
    add(
        &mut g,
        "bf16.specials",
        contiguous(s, DType::BFloat16, &[3, 3]),
    );
    // Never cast: integers, bools, a 0-d scalar, an empty tensor.
    let s = g.add_storage(storage(
        DType::Int64,
        (0..5i64).flat_map(|x| (x * -3).to_le_bytes()).collect(),
    ));
    add(&mut g, "i64.t", view(s, DType::Int64, &[2, 2], &[1, 2], 1));
    let s = g.add_storage(storage(DType::Bool, vec![1, 0, 1]));
    add(&mut g, "bool", contiguous(s, DType::Bool, &[3]));
    let s = g.add_storage(storage(DType::Float32, f32_bytes([4.5f32, 9.25])));
    add(&mut g, "scalar", view(s, DType::Float32, &[], &[], 1));
    let s = g.add_storage(storage(DType::Float32, Vec::new()));
    add(&mut g, "empty", contiguous(s, DType::Float32, &[0, 3]));
    let items = items.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let root = ordered(&mut g, items);
    g.root = Some(root);
    g
}

const CASTS: [Option<DType>; 5] = [
    None,
    Some(DType::Float16),
    Some(DType::BFloat16),
    Some(DType::Float32),
    Some(DType::Float64),
];

/// The materialising path: load, cast every storage, serialise in memory.
fn reference(input: &Path, to: Option<DType>) -> Vec<u8> {
    let mut src = convert::load_source(input, &LoadOptions::default(), true).unwrap();
    let root = src.graph.root().clone();
    if let Some(d) = to {
        transform::cast_floats(&mut src.graph, &root, d).unwrap();
    }
    let entries = st::state_dict_entries(&src.graph, &root).unwrap();
    st::to_bytes(&src.graph, &entries, &[]).unwrap()
}

fn load_opts(mmap: bool) -> LoadOptions {
    LoadOptions {
        mmap,
        ..LoadOptions::default()
    }
}

/// Converts `input` every way (mapped and eager, each cast, verify on) and compares with the
/// reference bytes.
fn check_all(input: &Path, out: &Path) {
    for mmap in [true, false] {
        for to in CASTS {
            let o = ConvertOptions {
                out_dir: Some(out.to_path_buf()),
                dtype: to,
                verify: true,
                force: true,
                load: load_opts(mmap),
                ..ConvertOptions::default()
            };
            let r = convert::convert_file(input, &o);
            assert_eq!(r.error, None, "{} {to:?} mmap={mmap}", input.display());
            assert!(r.verified);
            let got = std::fs::read(&r.outputs[0]).unwrap();
            let want = reference(input, to);
            assert_eq!(r.bytes_out, want.len() as u64);
            assert!(
                got == want,
                "{} cast {to:?} mmap={mmap}: streamed output differs from the materialised one",
                input.display()
            );
            // A dry run plans the same size.
            let dry = convert::convert_file(
                input,
                &ConvertOptions {
                    dry_run: true,
                    ..o.clone()
                },
            );
            assert_eq!(dry.error, None);
            assert_eq!(dry.bytes_out, want.len() as u64);
        }
    }
}

#[test]
fn streamed_output_is_byte_identical_for_torch_inputs() {
    let dir = scratch("stream-torch");
    let g = graph();
    for (name, format) in [
        ("zip.pt", SaveFormat::Zip),
        ("legacy.pth", SaveFormat::Legacy),
    ] {
        let input = dir.join(name);
        let so = SaveOptions {
            format,
            ..SaveOptions::default()
        };
        torchsave_core::save_to_path(&g, &input, &so).unwrap();
        check_all(&input, &dir.join("out"));
    }
}

#[test]
fn streamed_output_is_byte_identical_for_safetensors_input() {
    let dir = scratch("stream-st");
    let input = dir.join("in.safetensors");
    st::save_graph(&graph(), &input).unwrap();
    check_all(&input, &dir.join("out"));
}

#[test]
fn streamed_output_is_byte_identical_for_a_big_endian_file() {
    // Storages of a big-endian file are byte-swapped into memory at load: the memory path.
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/containers/zip_bigendian.pt");
    let l = torchsave_core::load_file(&input, &LoadOptions::default()).unwrap();
    assert!(l.info.big_endian);
    check_all(&input, &scratch("stream-be"));
}

#[test]
fn the_streamed_output_loads_with_the_expected_values() {
    // Independent of the reference path: read the output back and compare values cast by
    // the element-wise reference in cast.rs.
    let dir = scratch("stream-values");
    let input = dir.join("in.pth");
    let g = graph();
    torchsave_core::save_to_path(
        &g,
        &input,
        &SaveOptions {
            format: SaveFormat::Legacy,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    let o = ConvertOptions {
        out_dir: Some(dir.join("out")),
        dtype: Some(DType::Float16),
        ..ConvertOptions::default()
    };
    let r = convert::convert_file(&input, &o);
    assert_eq!(r.error, None);
    let back = st::read_file(&r.outputs[0], false).unwrap();
    let items = root_items(&back.graph);
    let find = |n: &str| {
        let v = &items.iter().find(|(k, _)| k == n).unwrap().1;
        let t = tensor_of(&back.graph, v);
        (
            t.dtype,
            back.graph.storages[t.storage.unwrap()]
                .data
                .as_slice()
                .to_vec(),
        )
    };
    let (dt, bytes) = find("f32.t");
    assert_eq!(dt, DType::Float16);
    // The transposed view in C order, then cast.
    let src: Vec<f32> = (0..24).map(|x| x as f32 * 0.37 - 3.0).collect();
    let mut want = Vec::new();
    for i in 0..6 {
        for j in 0..4 {
            want.push(src[i + 6 * j]);
        }
    }
    assert_eq!(
        bytes,
        torchsave_core::cast::cast_buffer(&f32_bytes(want), DType::Float32, DType::Float16)
            .unwrap()
    );
    let (dt, bytes) = find("i64.t");
    assert_eq!(dt, DType::Int64);
    let ints: Vec<i64> = bytes
        .chunks(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    // storage [0,-3,-6,-9,-12], view offset 1 shape [2,2] stride [1,2] -> [[-3,-9],[-6,-12]]
    assert_eq!(ints, vec![-3, -9, -6, -12]);
}

#[test]
fn batch_commits_every_output_and_reports_in_order() {
    let dir = scratch("stream-batch");
    let g = graph();
    let mut inputs = Vec::new();
    for i in 0..9 {
        let p = dir.join(format!("in/ckpt_{i}.pth"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        torchsave_core::save_to_path(
            &g,
            &p,
            &SaveOptions {
                format: SaveFormat::Legacy,
                ..SaveOptions::default()
            },
        )
        .unwrap();
        inputs.push(p);
    }
    // One input that fails, in the middle.
    std::fs::write(dir.join("in/ckpt_4.pth"), b"not a checkpoint").unwrap();
    let out = dir.join("out");
    let o = ConvertOptions {
        out_dir: Some(out.clone()),
        dtype: Some(DType::BFloat16),
        verify: true,
        ..ConvertOptions::default()
    };
    let events: Mutex<Vec<(usize, usize, bool)>> = Mutex::new(Vec::new());
    let reports = convert::convert_many(
        &inputs,
        &o,
        2,
        &|p| {
            events
                .lock()
                .unwrap()
                .push((p.index, p.done, p.report.is_some()))
        },
        &AtomicBool::new(false),
    );
    assert_eq!(reports.len(), 9);
    let want = {
        let ok = &inputs[0];
        reference(ok, Some(DType::BFloat16))
    };
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r.input, inputs[i]);
        if i == 4 {
            assert!(r.error.is_some());
            assert!(!out.join("ckpt_4.safetensors").exists());
            continue;
        }
        assert_eq!(r.error, None, "{i}");
        assert!(r.verified);
        assert_eq!(std::fs::read(&r.outputs[0]).unwrap(), want, "{i}");
    }
    // Every file started once and finished once; `done` counts 1..=9 once each.
    let ev = events.into_inner().unwrap();
    assert_eq!(ev.iter().filter(|e| !e.2).count(), 9);
    let mut dones: Vec<usize> = ev.iter().filter(|e| e.2).map(|e| e.1).collect();
    dones.sort();
    assert_eq!(dones, (1..=9).collect::<Vec<_>>());
    // No temporaries left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.ends_with(".safetensors") && !n.starts_with('.')));
}

#[test]
fn streamed_output_matches_the_sharded_path_for_one_shard() {
    // The sharded path still materialises; one shard of the same input must hold the same
    // bytes as the streamed single file.
    let dir = scratch("stream-vs-shard");
    let input = dir.join("in.pth");
    torchsave_core::save_to_path(
        &graph(),
        &input,
        &SaveOptions {
            format: SaveFormat::Legacy,
            ..SaveOptions::default()
        },
    )
    .unwrap();
    for to in CASTS {
        let base = ConvertOptions {
            dtype: to,
            force: true,
            ..ConvertOptions::default()
        };
        let a = convert::convert_file(
            &input,
            &ConvertOptions {
                out_dir: Some(dir.join("streamed")),
                ..base.clone()
            },
        );
        let b = convert::convert_file(
            &input,
            &ConvertOptions {
                out_dir: Some(dir.join("sharded")),
                shard_size: Some(1 << 40),
                ..base
            },
        );
        assert_eq!(a.error, None);
        assert_eq!(b.error, None);
        assert_eq!(b.outputs.len(), 1);
        assert_eq!(
            std::fs::read(&a.outputs[0]).unwrap(),
            std::fs::read(&b.outputs[0]).unwrap(),
            "{to:?}"
        );
    }
}

/// The materialising path for sharded outputs: cast, split by the cast sizes with the hub
/// rule, serialise each shard in memory. (file name, bytes) per shard.
fn sharded_reference(input: &Path, to: Option<DType>, max: u64) -> Vec<(String, Vec<u8>)> {
    let mut src = convert::load_source(input, &LoadOptions::default(), true).unwrap();
    let root = src.graph.root().clone();
    if let Some(d) = to {
        transform::cast_floats(&mut src.graph, &root, d).unwrap();
    }
    let entries = st::state_dict_entries(&src.graph, &root).unwrap();
    let items: Vec<_> = entries
        .iter()
        .map(|(name, id)| {
            let Some(Node::Tensor(t)) = src.graph.node(*id) else {
                panic!("{name} is not a tensor")
            };
            torchsave_core::hf_index::SplitItem {
                name: name.clone(),
                size: torchsave_core::strided::nbytes(t).unwrap(),
                storage: t.storage.map(|s| s as u64),
            }
        })
        .collect();
    let plan = torchsave_core::hf_index::split_into_shards(&items, max);
    let n = plan.shards.len();
    plan.shards
        .iter()
        .enumerate()
        .map(|(i, names)| {
            let es: Vec<_> = names
                .iter()
                .map(|nm| entries.iter().find(|(k, _)| k == nm).unwrap().clone())
                .collect();
            (
                torchsave_core::hf_index::shard_file_name("in", "safetensors", i + 1, n),
                st::to_bytes(&src.graph, &es, &[]).unwrap(),
            )
        })
        .collect()
}

#[test]
fn streamed_shards_are_byte_identical_to_materialised_ones_cast_or_not() {
    let dir = scratch("stream-shards");
    let input = dir.join("in.pt");
    torchsave_core::save_to_path(&graph(), &input, &SaveOptions::default()).unwrap();
    let total: u64 = std::fs::metadata(&input).unwrap().len();
    for to in CASTS {
        let out = dir.join(format!("out-{to:?}"));
        let max = total / 4;
        let o = ConvertOptions {
            out_dir: Some(out.clone()),
            dtype: to,
            shard_size: Some(max),
            verify: true,
            ..ConvertOptions::default()
        };
        let r = convert::convert_file(&input, &o);
        assert_eq!(r.error, None, "{to:?}");
        assert!(r.verified);
        let want = sharded_reference(&input, to, max);
        assert!(want.len() > 1, "{to:?}: the limit makes several shards");
        for (name, bytes) in &want {
            let got = std::fs::read(out.join(name)).unwrap();
            assert!(
                &got == bytes,
                "{to:?}: shard {name} differs from the materialised one"
            );
        }
        // The index names every shard and nothing else was written.
        let idx = torchsave_core::hf_index::parse_index(
            &std::fs::read(out.join("in.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let mut files: Vec<&str> = idx.weight_map.iter().map(|(_, f)| f.as_str()).collect();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), want.len());
        assert_eq!(r.outputs.len(), want.len() + 1);
    }
}
