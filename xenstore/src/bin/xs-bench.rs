//! `xs-bench`: micro-benchmark of a xenstore daemon over its Unix socket, the Rust equivalent
//! of the lab's `xsbench.c` (same options, same `RESULT` lines), so one binary measures
//! Debian's C xenstored and ours the same way.
//!
//! ```text
//! xs-bench [-n N] [-t NTX] [-i IDLE] [-r READ_PATH] [-w WRITE_PATH] [-x TX_PATH] [-W WARMUP]
//!          [-p XENSTORED_PID] [-s SOCKET] [-c CLIENTS]
//! ```
//! Opens IDLE extra connections first (each does one read, then stays idle), then times N
//! reads, N writes (16-byte value) and NTX transaction cycles (start, write, commit), each
//! twice: once with a clock read per operation (latency percentiles), once without. With
//! `-p PID` each RESULT line also gives the daemon's CPU time, read/write syscalls and sleeps
//! per operation over both passes (from `/proc/PID/{stat,status,io}`), and our own CPU time.
//! The client is a plain synchronous request/reply loop on the socket: no helper thread, so
//! the numbers measure the daemon, not the client.
//!
//! With `-c CLIENTS` (2 or more) it then also measures the daemon under concurrent load:
//! CLIENTS threads, each on its own connection, share the N reads (then the N writes, each
//! thread to its own node) and start together; ops/s is N over the time until the last one
//! finishes. A single client measures the round trip (client and daemon take turns); this
//! measures how many requests the daemon gets through when several wait for it, as on a host
//! where toolstack, backends and guests all talk to it. Those RESULT lines carry `clients=`.
//!
//! `-s /dev/xen/xenbus` (any character device) measures the ring path instead: dom0's kernel
//! forwards each request over its xenbus ring (`/proc/xen/xsd_kva` + event channel) to the
//! daemon, which is how backends and hotplug scripts reach it (`transport=xenbus-device`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use xenstore::wire::{self, Errno, Message, MsgType};

/// The daemon's socket, or the xenbus device (dom0's kernel relays over its ring).
enum Transport {
    Socket(UnixStream),
    Device(File),
}

impl Transport {
    fn open(path: &PathBuf) -> Result<Transport, String> {
        let is_device = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device());
        if is_device {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map(Transport::Device)
                .map_err(|e| format!("open {}: {e}", path.display()))
        } else {
            UnixStream::connect(path)
                .map(Transport::Socket)
                .map_err(|e| format!("connect {}: {e}", path.display()))
        }
    }

    fn try_clone(&self) -> Result<Transport, String> {
        match self {
            Transport::Socket(s) => s.try_clone().map(Transport::Socket),
            Transport::Device(f) => f.try_clone().map(Transport::Device),
        }
        .map_err(|e| e.to_string())
    }

    fn name(path: &PathBuf) -> &'static str {
        if std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device()) {
            "xenbus-device"
        } else {
            "unix-socket"
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Socket(s) => s.read(buf),
            Transport::Device(f) => f.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Socket(s) => s.write(buf),
            Transport::Device(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Conn {
    stream: Transport,
    /// Buffered reads: one syscall per reply, whatever the daemon.
    reader: std::io::BufReader<Transport>,
    req_id: u32,
}

impl Conn {
    fn open(socket: &PathBuf) -> Result<Conn, String> {
        let stream = Transport::open(socket)?;
        let reader = std::io::BufReader::new(stream.try_clone()?);
        Ok(Conn {
            stream,
            reader,
            req_id: 0,
        })
    }

    fn call(&mut self, t: MsgType, tx: u32, payload: Vec<u8>) -> Result<Vec<u8>, String> {
        self.req_id = self.req_id.wrapping_add(1);
        let bytes = Message::new(t, self.req_id, tx, payload)
            .encode()
            .map_err(|e| e.to_string())?;
        self.stream.write_all(&bytes).map_err(|e| e.to_string())?;
        loop {
            let m = Message::read_from(&mut self.reader).map_err(|e| e.to_string())?;
            if m.msg_type == MsgType::WatchEvent.code() {
                continue;
            }
            if m.msg_type == MsgType::Error.code() {
                return Err(Errno::from_name(&m.payload)
                    .map_or_else(|| "unknown error".into(), |e| e.name().into()));
            }
            return Ok(m.payload);
        }
    }

    fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
        self.call(MsgType::Read, 0, wire::join_strings(&[path]))
    }

    fn write(&mut self, tx: u32, path: &str, value: &[u8]) -> Result<(), String> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value);
        self.call(MsgType::Write, tx, p).map(drop)
    }
}

fn pct_us(sorted: &[u64], p: f64) -> f64 {
    let n = sorted.len();
    let k = ((p / 100.0 * n as f64 + 0.999_999) as usize).clamp(1, n);
    sorted[k - 1] as f64 / 1000.0
}

fn report(
    name: &str,
    cond: &str,
    lat: &mut [u64],
    (wall_ns, untimed_ns): (u64, u64),
    extra: u64,
    usage: &str,
) {
    let n = lat.len();
    let sum: u64 = lat.iter().sum();
    lat.sort_unstable();
    println!(
        "RESULT test={name} {cond} n={n} wall_s={:.3} ops_per_s={:.0} ops_per_s_untimed={:.0} mean_us={:.1} p50_us={:.1} \
         p90_us={:.1} p99_us={:.1} min_us={:.1} max_us={:.1} retries={extra}{usage}",
        wall_ns as f64 / 1e9,
        n as f64 / (wall_ns as f64 / 1e9),
        n as f64 / (untimed_ns as f64 / 1e9),
        sum as f64 / n as f64 / 1000.0,
        pct_us(lat, 50.0),
        pct_us(lat, 90.0),
        pct_us(lat, 99.0),
        lat[0] as f64 / 1000.0,
        lat[n - 1] as f64 / 1000.0,
    );
}

fn rss_kb(pid: u32) -> i64 {
    if pid == 0 {
        return -1;
    }
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// What a process has used so far, from `/proc/PID/{stat,status,io}`: CPU time, context
/// switches and read/write syscalls (`syscr`/`syscw`: the kernel counts `read`/`write`/`readv`
/// and the like, but not socket `recv`/`send`, so they are 0 for a daemon that uses those; the
/// lab's strace run counts every syscall). A voluntary switch is, for a daemon, one
/// `epoll_wait`/`poll` that slept.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    user_ticks: u64,
    system_ticks: u64,
    voluntary_switches: u64,
    involuntary_switches: u64,
    read_syscalls: u64,
    write_syscalls: u64,
}

/// Linux reports CPU time in `/proc` in USER_HZ, which is 100 on every x86 build.
const TICKS_PER_SECOND: f64 = 100.0;

impl Usage {
    /// `proc` is a pid or "self"; None if the process cannot be read (no `-p`, or gone).
    fn of(proc: &str) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{proc}/stat")).ok()?;
        // Fields after the command name (which may hold spaces): state is field 3, utime 14.
        let after_comm = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let status = std::fs::read_to_string(format!("/proc/{proc}/status")).ok()?;
        let status_field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let io = std::fs::read_to_string(format!("/proc/{proc}/io")).unwrap_or_default();
        let io_field = |name: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(Usage {
            user_ticks: field(14)?,
            system_ticks: field(15)?,
            voluntary_switches: status_field("voluntary_ctxt_switches:"),
            involuntary_switches: status_field("nonvoluntary_ctxt_switches:"),
            read_syscalls: io_field("syscr:"),
            write_syscalls: io_field("syscw:"),
        })
    }
}

/// Samples the daemon's and our own usage around one benchmark phase.
struct UsageMeter {
    daemon: Option<String>,
    start: (Option<Usage>, Option<Usage>),
}

impl UsageMeter {
    fn start(pid: u32) -> UsageMeter {
        let daemon = (pid != 0).then(|| pid.to_string());
        let start = (daemon.as_deref().and_then(Usage::of), Usage::of("self"));
        UsageMeter { daemon, start }
    }

    /// Per-operation costs since `start`, as `key=value` fields for the RESULT line.
    fn per_op(&self, ops: usize) -> String {
        let ops = ops.max(1) as f64;
        let end = (
            self.daemon.as_deref().and_then(Usage::of),
            Usage::of("self"),
        );
        let us = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND * 1e6 / ops;
        let cpu_us =
            |a: &Usage, b: &Usage| us(a.user_ticks + a.system_ticks, b.user_ticks + b.system_ticks);
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / ops;
        let mut out = String::new();
        if let (Some(a), Some(b)) = (self.start.0, end.0) {
            out.push_str(&format!(
                " daemon_cpu_us_per_op={:.1} daemon_user_us_per_op={:.1} \
                 daemon_sys_us_per_op={:.1} daemon_read_syscalls_per_op={:.2} \
                 daemon_write_syscalls_per_op={:.2} daemon_sleeps_per_op={:.2} \
                 daemon_preempted_per_op={:.2}",
                cpu_us(&a, &b),
                us(a.user_ticks, b.user_ticks),
                us(a.system_ticks, b.system_ticks),
                per(a.read_syscalls, b.read_syscalls),
                per(a.write_syscalls, b.write_syscalls),
                per(a.voluntary_switches, b.voluntary_switches),
                per(a.involuntary_switches, b.involuntary_switches),
            ));
        }
        if let (Some(a), Some(b)) = (self.start.1, end.1) {
            out.push_str(&format!(" client_cpu_us_per_op={:.1}", cpu_us(&a, &b)));
        }
        out
    }
}

fn run() -> Result<(), String> {
    let (mut n, mut ntx, mut idle, mut warm, mut pid, mut clients) =
        (20_000usize, 2_000usize, 0usize, 200usize, 0u32, 1usize);
    let mut rpath = "/local/domain/0/name".to_string();
    let mut wpath = "/bench/w".to_string();
    let mut txpath = "/bench/tx".to_string();
    let mut socket = xenstore::client::default_socket_path();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("option {a} needs a value"))
        };
        let num = |v: String| v.parse::<usize>().map_err(|_| format!("bad number {v:?}"));
        match a.as_str() {
            "-n" => n = num(val()?)?,
            "-t" => ntx = num(val()?)?,
            "-i" => idle = num(val()?)?,
            "-W" => warm = num(val()?)?,
            "-p" => pid = num(val()?)? as u32,
            "-r" => rpath = val()?,
            "-w" => wpath = val()?,
            "-x" => txpath = val()?,
            "-s" => socket = PathBuf::from(val()?),
            "-c" => clients = num(val()?)?,
            _ => return Err(format!("usage: xs-bench [-n N] [-t NTX] [-i IDLE] [-r path] [-w path] [-x path] [-W warmup] [-p pid] [-s socket] [-c clients] (got {a})")),
        }
    }
    let (n, ntx) = (n.max(1), ntx.max(1));
    let transport = Transport::name(&socket);
    println!(
        "INFO socket={} transport={transport} client=xs-bench",
        socket.display()
    );
    println!(
        "INFO xenstored_rss_kb={} (before idle connections)",
        rss_kb(pid)
    );
    let t0 = Instant::now();
    let mut idles = Vec::with_capacity(idle);
    for i in 0..idle {
        let mut c = Conn::open(&socket).map_err(|e| format!("idle #{i}: {e}"))?;
        c.read(&rpath)
            .map_err(|e| format!("read on idle #{i}: {e}"))?;
        idles.push(c);
    }
    if idle > 0 {
        println!(
            "INFO opened {idle} idle connections (open+1 read each) in {:.3} s",
            t0.elapsed().as_secs_f64()
        );
        println!(
            "INFO xenstored_rss_kb={} (idle connections open)",
            rss_kb(pid)
        );
    }
    let mut h = Conn::open(&socket)?;
    let cond = format!("idle_conns={idle} transport={transport}");
    let val = b"0123456789abcdef";
    let v0 = h.read(&rpath).map_err(|e| format!("read {rpath}: {e}"))?;
    println!(
        "INFO read node {rpath} = '{}' ({} bytes)",
        String::from_utf8_lossy(&v0),
        v0.len()
    );
    h.write(0, &wpath, val)
        .map_err(|e| format!("write {wpath}: {e}"))?;
    for _ in 0..warm {
        h.read(&rpath)?;
        h.write(0, &wpath, val)?;
    }

    let mut lat = vec![0u64; n];
    let meter = UsageMeter::start(pid);
    let s = Instant::now();
    for l in lat.iter_mut() {
        let a = Instant::now();
        h.read(&rpath)?;
        *l = a.elapsed().as_nanos() as u64;
    }
    let wall = s.elapsed().as_nanos() as u64;
    let s = Instant::now();
    for _ in 0..n {
        h.read(&rpath)?;
    }
    let untimed = s.elapsed().as_nanos() as u64;
    let usage = meter.per_op(2 * n);
    report("read", &cond, &mut lat, (wall, untimed), 0, &usage);

    let meter = UsageMeter::start(pid);
    let s = Instant::now();
    for l in lat.iter_mut() {
        let a = Instant::now();
        h.write(0, &wpath, val)?;
        *l = a.elapsed().as_nanos() as u64;
    }
    let wall = s.elapsed().as_nanos() as u64;
    let s = Instant::now();
    for _ in 0..n {
        h.write(0, &wpath, val)?;
    }
    let untimed = s.elapsed().as_nanos() as u64;
    let usage = meter.per_op(2 * n);
    report("write", &cond, &mut lat, (wall, untimed), 0, &usage);

    let mut txlat = vec![0u64; ntx];
    let mut retries = 0u64;
    let mut walls = [0u64; 2];
    let meter = UsageMeter::start(pid);
    for (pass, wall) in walls.iter_mut().enumerate() {
        let s = Instant::now();
        for l in txlat.iter_mut() {
            let a = Instant::now();
            loop {
                let id = h.call(MsgType::TransactionStart, 0, vec![0])?;
                let id: u32 = String::from_utf8_lossy(&id)
                    .trim_end_matches('\0')
                    .parse()
                    .map_err(|_| "bad tx id")?;
                h.write(id, &txpath, val)?;
                match h.call(MsgType::TransactionEnd, id, b"T\0".to_vec()) {
                    Ok(_) => break,
                    Err(e) if e == "EAGAIN" => retries += 1,
                    Err(e) => return Err(format!("transaction end: {e}")),
                }
            }
            if pass == 0 {
                *l = a.elapsed().as_nanos() as u64;
            }
        }
        *wall = s.elapsed().as_nanos() as u64;
    }
    // Per transaction (three requests each), retries included in the count of cycles.
    let usage = meter.per_op(2 * ntx + retries as usize);
    report(
        "tx_start_write_commit",
        &cond,
        &mut txlat,
        (walls[0], walls[1]),
        retries,
        &usage,
    );
    if clients > 1 {
        let target = Target {
            socket: &socket,
            rpath: &rpath,
            wpath: &wpath,
            pid,
        };
        concurrent(&target, clients, n, &cond)?;
    }
    println!(
        "INFO xenstored_rss_kb={} (after tests, idle connections still open)",
        rss_kb(pid)
    );
    let _ = h.call(MsgType::Rm, 0, wire::join_strings(&["/bench"]));
    Ok(())
}

/// What the concurrent passes talk to.
struct Target<'a> {
    socket: &'a PathBuf,
    rpath: &'a str,
    wpath: &'a str,
    pid: u32,
}

/// Reads, then writes, from `clients` connections at once; see the module comment.
fn concurrent(target: &Target<'_>, clients: usize, n: usize, cond: &str) -> Result<(), String> {
    let per_client = n.div_ceil(clients);
    let total = per_client * clients;
    let cond = format!("{cond} clients={clients}");
    for test in ["read", "write"] {
        let meter = UsageMeter::start(target.pid);
        let mut walls = [0u64; 2];
        let mut lat = Vec::with_capacity(total);
        for (pass, wall) in walls.iter_mut().enumerate() {
            let timed = pass == 0;
            let start = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
            let mut threads = Vec::with_capacity(clients);
            for i in 0..clients {
                let mut c = Conn::open(target.socket).map_err(|e| format!("client {i}: {e}"))?;
                let (rpath, wpath) = (target.rpath.to_string(), format!("{}{i}", target.wpath));
                let start = start.clone();
                threads.push(std::thread::spawn(move || -> Result<Vec<u64>, String> {
                    let mut lat = Vec::with_capacity(if timed { per_client } else { 0 });
                    start.wait();
                    for _ in 0..per_client {
                        let a = timed.then(Instant::now);
                        if test == "read" {
                            c.read(&rpath)?;
                        } else {
                            c.write(0, &wpath, b"0123456789abcdef")?;
                        }
                        if let Some(a) = a {
                            lat.push(a.elapsed().as_nanos() as u64);
                        }
                    }
                    Ok(lat)
                }));
            }
            start.wait();
            let s = Instant::now();
            for t in threads {
                let mine = t.join().map_err(|_| "a client thread panicked")??;
                lat.extend(mine);
            }
            *wall = s.elapsed().as_nanos() as u64;
        }
        let usage = meter.per_op(2 * total);
        report(test, &cond, &mut lat, (walls[0], walls[1]), 0, &usage);
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("xs-bench: {e}");
        std::process::exit(1);
    }
}
