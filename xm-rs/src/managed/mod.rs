//! Managed domains, as xend kept them: `xm new` stores a definition (the resolved config and
//! where it came from), `xm start` creates a domain from it, `xm delete` forgets it, and
//! `xm list` shows the defined domains that are not running ("halted"). Autostart from
//! `/etc/xen/auto` lives in [`autostart`].
//!
//! Definitions are JSON files in `<state dir>/managed/NAME.json`, each written atomically
//! (temporary file, fsync, rename, fsync of the directory), so a crash never leaves half a
//! definition. Starting always goes through [`crate::create::create_domain`]; whether a
//! domain "is running" is decided by its name in xenstore, so domains created by `xl` or by
//! `xm create` count too.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hypervisor::{DomId, DomainInfo, Hypervisor, ShutdownReason};
use serde::{Deserialize, Serialize};

use crate::config::model::DomainConfig;
use crate::create::{self, CreateError, CreateStore, DeviceHost, WireOptions};
use crate::ops::{self, Domain, OpsError, Store};

pub mod autostart;
#[cfg(test)]
mod tests;

/// Version of the definition file format.
const FORMAT_VERSION: u32 = 1;

/// What went wrong with a managed domain; each message names the domain or the file.
#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    /// xend's wording when a name is taken by another definition or domain.
    #[error("VM name '{name}' already exists{detail}")]
    NameTaken { name: String, detail: String },
    /// xend's `_checkName` rule (the name is also a file name here).
    #[error("Invalid VM Name '{0}': use letters, digits and '_-.:+' (not starting with '.')")]
    InvalidName(String),
    /// No definition by that name (xm's wording for an unknown domain).
    #[error("Domain '{0}' does not exist.")]
    NotDefined(String),
    /// `xm start` of a domain that runs.
    #[error("Domain '{name}' is already running (id {domid}).")]
    AlreadyRunning { name: String, domid: DomId },
    /// `xm delete` of a domain that runs.
    #[error("Domain '{name}' is not halted: it runs as domain {domid}; shut it down first.")]
    NotHalted { name: String, domid: DomId },
    /// A definition file could not be read, written or removed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A definition file is not what `xm new` writes.
    #[error("{path}: not a domain definition: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{0}")]
    Create(#[from] CreateError),
    #[error("{0}")]
    Ops(#[from] OpsError),
}

/// Result of a managed-domain operation.
pub type Result<T, E = ManagedError> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ManagedError + '_ {
    move |source| ManagedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A stored domain definition: what `xm new` evaluated, and from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// File format version.
    pub format: u32,
    /// The domain's name (also the file's name).
    pub name: String,
    /// The config file it was evaluated from.
    pub source: PathBuf,
    /// `VAR=VAL` given to `xm new`.
    pub variables: Vec<(String, String)>,
    /// When it was defined, seconds since the epoch.
    pub defined_at: u64,
    /// The resolved config `xm start` creates the domain from. Its UUID is fixed at `xm new`
    /// (a random one when the file gives none), as xend gave managed domains a stable UUID.
    pub config: DomainConfig,
}

impl Definition {
    /// A definition of `config`, evaluated from `source` with `variables`; a config without
    /// a UUID gets a random one.
    pub fn new(
        mut config: DomainConfig,
        source: PathBuf,
        variables: Vec<(String, String)>,
    ) -> Definition {
        if config.uuid.is_none() {
            config.uuid = Some(hypervisor::uuid::format(&hypervisor::uuid::random()));
        }
        let defined_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        Definition {
            format: FORMAT_VERSION,
            name: config.name.clone(),
            source,
            variables,
            defined_at,
            config,
        }
    }
}

/// Checks a domain name as xend did (`^[A-Za-z0-9_\-.:+]+$`); a leading `.` is refused too,
/// since the name becomes a file name.
pub fn check_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.:+".contains(c);
    if name.is_empty() || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(ManagedError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// The definitions directory, `<state dir>/managed`.
#[derive(Debug, Clone)]
pub struct DefinitionStore {
    dir: PathBuf,
}

impl DefinitionStore {
    /// Definitions kept in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> DefinitionStore {
        DefinitionStore { dir: dir.into() }
    }

    /// `<state dir>/managed` of this host.
    pub fn system() -> DefinitionStore {
        DefinitionStore::new(crate::state::state_dir().join("managed"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The definition called `name`, if there is one.
    pub fn get(&self, name: &str) -> Result<Option<Definition>> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        let path = self.path_of(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let def: Definition = serde_json::from_str(&text).map_err(|e| ManagedError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if def.name != name || def.config.name != name {
            return Err(ManagedError::Corrupt {
                path,
                message: format!("it defines '{}', not '{name}'", def.config.name),
            });
        }
        Ok(Some(def))
    }

    /// Every definition, in name order. A missing directory means none.
    pub fn list(&self) -> Result<Vec<Definition>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.dir))?;
            let file = entry.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            if check_name(name).is_ok() {
                names.push(name.to_string());
            }
        }
        names.sort();
        let mut defs = Vec::new();
        for name in names {
            if let Some(def) = self.get(&name)? {
                defs.push(def);
            }
        }
        Ok(defs)
    }

    /// Writes `def` atomically, replacing any earlier definition of that name.
    pub fn put(&self, def: &Definition) -> Result<()> {
        check_name(&def.name)?;
        std::fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        let text = serde_json::to_string_pretty(def).map_err(|e| ManagedError::Corrupt {
            path: self.path_of(&def.name),
            message: e.to_string(),
        })?;
        let path = self.path_of(&def.name);
        let tmp = self
            .dir
            .join(format!(".{}.json.tmp-{}", def.name, std::process::id()));
        write_synced(&tmp, text.as_bytes()).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }

    /// Removes the definition `name`; false when there was none.
    pub fn remove(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        let path = self.path_of(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        }
        sync_dir(&self.dir)?;
        Ok(true)
    }
}

/// Writes `bytes` to a new file (mode 0600: a config can hold a VNC password) and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Makes a rename or unlink in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// The live domain (not dying) called `name`, if any.
pub fn live_domain<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    name: &str,
) -> Result<Option<Domain>> {
    Ok(ops::all_domains(hv, store)?
        .into_iter()
        .find(|d| d.name.as_deref() == Some(name) && !d.info.dying))
}

/// `xm new`: stores `def`. As xend's `_checkName`: a name another definition or a running
/// domain already has is refused, unless it is the same VM (the config gives the same UUID),
/// in which case the definition is replaced. Returns true when it replaced one.
pub fn define<H: Hypervisor, S: Store + ?Sized>(
    defs: &DefinitionStore,
    hv: &H,
    store: &S,
    def: &Definition,
) -> Result<bool> {
    check_name(&def.name)?;
    let same_vm = |uuid: &Option<String>| uuid.is_some() && *uuid == def.config.uuid;
    let existing = defs.get(&def.name)?;
    if let Some(old) = &existing {
        if !same_vm(&old.config.uuid) {
            return Err(ManagedError::NameTaken {
                name: def.name.clone(),
                detail: format!(
                    " (defined from {}; `xm delete {}` first)",
                    old.source.display(),
                    def.name
                ),
            });
        }
    }
    if let Some(running) = live_domain(hv, store, &def.name)? {
        if !same_vm(&Some(running.uuid())) {
            return Err(ManagedError::NameTaken {
                name: def.name.clone(),
                detail: format!(" as domain {}", running.domid()),
            });
        }
    }
    defs.put(def)?;
    tracing::info!(name = %def.name, source = %def.source.display(), "domain defined");
    Ok(existing.is_some())
}

/// `xm start`: creates the defined domain through [`create::create_domain`]; refused while
/// a domain of that name runs.
pub fn start<H, S, D>(
    defs: &DefinitionStore,
    hv: &H,
    store: &S,
    devices: &D,
    name: &str,
    options: &WireOptions,
) -> Result<create::Created>
where
    H: Hypervisor + Sync,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let def = defs
        .get(name)?
        .ok_or_else(|| ManagedError::NotDefined(name.to_string()))?;
    if let Some(running) = live_domain(hv, store, name)? {
        return Err(ManagedError::AlreadyRunning {
            name: name.to_string(),
            domid: running.domid(),
        });
    }
    let span = tracing::info_span!("start", name = %name);
    let _entered = span.enter();
    let mut options = options.clone();
    if let Some(record) = &mut options.record {
        record.origin.config_path.get_or_insert(def.source.clone());
    }
    Ok(create::create_domain(
        hv,
        store,
        devices,
        &def.config,
        &options,
    )?)
}

/// `xm delete`: forgets the definition; refused while the domain runs.
pub fn delete<H: Hypervisor, S: Store + ?Sized>(
    defs: &DefinitionStore,
    hv: &H,
    store: &S,
    name: &str,
) -> Result<()> {
    if defs.get(name)?.is_none() {
        return Err(ManagedError::NotDefined(name.to_string()));
    }
    if let Some(running) = live_domain(hv, store, name)? {
        return Err(ManagedError::NotHalted {
            name: name.to_string(),
            domid: running.domid(),
        });
    }
    if !defs.remove(name)? {
        return Err(ManagedError::NotDefined(name.to_string()));
    }
    tracing::info!(name, "definition deleted");
    Ok(())
}

/// xend's power states, which `xm list --state=STATE` selects by (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Not running: a defined domain with no domain, or one that has shut down.
    Halted,
    Paused,
    /// Running or blocked.
    Running,
    /// Saved to disk by `xm suspend` (no save exists yet, so nothing is ever in it).
    Suspended,
    Crashed,
    Unknown,
}

impl PowerState {
    /// The names `--state` accepts.
    pub const NAMES: &'static [&'static str] = &[
        "halted",
        "paused",
        "running",
        "suspended",
        "crashed",
        "unknown",
    ];

    /// Parses a `--state` value as xend did (case-insensitive).
    pub fn parse(text: &str) -> Option<PowerState> {
        Some(match text.to_ascii_lowercase().as_str() {
            "halted" => PowerState::Halted,
            "paused" => PowerState::Paused,
            "running" => PowerState::Running,
            "suspended" => PowerState::Suspended,
            "crashed" => PowerState::Crashed,
            "unknown" => PowerState::Unknown,
            _ => return None,
        })
    }

    /// The state of a live domain, as xend's `_stateGet` derived it (except that a crashed
    /// domain is `crashed`, which xend's order of checks hid behind `halted`).
    pub fn of(info: &DomainInfo) -> PowerState {
        if info.shutdown && info.shutdown_reason == Some(ShutdownReason::Crash) {
            PowerState::Crashed
        } else if info.shutdown || info.dying {
            PowerState::Halted
        } else if info.paused {
            PowerState::Paused
        } else {
            PowerState::Running
        }
    }

    /// Its lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            PowerState::Halted => "halted",
            PowerState::Paused => "paused",
            PowerState::Running => "running",
            PowerState::Suspended => "suspended",
            PowerState::Crashed => "crashed",
            PowerState::Unknown => "unknown",
        }
    }
}

/// One row of `xm list`: a domain the hypervisor has, or a defined domain that has none.
#[derive(Debug, Clone)]
pub enum ListEntry {
    Live(Domain),
    Halted(Box<Definition>),
}

/// What `xm list [--state S] [DOMAIN...]` shows: the live domains (in domid order, as
/// before), then the defined domains that are not running (in name order), with xm's rule
/// that a state and domain names do not mix. A named domain that does not run but is
/// defined is shown halted.
pub fn list_entries<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    defs: &DefinitionStore,
    names: &[String],
    state: Option<PowerState>,
) -> Result<Vec<ListEntry>> {
    if state.is_some() && !names.is_empty() {
        return Err(OpsError::Usage(
            "You may specify either a state or a particular VM, but not both".into(),
        )
        .into());
    }
    let live = ops::all_domains(hv, store)?;
    let is_live = |name: &str| {
        live.iter()
            .any(|d| d.name.as_deref() == Some(name) && !d.info.dying)
    };
    if !names.is_empty() {
        let mut entries = Vec::new();
        for name in names {
            match ops::find_domain(hv, store, name) {
                Ok(d) => entries.push(ListEntry::Live(d)),
                Err(OpsError::NoSuchDomain(_)) => match defs.get(name)? {
                    Some(def) => entries.push(ListEntry::Halted(Box::new(def))),
                    None => return Err(OpsError::NoSuchDomain(name.clone()).into()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(entries);
    }
    let mut entries: Vec<ListEntry> = live
        .iter()
        .filter(|d| state.map_or(true, |s| PowerState::of(&d.info) == s))
        .cloned()
        .map(ListEntry::Live)
        .collect();
    if state.map_or(true, |s| s == PowerState::Halted) {
        for def in defs.list()? {
            if !is_live(&def.name) {
                entries.push(ListEntry::Halted(Box::new(def)));
            }
        }
    }
    Ok(entries)
}

/// The `xm list` line of a defined domain that does not run, as xm printed xend's dormant
/// domains: no ID, the configured memory and vCPUs, an empty State and no CPU time.
pub fn halted_line(def: &Definition) -> String {
    format!(
        "{:<40} {:>5} {:>5} {:>5} {:>10} {:>8.1}",
        def.name, "", def.config.memory_mb, def.config.max_vcpus, "", 0.0
    )
}

/// `xm list --json`'s record of a halted defined domain (the keys of a live one, where they
/// make sense).
pub fn halted_json(def: &Definition) -> serde_json::Value {
    serde_json::json!({
        "domid": null,
        "name": def.name,
        "uuid": def.config.uuid,
        "mem": def.config.memory_mb,
        "vcpus": def.config.max_vcpus,
        "state": "",
        "cpu_time": 0.0,
        "power_state": PowerState::Halted,
        "managed": true,
        "source": def.source,
    })
}

/// `xm list -l`'s S-expression of a halted defined domain (xend's dormant-domain subset).
pub fn halted_sxp(def: &Definition) -> ops::format::Sxp {
    use ops::format::Sxp;
    let pair = |k: &str, v: String| Sxp::List(vec![Sxp::Atom(k.into()), Sxp::Atom(v)]);
    let c = &def.config;
    let mut items = vec![
        Sxp::Atom("domain".into()),
        pair("uuid", c.uuid.clone().unwrap_or_default()),
        pair("vcpus", c.max_vcpus.to_string()),
        pair("name", def.name.clone()),
        pair("maxmem", c.maxmem_mb.to_string()),
        pair("memory", c.memory_mb.to_string()),
        pair("on_poweroff", c.on_poweroff.name().to_string()),
        pair("on_reboot", c.on_reboot.name().to_string()),
        pair("on_crash", c.on_crash.name().to_string()),
    ];
    let mut linux = vec![Sxp::Atom("linux".into())];
    if let Some(k) = &c.kernel {
        linux.push(pair("kernel", k.clone()));
    }
    if let Some(r) = &c.ramdisk {
        linux.push(pair("ramdisk", r.clone()));
    }
    linux.push(pair("args", create::kernel_cmdline(c)));
    items.push(Sxp::List(vec![Sxp::Atom("image".into()), Sxp::List(linux)]));
    items.push(pair("status", "0".into()));
    items.push(pair("source", def.source.display().to_string()));
    Sxp::List(items)
}
