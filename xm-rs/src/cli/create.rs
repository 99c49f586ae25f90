//! `xm create`.

use std::io::Write;

use clap::Args;

use super::render::{render_human, render_json};
use super::Exit;
use crate::config::host::SystemHost;
use crate::config::load::{
    load, parse_variable, split_search_path, LoadOptions, DEFAULT_SEARCH_PATH,
};
use crate::config::model::GuestType;
use crate::config::ConfigError;

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
            "xm create: {}: {} guests are not supported; xm-rs creates PV guests only, and does not build any yet",
            loaded.config.name,
            loaded.config.guest_type.name()
        );
        return Exit::NotAvailable;
    }
    tracing::debug!(
        console = args.console,
        paused = args.paused,
        "options for the (future) build"
    );
    eprintln!(
        "xm create: the config for {} is valid, but building domains is not available in this xm-rs yet; \
         nothing was created (use -n to see the resolved config)",
        loaded.config.name
    );
    Exit::NotAvailable
}
