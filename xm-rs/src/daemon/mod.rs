//! The lifecycle daemon: watches `@releaseDomain` / `@introduceDomain`, and when a domain shuts
//! down applies its `on_poweroff` / `on_reboot` / `on_crash` action (destroy, restart — same
//! config, same name and UUID, new domid, through [`crate::create::create_domain`] — preserve,
//! rename-restart, coredump-destroy, coredump-restart), damps restart storms, sweeps the
//! backends and loop devices dead domains left behind, and writes every decision to the event
//! log (`xm log`).
//!
//! It keeps nothing that matters in memory: which domains are ours, their configs and their
//! restart history are the records of [`crate::state`], written by `create_domain` itself. So
//! after its own restart (even `kill -9`) a rescan finds everything again, including domains
//! `xm create` or `xm start` made while it was down. Domains `xl` created are adopted through
//! xl's saved config (`/var/lib/xen/userdata-d.DOMID.UUID.libxl-json`, for the `on_*` actions),
//! unless an `xl` monitor process still looks after them.
//!
//! [`Daemon`] runs over the [`Hypervisor`], [`CreateStore`], [`DeviceHost`] and [`HostProbe`]
//! traits; host tests drive it on the simulator. [`real`] holds the process side (pid file,
//! watches, systemd notification).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{DomId, DomainInfo, Hypervisor, ShutdownReason};

use crate::config::model::Action;
use crate::create::{self, CreateStore, DeviceHost, Recording, WireOptions};
use crate::ops::{self, Domain};
use crate::state::events::{Event, EventLog};
use crate::state::{unix_now, Death, DomainRecord, Left, Origin, StateDir};

pub mod real;
#[cfg(test)]
mod tests;

/// What went wrong running the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Hypervisor(#[from] hypervisor::Error),
    #[error("{0}")]
    Store(#[from] ops::StoreError),
    #[error("{0}")]
    Ops(#[from] ops::OpsError),
    #[error("{0}")]
    State(#[from] crate::state::StateError),
    #[error("another xm daemon is running (pid file {path}{pid})")]
    AlreadyRunning { path: PathBuf, pid: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("xenstore watch: {0}")]
    Watch(String),
}

/// How the daemon behaves; every number can be set on `xm daemon`'s command line.
#[derive(Debug, Clone)]
pub struct Policy {
    /// A domain that dies this many times within `storm_window` is not restarted again.
    pub storm_deaths: usize,
    pub storm_window: Duration,
    /// Longest sleep between rescans when no watch fires.
    pub tick: Duration,
    /// Where cores would go (`/var/lib/xen/dump`).
    pub dump_dir: PathBuf,
    /// How restarts create domains (recording is set by the daemon itself).
    pub wire: WireOptions,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            storm_deaths: DEFAULT_STORM_DEATHS,
            storm_window: Duration::from_secs(DEFAULT_STORM_WINDOW_SECS),
            tick: Duration::from_secs(2),
            dump_dir: PathBuf::from("/var/lib/xen/dump"),
            wire: WireOptions::default(),
        }
    }
}

/// xend refused to restart a domain that had run for less than 60 s; we allow a few quick
/// restarts (a guest rebooting after an update) and stop at the fifth death within 60 s.
pub const DEFAULT_STORM_DEATHS: usize = 5;
/// See [`DEFAULT_STORM_DEATHS`].
pub const DEFAULT_STORM_WINDOW_SECS: u64 = 60;

/// What the daemon may ask of dom0 besides Xen and xenstore.
pub trait HostProbe {
    /// xl's saved config of the domain (`userdata-d.DOMID.UUID.libxl-json`), if xl made it.
    fn xl_config(&self, domid: DomId, uuid: &str) -> Option<String>;
    /// The pid of an `xl` process still monitoring the domain called `name`, if any.
    fn xl_monitor(&self, name: &str) -> Option<u32>;
}

/// The `on_*` actions of a domain xl created, from its libxl JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XlActions {
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    pub on_watchdog: Action,
}

/// Reads the `on_*` keys of libxl's domain config JSON (libxl's names: `restart_rename`,
/// `coredump_destroy`, ...); a missing or unknown value gets libxl's default.
pub fn parse_xl_actions(json: &str) -> Option<XlActions> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let action = |key: &str, default: Action| {
        let Some(text) = value.get(key).and_then(|v| v.as_str()) else {
            return default;
        };
        match text {
            "destroy" => Action::Destroy,
            "restart" => Action::Restart,
            "restart_rename" => Action::RenameRestart,
            "preserve" => Action::Preserve,
            "coredump_destroy" => Action::CoredumpDestroy,
            "coredump_restart" => Action::CoredumpRestart,
            "soft_reset" => Action::SoftReset,
            _ => default,
        }
    };
    Some(XlActions {
        on_poweroff: action("on_poweroff", Action::Destroy),
        on_reboot: action("on_reboot", Action::Restart),
        on_crash: action("on_crash", Action::Destroy),
        on_watchdog: action("on_watchdog", Action::Destroy),
    })
}

/// The word for a shutdown reason, as the event log and xl use it.
pub fn reason_word(reason: Option<ShutdownReason>) -> String {
    match reason {
        Some(ShutdownReason::Poweroff) => "poweroff".into(),
        Some(ShutdownReason::Reboot) => "reboot".into(),
        Some(ShutdownReason::Suspend) => "suspend".into(),
        Some(ShutdownReason::Crash) => "crash".into(),
        Some(ShutdownReason::Watchdog) => "watchdog".into(),
        Some(ShutdownReason::SoftReset) => "soft-reset".into(),
        Some(ShutdownReason::Other(code)) => format!("shutdown-code-{code}"),
        None => "shutdown".into(),
    }
}

/// Whose domain it is, as far as the daemon can tell.
#[derive(Debug, Clone, PartialEq)]
enum Owner {
    /// Created by xm-rs: it has a record.
    Ours,
    /// Created by xl (its saved config gives the actions).
    Xl(XlActions),
    /// Neither: not ours to act on.
    Foreign,
}

/// A domain the daemon has seen in this run.
#[derive(Debug, Clone)]
struct Seen {
    uuid: String,
    name: String,
    owner: Owner,
    /// Its shutdown has been dealt with (or deliberately left alone).
    settled: bool,
}

/// The daemon's loop state: nothing here needs to survive a restart.
pub struct Daemon<'a, H, S: ?Sized, D: ?Sized, P: ?Sized> {
    hv: &'a H,
    store: &'a S,
    devices: &'a D,
    probe: &'a P,
    state: StateDir,
    events: EventLog,
    policy: Policy,
    seen: BTreeMap<DomId, Seen>,
    /// Record files already reported as unreadable (reported once per run).
    reported_corrupt: BTreeSet<String>,
    /// Set when the last scan left a shut-down domain undecided (its record may be about to
    /// appear): the next wait is short.
    undecided: bool,
}

impl<H, S: ?Sized, D: ?Sized, P: ?Sized> std::fmt::Debug for Daemon<'_, H, S, D, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("state", &self.state)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A domain as the scan found it.
struct Live {
    info: DomainInfo,
    uuid: String,
    name: Option<String>,
}

impl<'a, H, S, D, P> Daemon<'a, H, S, D, P>
where
    H: Hypervisor + Sync,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
    P: HostProbe + ?Sized,
{
    pub fn new(
        hv: &'a H,
        store: &'a S,
        devices: &'a D,
        probe: &'a P,
        state: StateDir,
        policy: Policy,
    ) -> Self {
        let events = EventLog::new(state.events_path());
        Daemon {
            hv,
            store,
            devices,
            probe,
            state,
            events,
            policy,
            seen: BTreeMap::new(),
            reported_corrupt: BTreeSet::new(),
            undecided: false,
        }
    }

    /// How long to wait for a watch before the next scan.
    pub fn next_wait(&self) -> Duration {
        if self.undecided {
            self.policy.tick.min(Duration::from_millis(100))
        } else {
            self.policy.tick
        }
    }

    fn log(&self, event: Event) {
        tracing::info!(
            domain = %event.domain,
            domid = ?event.domid,
            event = %event.event,
            action = %event.action,
            "{}",
            event.outcome
        );
        if let Err(e) = self.events.append(&event) {
            tracing::error!("event log: {e}");
        }
    }

    /// Startup: drops records of domains that no longer exist (destroyed while the daemon was
    /// down) and logs the start. The first [`Daemon::scan`] adopts the rest.
    pub fn start(&mut self) -> Result<(), DaemonError> {
        self.log(Event::now(
            "-",
            None,
            "daemon-start",
            "none",
            format!("pid {}", std::process::id()),
        ));
        let live: BTreeMap<String, DomId> = self
            .hv
            .list_domains()?
            .iter()
            .map(|i| (hypervisor::uuid::format(&i.handle), i.domid))
            .collect();
        let loaded = self.state.load_all();
        self.report_corrupt(&loaded.problems);
        for record in loaded.records {
            if live.get(&record.uuid) != Some(&record.domid) {
                self.forget(&record, "gone while the daemon was down; record removed");
            }
        }
        Ok(())
    }

    fn report_corrupt(&mut self, problems: &[crate::state::StateError]) {
        for p in problems {
            let text = p.to_string();
            if self.reported_corrupt.insert(text.clone()) {
                tracing::error!("skipping a domain record: {text}");
                self.log(Event::now("-", None, "corrupt-record", "skip", text));
            }
        }
    }

    fn forget(&self, record: &DomainRecord, why: &str) {
        if let Err(e) = self.state.remove(&record.uuid) {
            tracing::warn!("removing the record of {}: {e}", record.name);
        }
        self.log(Event::now(
            &record.name,
            Some(record.domid),
            "gone",
            "none",
            why,
        ));
    }

    /// One pass: adopts new domains, handles shut-down ones, notices vanished ones and sweeps
    /// what dead domains left in xenstore.
    pub fn scan(&mut self) -> Result<(), DaemonError> {
        self.undecided = false;
        let mut live = Vec::new();
        for info in self.hv.list_domains()? {
            if info.domid == 0 {
                continue;
            }
            let name = self
                .store
                .read(&format!("{}/name", ops::dom_path(info.domid)))?;
            live.push(Live {
                uuid: hypervisor::uuid::format(&info.handle),
                info,
                name,
            });
        }
        let loaded = self.state.load_all();
        self.report_corrupt(&loaded.problems);
        let records: BTreeMap<String, DomainRecord> = loaded
            .records
            .into_iter()
            .map(|r| (r.uuid.clone(), r))
            .collect();

        // Vanished (or replaced by another domain under the same id).
        let vanished: Vec<(DomId, Seen)> = self
            .seen
            .iter()
            .filter(|(domid, seen)| {
                !live
                    .iter()
                    .any(|l| l.info.domid == **domid && l.uuid == seen.uuid && !l.info.dying)
            })
            .map(|(d, s)| (*d, s.clone()))
            .collect();
        for (domid, seen) in vanished {
            self.seen.remove(&domid);
            if let Some(record) = records.get(&seen.uuid).filter(|r| r.domid == domid) {
                self.forget(record, "destroyed outside the daemon; record removed");
            } else if seen.owner != Owner::Foreign && !seen.settled {
                self.log(Event::now(
                    &seen.name,
                    Some(domid),
                    "gone",
                    "none",
                    "destroyed outside the daemon",
                ));
            }
        }

        for l in &live {
            if l.info.dying {
                continue;
            }
            self.consider(l, records.get(&l.uuid))?;
        }
        self.sweep(&live)?;
        Ok(())
    }

    fn classify(&self, l: &Live, record: Option<&DomainRecord>) -> Owner {
        if record.is_some_and(|r| r.domid == l.info.domid) {
            return Owner::Ours;
        }
        match self.probe.xl_config(l.info.domid, &l.uuid) {
            Some(json) => parse_xl_actions(&json).map_or(Owner::Foreign, Owner::Xl),
            None => Owner::Foreign,
        }
    }

    fn consider(&mut self, l: &Live, record: Option<&DomainRecord>) -> Result<(), DaemonError> {
        let domid = l.info.domid;
        let name = l.name.clone().unwrap_or_else(|| "??".into());
        let known = self.seen.get(&domid).cloned();
        let seen = match known {
            // A domain first seen as foreign may get its record a moment later (`xm create`
            // writes it once the devices are up): look again.
            Some(s) if s.owner == Owner::Foreign && !s.settled => {
                let owner = self.classify(l, record);
                if owner != Owner::Foreign {
                    self.log(Event::now(
                        &name,
                        Some(domid),
                        "adopted",
                        "none",
                        adoption_words(&owner),
                    ));
                }
                Seen { owner, ..s }
            }
            Some(s) => s,
            None => {
                let owner = self.classify(l, record);
                let settled = record.is_some_and(|r| r.left.is_some());
                if owner == Owner::Foreign {
                    tracing::debug!(domid, "domain {name} has no record and no xl config");
                } else {
                    self.log(Event::now(
                        &name,
                        Some(domid),
                        "adopted",
                        "none",
                        adoption_words(&owner),
                    ));
                }
                Seen {
                    uuid: l.uuid.clone(),
                    name: name.clone(),
                    owner,
                    settled,
                }
            }
        };
        let seen = Seen { name, ..seen };
        self.seen.insert(domid, seen.clone());
        if !l.info.shutdown || seen.settled {
            return Ok(());
        }
        let settled = match &seen.owner {
            Owner::Foreign => {
                self.undecided = true;
                false
            }
            Owner::Xl(actions) => self.handle_xl(l, &seen, *actions)?,
            Owner::Ours => match record {
                Some(record) => self.handle_ours(l, record.clone())?,
                None => false,
            },
        };
        if let Some(s) = self.seen.get_mut(&domid) {
            s.settled = settled;
        }
        Ok(())
    }

    fn domain(&self, l: &Live) -> Domain {
        Domain {
            info: l.info.clone(),
            name: l.name.clone(),
        }
    }

    /// The action for a shutdown reason; `None` for reasons no action applies to.
    fn action_for(
        reason: Option<ShutdownReason>,
        poweroff: Action,
        reboot: Action,
        crash: Action,
        watchdog: Action,
    ) -> Option<Action> {
        match reason {
            Some(ShutdownReason::Poweroff) | None => Some(poweroff),
            Some(ShutdownReason::Reboot) => Some(reboot),
            Some(ShutdownReason::Crash) => Some(crash),
            Some(ShutdownReason::Watchdog) => Some(watchdog),
            Some(
                ShutdownReason::Suspend | ShutdownReason::SoftReset | ShutdownReason::Other(_),
            ) => None,
        }
    }

    fn leave_for_others(&self, l: &Live, name: &str, reason: &str) {
        let why = match l.info.shutdown_reason {
            Some(ShutdownReason::Suspend) => {
                "suspended: left for the tool that suspended it (save or migration)".to_string()
            }
            Some(ShutdownReason::SoftReset) => "soft reset is not supported; left as it is".into(),
            _ => "unknown shutdown code; left as it is".into(),
        };
        self.log(Event::now(name, Some(l.info.domid), reason, "none", why));
    }

    fn handle_xl(
        &mut self,
        l: &Live,
        seen: &Seen,
        actions: XlActions,
    ) -> Result<bool, DaemonError> {
        let reason = reason_word(l.info.shutdown_reason);
        if let Some(pid) = self.probe.xl_monitor(&seen.name) {
            self.log(Event::now(
                &seen.name,
                Some(l.info.domid),
                &reason,
                "none",
                format!("xl's monitor (pid {pid}) handles this domain; not acting"),
            ));
            return Ok(true);
        }
        let Some(action) = Self::action_for(
            l.info.shutdown_reason,
            actions.on_poweroff,
            actions.on_reboot,
            actions.on_crash,
            actions.on_watchdog,
        ) else {
            self.leave_for_others(l, &seen.name, &reason);
            return Ok(true);
        };
        let outcome = match action {
            Action::Destroy | Action::CoredumpDestroy => {
                let core = (action == Action::CoredumpDestroy)
                    .then(|| self.write_core(l.info.domid, &seen.name));
                let words = self.destroy(l)?;
                match core {
                    Some(core) => format!("{core}; {words}"),
                    None => words,
                }
            }
            Action::Preserve => "preserved (shut down, inspectable; xm destroy removes it)".into(),
            Action::Restart
            | Action::RenameRestart
            | Action::CoredumpRestart
            | Action::SoftReset => {
                "created by xl, whose monitor is gone: xm-rs has no config to restart it from; \
                 left shut down (xm destroy removes it)"
                    .into()
            }
        };
        self.log(Event::now(
            &seen.name,
            Some(l.info.domid),
            &reason,
            action.name(),
            outcome,
        ));
        Ok(true)
    }

    /// Writes the (crashed) domain's core under the dump directory while it still exists, as
    /// `NAME-SECONDS.core`; words for the event log. A failure is reported, not fatal: the
    /// destroy or restart that follows still happens.
    fn write_core(&self, domid: DomId, name: &str) -> String {
        use std::os::unix::fs::DirBuilderExt;
        let dir = &self.policy.dump_dir;
        if let Err(e) = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            return format!("no core: cannot create {}: {e}", dir.display());
        }
        let file = name.replace(['/', '\0'], "_");
        let path = dir.join(format!("{file}-{}.core", unix_now() as u64));
        match self.hv.dump_core(domid, &path) {
            Ok(()) => format!("core written to {}", path.display()),
            Err(e) => format!("no core written to {}: {e}", path.display()),
        }
    }

    /// Destroys the domain and everything it had in dom0; words for the event log.
    fn destroy(&mut self, l: &Live) -> Result<String, DaemonError> {
        let domain = self.domain(l);
        let mut release = |node: &str| {
            self.devices
                .loop_detach(Path::new(node))
                .map_err(|e| e.to_string())
        };
        match ops::control::destroy(self.hv, self.store, &domain, &mut release) {
            Ok(report) => {
                self.seen.remove(&l.info.domid);
                let mut words = "destroyed".to_string();
                if !report.loops_released.is_empty() {
                    words.push_str(&format!("; released {}", report.loops_released.join(", ")));
                }
                for p in &report.problems {
                    tracing::warn!(domid = l.info.domid, "cleanup: {p}");
                    words.push_str(&format!("; {p}"));
                }
                Ok(words)
            }
            Err(ops::OpsError::NoSuchDomain(_)) => Ok("already gone".into()),
            Err(e) => Ok(format!("destroy failed: {e}")),
        }
    }

    fn handle_ours(&mut self, l: &Live, mut record: DomainRecord) -> Result<bool, DaemonError> {
        let name = l.name.clone().unwrap_or_else(|| record.name.clone());
        let reason = reason_word(l.info.shutdown_reason);
        let config = &record.config;
        let Some(action) = Self::action_for(
            l.info.shutdown_reason,
            config.on_poweroff,
            config.on_reboot,
            config.on_crash,
            config.on_crash,
        ) else {
            self.leave_for_others(l, &name, &reason);
            return Ok(true);
        };
        let domid = l.info.domid;
        match action {
            Action::Destroy | Action::CoredumpDestroy => {
                let core =
                    (action == Action::CoredumpDestroy).then(|| self.write_core(domid, &name));
                let mut words = self.destroy(l)?;
                if let Some(core) = core {
                    words = format!("{core}; {words}");
                }
                if let Err(e) = self.state.remove(&record.uuid) {
                    words.push_str(&format!("; record not removed: {e}"));
                }
                self.log(Event::now(
                    &name,
                    Some(domid),
                    &reason,
                    action.name(),
                    words,
                ));
            }
            Action::Preserve | Action::SoftReset => {
                let why = if action == Action::Preserve {
                    "preserved (shut down, inspectable; xm destroy removes it)".to_string()
                } else {
                    "soft-reset is not supported as an action; preserved".to_string()
                };
                record.left = Some(Left {
                    at: unix_now(),
                    reason: format!("{reason}: {why}"),
                });
                let words = match self.state.write(&record) {
                    Ok(()) => why,
                    Err(e) => format!("{why}; record not updated: {e}"),
                };
                self.log(Event::now(
                    &name,
                    Some(domid),
                    &reason,
                    action.name(),
                    words,
                ));
            }
            Action::Restart | Action::RenameRestart | Action::CoredumpRestart => {
                let prefix =
                    (action == Action::CoredumpRestart).then(|| self.write_core(domid, &name));
                let mut words = if self.state.host_stopping() {
                    // `xm autostart --stop` is shutting the guests down for the host's
                    // shutdown: a restarted guest would only be killed with the host.
                    let destroyed = self.destroy(l)?;
                    self.state.forget(&record.uuid);
                    format!(
                        "not restarted: the host is stopping (xm autostart --stop); {destroyed}"
                    )
                } else {
                    self.restart(l, &name, &reason, record, action)?
                };
                if let Some(p) = prefix {
                    words = format!("{p}; {words}");
                }
                self.log(Event::now(
                    &name,
                    Some(domid),
                    &reason,
                    action.name(),
                    words,
                ));
            }
        }
        Ok(true)
    }

    /// Restarts a domain from its record (storm permitting); words for the event log.
    fn restart(
        &mut self,
        l: &Live,
        name: &str,
        reason: &str,
        mut record: DomainRecord,
        action: Action,
    ) -> Result<String, DaemonError> {
        let now = unix_now();
        let window = self.policy.storm_window.as_secs_f64();
        let recent = record.deaths_since(now - window) + 1;
        let mut death = Death {
            at: now,
            reason: reason.to_string(),
            domid: l.info.domid,
            restarted_as: None,
        };
        if recent >= self.policy.storm_deaths {
            let destroyed = self.destroy(l)?;
            let _ = self.state.remove(&record.uuid);
            let words = format!(
                "not restarted: restart storm ({recent} deaths within {}s, limit {}); {destroyed}; \
                 left stopped",
                window, self.policy.storm_deaths
            );
            tracing::warn!(domid = l.info.domid, "{name}: {words}");
            return Ok(words);
        }

        let mut config = record.config.clone();
        let mut words = String::new();
        if action == Action::RenameRestart {
            // xend's rename-restart: the old domain stays, renamed, and is left alone.
            let new_name = format!("{name}-{}", l.info.domid);
            let domain = self.domain(l);
            if let Err(e) = ops::control::rename(self.hv, self.store, &domain, &new_name) {
                return Ok(format!("rename to {new_name} failed, not restarted: {e}"));
            }
            record.name = new_name.clone();
            record.left = Some(Left {
                at: now,
                reason: format!("{reason}: renamed by rename-restart"),
            });
            let _ = self.state.write(&record);
            if let Some(s) = self.seen.get_mut(&l.info.domid) {
                s.name = new_name.clone();
                s.settled = true;
            }
            // A new UUID for the new domain: the old one keeps its own.
            config.uuid = None;
            words.push_str(&format!("old domain kept as {new_name}; "));
        } else {
            let destroyed = self.destroy(l)?;
            words.push_str(&format!("{destroyed}; "));
            // xl keeps the UUID across reboots.
            config.uuid = Some(record.uuid.clone());
        }

        let options = WireOptions {
            record: Some(Recording {
                state: self.state.clone(),
                origin: Origin {
                    by: "daemon restart".into(),
                    config_path: record.origin.config_path.clone(),
                },
            }),
            ..self.policy.wire.clone()
        };
        match create::create_domain(self.hv, self.store, self.devices, &config, &options) {
            Ok(created) => {
                death.restarted_as = Some(created.domid);
                let new_uuid = ops::refresh(self.hv, created.domid)?
                    .map(|i| hypervisor::uuid::format(&i.handle))
                    .unwrap_or_default();
                let mut new_record =
                    self.state
                        .read(&new_uuid)
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| {
                            DomainRecord::new(
                                created.domid,
                                &new_uuid,
                                &config,
                                record.origin.clone(),
                            )
                        });
                new_record.origin = record.origin.clone();
                new_record.deaths = record.deaths.clone();
                new_record.push_death(death);
                if let Err(e) = self.state.write(&new_record) {
                    words.push_str(&format!("record not updated: {e}; "));
                }
                for w in &created.warnings {
                    tracing::warn!("{w}");
                }
                // Ours from birth: no "adopted" event when the next scan meets it.
                self.seen.insert(
                    created.domid,
                    Seen {
                        uuid: new_uuid.clone(),
                        name: config.name.clone(),
                        owner: Owner::Ours,
                        settled: false,
                    },
                );
                words.push_str(&format!("restarted as domain {}", created.domid));
                Ok(words)
            }
            Err(e) => {
                if action != Action::RenameRestart {
                    let _ = self.state.remove(&record.uuid);
                }
                Ok(format!("{words}restart failed: {e}"))
            }
        }
    }

    /// Removes device backends, `/local/domain/N` and `/libxl/N` of domids no domain has any
    /// more (a domain destroyed by something that did not clean up), releasing loop devices
    /// attached for their `file:` disks.
    fn sweep(&mut self, live: &[Live]) -> Result<(), DaemonError> {
        let alive = |domid: DomId| domid == 0 || live.iter().any(|l| l.info.domid == domid);
        let root = "/local/domain/0/backend";
        let mut dead: BTreeSet<DomId> = BTreeSet::new();
        for kind in self.store.list(root)? {
            for dom in self.store.list(&format!("{root}/{kind}"))? {
                if let Ok(domid) = dom.parse::<DomId>() {
                    if !alive(domid) {
                        dead.insert(domid);
                    }
                }
            }
        }
        for dom in self.store.list("/local/domain")? {
            if let Ok(domid) = dom.parse::<DomId>() {
                if !alive(domid) {
                    dead.insert(domid);
                }
            }
        }
        for domid in dead {
            // Look again: a domain may have been created since the list.
            if ops::refresh(self.hv, domid)?.is_some() {
                continue;
            }
            let mut cleaned = Vec::new();
            for kind in self.store.list(root)? {
                let path = format!("{root}/{kind}/{domid}");
                if !self
                    .store
                    .list(&format!("{root}/{kind}"))?
                    .contains(&domid.to_string())
                {
                    continue;
                }
                let mut loops = Vec::new();
                for dev in self.store.list(&path)? {
                    let node = self.store.read(&format!("{path}/{dev}/node"))?;
                    let params = self.store.read(&format!("{path}/{dev}/params"))?;
                    if let Some(node) = node.filter(|n| n.starts_with("/dev/loop")) {
                        if params.as_deref() != Some(node.as_str()) {
                            loops.push(node);
                        }
                    }
                }
                self.store.remove(&path)?;
                cleaned.push(path);
                for node in loops {
                    match self.devices.loop_detach(Path::new(&node)) {
                        Ok(()) => cleaned.push(node),
                        Err(e) => tracing::warn!("releasing {node}: {e}"),
                    }
                }
            }
            for path in [ops::dom_path(domid), format!("/libxl/{domid}")] {
                if self.store.read(&path)?.is_some() {
                    self.store.remove(&path)?;
                    cleaned.push(path);
                }
            }
            if !cleaned.is_empty() {
                self.log(Event::now(
                    "??",
                    Some(domid),
                    "leftovers",
                    "cleanup",
                    format!("removed {}", cleaned.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

fn adoption_words(owner: &Owner) -> &'static str {
    match owner {
        Owner::Ours => "tracking it (xm-rs record)",
        Owner::Xl(_) => "tracking it (created by xl; actions from its saved config)",
        Owner::Foreign => "not tracked",
    }
}
