//! What a config can see of the machine it runs on: shell commands (`commands.getoutput`),
//! file existence, the environment and `os.uname()`. Behind a trait so tests and the fuzzer
//! run configs without touching the host.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Output of a shell command cut off at this size.
pub const MAX_SHELL_OUTPUT: usize = 1 << 20;

/// Why a shell command produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellError {
    Failed(String),
    TimedOut,
}

/// What `os.path.exists` and friends see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Directory,
    Other,
}

/// `Sync` so the evaluator may run on its own thread.
pub trait Host: Sync {
    /// Runs `command` with `/bin/sh -c`, stderr merged into stdout as `commands.getoutput`
    /// did; returns the exit status and the output.
    fn shell(&self, command: &str, timeout: Duration) -> Result<(i32, String), ShellError>;
    fn path_kind(&self, path: &str) -> PathKind;
    fn environ(&self) -> Vec<(String, String)>;
    /// sysname, nodename, release, version, machine.
    fn uname(&self) -> [String; 5];
}

/// The real machine.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemHost;

fn read_proc(path: &str, fallback: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| fallback.to_string())
}

impl Host for SystemHost {
    fn shell(&self, command: &str, timeout: Duration) -> Result<(i32, String), ShellError> {
        // `{ cmd\n} 2>&1` is what Python 2's commands.getstatusoutput ran.
        let wrapped = format!("{{ {command}\n}} 2>&1");
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&wrapped)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ShellError::Failed(format!("cannot start /bin/sh: {e}")))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ShellError::Failed("no stdout pipe".into()));
        };
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.take(MAX_SHELL_OUTPUT as u64).read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // The reader ends once the pipe closes; a grandchild holding it open
                    // is left to finish on its own rather than blocking us.
                    return Err(ShellError::TimedOut);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(ShellError::Failed(e.to_string())),
            }
        };
        let output = reader
            .join()
            .map_err(|_| ShellError::Failed("output reader failed".into()))?;
        let mut text = String::from_utf8_lossy(&output).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        Ok((status.code().unwrap_or(-1), text))
    }

    fn path_kind(&self, path: &str) -> PathKind {
        match std::fs::metadata(Path::new(path)) {
            Err(_) => PathKind::Missing,
            Ok(m) if m.is_file() => PathKind::File,
            Ok(m) if m.is_dir() => PathKind::Directory,
            Ok(_) => PathKind::Other,
        }
    }

    fn environ(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }

    fn uname(&self) -> [String; 5] {
        [
            read_proc("/proc/sys/kernel/ostype", "Linux"),
            read_proc("/proc/sys/kernel/hostname", "localhost"),
            read_proc("/proc/sys/kernel/osrelease", "unknown"),
            read_proc("/proc/sys/kernel/version", "unknown"),
            std::env::consts::ARCH.to_string(),
        ]
    }
}

/// A fixed, side-effect-free host for tests, benchmarks and fuzzing: no shell, no files.
#[derive(Debug, Default, Clone)]
pub struct SandboxHost {
    pub existing_paths: Vec<String>,
    pub environment: Vec<(String, String)>,
    /// (command, output) pairs the fake shell answers; anything else fails.
    pub shell_answers: Vec<(String, String)>,
}

impl Host for SandboxHost {
    fn shell(&self, command: &str, _timeout: Duration) -> Result<(i32, String), ShellError> {
        self.shell_answers
            .iter()
            .find(|(c, _)| c == command)
            .map(|(_, out)| (0, out.clone()))
            .ok_or_else(|| ShellError::Failed("not available in the sandbox".into()))
    }

    fn path_kind(&self, path: &str) -> PathKind {
        if self.existing_paths.iter().any(|p| p == path) {
            PathKind::File
        } else {
            PathKind::Missing
        }
    }

    fn environ(&self) -> Vec<(String, String)> {
        self.environment.clone()
    }

    fn uname(&self) -> [String; 5] {
        ["Linux", "dom0", "6.1.0-sandbox", "#1 SMP", "x86_64"].map(String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_merges_stderr_and_strips_one_newline() {
        let out = SystemHost.shell("echo out; echo err >&2", Duration::from_secs(5));
        assert_eq!(out, Ok((0, "out\nerr".to_string())));
    }

    #[test]
    fn shell_reports_exit_status() {
        assert_eq!(
            SystemHost.shell("exit 3", Duration::from_secs(5)),
            Ok((3, String::new()))
        );
    }

    #[test]
    fn shell_times_out() {
        let started = Instant::now();
        assert_eq!(
            SystemHost.shell("exec sleep 5", Duration::from_millis(200)),
            Err(ShellError::TimedOut)
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
