//! What the trace queries compute over stored spans, whatever the store.

pub mod dependencies;
