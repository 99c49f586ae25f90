//! `xenstored-rs`: our xenstore daemon (see the `xenstore::daemon` module).

use std::process::ExitCode;

use tracing::Level;
use xenstore::daemon::{self, Options};

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{}", daemon::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xenstored-rs: {e}");
            return ExitCode::from(2);
        }
    };
    let level = if opts.verbose || opts.trace_file.is_some() {
        Level::DEBUG
    } else {
        Level::INFO
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false);
    match &opts.trace_file {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => builder.with_writer(std::sync::Mutex::new(file)).init(),
            Err(e) => {
                eprintln!(
                    "xenstored-rs: cannot open trace file {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
        None => builder.with_writer(std::io::stderr).init(),
    }
    match daemon::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xenstored-rs: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
