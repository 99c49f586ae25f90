//! xm-rs library (being written).
