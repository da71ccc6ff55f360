//! Any bytes through `load_bytes`, with and without the weights-only policy. Every failure
//! must be an `Error` (which always carries a code); a panic is the bug libFuzzer reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchsave_core::{load_bytes, ByteView, LoadOptions};

fuzz_target!(|data: &[u8]| {
    for weights_only in [true, false] {
        let opts = LoadOptions {
            weights_only,
            mmap: false,
            ..LoadOptions::default()
        };
        if let Err(e) = load_bytes(ByteView::from_vec(data.to_vec()), &opts) {
            // The code is the contract: it must render to a stable E_* name.
            assert!(e.code.as_str().starts_with("E_"));
        }
    }
});
