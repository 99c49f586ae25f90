//! `xm console` and `xm create -c`: the admin's terminal attached to a guest's PV console, the
//! job Xen's `xenconsole` client does for `xl console`.
//!
//! xenconsoled (in dom0) owns the guest's console ring and serves it on a pty whose path it
//! writes to `/local/domain/<domid>/console/tty`. Reading or watching that node is the caller's
//! job (no xenstore here); it hands us the path. We open the pty, put the local terminal in raw
//! mode when input is a terminal, copy bytes both ways with poll(2) (no threads, so detaching is
//! instant) and stop when the user types the escape character (Ctrl-] by default), when the pty
//! goes away (the domain died or rebooted: the caller may wait for the next pty and attach again,
//! as `xl console` does), or on SIGTERM/SIGHUP/SIGINT. The terminal is restored however we leave.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::termios::{self, SetArg, Termios};
use signal_hook::iterator::backend::SignalDelivery;
use signal_hook::iterator::exfiltrator::SignalOnly;

use crate::error::{Error, Result};

/// Ctrl-], the escape character of `xl console`, `xenconsole` and telnet.
pub const DEFAULT_ESCAPE: u8 = 0x1d;

/// How often [`wait_for_path`] looks for the pty again.
const PTY_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Bytes moved per read: a screenful of guest output, or a paste from the terminal.
const COPY_CHUNK: usize = 4096;

/// Signals that end an attachment gracefully (terminal restored) instead of killing us. In raw
/// mode the terminal sends none of them, but `kill`, a closing ssh session or a non-tty Ctrl-C
/// still can.
const DETACH_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT];

/// What [`attach`] attaches to and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleAttach {
    /// The pty xenconsoled serves the console on: the value of
    /// `/local/domain/<domid>/console/tty`, e.g. `/dev/pts/3`.
    pub pty: PathBuf,
    /// The byte that detaches when typed; it is not forwarded to the guest. See
    /// [`parse_escape`] for the `-e` syntax.
    pub escape: u8,
    /// Wait up to this long for `pty` to appear (xenconsoled may not have created it yet just
    /// after the domain is built); `None`: it must exist already.
    pub wait_for_pty: Option<Duration>,
    /// What to do when input that is not a terminal reaches its end. (A terminal that reports
    /// end of file has hung up, and attach always returns [`Detached::InputClosed`] then.)
    pub on_input_eof: InputEof,
}

impl ConsoleAttach {
    /// Attach to `pty` with `xl console`'s defaults: escape Ctrl-], no waiting, and input that
    /// runs out (a script's `</dev/null`) leaves the guest's output flowing.
    pub fn new(pty: impl Into<PathBuf>) -> Self {
        ConsoleAttach {
            pty: pty.into(),
            escape: DEFAULT_ESCAPE,
            wait_for_pty: None,
            on_input_eof: InputEof::default(),
        }
    }
}

/// What happens when non-terminal input reaches end of file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputEof {
    /// Stop reading input and keep copying the guest's output until the pty closes or a signal
    /// arrives (what xenconsole does with non-interactive input: it never reads it).
    #[default]
    KeepOutput,
    /// Detach with [`Detached::InputClosed`].
    Detach,
}

/// Why [`attach`] returned. The terminal has been restored in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detached {
    /// The user typed the escape character.
    ByUser,
    /// The pty reported end of file or EIO: xenconsoled closed it because the domain died or
    /// rebooted. With `on_reboot=restart` the caller may wait for the new domain's pty and
    /// attach again.
    PtyClosed,
    /// The input ended: the terminal hung up, or non-terminal input ran out with
    /// [`InputEof::Detach`].
    InputClosed,
    /// SIGTERM, SIGHUP or SIGINT (signal number) arrived while attached. The signal was
    /// consumed; the caller should exit as that signal would have made it (status 128 + n).
    Signalled(i32),
}

/// Parses an escape character given as `xl console -e` and `xenconsole --escape` take it:
/// one character (`q`), or `^` and a character for its control code (`^]` is 0x1d).
pub fn parse_escape(spec: &str) -> Result<u8> {
    match spec.as_bytes() {
        [b'^', c] => Ok(c & 0x1f),
        [c] => Ok(*c),
        _ => Err(Error::BadConsoleEscape(spec.to_string())),
    }
}

/// Waits until `path` exists, looking every 50 ms, for at most `limit`.
pub fn wait_for_path(path: &Path, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        match path.try_exists() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(source) => {
                return Err(Error::ConsolePty {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        let waited = start.elapsed();
        if waited >= limit {
            return Err(Error::ConsolePtyTimeout {
                path: path.to_path_buf(),
                waited: limit,
            });
        }
        std::thread::sleep(PTY_POLL_INTERVAL.min(limit - waited));
    }
}

/// [`attach`] on this process's stdin and stdout.
///
/// Bytes already buffered inside `std::io::stdin()` (by an earlier `read_line`, say) are not
/// seen: attach reads the file descriptor.
pub fn attach_stdio(opts: &ConsoleAttach) -> Result<Detached> {
    // what the caller printed must reach the terminal before the guest's output
    io::stdout().flush().map_err(|source| Error::Console {
        op: "flushing standard output",
        source,
    })?;
    attach(opts, io::stdin(), io::stdout())
}

/// Attaches `input` and `output` to the console pty in `opts` until the user types the escape
/// character, the pty closes, the input ends or a termination signal arrives.
///
/// When `input` is a terminal it is put in raw mode (every key goes to the guest, Ctrl-C
/// included) and restored before returning. Output is written as it comes, unbuffered.
///
/// SIGTERM, SIGHUP and SIGINT end the attachment gracefully, whichever thread they are delivered
/// to. To do that the first attach installs process-wide handlers that stay: outside an
/// attachment they do what the default action does (terminate); a signal the process ignores
/// when they are installed (SIGHUP under `nohup`) is left alone.
pub fn attach(opts: &ConsoleAttach, input: impl AsFd, output: impl AsFd) -> Result<Detached> {
    let (input, output) = (input.as_fd(), output.as_fd());
    if let Some(limit) = opts.wait_for_pty {
        wait_for_path(&opts.pty, limit)?;
    }
    // Declaration order matters: locals drop in reverse, so the terminal is restored before
    // the signals get their default action back.
    let mut signals = SignalWatch::start()?;
    let pty = open_pty(&opts.pty)?;
    let interactive = nix::unistd::isatty(input).unwrap_or(false);
    let _raw = if interactive {
        Some(RawMode::enter(input)?)
    } else {
        None
    };
    tracing::debug!(pty = %opts.pty.display(), interactive, "attached to console");
    let outcome = copy_until_detached(&mut Session {
        pty: &pty,
        pty_path: &opts.pty,
        input,
        output,
        signals: &mut signals,
        escape: opts.escape,
        interactive,
        on_input_eof: opts.on_input_eof,
    });
    tracing::debug!(pty = %opts.pty.display(), ?outcome, "detached from console");
    outcome
}

/// Opens xenconsoled's pty without making it our controlling terminal, and in raw mode so its
/// line discipline passes bytes through untouched.
fn open_pty(path: &Path) -> Result<File> {
    let pty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|source| Error::ConsolePty {
            path: path.to_path_buf(),
            source,
        })?;
    // xenconsoled already makes its pty raw; doing it again (as xenconsole does) costs nothing
    // and covers a pty created some other way. Not restored: the pty is not the admin's.
    match termios::tcgetattr(&pty) {
        Ok(mut settings) => {
            termios::cfmakeraw(&mut settings);
            if let Err(e) = termios::tcsetattr(&pty, SetArg::TCSANOW, &settings) {
                tracing::warn!(pty = %path.display(), error = %e, "could not make console pty raw");
            }
        }
        Err(e) => {
            tracing::warn!(pty = %path.display(), error = %e, "console pty is not a terminal")
        }
    }
    Ok(pty)
}

/// The local terminal in raw mode; its previous settings come back on drop.
struct RawMode<'fd> {
    fd: BorrowedFd<'fd>,
    saved: Termios,
}

impl<'fd> RawMode<'fd> {
    fn enter(fd: BorrowedFd<'fd>) -> Result<Self> {
        let err = |op, errno: Errno| Error::Console {
            op,
            source: errno.into(),
        };
        let saved = termios::tcgetattr(fd).map_err(|e| err("reading terminal settings", e))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)
            .map_err(|e| err("putting the terminal in raw mode", e))?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        if let Err(e) = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved) {
            tracing::warn!(error = %e, "could not restore terminal settings (try `stty sane`)");
        }
    }
}

/// Process-wide routing of [`DETACH_SIGNALS`], installed by the first attach and never removed
/// (signal-hook cannot hand a signal back to its default action).
#[derive(Debug)]
struct SignalRouting {
    /// The signals routed: those not ignored when the routing was installed.
    routed: Vec<i32>,
    /// True while no attachment is active: the signals then terminate the process as usual.
    default_action: Arc<AtomicBool>,
    /// Attachments active (on any thread).
    active: Mutex<usize>,
}

fn signal_routing() -> &'static SignalRouting {
    static ROUTING: OnceLock<SignalRouting> = OnceLock::new();
    ROUTING.get_or_init(|| {
        let default_action = Arc::new(AtomicBool::new(true));
        let ignored = std::fs::read_to_string("/proc/self/status")
            .map(|status| ignored_signals(&status))
            .unwrap_or(0);
        let mut routed = Vec::new();
        for signal in DETACH_SIGNALS {
            let signo = signal as i32;
            if ignored & (1u64 << (signo - 1)) != 0 {
                tracing::debug!(%signal, "signal is ignored: a console attachment leaves it be");
                continue;
            }
            // registered first, so it runs before (and, outside an attachment, instead of) the
            // wake-ups an attachment adds
            match signal_hook::flag::register_conditional_default(
                signo,
                Arc::clone(&default_action),
            ) {
                Ok(_) => routed.push(signo),
                Err(e) => tracing::warn!(%signal, error = %e,
                    "cannot route signal: it will kill a console attachment without restoring the terminal"),
            }
        }
        SignalRouting {
            routed,
            default_action,
            active: Mutex::new(0),
        }
    })
}

/// The `SigIgn:` mask of a `/proc/<pid>/status` text (bit n-1 for signal n); 0 if absent.
fn ignored_signals(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0)
}

/// One attachment's view of the routed signals: a self-pipe that the handlers write to.
struct SignalWatch {
    delivery: SignalDelivery<UnixStream, SignalOnly>,
}

impl SignalWatch {
    fn start() -> Result<Self> {
        let err = |source| Error::Console {
            op: "setting up signal handling",
            source,
        };
        let routing = signal_routing();
        let (read, write) = UnixStream::pair().map_err(err)?;
        read.set_nonblocking(true).map_err(err)?;
        let delivery =
            SignalDelivery::with_pipe(read, write, SignalOnly, &routing.routed).map_err(err)?;
        let mut active = routing
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *active += 1;
        routing.default_action.store(false, Ordering::SeqCst);
        Ok(SignalWatch { delivery })
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.delivery.get_read().as_fd()
    }

    /// A signal that arrived since the last call, if any.
    fn take(&mut self) -> Option<i32> {
        self.delivery.pending().next()
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        // the default action comes back while our wake-up is still registered (it runs first),
        // so no signal falls between the two; `delivery` unregisters itself afterwards
        let routing = signal_routing();
        let mut active = routing
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *active = active.saturating_sub(1);
        if *active == 0 {
            routing.default_action.store(true, Ordering::SeqCst);
        }
    }
}

/// Everything the copy loop works with.
struct Session<'a> {
    pty: &'a File,
    pty_path: &'a Path,
    input: BorrowedFd<'a>,
    output: BorrowedFd<'a>,
    signals: &'a mut SignalWatch,
    escape: u8,
    interactive: bool,
    on_input_eof: InputEof,
}

impl Session<'_> {
    fn pty_error(&self, errno: Errno) -> Error {
        Error::ConsolePty {
            path: self.pty_path.to_path_buf(),
            source: errno.into(),
        }
    }
}

fn console_error(op: &'static str, errno: Errno) -> Error {
    Error::Console {
        op,
        source: errno.into(),
    }
}

fn copy_until_detached(s: &mut Session<'_>) -> Result<Detached> {
    let wake = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
    let mut input_open = true;
    let mut buf = [0u8; COPY_CHUNK];
    loop {
        let (signal_ready, pty_ready, input_ready) = {
            let mut fds = vec![
                PollFd::new(s.signals.fd(), PollFlags::POLLIN),
                PollFd::new(s.pty.as_fd(), PollFlags::POLLIN),
            ];
            if input_open {
                fds.push(PollFd::new(s.input, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(console_error("waiting for console or terminal input", e)),
            }
            let revents: Vec<PollFlags> = fds
                .iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect();
            // (an input that is not open at all shows as ready and fails to read, below)
            if revents[..2].iter().any(|r| r.contains(PollFlags::POLLNVAL)) {
                return Err(console_error("polling", Errno::EBADF));
            }
            let ready = |i: usize| {
                revents
                    .get(i)
                    .is_some_and(|r| r.intersects(wake | PollFlags::POLLNVAL))
            };
            (ready(0), ready(1), ready(2))
        };

        if signal_ready {
            if let Some(signo) = s.signals.take() {
                tracing::debug!(signo, "signal while attached to console");
                return Ok(Detached::Signalled(signo));
            }
        }

        // guest output first, so what the guest said before a detach is shown
        if pty_ready {
            match nix::unistd::read(s.pty, &mut buf) {
                Ok(0) | Err(Errno::EIO) => return Ok(Detached::PtyClosed),
                Ok(n) => write_all(s.output, &buf[..n])
                    .map_err(|e| console_error("writing to the terminal", e))?,
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(s.pty_error(e)),
            }
        }

        if input_ready {
            let typed = match nix::unistd::read(s.input, &mut buf) {
                Ok(n) if n > 0 => &buf[..n],
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                // end of file; EIO: a terminal that hung up
                Ok(_) | Err(Errno::EIO) => {
                    if s.interactive || s.on_input_eof == InputEof::Detach {
                        return Ok(Detached::InputClosed);
                    }
                    input_open = false;
                    continue;
                }
                // `nohup` gives a write-only /dev/null, a script may close stdin: input that is
                // not a terminal and cannot be read is no input, as xenconsole treats it
                Err(e) if !s.interactive => {
                    tracing::debug!(error = %e, "console input unreadable: treated as ended");
                    if s.on_input_eof == InputEof::Detach {
                        return Ok(Detached::InputClosed);
                    }
                    input_open = false;
                    continue;
                }
                Err(e) => return Err(console_error("reading the terminal", e)),
            };
            let escape_at = typed.iter().position(|&b| b == s.escape);
            let forward = &typed[..escape_at.unwrap_or(typed.len())];
            match write_all(s.pty.as_fd(), forward) {
                Ok(()) => {}
                Err(Errno::EIO) => return Ok(Detached::PtyClosed),
                Err(e) => return Err(s.pty_error(e)),
            }
            if escape_at.is_some() {
                return Ok(Detached::ByUser);
            }
        }
    }
}

/// Writes all of `data`, waiting for room when `fd` is non-blocking and full.
fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> std::result::Result<(), Errno> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::fd::OwnedFd;
    use std::sync::{RwLock, RwLockReadGuard};

    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, openpty, posix_openpt, ptsname_r, unlockpt, PtyMaster};
    use nix::sys::termios::{ControlFlags, InputFlags, LocalFlags, OutputFlags};

    const PATIENCE: Duration = Duration::from_secs(5);

    /// Signals go to the whole process, so the test that sends one runs alone (write lock);
    /// every other test that attaches holds a read lock.
    static SIGNALS: RwLock<()> = RwLock::new(());

    fn attaching() -> RwLockReadGuard<'static, ()> {
        SIGNALS.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// xenconsoled's side of a console: the pty master, and the slave's path it would write
    /// to xenstore.
    struct GuestPty {
        master: PtyMaster,
        path: PathBuf,
    }

    fn guest_pty() -> GuestPty {
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).expect("posix_openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let path = PathBuf::from(ptsname_r(&master).expect("ptsname_r"));
        GuestPty { master, path }
    }

    /// The admin's terminal: the test types into and reads the screen from `master`;
    /// attach gets `slave` as its input and output.
    fn admin_terminal() -> (OwnedFd, OwnedFd) {
        let pair = openpty(None, None).expect("openpty");
        (pair.master, pair.slave)
    }

    type Settings = (InputFlags, OutputFlags, ControlFlags, LocalFlags, Vec<u8>);

    fn settings(fd: impl AsFd) -> Settings {
        let t = termios::tcgetattr(fd).expect("tcgetattr");
        (
            t.input_flags,
            t.output_flags,
            t.control_flags,
            t.local_flags,
            t.control_chars.to_vec(),
        )
    }

    fn wait_for_raw_mode(terminal: impl AsFd) {
        let start = Instant::now();
        while settings(terminal.as_fd()).3.contains(LocalFlags::ICANON) {
            assert!(start.elapsed() < PATIENCE, "terminal never went raw");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads from `fd` until `expected` has been seen, the other side closes or PATIENCE runs
    /// out; returns everything read.
    fn read_until(fd: impl AsFd, expected: &[u8]) -> Vec<u8> {
        let fd = fd.as_fd();
        let start = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !seen.windows(expected.len()).any(|w| w == expected) {
            let Some(left) = PATIENCE.checked_sub(start.elapsed()) else {
                break;
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
            if poll(&mut fds, timeout).unwrap_or(0) == 0 {
                break;
            }
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(Errno::EIO) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        seen
    }

    /// Everything still buffered on a pty master whose slave has been closed.
    fn drain(fd: impl AsFd) -> Vec<u8> {
        read_until(fd, b"\0never sent\0")
    }

    fn type_in(fd: impl AsFd, bytes: &[u8]) {
        write_all(fd.as_fd(), bytes).expect("typing");
    }

    #[test]
    fn escape_parses_like_xl_console_dash_e() {
        assert_eq!(parse_escape("^]").unwrap(), 0x1d);
        assert_eq!(parse_escape("^a").unwrap(), 0x01);
        assert_eq!(parse_escape("q").unwrap(), b'q');
        assert_eq!(parse_escape("^").unwrap(), b'^');
        for bad in ["", "ab", "^ab", "é"] {
            let err = parse_escape(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn guest_output_reaches_the_terminal_at_once_and_unchanged() {
        let _shared = attaching();
        let guest = guest_pty();
        let (screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            wait_for_raw_mode(&terminal);
            // no newline: a login prompt must show without waiting for one
            type_in(&guest.master, b"Debian GNU/Linux 12\r\nlogin: ");
            let shown = read_until(&screen, b"login: ");
            assert_eq!(shown, b"Debian GNU/Linux 12\r\nlogin: ");
            type_in(&screen, &[DEFAULT_ESCAPE]);
            assert_eq!(attached.join().unwrap().unwrap(), Detached::ByUser);
        });
        assert_eq!(settings(&terminal), before);
    }

    #[test]
    fn typed_bytes_reach_the_guest_verbatim_in_raw_mode() {
        let _shared = attaching();
        let guest = guest_pty();
        let (screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        assert!(before.3.contains(LocalFlags::ICANON | LocalFlags::ECHO));
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            wait_for_raw_mode(&terminal);
            // Ctrl-C and a bare CR go to the guest as they are: no signal, no CR->NL, no echo
            type_in(&screen, b"ls\r\x03");
            assert_eq!(read_until(&guest.master, b"\x03"), b"ls\r\x03");
            type_in(&screen, &[DEFAULT_ESCAPE]);
            assert_eq!(attached.join().unwrap().unwrap(), Detached::ByUser);
        });
        assert_eq!(settings(&terminal), before);
        drop(terminal);
        assert_eq!(drain(&screen), b"", "nothing echoed to the screen");
    }

    #[test]
    fn escape_detaches_and_only_what_came_before_it_is_forwarded() {
        let _shared = attaching();
        let guest = guest_pty();
        let (screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            wait_for_raw_mode(&terminal);
            type_in(&screen, b"ab\x1dcd");
            assert_eq!(attached.join().unwrap().unwrap(), Detached::ByUser);
        });
        assert_eq!(drain(&guest.master), b"ab");
        assert_eq!(settings(&terminal), before);
    }

    #[test]
    fn a_configured_escape_detaches_and_ctrl_bracket_is_then_forwarded() {
        let _shared = attaching();
        let guest = guest_pty();
        let (screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        let opts = ConsoleAttach {
            escape: parse_escape("^a").unwrap(),
            ..ConsoleAttach::new(&guest.path)
        };
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            wait_for_raw_mode(&terminal);
            type_in(&screen, b"\x1d");
            assert_eq!(read_until(&guest.master, b"\x1d"), b"\x1d");
            type_in(&screen, b"\x01");
            assert_eq!(attached.join().unwrap().unwrap(), Detached::ByUser);
        });
        assert_eq!(settings(&terminal), before);
    }

    #[test]
    fn the_guest_side_closing_reports_pty_closed_and_restores_the_terminal() {
        let _shared = attaching();
        let guest = guest_pty();
        let (screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            wait_for_raw_mode(&terminal);
            type_in(&guest.master, b"reboot: Power down\r\n");
            assert_eq!(read_until(&screen, b"down\r\n"), b"reboot: Power down\r\n");
            // xenconsoled closes the master when the domain goes away
            drop(guest.master);
            assert_eq!(attached.join().unwrap().unwrap(), Detached::PtyClosed);
        });
        assert_eq!(settings(&terminal), before);
    }

    #[test]
    fn sigterm_detaches_gracefully_and_restores_the_terminal() {
        let _alone = SIGNALS.write().unwrap_or_else(PoisonError::into_inner);
        let guest = guest_pty();
        let (_screen, terminal) = admin_terminal();
        let before = settings(&terminal);
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &terminal, &terminal));
            // raw mode comes after the signal routing, so the signal cannot kill the test
            wait_for_raw_mode(&terminal);
            // to the process, as `kill` does: whichever thread takes it, the attachment ends
            nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGTERM).unwrap();
            assert_eq!(
                attached.join().unwrap().unwrap(),
                Detached::Signalled(Signal::SIGTERM as i32)
            );
        });
        assert_eq!(settings(&terminal), before);
    }

    #[test]
    fn ignored_signals_are_read_from_proc_status() {
        let status = "Name:\txm\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001001\n";
        let ignored = ignored_signals(status);
        assert_ne!(ignored & (1 << (Signal::SIGHUP as i32 - 1)), 0);
        assert_ne!(ignored & (1 << (Signal::SIGPIPE as i32 - 1)), 0);
        assert_eq!(ignored & (1 << (Signal::SIGTERM as i32 - 1)), 0);
        assert_eq!(ignored_signals("Name:\txm\n"), 0);
    }

    #[test]
    fn input_that_is_not_a_terminal_is_copied_without_raw_mode() {
        let _shared = attaching();
        let guest = guest_pty();
        let (input_rx, input_tx) = nix::unistd::pipe().unwrap();
        let (output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &input_rx, &output_tx));
            type_in(&input_tx, b"root\n");
            assert_eq!(read_until(&guest.master, b"root\n"), b"root\n");
            // end of input: the guest's output keeps flowing (InputEof::KeepOutput)
            drop(input_tx);
            type_in(&guest.master, b"GUEST-DONE\r\n");
            assert_eq!(read_until(&output_rx, b"\r\n"), b"GUEST-DONE\r\n");
            drop(guest.master);
            assert_eq!(attached.join().unwrap().unwrap(), Detached::PtyClosed);
        });
    }

    #[test]
    fn input_that_is_not_a_terminal_can_detach_at_end_of_file() {
        let _shared = attaching();
        let guest = guest_pty();
        let (input_rx, input_tx) = nix::unistd::pipe().unwrap();
        let (_output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach {
            on_input_eof: InputEof::Detach,
            ..ConsoleAttach::new(&guest.path)
        };
        type_in(&input_tx, b"halt\n");
        drop(input_tx);
        let outcome = attach(&opts, &input_rx, &output_tx).unwrap();
        assert_eq!(outcome, Detached::InputClosed);
        assert_eq!(drain(&guest.master), b"halt\n");
    }

    #[test]
    fn unreadable_input_as_under_nohup_is_no_input() {
        let _shared = attaching();
        let guest = guest_pty();
        // nohup's stdin: /dev/null opened write-only, always "ready", every read EBADF
        let input = OpenOptions::new().write(true).open("/dev/null").unwrap();
        let (output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach::new(&guest.path);
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &input, &output_tx));
            // termios calls on a pty master act on its slave: raw once attach has opened it
            wait_for_raw_mode(&guest.master);
            type_in(&guest.master, b"GUEST-UP\r\n");
            assert_eq!(read_until(&output_rx, b"\r\n"), b"GUEST-UP\r\n");
            drop(guest.master);
            assert_eq!(attached.join().unwrap().unwrap(), Detached::PtyClosed);
        });
        let second_guest = guest_pty();
        let detaching = ConsoleAttach {
            on_input_eof: InputEof::Detach,
            ..ConsoleAttach::new(&second_guest.path)
        };
        let outcome = attach(&detaching, &input, &output_tx).unwrap();
        assert_eq!(outcome, Detached::InputClosed);
    }

    #[test]
    fn escape_in_piped_input_detaches() {
        let _shared = attaching();
        let guest = guest_pty();
        let (input_rx, input_tx) = nix::unistd::pipe().unwrap();
        let (_output_rx, output_tx) = nix::unistd::pipe().unwrap();
        type_in(&input_tx, b"x\x1dy");
        let outcome = attach(&ConsoleAttach::new(&guest.path), &input_rx, &output_tx).unwrap();
        assert_eq!(outcome, Detached::ByUser);
        assert_eq!(drain(&guest.master), b"x");
    }

    #[test]
    fn a_missing_pty_is_an_error_naming_it() {
        let _shared = attaching();
        let (input_rx, _input_tx) = nix::unistd::pipe().unwrap();
        let (_output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach::new("/dev/pts/no-such-console");
        let err = attach(&opts, &input_rx, &output_tx).unwrap_err();
        assert!(matches!(err, Error::ConsolePty { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("/dev/pts/no-such-console"), "{message}");
        assert!(message.contains("No such file"), "{message}");
    }

    #[test]
    fn waiting_for_a_pty_that_never_appears_times_out_naming_it() {
        let _shared = attaching();
        let (input_rx, _input_tx) = nix::unistd::pipe().unwrap();
        let (_output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach {
            wait_for_pty: Some(Duration::from_millis(200)),
            ..ConsoleAttach::new("/dev/pts/no-such-console")
        };
        let start = Instant::now();
        let err = attach(&opts, &input_rx, &output_tx).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert!(start.elapsed() < PATIENCE);
        assert!(matches!(err, Error::ConsolePtyTimeout { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("/dev/pts/no-such-console"), "{message}");
        assert!(message.contains("200ms"), "{message}");
    }

    #[test]
    fn waiting_for_a_pty_that_appears_later_attaches_to_it() {
        let _shared = attaching();
        let guest = guest_pty();
        let link = std::env::temp_dir().join(format!("xm-console-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        let (input_rx, input_tx) = nix::unistd::pipe().unwrap();
        let (_output_rx, output_tx) = nix::unistd::pipe().unwrap();
        let opts = ConsoleAttach {
            wait_for_pty: Some(PATIENCE),
            ..ConsoleAttach::new(&link)
        };
        type_in(&input_tx, b"hello\x1d");
        std::thread::scope(|scope| {
            let attached = scope.spawn(|| attach(&opts, &input_rx, &output_tx));
            std::thread::sleep(Duration::from_millis(120));
            // xenconsoled creating the pty late, played by a symlink to one
            std::os::unix::fs::symlink(&guest.path, &link).unwrap();
            assert_eq!(attached.join().unwrap().unwrap(), Detached::ByUser);
        });
        let _ = std::fs::remove_file(&link);
        assert_eq!(drain(&guest.master), b"hello");
    }
}
