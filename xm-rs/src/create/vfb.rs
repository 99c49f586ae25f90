//! The paravirtual framebuffer of `xm create`: qemu's Xen device model serves a PV domain's
//! vfb (and the vkbd keyboard/pointer that goes with it) and shows it over VNC, as libxl
//! does for `xl create` (`libxl__need_xenpv_qemu`, `libxl__spawn_local_dm`):
//!
//! 1. [`plan`]: before anything is written, decide what can be served (VNC only: SDL needs
//!    an X display dom0 does not give us; one framebuffer, as libxl's display takes the
//!    first) and add the `vfb`/`vkbd` frontend and backend entries to the device layout.
//!    Without an installed device model the config's vfbs get a warning and the domain boots
//!    without them.
//! 2. [`start`]: create `/local/domain/0/device-model/D`, start qemu (`-xen-domid D
//!    -xen-attach -machine xenpv -vnc ...`, output in `/var/log/xen/qemu-dm-NAME.log`),
//!    record its pid at `/local/domain/D/image/device-model-pid` (where `xl destroy` looks for
//!    it too) and wait until qemu writes `running` to `device-model/D/state`.
//!
//! Destroy and rollback stop it again ([`stop_on_host`] behind the [`DeviceHost`] trait).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hypervisor::DomId;
use toolstack::layout::{vfb_layout, vkbd_layout, Layout, Perms, VfbRecord, XsEntry};

use super::{CreateError, CreateStore, DeviceHost, WireOptions};
use crate::config::devices::Vfb;
use crate::config::model::DomainConfig;

/// Debian's qemu with Xen support (package qemu-system-xen), then Xen's own builds.
pub const DEVICE_MODEL_CANDIDATES: &[&str] = &[
    "/usr/libexec/xen-qemu-system-i386",
    "/usr/lib/xen-4.17/bin/qemu-system-i386",
    "/usr/lib/xen/bin/qemu-system-i386",
];

/// Where libxl keeps qemu's monitor sockets (`XEN_RUN_DIR`).
pub const RUN_DIR: &str = "/var/run/xen";
/// Where libxl logs each domain's qemu.
pub const LOG_DIR: &str = "/var/log/xen";
/// The VNC listen address libxl uses when none is given.
const DEFAULT_VNC_LISTEN: &str = "127.0.0.1";
/// What qemu writes to `/local/domain/0/device-model/D/state` once it serves the domain.
const RUNNING: &str = "running";
/// How long a device model may take to exit on SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How to start a device model, for [`DeviceHost::spawn_device_model`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceModelLaunch {
    pub domid: DomId,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// stdout and stderr, as libxl's `qemu-dm-NAME.log`.
    pub log: PathBuf,
    /// The VNC password and the private file qemu reads it from (`-object secret,file=`):
    /// the host writes it (mode 0600) before starting qemu and removes it afterwards.
    pub vnc_secret: Option<(PathBuf, String)>,
}

/// A device model the host started.
pub trait RunningDeviceModel: std::fmt::Debug {
    fn pid(&self) -> u32;
    /// None while it runs; how it ended once it has exited.
    fn exited(&mut self) -> Option<String>;
    /// Where its VNC server listens as qemu reported it (`HOST:PORT`), when it did.
    fn vnc_address(&self) -> Option<String>;
    /// The last lines of its log, for an error message.
    fn log_tail(&self) -> String;
    /// Confirms it finished starting (qemu records `running` before its display is up, so
    /// that alone does not prove it): its monitor answers. Returns where its VNC server
    /// listens (`HOST:PORT`) when it has one.
    fn confirm(&mut self, timeout: Duration) -> Result<Option<String>, String>;
    /// Stops watching it: it keeps running (and is reaped once it exits).
    fn release(self: Box<Self>);
}

/// What [`plan`] decided: the device model to start for the domain's framebuffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub launch: DeviceModelLaunch,
    /// `HOST:PORT` of the VNC server when it is fixed (no `vncunused` search).
    pub fixed_vnc: Option<(String, u16)>,
}

/// The VNC settings of a vfb after libxl's defaults (listen 127.0.0.1, display 0, search
/// for an unused display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncSettings {
    /// The address without a display (`vnclisten` up to its `:`).
    pub listen: String,
    pub display: u32,
    pub find_unused: bool,
}

/// Resolves `vnclisten` / `vncdisplay` / `vncunused` as xl.cfg(5) and libxl do: the display
/// may be given in `vnclisten` (`ADDRESS:DISPLAY`), but then not in `vncdisplay` too.
pub fn vnc_settings(vfb: &Vfb) -> Result<VncSettings, String> {
    let (listen, display) = match vfb.vnclisten.as_deref() {
        Some(listen) => match listen.rsplit_once(':') {
            Some((host, number)) => {
                if vfb.vncdisplay.is_some_and(|d| d != 0) {
                    return Err(format!(
                        "vnclisten={listen} names a display and vncdisplay={} another; give one",
                        vfb.vncdisplay.unwrap_or_default()
                    ));
                }
                let display = number.parse::<u32>().map_err(|_| {
                    format!("vnclisten={listen}: {number:?} is not a VNC display number")
                })?;
                (host.to_string(), display)
            }
            None => (listen.to_string(), vfb.vncdisplay.unwrap_or(0)),
        },
        None => (DEFAULT_VNC_LISTEN.to_string(), vfb.vncdisplay.unwrap_or(0)),
    };
    // TCP ports end at 65535: 5900 + display must fit, with room for the search
    if display > 65535 - 5900 {
        return Err(format!("VNC display {display} is beyond the last TCP port"));
    }
    Ok(VncSettings {
        listen,
        display,
        find_unused: vfb.vncunused.unwrap_or(true),
    })
}

/// A value inside a qemu option list, where `,` separates options and `,,` is a comma.
fn qemu_opt(value: &str) -> String {
    value.replace(',', ",,")
}

/// A domain name as a file name component.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c == '/' || c.is_control() { '_' } else { c })
        .collect()
}

/// qemu's command line for a PV domain's framebuffer, after libxl's
/// `libxl__build_device_model_args_new` for a PV guest.
pub fn device_model_args(
    config: &DomainConfig,
    domid: DomId,
    vfb: &Vfb,
    vnc: Option<&VncSettings>,
    secret_file: Option<&Path>,
) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "-xen-domid".into(),
        domid.to_string(),
        "-no-shutdown".into(),
        // libxl's monitor socket: `xl destroy` removes it, xl's qmp users find it there
        "-chardev".into(),
        format!("socket,id=libxl-cmd,path={RUN_DIR}/qmp-libxl-{domid},server=on,wait=off"),
        "-mon".into(),
        "chardev=libxl-cmd,mode=control".into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-xen-attach".into(),
        "-name".into(),
        qemu_opt(&config.name),
    ];
    match vnc {
        Some(vnc) => {
            let mut arg = format!("{}:{}", qemu_opt(&vnc.listen), vnc.display);
            if let Some(file) = secret_file {
                args.push("-object".into());
                args.push(format!(
                    "secret,id=xm-vnc-password,format=raw,file={}",
                    qemu_opt(&file.to_string_lossy())
                ));
                arg.push_str(",password-secret=xm-vnc-password");
            }
            if vnc.find_unused {
                // try displays N..N+99; must be the last VNC option (libxl's comment)
                arg.push_str(",to=99");
            }
            args.push("-vnc".into());
            args.push(arg);
        }
        None => {
            args.push("-vnc".into());
            args.push("none".into());
        }
    }
    args.push("-display".into());
    args.push("none".into());
    if let Some(keymap) = &vfb.keymap {
        args.push("-k".into());
        args.push(keymap.clone());
    }
    if vnc.is_none() {
        args.push("-nographic".into());
    }
    args.push("-machine".into());
    args.push("xenpv".into());
    args.push("-m".into());
    args.push(config.maxmem_mb.max(config.memory_mb).to_string());
    args
}

/// Decides what of the config's framebuffers can be served, adds their entries (vfb and
/// vkbd, device 0) to `layout` and returns the device model to start. Whatever is skipped
/// gets a warning; without a device model installed the domain boots without a framebuffer.
pub fn plan<D: DeviceHost + ?Sized>(
    devices: &D,
    config: &DomainConfig,
    domid: DomId,
    layout: &mut Layout,
    warnings: &mut Vec<String>,
) -> Result<Option<Plan>, CreateError> {
    if config.vfbs.is_empty() {
        return Ok(None);
    }
    let name = &config.name;
    let mut served: Option<&Vfb> = None;
    for vfb in &config.vfbs {
        if vfb.sdl && !vfb.vnc {
            warnings.push(format!(
                "Warning: {name}: vfb '{}' asks for an SDL window; xm starts qemu detached from \
                 any X display, so this framebuffer is skipped (use vnc=1 and a VNC viewer)",
                vfb.spec
            ));
            continue;
        }
        if served.is_some() {
            warnings.push(format!(
                "Warning: {name}: vfb '{}' skipped: only one framebuffer per domain is served \
                 (qemu's display shows the first)",
                vfb.spec
            ));
            continue;
        }
        if vfb.sdl {
            warnings.push(format!(
                "Warning: {name}: vfb '{}': sdl ignored (no X display in dom0), VNC only",
                vfb.spec
            ));
        }
        served = Some(vfb);
    }
    let Some(vfb) = served else {
        return Ok(None);
    };
    let Some(program) = devices.device_model() else {
        warnings.push(format!(
            "Warning: {name}: the config has a vfb (framebuffer), but no qemu Xen device model \
             is installed ({}, from Debian's package qemu-system-xen); booting without the \
             framebuffer",
            DEVICE_MODEL_CANDIDATES[0]
        ));
        return Ok(None);
    };
    let vfb_error = |reason: String| CreateError::Vfb {
        spec: vfb.spec.clone(),
        reason,
    };
    let vnc = if vfb.vnc {
        Some(vnc_settings(vfb).map_err(vfb_error)?)
    } else {
        None
    };
    let vnc_secret = match (&vnc, vfb.vncpasswd.as_deref()) {
        // an empty password means no authentication (xl.cfg)
        (Some(_), Some(password)) if !password.is_empty() => Some((
            PathBuf::from(format!("{RUN_DIR}/qemu-dm-{domid}.vncpw")),
            password.to_string(),
        )),
        _ => None,
    };
    let args = device_model_args(
        config,
        domid,
        vfb,
        vnc.as_ref(),
        vnc_secret.as_ref().map(|(path, _)| path.as_path()),
    );
    vfb_layout(
        layout,
        domid,
        &VfbRecord {
            devid: 0,
            vnc: vfb.vnc,
            vnclisten: vnc
                .as_ref()
                .map_or(DEFAULT_VNC_LISTEN, |v| v.listen.as_str()),
            vncdisplay: vnc.as_ref().map_or(0, |v| v.display),
            vncunused: vnc.as_ref().is_some_and(|v| v.find_unused),
            sdl: false,
            opengl: false,
            display: None,
            xauthority: None,
        },
    );
    vkbd_layout(layout, domid, 0);
    let fixed_vnc = vnc
        .as_ref()
        .filter(|v| !v.find_unused)
        .map(|v| (v.listen.clone(), 5900 + v.display as u16));
    Ok(Some(Plan {
        launch: DeviceModelLaunch {
            domid,
            program,
            args,
            log: PathBuf::from(format!("{LOG_DIR}/qemu-dm-{}.log", file_safe(name))),
            vnc_secret,
        },
        fixed_vnc,
    }))
}

/// The directory qemu reports its state in, `/local/domain/0/device-model/D`.
pub fn device_model_dir(domid: DomId) -> String {
    format!("/local/domain/0/device-model/{domid}")
}

/// Where libxl (and so `xl destroy`) looks for a domain's device model pid.
pub fn device_model_pid_path(domid: DomId) -> String {
    format!("/local/domain/{domid}/image/device-model-pid")
}

/// Starts the planned device model and waits until it serves the domain. The running model
/// is left in `running` as soon as it exists, so a failure (here or later) rolls it back.
pub fn start<S, D>(
    store: &S,
    devices: &D,
    plan: &Plan,
    options: &WireOptions,
    running: &mut Option<Box<dyn RunningDeviceModel>>,
) -> Result<(), CreateError>
where
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let launch = &plan.launch;
    let domid = launch.domid;
    let dm_dir = device_model_dir(domid);
    store.write_entries(&[XsEntry {
        path: dm_dir.clone(),
        value: String::new(),
        perms: Perms::private(0),
    }])?;
    let dm = devices
        .spawn_device_model(launch)
        .map_err(|reason| CreateError::DeviceModel {
            program: launch.program.clone(),
            reason,
        })?;
    let pid = dm.pid();
    tracing::info!(
        domid,
        pid,
        "device model {} started",
        launch.program.display()
    );
    let dm = running.insert(dm);
    let image = format!("/local/domain/{domid}/image");
    let readable = Perms::readable_by(0, domid);
    store.write_entries(&[
        XsEntry {
            path: image,
            value: String::new(),
            perms: readable.clone(),
        },
        XsEntry {
            path: device_model_pid_path(domid),
            value: pid.to_string(),
            perms: readable,
        },
    ])?;

    let state_path = format!("{dm_dir}/state");
    let deadline = Instant::now() + options.connect_timeout;
    loop {
        if store.read(&state_path)?.as_deref() == Some(RUNNING) {
            break;
        }
        if let Some(status) = dm.exited() {
            return Err(CreateError::DeviceModelExited {
                domid,
                status,
                log: launch.log.clone(),
                tail: dm.log_tail(),
            });
        }
        if Instant::now() >= deadline {
            return Err(CreateError::DeviceModelTimeout {
                domid,
                waited: options.connect_timeout,
                log: launch.log.clone(),
            });
        }
        std::thread::sleep(options.poll);
    }

    let confirmed = dm
        .confirm(deadline.saturating_duration_since(Instant::now()))
        .map_err(|reason| {
            // give it a moment to exit, so the error carries its status and last words
            std::thread::sleep(options.poll.max(Duration::from_millis(200)));
            CreateError::DeviceModelExited {
                domid,
                status: dm.exited().unwrap_or(reason),
                log: launch.log.clone(),
                tail: dm.log_tail(),
            }
        })?;
    // Where a VNC viewer connects: what qemu reported (it searched from the display asked
    // for), else the fixed address; `xl vncviewer` reads these nodes.
    let address = confirmed.or_else(|| dm.vnc_address()).and_then(|a| {
        let (host, port) = a.rsplit_once(':')?;
        Some((host.to_string(), port.parse::<u16>().ok()?))
    });
    if let Some((host, port)) = address.or_else(|| plan.fixed_vnc.clone()) {
        let console = format!("/local/domain/{domid}/console");
        let perms = Perms::readable_by(domid, 0);
        store.write_entries(&[
            XsEntry {
                path: format!("{console}/vnc-listen"),
                value: host,
                perms: perms.clone(),
            },
            XsEntry {
                path: format!("{console}/vnc-port"),
                value: port.to_string(),
                perms,
            },
        ])?;
    }
    Ok(())
}

/// The device model pid recorded for `domid`, if any.
pub fn recorded_pid<S: crate::ops::Store + ?Sized>(store: &S, domid: DomId) -> Option<u32> {
    store
        .read(&device_model_pid_path(domid))
        .ok()
        .flatten()
        .and_then(|p| p.trim().parse().ok())
}

/// Stops the device model `pid` of `domid` on this host (only if that pid still is that
/// domain's qemu) and removes its monitor socket and password file.
pub fn stop_on_host(domid: DomId, pid: u32) -> Result<(), String> {
    let outcome =
        toolstack::devicemodel::stop(pid, domid, STOP_GRACE).map_err(|e| e.to_string())?;
    tracing::info!(domid, pid, "device model stopped: {outcome:?}");
    for leftover in [
        format!("{RUN_DIR}/qmp-libxl-{domid}"),
        format!("{RUN_DIR}/qemu-dm-{domid}.vncpw"),
    ] {
        let _ = std::fs::remove_file(leftover);
    }
    Ok(())
}

/// The device model of a real host: a qemu child process.
#[derive(Debug)]
pub struct QemuProcess {
    child: std::process::Child,
    /// Fresh for this run: [`toolstack::devicemodel::spawn`] rotates the previous one away.
    log: PathBuf,
    secret: Option<PathBuf>,
    /// Its QMP monitor socket (libxl's `qmp-libxl-D`).
    monitor: PathBuf,
}

impl QemuProcess {
    /// Writes the password file (if any), then starts qemu.
    pub fn spawn(launch: &DeviceModelLaunch) -> Result<QemuProcess, String> {
        if let Some((path, password)) = &launch.vnc_secret {
            write_private(path, password)
                .map_err(|e| format!("writing the VNC password file {}: {e}", path.display()))?;
        }
        let _ = std::fs::create_dir_all(RUN_DIR);
        let child = toolstack::devicemodel::spawn(&toolstack::devicemodel::Launch {
            program: &launch.program,
            args: &launch.args,
            log: &launch.log,
        })
        .map_err(|e| e.to_string())?;
        Ok(QemuProcess {
            child,
            log: launch.log.clone(),
            secret: launch.vnc_secret.as_ref().map(|(p, _)| p.clone()),
            monitor: PathBuf::from(format!("{RUN_DIR}/qmp-libxl-{}", launch.domid)),
        })
    }

    fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn forget_secret(&mut self) {
        if let Some(path) = self.secret.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Longest monitor line we accept; qemu's greeting and `query-vnc` reply are well under 4 KiB.
const MAX_QMP_LINE: u64 = 64 * 1024;

/// Asks qemu's QMP monitor `query-vnc`: the monitor only answers once qemu's start-up is
/// complete. Returns `HOST:PORT` when the VNC server is enabled.
fn query_vnc(socket: &Path, timeout: Duration) -> Result<Option<String>, String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let deadline = Instant::now() + timeout;
    let stream = loop {
        match std::os::unix::net::UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "its monitor {} does not answer: {e}",
                    socket.display()
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    stream
        .set_read_timeout(Some(left))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    // one reply per command; events in between are skipped
    let next_reply = |reader: &mut BufReader<std::os::unix::net::UnixStream>| loop {
        let mut line = String::new();
        // a monitor that never ends its line must not make us buffer without limit
        match reader.by_ref().take(MAX_QMP_LINE).read_line(&mut line) {
            Ok(0) => return Err("its monitor closed the connection".to_string()),
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_QMP_LINE => {
                return Err(format!(
                    "its monitor sent a line longer than {MAX_QMP_LINE} bytes"
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(format!("reading its monitor: {e}")),
        }
        match super::qmp::parse_line(&line).map_err(|e| e.to_string())? {
            super::qmp::Message::Event => continue,
            super::qmp::Message::Reply(reply) => return Ok(reply),
        }
    };
    next_reply(&mut reader)?; // the greeting
    for command in [
        r#"{"execute":"qmp_capabilities"}"#,
        r#"{"execute":"query-vnc"}"#,
    ] {
        writer
            .write_all(format!("{command}\n").as_bytes())
            .map_err(|e| format!("writing to its monitor: {e}"))?;
        let reply = next_reply(&mut reader)?;
        if command.contains("query-vnc") {
            return Ok(super::qmp::vnc_address(&reply));
        }
    }
    Ok(None)
}

/// The `HOST:PORT` of the last "VNC server running on HOST:PORT" line qemu printed.
pub fn reported_vnc_address(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find_map(|l| l.split_once("VNC server running on ").map(|(_, a)| a))
        .map(|a| a.trim().to_string())
        .filter(|a| a.contains(':'))
}

impl RunningDeviceModel for QemuProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.forget_secret();
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    fn vnc_address(&self) -> Option<String> {
        reported_vnc_address(&self.log_text())
    }

    fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn confirm(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        query_vnc(&self.monitor, timeout)
    }

    fn release(mut self: Box<Self>) {
        // qemu has read the password by the time it runs
        self.forget_secret();
        let mut child = self.child;
        // a long-lived caller (the daemon) reaps it when it exits; `xm` exits first and
        // init adopts it
        std::thread::spawn(move || child.wait());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::devices::parse_vfb;

    fn vfb(spec: &str) -> Vfb {
        parse_vfb(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    /// A QMP monitor on a socket in `dir` that sends `greeting`, then answers each command
    /// line with the next of `replies`.
    fn fake_monitor(
        dir: &Path,
        greeting: String,
        replies: Vec<String>,
    ) -> (PathBuf, std::thread::JoinHandle<()>) {
        use std::io::{BufRead, BufReader, Write};
        let path = dir.join("qmp");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            // the client may give up mid-greeting; a broken pipe here is expected
            let _ = writer.write_all(greeting.as_bytes());
            let mut lines = BufReader::new(stream).lines();
            for reply in replies {
                if lines.next().is_none() {
                    return;
                }
                let _ = writer.write_all(reply.as_bytes());
            }
        });
        (path, server)
    }

    #[test]
    fn query_vnc_skips_events_and_returns_the_servers_address() {
        let dir = crate::test_support::Scratch::new("qmp-ok");
        let (socket, server) = fake_monitor(
            dir.path(),
            "{\"QMP\": {\"version\": {}}}\n".into(),
            vec![
                "{\"return\": {}}\n".into(),
                concat!(
                    "{\"event\": \"VNC_CONNECTED\"}\n",
                    "{\"return\": {\"enabled\": true, \"host\": \"127.0.0.1\", \"service\": \"5901\"}}\n"
                )
                .into(),
            ],
        );
        let address = query_vnc(&socket, Duration::from_secs(10)).unwrap();
        assert_eq!(address.as_deref(), Some("127.0.0.1:5901"));
        server.join().unwrap();
    }

    #[test]
    fn a_monitor_line_without_end_is_refused_not_buffered() {
        let dir = crate::test_support::Scratch::new("qmp-long");
        let endless = "x".repeat(MAX_QMP_LINE as usize + 10);
        let (socket, server) = fake_monitor(dir.path(), endless, Vec::new());
        let err = query_vnc(&socket, Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("longer than 65536 bytes"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn vnc_defaults_are_libxls() {
        let v = vnc_settings(&vfb("type=vnc, vncdisplay=1")).unwrap();
        assert_eq!(
            v,
            VncSettings {
                listen: "127.0.0.1".into(),
                display: 1,
                find_unused: true
            }
        );
    }

    #[test]
    fn the_display_may_come_with_vnclisten_but_not_twice() {
        let v = vnc_settings(&vfb("vnc=1,vnclisten=0.0.0.0:3,vncunused=0")).unwrap();
        assert_eq!(
            (v.listen.as_str(), v.display, v.find_unused),
            ("0.0.0.0", 3, false)
        );
        let err = vnc_settings(&vfb("vnc=1,vnclisten=0.0.0.0:3,vncdisplay=2")).unwrap_err();
        assert!(err.contains("vncdisplay=2"), "{err}");
        let err = vnc_settings(&vfb("vnc=1,vnclisten=0.0.0.0:x")).unwrap_err();
        assert!(err.contains("not a VNC display number"), "{err}");
        assert!(vnc_settings(&vfb("vnc=1,vncdisplay=70000")).is_err());
    }

    #[test]
    fn qemu_reports_the_display_it_found() {
        let log = "qemu: warning: something\nVNC server running on 127.0.0.1:5902\n";
        assert_eq!(reported_vnc_address(log).as_deref(), Some("127.0.0.1:5902"));
        assert_eq!(reported_vnc_address("nothing here\n"), None);
    }

    #[test]
    fn option_values_double_their_commas() {
        assert_eq!(qemu_opt("a,b"), "a,,b");
        assert_eq!(file_safe("we/b"), "we_b");
    }
}
