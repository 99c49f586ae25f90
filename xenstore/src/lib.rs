//! Xenstore for xm-rs: the wire protocol ([`wire`]), a blocking client ([`client`]), our
//! xenstored ([`daemon`]), the `xenstore-*` tools ([`cli`]) and a conformance suite
//! ([`conformance`]) that runs against any xenstored.
//!
//! All `unsafe` code (Xen event channels, grant mappings, the shared ring page) is in [`sys`].

pub mod cli;
pub mod client;
pub mod conformance;
pub mod daemon;
pub mod sys;
pub mod wire;

pub use client::{Client, Transaction, WatchEvent, XsOps};
pub use daemon::core::Perm;
pub use wire::Errno;
