//! Our xenstored (`xenstored-rs`).
//!
//! - [`core`]: the tree, permissions, watches, transactions, quotas, domains (no I/O).
//! - [`server`]: the epoll loop over the Unix socket and the Xen event channel.
//! - [`xen`]: domain rings (dom0's via `/proc/xen/xsd_kva`, guests' via grant 1).
//! - [`config`]: quotas and their config file.

pub mod config;
pub mod core;
pub mod server;
pub mod xen;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tracing::{info, warn};

use self::config::Quotas;
use self::core::{Core, NoXen, Platform};
use self::xen::{XenPlatform, XenRings};

/// Default socket, as libxenstore expects it.
pub const DEFAULT_SOCKET: &str = "/run/xenstored/socket";

/// Command-line options (C xenstored's where they make sense, plus ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Unix socket path.
    pub socket: PathBuf,
    /// Write our pid here once serving.
    pub pid_file: Option<PathBuf>,
    /// Stay in the foreground (`-N`/`--no-fork`).
    pub foreground: bool,
    /// Request trace / debug log file (`-T`).
    pub trace_file: Option<PathBuf>,
    /// Log file when daemonized.
    pub log_file: Option<PathBuf>,
    /// Quota config file.
    pub config: Option<PathBuf>,
    /// Quota overrides (`--quota key=value`, `-E`, `-S`, `-W`, `-t`, `-A`, `-M`).
    pub quota_overrides: Vec<(String, usize)>,
    /// Xen use: None = auto-detect.
    pub xen: Option<bool>,
    /// Skip serving dom0's own ring (`-D`/`--no-domain-init`).
    pub no_domain_init: bool,
    /// Verbose logging (`-V`).
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            socket: std::env::var_os("XENSTORED_PATH")
                .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from),
            pid_file: None,
            foreground: false,
            trace_file: None,
            log_file: None,
            config: None,
            quota_overrides: Vec::new(),
            xen: None,
            no_domain_init: false,
            verbose: false,
        }
    }
}

/// A bad command line.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Option needs a value.
    #[error("option {0} needs a value")]
    MissingValue(String),
    /// Value does not parse.
    #[error("option {option}: {value:?} is not a non-negative integer")]
    BadNumber {
        /// Option.
        option: String,
        /// Value.
        value: String,
    },
    /// Unknown option.
    #[error("unknown option {0} (try --help)")]
    Unknown(String),
    /// Bad `--quota` spec.
    #[error("--quota expects name=value with a known name, got {0:?}")]
    BadQuota(String),
}

/// Usage text.
pub const USAGE: &str = "\
usage: xenstored-rs [options]
  -N, --no-fork            stay in the foreground
  -F, --pid-file FILE      write our pid to FILE
  -T, --trace-file FILE    write a debug trace of requests to FILE
      --log-file FILE      log here when daemonized (default /var/log/xen/xenstored-rs.log)
      --socket PATH        Unix socket (default $XENSTORED_PATH or /run/xenstored/socket)
  -c, --config FILE        quota config file (key = value lines)
      --quota NAME=VALUE   set one quota (nodes, node-size, watches, transactions,
                           transaction-nodes, outstanding, permissions, path-max)
  -E, --entry-nb N         = --quota nodes=N
  -S, --entry-size N       = --quota node-size=N
  -W, --watch-nb N         = --quota watches=N
  -t, --transaction N      = --quota transactions=N
  -A, --perm-nb N          = --quota permissions=N
  -M, --path-max N         = --quota path-max=N
  -D, --no-domain-init     do not serve dom0's own xenbus ring
      --xen / --no-xen     force or forbid Xen rings (default: auto-detect)
  -V, --verbose            debug logging
  -h, --help               this text
Accepted and ignored for compatibility: -R/--no-recovery, -I/--internal-db, -K/--keep-orphans.";

impl Options {
    /// Parses arguments (without argv[0]). `Ok(None)` means help was asked for.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Options>, UsageError> {
        let mut o = Options::default();
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let value = |it: &mut I::IntoIter| {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or_else(|| UsageError::MissingValue(name.clone()))
            };
            let number = |option: &str, v: String| {
                v.parse::<usize>().map_err(|_| UsageError::BadNumber {
                    option: option.to_string(),
                    value: v,
                })
            };
            let quota = match name.as_str() {
                "-E" | "--entry-nb" => Some("nodes"),
                "-S" | "--entry-size" => Some("node-size"),
                "-W" | "--watch-nb" => Some("watches"),
                "-t" | "--transaction" => Some("transactions"),
                "-A" | "--perm-nb" => Some("permissions"),
                "-M" | "--path-max" => Some("path-max"),
                _ => None,
            };
            if let Some(q) = quota {
                let v = number(&name, value(&mut it)?)?;
                o.quota_overrides.push((q.to_string(), v));
                continue;
            }
            match name.as_str() {
                "-h" | "--help" => return Ok(None),
                "-N" | "--no-fork" => o.foreground = true,
                "-F" | "--pid-file" => o.pid_file = Some(value(&mut it)?.into()),
                "-T" | "--trace-file" => o.trace_file = Some(value(&mut it)?.into()),
                "--log-file" => o.log_file = Some(value(&mut it)?.into()),
                "--socket" => o.socket = value(&mut it)?.into(),
                "-c" | "--config" => o.config = Some(value(&mut it)?.into()),
                "--quota" => {
                    let spec = value(&mut it)?;
                    let (k, v) = spec
                        .split_once('=')
                        .ok_or_else(|| UsageError::BadQuota(spec.clone()))?;
                    let v = v
                        .parse::<usize>()
                        .map_err(|_| UsageError::BadQuota(spec.clone()))?;
                    if !Quotas::default().set(k, v) {
                        return Err(UsageError::BadQuota(spec));
                    }
                    o.quota_overrides.push((k.to_string(), v));
                }
                "-D" | "--no-domain-init" => o.no_domain_init = true,
                "--xen" => o.xen = Some(true),
                "--no-xen" => o.xen = Some(false),
                "-V" | "--verbose" => o.verbose = true,
                "-R" | "--no-recovery" | "-I" | "--internal-db" | "-K" | "--keep-orphans" => {}
                _ => return Err(UsageError::Unknown(arg)),
            }
        }
        Ok(Some(o))
    }
}

/// True when this looks like a Xen control domain with the devices we need.
pub fn xen_available() -> bool {
    std::path::Path::new("/dev/xen/evtchn").exists()
        && std::fs::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"))
}

/// Forks unless `-N` (the starter waits until the daemon serves), sets up Xen (if any) and
/// the socket, writes the pid file and serves until killed.
pub fn run(opts: Options) -> Result<(), String> {
    if opts.foreground {
        return serve(&opts, None);
    }
    match crate::sys::fork_into_background().map_err(|e| format!("fork: {e}"))? {
        crate::sys::ForkRole::Parent { report } => {
            let report = report.trim();
            if report == "OK" {
                Ok(())
            } else if report.is_empty() {
                Err("daemon exited during startup (see its log)".into())
            } else {
                Err(report.to_string())
            }
        }
        crate::sys::ForkRole::Child { report } => {
            let log_path = opts
                .log_file
                .clone()
                .unwrap_or_else(|| PathBuf::from("/var/log/xen/xenstored-rs.log"));
            if let Some(dir) = log_path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| format!("cannot open log {}: {e}", log_path.display()));
            let detached = log.and_then(|l| {
                crate::sys::detach_stdio(&l).map_err(|e| format!("cannot detach stdio: {e}"))
            });
            if let Err(e) = detached {
                let _ = std::io::Write::write_all(&mut &report, e.as_bytes());
                return Err(e);
            }
            serve(&opts, Some(report))
        }
    }
}

fn serve(opts: &Options, report: Option<std::fs::File>) -> Result<(), String> {
    let tell = |report: Option<std::fs::File>, msg: &str| {
        if let Some(mut r) = report {
            let _ = std::io::Write::write_all(&mut r, msg.as_bytes());
        }
    };
    let (mut server, use_xen) = match setup(opts) {
        Ok(s) => s,
        Err(e) => {
            tell(report, &e);
            return Err(e);
        }
    };
    if let Some(pid_file) = &opts.pid_file {
        if let Err(e) = std::fs::write(pid_file, format!("{}\n", std::process::id())) {
            let e = format!("cannot write pid file {}: {e}", pid_file.display());
            tell(report, &e);
            return Err(e);
        }
    }
    info!(socket = %opts.socket.display(), xen = use_xen, "xenstored-rs serving");
    tell(report, "OK\n");
    let stop = Arc::new(AtomicBool::new(false));
    server
        .run(&stop)
        .map_err(|e| format!("event loop failed: {e}"))
}

fn setup(opts: &Options) -> Result<(server::Server, bool), String> {
    let mut quotas = match &opts.config {
        Some(path) => Quotas::load(path).map_err(|e| e.to_string())?,
        None => Quotas::default(),
    };
    for (k, v) in &opts.quota_overrides {
        quotas.set(k, *v);
    }
    let use_xen = opts.xen.unwrap_or_else(xen_available);
    let rings = if use_xen {
        Some(Rc::new(RefCell::new(
            XenRings::open().map_err(|e| e.to_string())?,
        )))
    } else {
        None
    };
    let platform: Box<dyn Platform> = match &rings {
        Some(r) => Box::new(XenPlatform(r.clone())),
        None => Box::new(NoXen),
    };
    let mut core = Core::new(quotas, platform);
    if let Some(r) = &rings {
        if !opts.no_domain_init {
            let attached = r.borrow_mut().attach_dom0();
            if let Err(e) = attached {
                warn!(error = %e, "dom0's ring is not served (dom0 kernel xenbus will wait)");
            }
        }
        if r.borrow().rings.contains_key(&0) {
            core.attach_domain(0);
        }
    }
    let server = server::Server::bind(core, &opts.socket, rings)
        .map_err(|e| format!("cannot listen on {}: {e}", opts.socket.display()))?;
    Ok((server, use_xen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, UsageError> {
        Options::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn accepts_the_c_daemons_usual_flags() {
        let o = parse(&[
            "--pid-file=/run/xenstored.pid",
            "-N",
            "-T",
            "/tmp/t",
            "-E",
            "50",
            "-R",
            "-W",
            "3",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            o.pid_file.as_deref(),
            Some(std::path::Path::new("/run/xenstored.pid"))
        );
        assert!(o.foreground);
        assert_eq!(
            o.trace_file.as_deref(),
            Some(std::path::Path::new("/tmp/t"))
        );
        assert_eq!(
            o.quota_overrides,
            vec![("nodes".to_string(), 50), ("watches".to_string(), 3)]
        );
    }

    #[test]
    fn bad_options_are_named() {
        assert!(parse(&["--bogus"])
            .unwrap_err()
            .to_string()
            .contains("--bogus"));
        assert!(parse(&["--pid-file"])
            .unwrap_err()
            .to_string()
            .contains("needs a value"));
        assert!(parse(&["--quota", "nodes=x"])
            .unwrap_err()
            .to_string()
            .contains("nodes=x"));
        assert!(parse(&["-E", "many"])
            .unwrap_err()
            .to_string()
            .contains("many"));
        assert!(parse(&["--help"]).unwrap().is_none());
    }
}
