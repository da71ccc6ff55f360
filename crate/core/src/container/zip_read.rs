//! (stub: helper B)
