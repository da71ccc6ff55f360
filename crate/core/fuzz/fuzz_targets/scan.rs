//! `scan`: the body is `fuzz_bodies::body_scan` (crate/core/tests/fuzz_bodies/mod.rs), shared
//! with the stable replays in crate/core/tests/fuzz_smoke.rs; see the docs there.
#![no_main]

#[path = "../../tests/fuzz_bodies/mod.rs"]
mod fuzz_bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_bodies::body_scan(data));
