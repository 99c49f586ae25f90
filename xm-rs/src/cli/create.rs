//! `xm create`.

use std::io::Write;
use std::time::{Duration, Instant};

use hypervisor::XenHypervisor;
use toolstack::console::{ConsoleAttach, Detached};

use clap::Args;

use super::render::{render_human, render_json};
use super::Exit;
use crate::config::host::SystemHost;
use crate::config::load::{
    load, parse_variable, split_search_path, LoadOptions, DEFAULT_SEARCH_PATH,
};
use crate::config::model::{DomainConfig, GuestType};
use crate::config::ConfigError;
use crate::create::{
    build_domain, check_supported, refuse_duplicate, wire, CreateError, RealDevices, WireOptions,
    XsCreateStore,
};
use crate::ops::Store;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Connect to the console after creating the domain.
    #[arg(short = 'c', long = "console_autoconnect")]
    pub console: bool,
    /// Leave the domain paused after creating it.
    #[arg(short = 'p', long)]
    pub paused: bool,
    /// Dry run: print the resolved config and exit without touching Xen.
    #[arg(short = 'n', long = "dryrun")]
    pub dry_run: bool,
    /// Quiet: no warnings or notes about the config.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print the resolved config as JSON (with -n).
    #[arg(long)]
    pub json: bool,
    /// Colon-separated directories to search for CFG.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SEARCH_PATH)]
    pub path: String,
    /// Refuse to run shell commands (commands.getoutput) from the config: for untrusted files.
    #[arg(long)]
    pub no_shell: bool,
    /// Config file name or path.
    #[arg(value_name = "CFG")]
    pub config: String,
    /// Variables set before the config runs, as NAME=VALUE (xm_vars).
    #[arg(value_name = "VAR=VAL")]
    pub variables: Vec<String>,
}

fn print_error(error: &ConfigError) {
    match error {
        ConfigError::Located(_) | ConfigError::Invalid { .. } => {
            if let ConfigError::Invalid { warnings, .. } = error {
                for w in warnings {
                    eprintln!("{w}");
                }
            }
            eprintln!("{error}");
        }
        _ => eprintln!("xm create: error: {error}"),
    }
}

pub fn run(args: &CreateArgs) -> Exit {
    let mut variables = Vec::new();
    for text in &args.variables {
        match parse_variable(text) {
            Ok(v) => variables.push(v),
            Err(e) => {
                print_error(&e);
                return Exit::Usage;
            }
        }
    }
    let options = LoadOptions {
        search_path: split_search_path(&args.path),
        variables,
        allow_shell: !args.no_shell,
        ..LoadOptions::default()
    };
    let span = tracing::info_span!("create", config = %args.config, dry_run = args.dry_run);
    let _entered = span.enter();
    let loaded = match load(&args.config, &options, &SystemHost) {
        Ok(loaded) => loaded,
        Err(e) => {
            print_error(&e);
            return Exit::ConfigError;
        }
    };
    tracing::info!(name = %loaded.config.name, path = %loaded.path.display(), "config loaded");
    if !args.quiet {
        for diagnostic in &loaded.diagnostics {
            eprintln!("{diagnostic}");
        }
    }
    if args.dry_run {
        let text = if args.json {
            render_json(&loaded)
        } else {
            render_human(&loaded)
        };
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, "{text}").is_err() {
            return Exit::ConfigError;
        }
        return Exit::Ok;
    }
    if loaded.config.guest_type != GuestType::Pv {
        eprintln!(
            "xm create: {}: {} guests are not supported; xm-rs creates PV guests only",
            loaded.config.name,
            loaded.config.guest_type.name()
        );
        return Exit::NotAvailable;
    }
    match create_domain(args, &loaded.config) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("Error: {e}");
            Exit::ConfigError
        }
    }
}

/// Seconds backends may take to connect: `XM_CREATE_TIMEOUT` or 30.
fn connect_timeout() -> Duration {
    std::env::var("XM_CREATE_TIMEOUT")
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs)
}

fn create_domain(args: &CreateArgs, config: &DomainConfig) -> Result<Exit, CreateError> {
    check_supported(config)?;
    let hv = XenHypervisor::open()?;
    let store = XsCreateStore::open()?;
    refuse_duplicate(&hv, &store, &config.name)?;
    let booted = build_domain(&hv, config)?;
    let options = WireOptions {
        paused: args.paused,
        connect_timeout: connect_timeout(),
        ..WireOptions::default()
    };
    let created = wire(&hv, &store, &RealDevices, config, &booted, &options)?;
    if !args.quiet {
        for w in &created.warnings {
            eprintln!("{w}");
        }
    }
    tracing::info!(domid = created.domid, "domain created");
    if !args.console {
        if !args.quiet {
            println!("Started domain {} (id={})", config.name, created.domid);
        }
        return Ok(Exit::Ok);
    }
    let tty = wait_for_tty(&store, created.domid, Duration::from_secs(10));
    let Some(tty) = tty else {
        eprintln!(
            "xm create: domain {} started, but xenconsoled gave it no console pty (is xenconsoled running?)",
            config.name
        );
        return Ok(Exit::ConfigError);
    };
    let mut attach = ConsoleAttach::new(tty);
    attach.wait_for_pty = Some(Duration::from_secs(5));
    match toolstack::console::attach_stdio(&attach) {
        Ok(Detached::Signalled(_)) => Ok(Exit::ConfigError),
        Ok(_) => Ok(Exit::Ok),
        Err(e) => {
            eprintln!("xm create: console of {}: {e}", config.name);
            Ok(Exit::ConfigError)
        }
    }
}

/// Waits for xenconsoled to write the console's pty path.
fn wait_for_tty<S: Store + ?Sized>(store: &S, domid: u32, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let path = format!("/local/domain/{domid}/console/tty");
    loop {
        if let Ok(Some(tty)) = store.read(&path) {
            if !tty.is_empty() {
                return Some(tty);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
