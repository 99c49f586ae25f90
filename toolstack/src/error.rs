use std::io;
use std::path::PathBuf;

/// What can go wrong while wiring a domain's devices. Each message names the device or file
/// so an operator knows where to look.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("disk source {path}: {source}")]
    DiskSource { path: PathBuf, source: io::Error },
    #[error("disk source {0} is not a block device (use file: for image files)")]
    NotABlockDevice(PathBuf),
    #[error("{path} ({major:x}:{minor:x}) is already in use {how} by domain {domid}; use mode 'w!' to share it anyway")]
    DeviceBusy {
        path: PathBuf,
        major: u32,
        minor: u32,
        domid: u32,
        how: &'static str,
    },
    #[error("loop device for {path}: {source}")]
    Loop { path: PathBuf, source: io::Error },
    #[error("bridge {0} does not exist (is it configured in /etc/network/interfaces?)")]
    NoSuchBridge(String),
    #[error("network interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("rtnetlink {op} on {ifname}: {source}")]
    Netlink {
        op: &'static str,
        ifname: String,
        source: io::Error,
    },
    #[error("interface name {0:?} is not valid (1 to 15 bytes, no '/' or whitespace)")]
    BadInterfaceName(String),
    #[error("console pty {path}: {source}")]
    ConsolePty { path: PathBuf, source: io::Error },
    #[error("console pty {path} did not appear within {waited:?} (is xenconsoled running?)")]
    ConsolePtyTimeout {
        path: PathBuf,
        waited: std::time::Duration,
    },
    #[error(
        "console escape {0:?} is not valid: give one character, or ^ and a character (e.g. ^])"
    )]
    BadConsoleEscape(String),
    #[error("console: {op}: {source}")]
    Console { op: &'static str, source: io::Error },
    #[error("device model log {path}: {source}")]
    DeviceModelLog { path: PathBuf, source: io::Error },
    #[error("starting the device model {program}: {source}")]
    DeviceModelStart { program: PathBuf, source: io::Error },
    #[error("signalling the device model (pid {pid}): {source}")]
    DeviceModelSignal { pid: u32, source: io::Error },
}

pub type Result<T> = std::result::Result<T, Error>;
