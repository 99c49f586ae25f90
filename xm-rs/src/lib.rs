//! xm-rs: an xm-compatible Xen PV toolstack. This crate holds the config language
//! ([`config`]) and the `xm` command line ([`cli`]); the binary is a thin shell over them.

pub mod cli;
pub mod config;
pub mod create;
pub mod daemon;
pub mod managed;
pub mod ops;
pub mod state;
#[cfg(test)]
mod test_support;
