//! The state directory: one JSON record per running domain xm-rs created (its resolved config,
//! where it came from, when, and its restart history), so the lifecycle daemon can apply
//! `on_poweroff`/`on_reboot`/`on_crash` after its own restart and adopt domains created while it
//! was down. Also the daemon's append-only event log ([`events`]).
//!
//! Layout (default `/var/lib/xm-rs`, `XM_STATE_DIR` overrides):
//! - `domains/UUID.json`: [`DomainRecord`], written atomically (temporary file, fsync, rename,
//!   fsync of the directory), so a crash leaves the old record or the new one, never half;
//! - `events.log`: JSON lines, see [`events::Event`];
//! - `managed/`: managed-domain definitions (owned by [`crate::managed`], not touched here);
//! - `host-stopping`: present while the host shuts its guests down (`xm autostart --stop`
//!   writes it, `xm autostart` removes it): the daemon restarts no guest then. It holds the
//!   kernel's boot id, so a marker left by a host that died while stopping is ignored after
//!   the reboot.
//!
//! Reading is robust: a record that does not parse is reported (with its file) and skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hypervisor::DomId;
use serde::{Deserialize, Serialize};

use crate::config::model::DomainConfig;

pub mod events;
#[cfg(test)]
mod tests;

/// The state directory when `XM_STATE_DIR` is not set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/xm-rs";

/// Version of the record format written.
pub const RECORD_FORMAT: u32 = 1;

/// Largest record file read back (a config is a few KiB; anything this big is not ours).
const MAX_RECORD_BYTES: u64 = 4 << 20;

/// What went wrong with the state directory; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a domain record: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("'{0}' is not a UUID (records are named after the domain's UUID)")]
    BadUuid(String),
}

/// The state directory named by `XM_STATE_DIR`, else [`DEFAULT_STATE_DIR`].
pub fn state_dir() -> PathBuf {
    match std::env::var_os("XM_STATE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_STATE_DIR),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Who created the domain, and from what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    /// `xm create`, `xm start`, `autostart`, `daemon restart`...
    pub by: String,
    /// The config file, when there was one.
    pub config_path: Option<PathBuf>,
}

/// One death the daemon handled (a restart, or the storm that stopped the restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Death {
    /// When it was seen, seconds since the epoch.
    pub at: f64,
    /// The shutdown reason (`poweroff`, `reboot`, `crash`, ...).
    pub reason: String,
    /// The domid that died.
    pub domid: DomId,
    /// The domid of its successor, if it was restarted.
    pub restarted_as: Option<DomId>,
}

/// Why the daemon leaves a domain alone from now on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Left {
    pub at: f64,
    pub reason: String,
}

/// What xm-rs remembers about one running domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub format: u32,
    pub domid: DomId,
    /// The domain's UUID (Xen's handle), dashed lowercase: the record's file name.
    pub uuid: String,
    pub name: String,
    /// The resolved config it was created from (restarts use it again).
    pub config: DomainConfig,
    pub origin: Origin,
    /// When it was created, seconds since the epoch.
    pub created_at: f64,
    /// Deaths handled so far (carried across restarts; bounded, newest last).
    #[serde(default)]
    pub deaths: Vec<Death>,
    /// Set once the daemon decided to leave the domain as it is (preserve, rename-restart).
    #[serde(default)]
    pub left: Option<Left>,
}

/// How many deaths a record keeps.
pub const MAX_DEATHS_KEPT: usize = 64;

impl DomainRecord {
    /// A fresh record for a domain just created.
    pub fn new(domid: DomId, uuid: &str, config: &DomainConfig, origin: Origin) -> DomainRecord {
        DomainRecord {
            format: RECORD_FORMAT,
            domid,
            uuid: uuid.to_ascii_lowercase(),
            name: config.name.clone(),
            config: config.clone(),
            origin,
            created_at: unix_now(),
            deaths: Vec::new(),
            left: None,
        }
    }

    /// Adds a death, dropping the oldest beyond [`MAX_DEATHS_KEPT`].
    pub fn push_death(&mut self, death: Death) {
        self.deaths.push(death);
        if self.deaths.len() > MAX_DEATHS_KEPT {
            let extra = self.deaths.len() - MAX_DEATHS_KEPT;
            self.deaths.drain(..extra);
        }
    }

    /// Deaths at or after `since` (seconds since the epoch).
    pub fn deaths_since(&self, since: f64) -> usize {
        self.deaths.iter().filter(|d| d.at >= since).count()
    }
}

/// Records that could be read, and the files that could not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub records: Vec<DomainRecord>,
    pub problems: Vec<StateError>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that `uuid` is hex digits and dashes only (it becomes a file name).
fn checked_uuid(uuid: &str) -> Result<String, StateError> {
    let hex = uuid.chars().filter(|c| *c != '-').count();
    if hex != 32 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(StateError::BadUuid(uuid.to_string()));
    }
    Ok(uuid.to_ascii_lowercase())
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`), when the kernel gives one.
fn current_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty())
}

/// Whether a `host-stopping` marker holding `marker` belongs to the boot `now`: a marker
/// from another boot is stale (the host died while stopping); without a boot id on either
/// side it counts.
fn marker_is_current(marker: &str, now: Option<&str>) -> bool {
    let written_in = marker.trim();
    match now {
        Some(now) if !written_in.is_empty() => written_in == now,
        _ => true,
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one:
/// a temporary file next to it, fsync, rename over, fsync of the directory. Creates the
/// directory if needed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl StateDir {
    /// The state directory at `root` (nothing is created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The state directory of [`state_dir`].
    pub fn from_env() -> StateDir {
        StateDir::new(state_dir())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where domain records live.
    pub fn domains_dir(&self) -> PathBuf {
        self.root.join("domains")
    }

    /// The daemon's event log.
    pub fn events_path(&self) -> PathBuf {
        self.root.join("events.log")
    }

    /// The marker of a host shutting its guests down.
    pub fn host_stopping_path(&self) -> PathBuf {
        self.root.join("host-stopping")
    }

    /// Tells the daemon the host is stopping: from now on it restarts no guest (see
    /// [`StateDir::host_stopping`]).
    pub fn mark_host_stopping(&self) -> Result<(), StateError> {
        let path = self.host_stopping_path();
        let boot = current_boot_id().unwrap_or_default();
        write_atomically(&path, format!("{boot}\n").as_bytes()).map_err(io_err(&path))
    }

    /// The host runs its guests again (`xm autostart`); no marker is fine.
    pub fn clear_host_stopping(&self) -> Result<(), StateError> {
        let path = self.host_stopping_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Whether the host is shutting its guests down: the marker is there and was written
    /// in this boot.
    pub fn host_stopping(&self) -> bool {
        match std::fs::read_to_string(self.host_stopping_path()) {
            Ok(marker) => marker_is_current(&marker, current_boot_id().as_deref()),
            Err(_) => false,
        }
    }

    /// The record file of the domain with this UUID.
    pub fn record_path(&self, uuid: &str) -> Result<PathBuf, StateError> {
        Ok(self
            .domains_dir()
            .join(format!("{}.json", checked_uuid(uuid)?)))
    }

    /// Writes (or replaces) a record atomically.
    pub fn write(&self, record: &DomainRecord) -> Result<(), StateError> {
        let path = self.record_path(&record.uuid)?;
        let mut text = serde_json::to_vec_pretty(record).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        write_atomically(&path, &text).map_err(io_err(&path))
    }

    /// The record of the domain with this UUID; `None` if there is none.
    pub fn read(&self, uuid: &str) -> Result<Option<DomainRecord>, StateError> {
        let path = self.record_path(uuid)?;
        if !path.exists() {
            return Ok(None);
        }
        read_record(&path).map(Some)
    }

    /// Removes the record of the domain with this UUID; a missing record is not an error.
    pub fn remove(&self, uuid: &str) -> Result<(), StateError> {
        let path = self.record_path(uuid)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Removes the record of a domain that was just destroyed, if there is one; a failure is
    /// only logged (the daemon drops records of vanished domains anyway).
    pub fn forget(&self, uuid: &str) {
        if let Err(e) = self.remove(uuid) {
            tracing::warn!("removing the domain record: {e}");
        }
    }

    /// Every record, in file-name order; unreadable ones are reported in `problems`.
    pub fn load_all(&self) -> Loaded {
        let mut loaded = Loaded::default();
        let dir = self.domains_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return loaded,
            Err(e) => {
                loaded.problems.push(io_err(&dir)(e));
                return loaded;
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        for path in paths {
            match read_record(&path) {
                Ok(record) => loaded.records.push(record),
                Err(e) => loaded.problems.push(e),
            }
        }
        loaded
    }

    /// The record of the running domain `domid`, if any (records are few: a scan is fine).
    pub fn find_by_domid(&self, domid: DomId) -> Option<DomainRecord> {
        self.load_all()
            .records
            .into_iter()
            .find(|r| r.domid == domid)
    }
}

/// Reads and checks one record file.
fn read_record(path: &Path) -> Result<DomainRecord, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io_err(path))?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(corrupt(format!("{} bytes is too big", meta.len())));
    }
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let record: DomainRecord =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if record.format != RECORD_FORMAT {
        return Err(corrupt(format!(
            "format {} (this xm reads {RECORD_FORMAT})",
            record.format
        )));
    }
    let expected = checked_uuid(&record.uuid).map_err(|e| corrupt(e.to_string()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if stem != expected {
        return Err(corrupt(format!(
            "holds UUID {} but is named after {stem}",
            record.uuid
        )));
    }
    Ok(record)
}
