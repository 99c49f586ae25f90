//! xenstore crate (being written).
