//! The qemu device model process of a domain (the PV framebuffer's backend): started in its
//! own process group with its output in a log file, as libxl does, found again later by the
//! pid recorded in xenstore, and stopped only after checking that this pid still is the
//! device model of that domain (a recorded pid may have been reused by an unrelated process).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{Error, Result};

/// How many old logs libxl keeps next to the current one (`NAME.log.1` … `NAME.log.10`).
const KEPT_LOGS: u32 = 10;

/// What to run.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    /// stdout and stderr go here (appended, after rotating the previous logs away).
    pub log: &'a Path,
}

/// Moves `NAME.log` to `NAME.log.1`, `.1` to `.2` and so on, dropping the oldest, so each run
/// of a domain's device model starts a fresh log as libxl's do.
pub fn rotate_log(log: &Path) {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    for n in (1..KEPT_LOGS).rev() {
        let from = numbered(n);
        if from.exists() {
            let _ = std::fs::rename(&from, numbered(n + 1));
        }
    }
    if log.exists() {
        let _ = std::fs::rename(log, numbered(1));
    }
}

fn open_log(log: &Path) -> Result<File> {
    let io_err = |source| Error::DeviceModelLog {
        path: log.to_path_buf(),
        source,
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(io_err)?;
    }
    rotate_log(log);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err)
}

/// Starts the device model: stdin from /dev/null, stdout and stderr into the log, in a
/// process group of its own so a terminal's Ctrl-C (e.g. under `xm create -c`) does not
/// reach it. The caller keeps the [`Child`] to notice an early exit and to reap it.
pub fn spawn(launch: &Launch<'_>) -> Result<Child> {
    let log = open_log(launch.log)?;
    let log_err = log.try_clone().map_err(|source| Error::DeviceModelLog {
        path: launch.log.to_path_buf(),
        source,
    })?;
    Command::new(launch.program)
        .args(launch.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|source| Error::DeviceModelStart {
            program: launch.program.to_path_buf(),
            source,
        })
}

/// Whether a `/proc/PID/cmdline` (NUL-separated arguments) is that of a device model serving
/// `domid`: it has the arguments `-xen-domid DOMID`.
pub fn cmdline_serves_domain(cmdline: &[u8], domid: u32) -> bool {
    let wanted = domid.to_string();
    let mut args = cmdline.split(|&b| b == 0);
    while let Some(arg) = args.next() {
        if arg == b"-xen-domid" {
            return args.next() == Some(wanted.as_bytes());
        }
    }
    false
}

/// Whether process `pid` is alive (not a zombie) and is the device model of `domid`.
pub fn serves_domain(pid: u32, domid: u32) -> bool {
    // a zombie's cmdline reads empty, so it never matches
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline_serves_domain(&cmdline, domid))
}

/// Whether `pid` still runs: its /proc entry exists and it is not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the parenthesised command name, which may itself hold ") "
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// How [`stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// No device model of that domain runs under this pid (it exited, or the pid is now
    /// another process's, which is left alone).
    NotRunning,
    /// It exited after SIGTERM.
    Terminated,
    /// It ignored SIGTERM for `grace` and was killed.
    Killed,
}

/// Stops the device model `pid` of `domid`: SIGTERM, then SIGKILL if it is still running
/// after `grace`. A pid that is not (or no longer) that domain's device model is not touched.
pub fn stop(pid: u32, domid: u32, grace: Duration) -> Result<Stopped> {
    if pid == 0 || pid > i32::MAX as u32 || !serves_domain(pid, domid) {
        return Ok(Stopped::NotRunning);
    }
    let target = Pid::from_raw(pid as i32);
    let signal = |sig| match kill(target, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(errno) => Err(Error::DeviceModelSignal {
            pid,
            source: io::Error::from(errno),
        }),
    };
    signal(Signal::SIGTERM)?;
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !running(pid) {
            return Ok(Stopped::Terminated);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !running(pid) {
        return Ok(Stopped::Terminated);
    }
    signal(Signal::SIGKILL)?;
    Ok(Stopped::Killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_must_name_the_domain_right_after_xen_domid() {
        let qemu = b"/usr/libexec/xen-qemu-system-i386\0-xen-domid\x0012\0-xen-attach\0";
        assert!(cmdline_serves_domain(qemu, 12));
        assert!(!cmdline_serves_domain(qemu, 1));
        assert!(!cmdline_serves_domain(b"/bin/sleep\x0012\0", 12));
        assert!(!cmdline_serves_domain(b"", 12));
        assert!(!cmdline_serves_domain(b"qemu\0-xen-domid\0", 12));
    }

    #[test]
    fn logs_rotate_keeping_the_previous_runs() {
        let dir = std::env::temp_dir().join(format!("dm-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("qemu-dm-web.log");
        std::fs::write(&log, "run 2").unwrap();
        std::fs::write(dir.join("qemu-dm-web.log.1"), "run 1").unwrap();
        rotate_log(&log);
        assert!(!log.exists());
        let read = |n: u32| std::fs::read_to_string(dir.join(format!("qemu-dm-web.log.{n}")));
        assert_eq!(read(1).unwrap(), "run 2");
        assert_eq!(read(2).unwrap(), "run 1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A real process posing as the device model of domain 4242: stop() checks its command
    /// line, terminates it, and leaves a process of another domain alone.
    #[test]
    fn stop_terminates_only_the_device_model_of_that_domain() {
        let dir = std::env::temp_dir().join(format!("dm-stop-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // blocks (without a child process, without spinning) opening a FIFO nobody writes
        let fifo = dir.join("never");
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let fifo = fifo.to_string_lossy().into_owned();
        let args: Vec<String> = ["-c", "read x < \"$0\"", &fifo, "-xen-domid", "4242"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut child = spawn(&Launch {
            program: Path::new("/bin/sh"),
            args: &args,
            log: &dir.join("qemu-dm-fake.log"),
        })
        .unwrap();
        let pid = child.id();
        // until the child has exec'd, its cmdline is still ours
        let deadline = Instant::now() + Duration::from_secs(10);
        while !serves_domain(pid, 4242) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(serves_domain(pid, 4242));
        assert_eq!(
            stop(pid, 4243, Duration::from_secs(1)).unwrap(),
            Stopped::NotRunning
        );
        assert!(running(pid), "a process of another domain was signalled");
        let outcome = stop(pid, 4242, Duration::from_secs(5)).unwrap();
        assert_ne!(outcome, Stopped::NotRunning);
        assert!(!child.wait().unwrap().success());
        assert_eq!(
            stop(pid, 4242, Duration::from_secs(1)).unwrap(),
            Stopped::NotRunning
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
