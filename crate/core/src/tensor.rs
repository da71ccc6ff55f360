//! (stub: helper A) tensor validation and contiguous bytes
