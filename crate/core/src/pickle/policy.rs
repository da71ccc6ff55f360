//! (stub: helper A)

// --- Temporary stub added by the containers branch so inspect.rs compiles. The real
// allowlist (the pickle helper's branch) replaces this whole file at merge.

/// True when `name` (`module.qualname`) is allowed by torch's weights-only unpickler by default.
pub fn is_allowed_by_default(name: &str) -> bool {
    let _ = name;
    false
}
