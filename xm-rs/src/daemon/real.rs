//! The daemon as a process on a real dom0: the pid file and its lock (one daemon per host),
//! xenstore watches on `@releaseDomain` and `@introduceDomain`, systemd's readiness
//! notification, and the probes of xl's files and processes.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{DomId, Hypervisor};
use xenstore::Client;

use super::{Daemon, DaemonError, HostProbe, Policy};
use crate::create::{CreateStore, DeviceHost};
use crate::state::StateDir;

/// Where the pid file goes unless `--pid-file` says otherwise.
pub const DEFAULT_PID_FILE: &str = "/run/xm-rs/daemon.pid";

/// xl's saved configs and its monitors' logs.
#[derive(Debug, Clone)]
pub struct RealProbe {
    /// `/var/lib/xen` (libxl's userdata).
    pub userdata_dir: PathBuf,
    /// `/var/log/xen` (where `xl create`'s monitor writes `xl-NAME.log`).
    pub xl_log_dir: PathBuf,
}

impl Default for RealProbe {
    fn default() -> Self {
        RealProbe {
            userdata_dir: PathBuf::from("/var/lib/xen"),
            xl_log_dir: PathBuf::from("/var/log/xen"),
        }
    }
}

impl HostProbe for RealProbe {
    fn xl_config(&self, domid: DomId, uuid: &str) -> Option<String> {
        let path = self
            .userdata_dir
            .join(format!("userdata-d.{domid}.{uuid}.libxl-json"));
        let mut text = String::new();
        File::open(path)
            .ok()?
            .take(4 << 20)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }

    /// `xl create` leaves a monitor process per domain whose stdout and stderr are
    /// `/var/log/xen/xl-NAME.log`: a process holding that file open is xl's monitor.
    fn xl_monitor(&self, name: &str) -> Option<u32> {
        let log = self.xl_log_dir.join(format!("xl-{name}.log"));
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|target| target == log) {
                    return Some(pid);
                }
            }
        }
        None
    }
}

/// The pid file, locked for as long as the daemon runs (the lock, not the file's existence,
/// says whether a daemon runs: a `kill -9` leaves the file but frees the lock).
#[derive(Debug)]
pub struct PidFile {
    _file: File,
    path: PathBuf,
}

impl PidFile {
    /// Creates/locks the pid file and writes our pid; refuses when another daemon holds it.
    // std's file locks arrived after the workspace's declared minimum Rust; the toolchain
    // the project builds with has them.
    #[allow(clippy::incompatible_msrv)]
    pub fn acquire(path: &Path) -> Result<PidFile, DaemonError> {
        let io = |source| DaemonError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DaemonError::AlreadyRunning {
                    path: path.to_path_buf(),
                    pid: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" says pid {pid}")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(PidFile {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Tells systemd (Type=notify) we are ready, when `NOTIFY_SOCKET` is set.
pub fn notify_ready() {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = socket.to_string_lossy().into_owned();
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let sent = if let Some(abstract_name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", &socket)
    };
    if let Err(e) = sent {
        tracing::warn!("telling systemd we are ready: {e}");
    }
}

/// Consecutive failed scans after which the daemon gives up (about a minute).
const MAX_SCAN_FAILURES: u32 = 60;

const RELEASE_TOKEN: &str = "xm-rs-daemon-release";
const INTRODUCE_TOKEN: &str = "xm-rs-daemon-introduce";

/// Runs the daemon until xenstored goes away (an error: systemd restarts us).
pub fn run<H, S, D, P>(
    hv: &H,
    store: &S,
    devices: &D,
    probe: &P,
    state: StateDir,
    policy: Policy,
) -> Result<(), DaemonError>
where
    H: Hypervisor + Sync,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
    P: HostProbe + ?Sized,
{
    let watcher = Client::open().map_err(|e| DaemonError::Watch(e.to_string()))?;
    watcher
        .watch("@releaseDomain", RELEASE_TOKEN)
        .map_err(|e| DaemonError::Watch(e.to_string()))?;
    watcher
        .watch("@introduceDomain", INTRODUCE_TOKEN)
        .map_err(|e| DaemonError::Watch(e.to_string()))?;
    let mut daemon = Daemon::new(hv, store, devices, probe, state, policy);
    daemon.start()?;
    daemon.scan()?;
    notify_ready();
    tracing::info!("watching @releaseDomain and @introduceDomain");
    let mut failures = 0;
    loop {
        let first = watcher
            .next_event(Some(daemon.next_wait()))
            .map_err(|e| DaemonError::Watch(e.to_string()))?;
        if first.is_some() {
            // Several domains may have changed: drain what is queued, then scan once.
            while watcher
                .next_event(Some(Duration::ZERO))
                .map_err(|e| DaemonError::Watch(e.to_string()))?
                .is_some()
            {}
        }
        match daemon.scan() {
            Ok(()) => failures = 0,
            Err(e @ DaemonError::Watch(_)) => return Err(e),
            Err(e) => {
                failures += 1;
                tracing::error!("scan: {e}");
                // xenstored or the hypervisor interface is gone for good: let systemd
                // restart us rather than spin.
                if failures >= MAX_SCAN_FAILURES {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
