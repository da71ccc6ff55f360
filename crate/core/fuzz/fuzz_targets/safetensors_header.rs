//! Any bytes as a safetensors file: header JSON, dtypes, shapes and offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchsave_core::{safetensors, ByteView};

fuzz_target!(|data: &[u8]| {
    match safetensors::read_bytes(ByteView::from_vec(data.to_vec())) {
        // A successful read must describe tensors that fit their storages.
        Ok(loaded) => {
            let limits = torchsave_core::Limits::default();
            assert!(torchsave_core::tensor::validate_graph(&loaded.graph, &limits).is_ok());
        }
        Err(e) => assert!(e.code.as_str().starts_with("E_")),
    }
});
