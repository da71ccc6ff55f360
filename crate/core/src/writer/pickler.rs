//! (stub: helper C)
