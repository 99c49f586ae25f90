//! The `xm` command line: argument definitions and dispatch. Each subcommand lives in its
//! own module; `main.rs` only calls [`run`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod create;
pub mod render;

/// Exit codes of `xm` (documented in the crate README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The config could not be found, read, parsed, evaluated or validated.
    ConfigError = 1,
    /// Bad command-line usage (clap's own code).
    Usage = 2,
    /// The request is valid but xm-rs cannot do it yet (building domains, HVM guests).
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
    init_tracing(cli.verbose);
    let exit = match cli.command {
        Command::Create(args) => create::run(&args),
    };
    exit.into()
}
