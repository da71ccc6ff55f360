//! Any bytes as a zip archive: parse the central directory, then read (and CRC-check)
//! every entry, stored or deflated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchsave_core::container::zip_read::ZipArchive;
use torchsave_core::ByteView;

fuzz_target!(|data: &[u8]| {
    match ZipArchive::parse(ByteView::from_vec(data.to_vec())) {
        Ok(archive) => {
            for entry in archive.entries() {
                for verify in [false, true] {
                    if let Err(e) = archive.read(entry, verify) {
                        assert!(e.code.as_str().starts_with("E_"));
                    }
                }
            }
        }
        Err(e) => assert!(e.code.as_str().starts_with("E_")),
    }
});
