//! hypervisor crate (being written).
