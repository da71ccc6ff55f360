//! The seam to the core's `inspect`: the binding only forwards.

use torchsave_core::inspect::{inspect, InspectOptions};
use torchsave_core::{Error as CoreError, Loaded};

/// The `inspect --json` document for a loaded file (ARCHITECTURE.md schema).
pub fn inspect_json(loaded: &Loaded, sha256: bool) -> Result<String, CoreError> {
    Ok(inspect(loaded, &InspectOptions { sha256 }).to_json())
}
