//! Domain plumbing shared by `xm` and its lifecycle daemon: the xenstore layout libxl writes,
//! block and network backends wired in-process, stable MACs. See README.md for what this
//! crate owns and what it leaves to the others.

pub mod blockdev;
pub mod bridge;
pub mod console;
pub mod devicemodel;
mod error;
pub mod layout;
pub mod loopback;
pub mod mac;

pub use error::{Error, Result};
