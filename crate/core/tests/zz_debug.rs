#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod fuzz_bodies;
#[test]
fn dbg_case() {
    let data = std::fs::read(std::env::var("CASE").unwrap()).unwrap();
    let (g, proto) = fuzz_bodies::decode_case(&data);
    eprintln!("proto {proto}\nroot {:?}", g.root);
    for (i, n) in g.nodes.iter().enumerate() {
        eprintln!("#{i} {n:?}");
    }
    for s in &g.storages {
        eprintln!("storage {} {:?} {}", s.key, s.dtype, s.numel);
    }
    let opts = torchsave_core::SaveOptions {
        protocol: proto,
        ..Default::default()
    };
    let bytes = torchsave_core::save_to_vec(&g, &opts).unwrap();
    let ar = torchsave_core::container::zip_read::ZipArchive::parse(
        torchsave_core::ByteView::from_vec(bytes),
    )
    .unwrap();
    let e = ar.find("data.pkl").unwrap();
    std::fs::write("/tmp/cfz/data.pkl", ar.read(e, false).unwrap().as_slice()).unwrap();
    let l = torchsave_core::load_bytes(
        torchsave_core::ByteView::from_vec(torchsave_core::save_to_vec(&g, &opts).unwrap()),
        &torchsave_core::LoadOptions {
            weights_only: false,
            mmap: false,
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("LOADED root {:?}", l.graph.root);
    for (i, n) in l.graph.nodes.iter().enumerate() {
        eprintln!("#{i} {n:?}");
    }
    fuzz_bodies::body_writer_roundtrip(&data);
}
