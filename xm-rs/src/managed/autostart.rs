//! Autostart, as Debian's `xendomains` does it, in one place that `xm autostart`, the
//! systemd unit and the `xendomains` init script all call:
//!
//! - [`start_all`]: the configs (or symlinks to configs) in `/etc/xen/auto`, in name order,
//!   `parallel` at a time, each with a timeout; a domain whose name already runs is skipped,
//!   so it is safe from cron every few minutes. Every failure is reported, after trying the
//!   others.
//! - [`stop_all`]: at host shutdown, every running guest (or only those the auto directory
//!   defines) is asked to power off, all at once; those that have not gone within the timeout
//!   are destroyed. Saving instead of shutting down needs `xm save`, which does not exist yet.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hypervisor::{DomId, Hypervisor, ShutdownReason};

use super::{ManagedError, Result};
use crate::config::model::DomainConfig;
use crate::ops::control::{self, ShutdownMode};
use crate::ops::{self, Domain, OpsError, Store};

/// Debian's `XENDOMAINS_AUTO`.
pub const DEFAULT_AUTO_DIR: &str = "/etc/xen/auto";

/// The configs in `dir`, in name order (byte order of the file names, as the shell's glob in
/// `xendomains` sorts in the C locale). Hidden files and editor backups (`*~`, `*.dpkg-*`,
/// `*.rpmnew`, `*.rpmsave`, `*.swp`) are not configs. Symlinks are kept as they are: loading
/// follows them, and a dangling one fails with its name.
pub fn scan(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| ManagedError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let backup = text.ends_with('~')
            || text.contains(".dpkg-")
            || text.ends_with(".rpmnew")
            || text.ends_with(".rpmsave")
            || text.ends_with(".swp");
        if text.starts_with('.') || backup {
            continue;
        }
        let path = entry.path();
        // Subdirectories are not configs; a symlink to one is not either.
        if path.is_dir() {
            continue;
        }
        files.push(path);
    }
    files.sort_by(|a, b| {
        let key = |p: &Path| p.file_name().map(|n| n.as_encoded_bytes().to_vec());
        key(a).cmp(&key(b))
    });
    Ok(files)
}

/// How a start went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// A domain of that name appeared meanwhile (another autostart, an admin).
    AlreadyRunning,
    /// The message says what failed.
    Failed(String),
}

/// Starts domains: [`crate::create::create_domain`] on this host; in tests, the same wiring on
/// the simulator.
pub trait Launcher: Sync {
    /// The names of the domains that exist and are not dying, with their ids.
    fn live(&self) -> std::result::Result<Vec<(String, DomId)>, String>;
    /// Creates and unpauses the domain `file` defines; its devices must be ready within
    /// `timeout`.
    fn launch(
        &self,
        file: &Path,
        config: &DomainConfig,
        timeout: Duration,
    ) -> std::result::Result<DomId, LaunchError>;
}

/// What happened to one config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Started {
        domid: DomId,
    },
    /// Skipped: a domain of that name runs.
    AlreadyRunning {
        domid: Option<DomId>,
    },
    Failed(String),
}

/// One config of the auto directory and what became of it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub file: PathBuf,
    /// The domain name, once the config loaded.
    pub name: Option<String>,
    pub outcome: Outcome,
    /// How long the start took (zero when nothing was started).
    pub elapsed: Duration,
}

impl Attempt {
    /// Whether this one counts as a failure of the run.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    /// The line Debian's `xendomains` would print for it.
    pub fn describe(&self) -> String {
        let name = self.name.as_deref().unwrap_or("?");
        let file = self.file.display();
        match &self.outcome {
            Outcome::Started { domid } => format!(
                "Started Xen domain {name} (id={domid}) from {file} in {:.1} s",
                self.elapsed.as_secs_f64()
            ),
            Outcome::AlreadyRunning { domid: Some(d) } => {
                format!("Xen domain {name} already running (id={d})")
            }
            Outcome::AlreadyRunning { domid: None } => {
                format!("Xen domain {name} already running")
            }
            Outcome::Failed(why) => format!("Failed to start Xen domain {name} from {file}: {why}"),
        }
    }
}

/// How [`start_all`] runs.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    /// How many domains start at the same time (at least 1).
    pub parallel: usize,
    /// Per domain: how long its devices may take to connect.
    pub timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            parallel: 1,
            timeout: Duration::from_secs(60),
        }
    }
}

/// A config of the auto directory, loaded (or the message saying why it could not be).
#[derive(Debug, Clone)]
pub struct AutoConfig {
    pub file: PathBuf,
    pub config: std::result::Result<DomainConfig, String>,
}

/// Starts what `configs` (in the auto directory's order) define and does not run yet:
/// in that order, `options.parallel` at a time. `progress` sees each attempt as it ends.
/// Returns every attempt, in the configs' order.
pub fn start_all<L: Launcher + ?Sized>(
    launcher: &L,
    configs: Vec<AutoConfig>,
    options: StartOptions,
    progress: &(dyn Fn(&Attempt) + Sync),
) -> Vec<Attempt> {
    if configs.is_empty() {
        return Vec::new();
    }
    let live = launcher.live();
    let mut attempts: Vec<Option<Attempt>> = Vec::with_capacity(configs.len());
    let mut queue: Vec<(usize, PathBuf, DomainConfig)> = Vec::new();
    let mut seen: Vec<(String, PathBuf)> = Vec::new();
    for (index, auto) in configs.into_iter().enumerate() {
        let AutoConfig { file, config } = auto;
        let done = |name: Option<String>, outcome| {
            Some(Attempt {
                file: file.clone(),
                name,
                outcome,
                elapsed: Duration::ZERO,
            })
        };
        let attempt = match (&live, config) {
            (_, Err(why)) => done(None, Outcome::Failed(why)),
            (Err(why), Ok(c)) => done(
                Some(c.name),
                Outcome::Failed(format!("cannot list the running domains: {why}")),
            ),
            (Ok(live), Ok(c)) => {
                if let Some((_, other)) = seen.iter().find(|(n, _)| *n == c.name) {
                    let why = format!("{} defines the same name", other.display());
                    done(Some(c.name), Outcome::Failed(why))
                } else if let Some((_, domid)) = live.iter().find(|(n, _)| *n == c.name) {
                    seen.push((c.name.clone(), file.clone()));
                    let outcome = Outcome::AlreadyRunning {
                        domid: Some(*domid),
                    };
                    done(Some(c.name), outcome)
                } else {
                    seen.push((c.name.clone(), file.clone()));
                    queue.push((index, file.clone(), c));
                    None
                }
            }
        };
        if let Some(a) = &attempt {
            progress(a);
        }
        attempts.push(attempt);
    }

    let results = Mutex::new(attempts);
    let next = AtomicUsize::new(0);
    let workers = options.parallel.clamp(1, queue.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                let Some((index, file, config)) = queue.get(n) else {
                    break;
                };
                let span = tracing::info_span!("autostart", name = %config.name);
                let _entered = span.enter();
                let begun = Instant::now();
                let outcome = match launcher.launch(file, config, options.timeout) {
                    Ok(domid) => Outcome::Started { domid },
                    Err(LaunchError::AlreadyRunning) => Outcome::AlreadyRunning { domid: None },
                    Err(LaunchError::Failed(why)) => Outcome::Failed(why),
                };
                let attempt = Attempt {
                    file: file.clone(),
                    name: Some(config.name.clone()),
                    outcome,
                    elapsed: begun.elapsed(),
                };
                tracing::info!("{}", attempt.describe());
                progress(&attempt);
                if let Ok(mut slots) = results.lock() {
                    slots[*index] = Some(attempt);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// What happened to one guest at [`stop_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// It shut down within the timeout (and was reaped, by us or by whatever else did).
    ShutDown,
    /// It crashed or rebooted instead of powering off; destroyed.
    DestroyedAfter(String),
    /// Still there at the timeout: destroyed.
    TimedOut,
    /// Could not be shut down or destroyed (the message says why).
    Failed(String),
}

/// One guest and what [`stop_all`] did with it.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub name: String,
    pub domid: DomId,
    pub outcome: StopOutcome,
    pub elapsed: Duration,
}

impl Stopped {
    /// Whether the host's shutdown should hear about it (anything but a clean shutdown).
    pub fn failed(&self) -> bool {
        self.outcome != StopOutcome::ShutDown
    }

    /// A line for the operator.
    pub fn describe(&self, timeout: Duration) -> String {
        let (name, domid) = (&self.name, self.domid);
        match &self.outcome {
            StopOutcome::ShutDown => format!(
                "Xen domain {name} ({domid}) shut down in {:.1} s",
                self.elapsed.as_secs_f64()
            ),
            StopOutcome::DestroyedAfter(what) => {
                format!("Xen domain {name} ({domid}) {what} instead of powering off: destroyed")
            }
            StopOutcome::TimedOut => format!(
                "Xen domain {name} ({domid}) did not shut down within {} s: destroyed",
                timeout.as_secs()
            ),
            StopOutcome::Failed(why) => format!("Xen domain {name} ({domid}): {why}"),
        }
    }
}

/// How [`stop_all`] runs.
#[derive(Debug, Clone)]
pub struct StopOptions {
    /// How long the guests together may take to shut down before the rest are destroyed.
    pub timeout: Duration,
    /// Only these names (the auto directory's, for `--auto-only`); all guests when `None`.
    pub only: Option<Vec<String>>,
    /// Longest wait for a domain event before looking again.
    pub tick: Duration,
}

/// Asks every running guest (or only `options.only`) to power off, all at once; reaps those
/// that do; destroys the rest at the timeout. `release_loop` releases loop devices of
/// destroyed domains' `file:` disks. Returns one entry per guest, in domid order.
pub fn stop_all<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    options: &StopOptions,
    release_loop: &mut dyn FnMut(&str) -> std::result::Result<(), String>,
) -> Result<Vec<Stopped>> {
    let begun = Instant::now();
    let guests: Vec<Domain> = control::all_guests(hv, store)?
        .into_iter()
        .filter(|d| !d.info.dying)
        .filter(|d| {
            options.only.as_ref().map_or(true, |only| {
                d.name.as_ref().is_some_and(|n| only.contains(n))
            })
        })
        .collect();
    let mut results: Vec<Option<Stopped>> = vec![None; guests.len()];
    let finish = |d: &Domain, outcome| Stopped {
        name: d.display_name().to_string(),
        domid: d.domid(),
        outcome,
        elapsed: begun.elapsed(),
    };
    for (i, d) in guests.iter().enumerate() {
        // One already shut down needs no request; it is reaped below.
        if d.info.shutdown {
            continue;
        }
        if let Err(e) = control::request_shutdown(store, d, ShutdownMode::Poweroff) {
            tracing::warn!(domid = d.domid(), "shutdown request failed: {e}");
            results[i] = Some(finish(d, StopOutcome::Failed(format!("shutdown: {e}"))));
        }
    }
    let deadline = begun + options.timeout;
    loop {
        for (i, d) in guests.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let info = match ops::refresh(hv, d.domid()) {
                Ok(Some(info)) => info,
                Ok(None) => {
                    results[i] = Some(finish(d, StopOutcome::ShutDown));
                    continue;
                }
                Err(e) => {
                    results[i] = Some(finish(d, StopOutcome::Failed(e.to_string())));
                    continue;
                }
            };
            // A new domain that reused the id is not ours to touch.
            if info.handle != d.info.handle || !info.shutdown || info.dying {
                continue;
            }
            let outcome = match info.shutdown_reason {
                Some(ShutdownReason::Poweroff) | None => StopOutcome::ShutDown,
                Some(other) => StopOutcome::DestroyedAfter(what_happened(other)),
            };
            let outcome = match reap(hv, store, d, release_loop) {
                Ok(()) => outcome,
                Err(why) => StopOutcome::Failed(why),
            };
            results[i] = Some(finish(d, outcome));
        }
        if results.iter().all(Option::is_some) {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            for (i, d) in guests.iter().enumerate() {
                if results[i].is_none() {
                    let outcome = match reap(hv, store, d, release_loop) {
                        Ok(()) => StopOutcome::TimedOut,
                        Err(why) => StopOutcome::Failed(format!(
                            "did not shut down within {} s and could not be destroyed: {why}",
                            options.timeout.as_secs()
                        )),
                    };
                    results[i] = Some(finish(d, outcome));
                }
            }
            break;
        }
        let wait = options.tick.min(deadline - now);
        store.wait_domain_change(wait).map_err(OpsError::from)?;
    }
    Ok(results.into_iter().flatten().collect())
}

/// What a guest did instead of powering off, for the operator.
fn what_happened(reason: ShutdownReason) -> String {
    match reason {
        ShutdownReason::Crash => "crashed".into(),
        ShutdownReason::Reboot => "rebooted".into(),
        ShutdownReason::Suspend => "suspended".into(),
        ShutdownReason::Watchdog => "was stopped by its watchdog".into(),
        other => format!("shut down ({})", crate::ops::format::reason_name(other)),
    }
}

/// Destroys a domain and removes its nodes; one already gone is fine.
fn reap<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    release_loop: &mut dyn FnMut(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    match control::destroy(hv, store, domain, release_loop) {
        Ok(report) => {
            for problem in report.problems {
                tracing::warn!(domid = domain.domid(), "cleanup: {problem}");
            }
            Ok(())
        }
        Err(OpsError::NoSuchDomain(_)) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The names the configs in the auto directory define (those that load).
pub fn auto_names(configs: &[AutoConfig]) -> Vec<String> {
    configs
        .iter()
        .filter_map(|c| c.config.as_ref().ok().map(|c| c.name.clone()))
        .collect()
}

/// `xm autostart --status`: each config of the auto directory, and whether it runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusLine {
    pub file: PathBuf,
    pub name: Option<String>,
    /// Its domain id when a domain of that name runs.
    pub domid: Option<DomId>,
    /// Why the config could not be loaded.
    pub error: Option<String>,
}

/// What runs versus what the auto directory holds.
pub fn status(configs: &[AutoConfig], live: &[(String, DomId)]) -> Vec<StatusLine> {
    configs
        .iter()
        .map(|c| match &c.config {
            Ok(config) => StatusLine {
                file: c.file.clone(),
                name: Some(config.name.clone()),
                domid: live
                    .iter()
                    .find(|(n, _)| *n == config.name)
                    .map(|(_, d)| *d),
                error: None,
            },
            Err(why) => StatusLine {
                file: c.file.clone(),
                name: None,
                domid: None,
                error: Some(why.clone()),
            },
        })
        .collect()
}

/// The live, not dying domains by name (dom0 included), for [`Launcher::live`].
pub fn live_names<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
) -> std::result::Result<Vec<(String, DomId)>, String> {
    Ok(ops::all_domains(hv, store)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|d| !d.info.dying)
        .filter_map(|d| d.name.clone().map(|n| (n, d.domid())))
        .collect())
}
