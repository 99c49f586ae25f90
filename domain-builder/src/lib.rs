//! domain-builder crate (being written).
