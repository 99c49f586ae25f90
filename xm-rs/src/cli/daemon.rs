//! `xm daemon` (the lifecycle daemon) and `xm log` (its event log).

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::Exit;
use crate::daemon::real::{self, PidFile, RealProbe, DEFAULT_PID_FILE};
use crate::daemon::{Policy, DEFAULT_STORM_DEATHS, DEFAULT_STORM_WINDOW_SECS};
use crate::state::events::{parse_lines, LogLine};
use crate::state::{state_dir, StateDir};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Stay in the foreground (what systemd runs); without it the daemon detaches.
    #[arg(long)]
    pub foreground: bool,
    /// State directory (default: $XM_STATE_DIR, else /var/lib/xm-rs).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Pid file, locked while the daemon runs.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_PID_FILE)]
    pub pid_file: PathBuf,
    /// A domain that dies this many times within --storm-window is not restarted again.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_STORM_DEATHS)]
    pub storm_deaths: usize,
    /// The restart-storm window, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_STORM_WINDOW_SECS)]
    pub storm_window: u64,
    /// Longest time between rescans when no xenstore watch fires, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub tick: u64,
    /// Where cores of coredump-* actions go.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/xen/dump")]
    pub dump_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Keep printing events as they are appended.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Print the JSON lines as stored.
    #[arg(long)]
    pub json: bool,
    /// State directory (default: $XM_STATE_DIR, else /var/lib/xm-rs).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Only events of this domain (name or domid).
    #[arg(value_name = "DOMAIN")]
    pub domain: Option<String>,
}

/// Logging for the daemon: info by default, no colours unless stderr is a terminal (journald
/// stores stderr as it is).
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

pub fn run_daemon(args: &DaemonArgs) -> Exit {
    let root = args.state_dir.clone().unwrap_or_else(state_dir);
    if !args.foreground {
        return detach(args, &root);
    }
    let pid_file = match PidFile::acquire(&args.pid_file) {
        Ok(p) => p,
        Err(e) => return super::error(e),
    };
    tracing::info!(
        pid = std::process::id(),
        state = %root.display(),
        pid_file = %pid_file.path().display(),
        "xm daemon starting"
    );
    let (hv, store) = match super::open_xen(crate::create::XsCreateStore::open) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    let mut wire = crate::create::WireOptions::for_host();
    wire.record = None;
    let policy = Policy {
        storm_deaths: args.storm_deaths.max(1),
        storm_window: Duration::from_secs(args.storm_window),
        tick: Duration::from_secs(args.tick.max(1)),
        dump_dir: args.dump_dir.clone(),
        wire,
    };
    let result = real::run(
        &hv,
        &store,
        &crate::create::RealDevices,
        &RealProbe::default(),
        StateDir::new(root),
        policy,
    );
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("xm daemon stopping: {e}");
            super::error(e)
        }
    }
}

/// Starts `xm daemon --foreground` in its own process group with its output appended to
/// `<state>/daemon.log`, and returns once it holds the pid file (or has failed).
fn detach(args: &DaemonArgs, root: &std::path::Path) -> Exit {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("Error: cannot find the xm binary: {e}");
            return Exit::ConfigError;
        }
    };
    if let Err(e) = std::fs::create_dir_all(root) {
        eprintln!("Error: {}: {e}", root.display());
        return Exit::ConfigError;
    }
    let log_path = root.join("daemon.log");
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {}: {e}", log_path.display());
            return Exit::ConfigError;
        }
    };
    let log2 = match log.try_clone() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("Error: {}: {e}", log_path.display());
            return Exit::ConfigError;
        }
    };
    let mut child = match std::process::Command::new(exe)
        .arg("daemon")
        .arg("--foreground")
        .arg("--state-dir")
        .arg(root)
        .arg("--pid-file")
        .arg(&args.pid_file)
        .arg("--storm-deaths")
        .arg(args.storm_deaths.to_string())
        .arg("--storm-window")
        .arg(args.storm_window.to_string())
        .arg("--tick")
        .arg(args.tick.to_string())
        .arg("--dump-dir")
        .arg(&args.dump_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: starting the daemon: {e}");
            return Exit::ConfigError;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = child.id().to_string();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            eprintln!(
                "Error: the daemon exited at once ({status}); see {}",
                log_path.display()
            );
            return Exit::ConfigError;
        }
        let pid = std::fs::read_to_string(&args.pid_file).unwrap_or_default();
        if pid.trim() == want {
            super::print_line(format_args!(
                "xm daemon started (pid {want}), log in {}",
                log_path.display()
            ));
            return Exit::Ok;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "Error: the daemon (pid {want}) did not take {} within 10 s; see {}",
                args.pid_file.display(),
                log_path.display()
            );
            return Exit::ConfigError;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn matches(domain: Option<&str>, line: &LogLine) -> bool {
    let Some(want) = domain else {
        return true;
    };
    match line {
        LogLine::Event(e) => e.domain == want || e.domid.is_some_and(|d| d.to_string() == want),
        LogLine::Unreadable(_) => false,
    }
}

fn print_lines(text: &str, args: &LogArgs, out: &mut dyn Write) -> std::io::Result<()> {
    for line in parse_lines(text) {
        if !matches(args.domain.as_deref(), &line) {
            continue;
        }
        match (&line, args.json) {
            (LogLine::Event(e), true) => {
                writeln!(out, "{}", serde_json::to_string(e).unwrap_or_default())?
            }
            (LogLine::Event(e), false) => writeln!(out, "{}", e.human())?,
            (LogLine::Unreadable(t), _) => writeln!(out, "(unreadable line) {t}")?,
        }
    }
    out.flush()
}

pub fn run_log(args: &LogArgs) -> Exit {
    let root = args.state_dir.clone().unwrap_or_else(state_dir);
    let path = StateDir::new(root).events_path();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.follow => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("No events yet ({} does not exist).", path.display());
            return Exit::Ok;
        }
        Err(e) => {
            eprintln!("Error: {}: {e}", path.display());
            return Exit::ConfigError;
        }
    };
    let mut offset = 0u64;
    let mut partial = String::new();
    loop {
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
        }
        if let Some(f) = file.as_mut() {
            // A log shorter than what we read was replaced: start again.
            if f.metadata().map(|m| m.len()).unwrap_or(0) < offset {
                offset = 0;
                partial.clear();
            }
            let mut chunk = String::new();
            if f.seek(SeekFrom::Start(offset)).is_ok() {
                if let Ok(n) = f.read_to_string(&mut chunk) {
                    offset += n as u64;
                }
            }
            partial.push_str(&chunk);
            // Only whole lines: a writer may be in the middle of one.
            if let Some(end) = partial.rfind('\n') {
                let complete: String = partial.drain(..=end).collect();
                if print_lines(&complete, args, &mut out).is_err() {
                    return Exit::Ok;
                }
            }
        }
        if !args.follow {
            if !partial.is_empty() && print_lines(&partial, args, &mut out).is_err() {
                return Exit::Ok;
            }
            return Exit::Ok;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
