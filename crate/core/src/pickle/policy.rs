//! (stub: helper A)
