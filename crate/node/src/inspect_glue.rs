//! The seam to the core's `inspect` (being written elsewhere): one function the lead wires
//! to `torchsave_core::inspect::inspect(&loaded, &InspectOptions { sha256 }).to_json()`.

use torchsave_core::{Error as CoreError, ErrorCode, Loaded};

/// The `inspect --json` document for a loaded file (ARCHITECTURE.md schema).
pub fn inspect_json(loaded: &Loaded, sha256: bool) -> Result<String, CoreError> {
    let _ = (loaded, sha256);
    Err(CoreError::new(
        ErrorCode::InvalidArgument,
        "inspect is not wired to the core yet",
    ))
}
