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
    check_supported, create_domain, CreateError, DeviceWait, RealDevices, WireOptions,
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
    /// Return only once the guest's own drivers have connected every disk and network
    /// interface (backend state Connected), instead of once dom0's backends are ready
    /// (xl's behaviour and the default). An xm-rs extension.
    #[arg(long)]
    pub wait_connected: bool,
    /// Decompress the kernel even if a decompressed copy is cached (see XM_KERNEL_CACHE).
    #[arg(long)]
    pub no_kernel_cache: bool,
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
        let written = writeln!(stdout, "{text}").map_err(super::domain::io_error);
        return super::after_output(written, Exit::Ok);
    }
    if loaded.config.guest_type != GuestType::Pv {
        eprintln!(
            "xm create: {}: {} guests are not supported; xm-rs creates PV guests only",
            loaded.config.name,
            loaded.config.guest_type.name()
        );
        return Exit::NotAvailable;
    }
    match create_and_attach(args, &loaded.config) {
        Ok(exit) => exit,
        Err(e) => super::error(e),
    }
}

fn create_and_attach(args: &CreateArgs, config: &DomainConfig) -> Result<Exit, CreateError> {
    check_supported(config)?;
    let hv = XenHypervisor::open()?;
    let store = XsCreateStore::open()?;
    let mut options = WireOptions {
        paused: args.paused,
        ..WireOptions::for_host()
    };
    if args.wait_connected {
        options.wait = DeviceWait::Connected;
    }
    if args.no_kernel_cache {
        options.kernel_cache = None;
    }
    let created = create_domain(&hv, &store, &RealDevices, config, &options)?;
    if !args.quiet {
        for w in &created.warnings {
            eprintln!("{w}");
        }
    }
    tracing::info!(domid = created.domid, "domain created");
    if !args.console {
        if !args.quiet {
            super::print_line(format_args!(
                "Started domain {} (id={})",
                config.name, created.domid
            ));
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
