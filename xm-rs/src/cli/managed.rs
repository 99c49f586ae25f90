//! `xm new`, `xm start`, `xm delete` (managed domains) and `xm autostart` (the auto
//! directory at host boot and shutdown, and from cron). The work is done by
//! [`crate::managed`]; this module parses arguments, opens the real backends and prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use hypervisor::{DomId, XenHypervisor};

use super::{error, Exit};
use crate::config::host::SystemHost;
use crate::config::load::DEFAULT_SEARCH_PATH;
use crate::config::load::{load, parse_variable, split_search_path, LoadOptions};
use crate::config::model::{DomainConfig, GuestType};
use crate::create::{self, CreateError, RealDevices, Recording, WireOptions, XsCreateStore};
use crate::managed::autostart::{
    self, AutoConfig, LaunchError, Launcher, StartOptions, StopOptions, DEFAULT_AUTO_DIR,
};
use crate::managed::{self, Definition, DefinitionStore, ManagedError};
use crate::ops::{Store, XsStore};
use crate::state::StateDir;

/// `xm new [-q] [--path P] [--no-shell] CFG [VAR=VAL...]`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Quiet: no warnings or notes about the config, no confirmation.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Colon-separated directories to search for CFG.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SEARCH_PATH)]
    pub path: String,
    /// Refuse to run shell commands (commands.getoutput) from the config.
    #[arg(long)]
    pub no_shell: bool,
    /// Config file name or path.
    #[arg(value_name = "CFG")]
    pub config: String,
    /// Variables set before the config runs, as NAME=VALUE (xm_vars).
    #[arg(value_name = "VAR=VAL")]
    pub variables: Vec<String>,
}

/// `xm start [-p] [-c] NAME`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Leave the domain paused after creating it.
    #[arg(short = 'p', long)]
    pub paused: bool,
    /// Connect to the console after starting the domain.
    #[arg(short = 'c', long = "console_autoconnect")]
    pub console: bool,
    /// The managed domain's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `xm delete NAME`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The managed domain's name.
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// `xm autostart [--dir D] [--parallel N] [--timeout S] [-q]`, `--stop`, `--status`.
#[derive(Debug, Args)]
pub struct AutostartArgs {
    /// At host shutdown: ask every running guest to power off (all at once), destroy what
    /// is still there after --timeout.
    #[arg(long, conflicts_with_all = ["status", "parallel"])]
    pub stop: bool,
    /// Show each config of the auto directory and whether its domain runs.
    #[arg(long, conflicts_with_all = ["parallel", "auto_only"])]
    pub status: bool,
    /// The auto directory (Debian's XENDOMAINS_AUTO).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_AUTO_DIR)]
    pub dir: PathBuf,
    /// How many domains start at the same time.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Seconds: per domain when starting (default 60; its devices must connect within it),
    /// for all guests together with --stop (default 300, Debian's XENDOMAINS_STOP_MAXWAIT).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: Option<u64>,
    /// With --stop: only the domains the auto directory defines (upstream's
    /// XENDOMAINS_AUTO_ONLY); others are left running.
    #[arg(long, requires = "stop")]
    pub auto_only: bool,
    /// Print only failures (for cron).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Output JSON (one array of records).
    #[arg(long)]
    pub json: bool,
}

/// Default per-domain start timeout, seconds.
const START_TIMEOUT_SECS: u64 = 60;
/// Default shutdown timeout, seconds (Debian's XENDOMAINS_STOP_MAXWAIT).
const STOP_TIMEOUT_SECS: u64 = 300;

fn managed_error(e: &ManagedError) -> Exit {
    eprintln!("Error: {e}");
    match e {
        ManagedError::Ops(crate::ops::OpsError::Usage(_)) => Exit::Usage,
        _ => Exit::ConfigError,
    }
}

/// `xm new`.
pub fn new(args: &NewArgs) -> Exit {
    let mut variables = Vec::new();
    for text in &args.variables {
        match parse_variable(text) {
            Ok(v) => variables.push(v),
            Err(e) => {
                eprintln!("xm new: error: {e}");
                return Exit::Usage;
            }
        }
    }
    let options = LoadOptions {
        search_path: split_search_path(&args.path),
        variables: variables.clone(),
        allow_shell: !args.no_shell,
        ..LoadOptions::default()
    };
    let loaded = match load(&args.config, &options, &SystemHost) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return Exit::ConfigError;
        }
    };
    if !args.quiet {
        for diagnostic in &loaded.diagnostics {
            eprintln!("{diagnostic}");
        }
    }
    if let Some(exit) = refuse_unsupported("new", &loaded.config) {
        return exit;
    }
    let source = std::fs::canonicalize(&loaded.path).unwrap_or(loaded.path.clone());
    let def = Definition::new(loaded.config, source, variables);
    let (hv, store) = match open_plain() {
        Ok(pair) => pair,
        Err(exit) => return exit,
    };
    match managed::define(&DefinitionStore::system(), &hv, &store, &def) {
        Ok(replaced) => {
            if !args.quiet {
                let verb = if replaced { "Updated" } else { "Defined" };
                super::print_line(format_args!(
                    "{verb} domain {} (from {})",
                    def.name,
                    def.source.display()
                ));
            }
            Exit::Ok
        }
        Err(e) => managed_error(&e),
    }
}

/// PV only, and only what `create_domain` can wire: exit 3 otherwise, as `xm create`.
fn refuse_unsupported(verb: &str, config: &DomainConfig) -> Option<Exit> {
    if config.guest_type != GuestType::Pv {
        eprintln!(
            "xm {verb}: {}: {} guests are not supported; xm-rs creates PV guests only",
            config.name,
            config.guest_type.name()
        );
        return Some(Exit::NotAvailable);
    }
    if let Err(e) = create::check_supported(config) {
        eprintln!("xm {verb}: {e}");
        return Some(Exit::NotAvailable);
    }
    None
}

fn open_plain() -> Result<(XenHypervisor, XsStore), Exit> {
    let hv = XenHypervisor::open().map_err(error)?;
    let store = XsStore::open().map_err(error)?;
    Ok((hv, store))
}

/// `xm start`.
pub fn start(args: &StartArgs) -> Exit {
    let (hv, store) = match super::open_xen(XsCreateStore::open) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    let options = WireOptions {
        paused: args.paused,
        record: Some(Recording::for_host("xm start")),
        ..WireOptions::for_host()
    };
    let defs = DefinitionStore::system();
    let created = match managed::start(&defs, &hv, &store, &RealDevices, &args.name, &options) {
        Ok(created) => created,
        Err(e) => return managed_error(&e),
    };
    for w in &created.warnings {
        eprintln!("{w}");
    }
    if !args.console {
        super::print_line(format_args!(
            "Started domain {} (id={})",
            args.name, created.domid
        ));
        return Exit::Ok;
    }
    attach_console(store.store(), &args.name, created.domid)
}

/// Attaches to the new domain's console (Ctrl-] detaches), as `xm create -c`.
fn attach_console(store: &XsStore, name: &str, domid: DomId) -> Exit {
    let path = format!("/local/domain/{domid}/console/tty");
    let deadline = Instant::now() + Duration::from_secs(10);
    let tty = loop {
        if let Ok(Some(tty)) = store.read(&path) {
            if !tty.is_empty() {
                break tty;
            }
        }
        if Instant::now() >= deadline {
            eprintln!(
                "xm start: domain {name} started, but xenconsoled gave it no console pty (is xenconsoled running?)"
            );
            return Exit::ConfigError;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut attach = toolstack::console::ConsoleAttach::new(tty);
    attach.wait_for_pty = Some(Duration::from_secs(5));
    match toolstack::console::attach_stdio(&attach) {
        Ok(toolstack::console::Detached::Signalled(_)) => Exit::ConfigError,
        Ok(_) => Exit::Ok,
        Err(e) => error(format_args!("console of {name}: {e}")),
    }
}

/// `xm delete`.
pub fn delete(args: &DeleteArgs) -> Exit {
    let (hv, store) = match open_plain() {
        Ok(pair) => pair,
        Err(exit) => return exit,
    };
    match managed::delete(&DefinitionStore::system(), &hv, &store, &args.name) {
        Ok(()) => Exit::Ok,
        Err(e) => managed_error(&e),
    }
}

/// Starts domains on this host: opens Xen and xenstore for each start (so starts can run in
/// parallel) and calls [`create::create_domain`].
struct XenLauncher {
    /// Warnings (e.g. a framebuffer that is skipped) go to the log only, not to stderr.
    quiet: bool,
}

impl Launcher for XenLauncher {
    fn live(&self) -> Result<Vec<(String, DomId)>, String> {
        let hv = XenHypervisor::open().map_err(|e| e.to_string())?;
        let store = XsStore::open().map_err(|e| e.to_string())?;
        autostart::live_names(&hv, &store)
    }

    fn launch(
        &self,
        file: &Path,
        config: &DomainConfig,
        timeout: Duration,
    ) -> Result<DomId, LaunchError> {
        let failed = |e: &dyn std::fmt::Display| LaunchError::Failed(e.to_string());
        if config.guest_type != GuestType::Pv {
            return Err(LaunchError::Failed(format!(
                "{} guests are not supported; xm-rs creates PV guests only",
                config.guest_type.name()
            )));
        }
        let hv = XenHypervisor::open().map_err(|e| failed(&e))?;
        let store = XsCreateStore::open().map_err(|e| failed(&e))?;
        let mut record = Recording::for_host("xm autostart");
        record.origin.config_path = Some(file.to_path_buf());
        // The per-domain timeout bounds every wait of the create: netback creating the vif
        // as well as the backends becoming ready (several domains starting at once on a
        // loaded host are slow at both).
        let options = WireOptions {
            connect_timeout: timeout,
            netdev_timeout: timeout,
            record: Some(record),
            ..WireOptions::for_host()
        };
        match create::create_domain(&hv, &store, &RealDevices, config, &options) {
            Ok(created) => {
                for w in &created.warnings {
                    if self.quiet {
                        tracing::info!("{w}");
                    } else {
                        eprintln!("{w}");
                    }
                }
                Ok(created.domid)
            }
            Err(CreateError::Duplicate(_)) => Err(LaunchError::AlreadyRunning),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Loads every config of the auto directory (a failure is kept, with its message).
fn load_auto(dir: &Path) -> Result<Vec<AutoConfig>, ManagedError> {
    let options = LoadOptions {
        search_path: Vec::new(),
        ..LoadOptions::default()
    };
    Ok(autostart::scan(dir)?
        .into_iter()
        .map(|file| {
            let config = match file.to_str() {
                None => Err("the file name is not UTF-8".to_string()),
                Some(text) => match load(text, &options, &SystemHost) {
                    Ok(loaded) => {
                        for d in &loaded.diagnostics {
                            tracing::debug!("{d}");
                        }
                        Ok(loaded.config)
                    }
                    Err(e) => Err(e.to_string()),
                },
            };
            AutoConfig { file, config }
        })
        .collect())
}

/// `xm autostart`.
pub fn autostart(args: &AutostartArgs) -> Exit {
    // Not locked for the whole command: the workers of `start_all` print from their threads,
    // and a lock held here while they run would deadlock the first of them.
    let mut out = std::io::stdout();
    if args.stop {
        return autostart_stop(args, &mut out);
    }
    // A missing auto directory is nothing to start (as in xendomains).
    let configs = if args.dir.is_dir() {
        match load_auto(&args.dir) {
            Ok(configs) => configs,
            Err(e) => return error(e),
        }
    } else {
        if !args.quiet && !args.json {
            let _ = writeln!(
                out,
                "{}: no such directory, nothing to start",
                args.dir.display()
            );
        }
        Vec::new()
    };
    if args.status {
        return autostart_status(args, &configs, &mut out);
    }
    // The host runs its guests again: the daemon may restart them as their configs say.
    if let Err(e) = StateDir::from_env().clear_host_stopping() {
        eprintln!("Warning: {e}: the daemon will not restart guests until it is removed");
    }
    let options = StartOptions {
        parallel: usize::from(args.parallel),
        timeout: Duration::from_secs(args.timeout.unwrap_or(START_TIMEOUT_SECS)),
    };
    let (quiet, json) = (args.quiet, args.json);
    let printer = std::sync::Mutex::new(());
    let progress = |a: &autostart::Attempt| {
        let _serial = printer.lock();
        if a.failed() {
            eprintln!("{}", a.describe());
        } else if !quiet && !json {
            super::print_line(a.describe());
        }
    };
    let attempts = autostart::start_all(&XenLauncher { quiet }, configs, options, &progress);
    let failures: Vec<_> = attempts.iter().filter(|a| a.failed()).collect();
    if json {
        let records: Vec<_> = attempts
            .iter()
            .map(|a| {
                let (outcome, domid, error) = match &a.outcome {
                    autostart::Outcome::Started { domid } => ("started", Some(*domid), None),
                    autostart::Outcome::AlreadyRunning { domid } => ("running", *domid, None),
                    autostart::Outcome::Failed(why) => ("failed", None, Some(why.clone())),
                };
                serde_json::json!({"file": a.file, "name": a.name, "outcome": outcome,
                                   "domid": domid, "error": error,
                                   "seconds": a.elapsed.as_secs_f64()})
            })
            .collect();
        let written = super::domain::print_json(&mut out, &records);
        if let exit @ Exit::ConfigError = super::after_output(written, Exit::Ok) {
            return exit;
        }
    }
    if failures.is_empty() {
        return Exit::Ok;
    }
    let names: Vec<String> = failures
        .iter()
        .map(|a| match &a.name {
            Some(n) => n.clone(),
            None => a.file.display().to_string(),
        })
        .collect();
    eprintln!(
        "Error: autostart: {} of {} failed: {}",
        failures.len(),
        attempts.len(),
        names.join(", ")
    );
    Exit::ConfigError
}

fn autostart_status(args: &AutostartArgs, configs: &[AutoConfig], out: &mut dyn Write) -> Exit {
    let live = match (XenLauncher { quiet: true }).live() {
        Ok(live) => live,
        Err(e) => return error(e),
    };
    let lines = autostart::status(configs, &live);
    // Like an LSB status: success only when every domain of the auto directory runs.
    let all_running = if lines.iter().all(|l| l.domid.is_some()) {
        Exit::Ok
    } else {
        Exit::ConfigError
    };
    if args.json {
        return super::after_output(super::domain::print_json(out, &lines), all_running);
    }
    for l in &lines {
        let text = match (&l.name, l.domid, &l.error) {
            (Some(n), Some(d), _) => format!("{n:<40} running (id={d})  {}", l.file.display()),
            (Some(n), None, _) => format!("{n:<40} not running  {}", l.file.display()),
            (None, _, e) => format!(
                "{:<40} cannot be loaded: {}",
                l.file.display(),
                e.as_deref().unwrap_or("?")
            ),
        };
        if let Err(e) = writeln!(out, "{text}") {
            return super::after_output(Err(super::domain::io_error(e)), all_running);
        }
    }
    let auto: Vec<&str> = lines.iter().filter_map(|l| l.name.as_deref()).collect();
    let others: Vec<&str> = live
        .iter()
        .filter(|(n, d)| *d != 0 && !auto.contains(&n.as_str()))
        .map(|(n, _)| n.as_str())
        .collect();
    if others.is_empty() {
        return all_running;
    }
    let written = writeln!(
        out,
        "Also running (not in {}): {}",
        args.dir.display(),
        others.join(" ")
    )
    .map_err(super::domain::io_error);
    super::after_output(written, all_running)
}

fn autostart_stop(args: &AutostartArgs, out: &mut dyn Write) -> Exit {
    let (hv, store) = match open_plain() {
        Ok(pair) => pair,
        Err(exit) => return exit,
    };
    // Before the first shutdown request: `xm daemon` must not restart a guest whose
    // on_poweroff (or on_reboot) is 'restart' while the host is going down.
    if let Err(e) = StateDir::from_env().mark_host_stopping() {
        eprintln!("Warning: {e}: the daemon may restart guests that are shut down now");
    }
    let only = if args.auto_only {
        match load_auto(&args.dir) {
            Ok(configs) => Some(autostart::auto_names(&configs)),
            Err(e) => return error(e),
        }
    } else {
        None
    };
    let timeout = Duration::from_secs(args.timeout.unwrap_or(STOP_TIMEOUT_SECS));
    let options = StopOptions {
        timeout,
        only,
        tick: Duration::from_secs(1),
    };
    let mut release_loop =
        |node: &str| toolstack::loopback::detach(Path::new(node)).map_err(|e| e.to_string());
    let stopped = match autostart::stop_all(&hv, &store, &options, &mut release_loop) {
        Ok(stopped) => stopped,
        Err(e) => return managed_error(&e),
    };
    if args.json {
        let records: Vec<_> = stopped
            .iter()
            .map(|s| {
                let outcome = match &s.outcome {
                    autostart::StopOutcome::ShutDown => "shut-down",
                    autostart::StopOutcome::DestroyedAfter(_) => "destroyed",
                    autostart::StopOutcome::TimedOut => "timed-out-destroyed",
                    autostart::StopOutcome::Failed(_) => "failed",
                };
                serde_json::json!({"name": s.name, "domid": s.domid, "outcome": outcome,
                                   "message": s.describe(timeout),
                                   "seconds": s.elapsed.as_secs_f64()})
            })
            .collect();
        let written = super::domain::print_json(out, &records);
        if let exit @ Exit::ConfigError = super::after_output(written, Exit::Ok) {
            return exit;
        }
    }
    for s in &stopped {
        if s.failed() {
            eprintln!("{}", s.describe(timeout));
        } else if !args.quiet && !args.json {
            let _ = writeln!(out, "{}", s.describe(timeout));
        }
    }
    let failed: Vec<&str> = stopped
        .iter()
        .filter(|s| s.failed())
        .map(|s| s.name.as_str())
        .collect();
    if failed.is_empty() {
        if !args.quiet && !args.json && stopped.is_empty() {
            let _ = writeln!(out, "No Xen domains to shut down");
        }
        return Exit::Ok;
    }
    eprintln!(
        "Error: autostart --stop: {} of {} did not shut down cleanly: {}",
        failed.len(),
        stopped.len(),
        failed.join(", ")
    );
    Exit::ConfigError
}
