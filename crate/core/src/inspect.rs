//! (stub) inspect summaries
