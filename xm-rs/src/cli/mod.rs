//! The `xm` command line: argument definitions and dispatch. Each subcommand lives in its
//! own module; `main.rs` only calls [`run`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod create;
pub mod daemon;
pub mod device;
pub mod domain;
pub mod generate;
pub mod managed;
pub mod render;
pub mod vcpu;

/// Opens Xen and xenstore (with `open_store`) for a command that needs both; on failure
/// prints xm's `Error:` line and gives the exit code to return.
pub(crate) fn open_xen<S, E: std::fmt::Display>(
    open_store: impl FnOnce() -> Result<S, E>,
) -> Result<(hypervisor::XenHypervisor, S), Exit> {
    let hv = hypervisor::XenHypervisor::open().map_err(error)?;
    let store = open_store().map_err(error)?;
    Ok((hv, store))
}

/// Prints xm's `Error: …` line on stderr and gives the exit code of a failed command.
pub(crate) fn error(message: impl std::fmt::Display) -> Exit {
    eprintln!("Error: {message}");
    Exit::ConfigError
}

/// The exit code after writing a command's output on stdout. The reader going away
/// (EPIPE: `xm list | grep -q x`) is no failure: the output ends there, quietly, with the
/// command's own `exit`, as other Unix tools behave. Any other write failure is reported.
pub(crate) fn after_output(written: Result<(), crate::ops::OpsError>, exit: Exit) -> Exit {
    match written {
        Ok(()) | Err(crate::ops::OpsError::OutputClosed) => exit,
        Err(e) => error(e),
    }
}

/// Prints a line on stdout like `println!`, but without its panic when nobody reads any
/// more: a confirmation nobody reads does not undo what was done.
pub(crate) fn print_line(line: impl std::fmt::Display) {
    use std::io::Write;
    let written = writeln!(std::io::stdout().lock(), "{line}").map_err(domain::io_error);
    let _ = after_output(written, Exit::Ok);
}

/// Exit codes of `xm` (documented in the crate README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The config could not be found, read, parsed, evaluated or validated; or a domain
    /// command failed (no such domain, refused by Xen or xenstore).
    ConfigError = 1,
    /// Bad command-line usage (clap's own code).
    Usage = 2,
    /// The request is valid but xm-rs cannot do it yet (HVM/PVH guests, unsupported
    /// device kinds).
    NotAvailable = 3,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// xm-compatible Xen toolstack.
#[derive(Debug, Parser)]
#[command(name = "xm", version, about = "xm-compatible Xen PV toolstack (xm-rs)")]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a domain from a config file (only the dry run, -n, works so far).
    Create(create::CreateArgs),
    /// Store a domain definition (a managed domain) from a config file.
    New(managed::NewArgs),
    /// Start a managed domain.
    Start(managed::StartArgs),
    /// Remove a managed domain's definition.
    Delete(managed::DeleteArgs),
    /// Start the domains of /etc/xen/auto (--stop: shut every guest down; --status).
    Autostart(managed::AutostartArgs),
    /// Run the lifecycle daemon (applies on_poweroff/on_reboot/on_crash).
    Daemon(daemon::DaemonArgs),
    /// Show the lifecycle daemon's event log.
    Log(daemon::LogArgs),
    #[command(flatten)]
    Domain(domain::DomCommand),
    #[command(flatten)]
    Device(device::DeviceCommand),
    /// Generate shell completions or man pages from this definition (for packagers).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Parses the command line and runs the subcommand.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                Exit::Ok.into()
            };
        }
    };
    match cli.command {
        Command::Daemon(_) => daemon::init_tracing(cli.verbose),
        _ => init_tracing(cli.verbose),
    }
    let exit = match cli.command {
        Command::Create(args) => create::run(&args),
        Command::New(args) => managed::new(&args),
        Command::Start(args) => managed::start(&args),
        Command::Delete(args) => managed::delete(&args),
        Command::Autostart(args) => managed::autostart(&args),
        Command::Daemon(args) => daemon::run_daemon(&args),
        Command::Log(args) => daemon::run_log(&args),
        Command::Domain(command) => run_domain_command(&command),
        Command::Device(command) => device::run_real(&command),
        Command::Generate(args) => generate::run(&args),
    };
    exit.into()
}

/// Opens the real hypervisor and xenstore and runs a domain command on them.
fn run_domain_command(command: &domain::DomCommand) -> Exit {
    let (hv, store) = match open_xen(crate::ops::XsStore::open) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    let mut release_loop = |node: &str| {
        toolstack::loopback::detach(std::path::Path::new(node)).map_err(|e| e.to_string())
    };
    let mut ctx = domain::Context {
        hv: &hv,
        store: &store,
        files: &crate::ops::host::RealFiles,
        wait: crate::ops::control::WaitPolicy::default(),
        release_loop: &mut release_loop,
        definitions: &crate::managed::DefinitionStore::system(),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    domain::execute(command, &mut ctx, &mut stdout.lock(), &mut stderr.lock())
}
