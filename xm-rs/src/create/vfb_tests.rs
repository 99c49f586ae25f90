//! Host tests of the framebuffer's device model in `xm create` and `xm destroy`, on the
//! simulator, an in-memory xenstore and a fake dom0 whose "qemu" is played by the test.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{DomainConfig as HvConfig, Hypervisor, SimHypervisor};
use toolstack::blockdev::BlockDevice;

use super::vfb::{DeviceModelLaunch, RunningDeviceModel};
use super::*;
use crate::config::host::SandboxHost;
use crate::config::load::{load_text, LoadOptions};

const QEMU: &str = "/usr/libexec/xen-qemu-system-i386";
const FAKE_PID: u32 = 4711;

/// The fake qemu: how it behaves once "started".
#[derive(Debug, Clone, Default)]
struct FakeQemu {
    /// It exits at once with this status (and this log).
    exits: Option<(String, String)>,
    /// What it reports as its VNC address.
    vnc: Option<String>,
    /// It reports `running`, then dies while opening its display (as qemu does with a keymap
    /// it cannot read) with this status and log.
    dies_after_running: Option<(String, String)>,
    asked_monitor: bool,
}

impl FakeQemu {
    fn ended(&self) -> Option<&(String, String)> {
        self.exits.as_ref().or(self
            .dies_after_running
            .as_ref()
            .filter(|_| self.asked_monitor))
    }
}

impl RunningDeviceModel for FakeQemu {
    fn pid(&self) -> u32 {
        FAKE_PID
    }
    fn exited(&mut self) -> Option<String> {
        self.ended().map(|(status, _)| status.clone())
    }
    fn vnc_address(&self) -> Option<String> {
        self.vnc.clone()
    }
    fn log_tail(&self) -> String {
        self.ended().map(|(_, log)| log.clone()).unwrap_or_default()
    }
    fn confirm(&mut self, _timeout: Duration) -> Result<Option<String>, String> {
        self.asked_monitor = true;
        match self.ended() {
            Some(_) => Err("its monitor closed the connection".into()),
            None => Ok(self.vnc.clone()),
        }
    }
    fn release(self: Box<Self>) {}
}

/// What the test does when xm starts "qemu".
type SpawnHook<'a> = Box<dyn Fn(&DeviceModelLaunch) + 'a>;

/// dom0 with (or without) a device model; no disks or networks are needed here.
#[derive(Default)]
struct Dom0<'a> {
    device_model: Option<PathBuf>,
    qemu: FakeQemu,
    /// Plays qemu starting up (e.g. writing `running`), given its launch.
    on_spawn: Option<SpawnHook<'a>>,
    launches: RefCell<Vec<DeviceModelLaunch>>,
    stops: RefCell<Vec<(DomId, u32)>>,
}

impl DeviceHost for Dom0<'_> {
    fn block_device(&self, path: &Path) -> toolstack::Result<BlockDevice> {
        Err(toolstack::Error::NotABlockDevice(path.to_path_buf()))
    }
    fn loop_attach(&self, image: &Path, _writable: bool) -> toolstack::Result<BlockDevice> {
        Err(toolstack::Error::NotABlockDevice(image.to_path_buf()))
    }
    fn loop_detach(&self, _node: &Path) -> toolstack::Result<()> {
        Ok(())
    }
    fn check_bridge(&self, bridge: &str) -> toolstack::Result<()> {
        Err(toolstack::Error::NoSuchBridge(bridge.to_string()))
    }
    fn netdev_exists(&self, _name: &str) -> bool {
        false
    }
    fn rename_netdev(&self, _from: &str, _to: &str) -> toolstack::Result<()> {
        Ok(())
    }
    fn bridge_attach(&self, _netdev: &str, _bridge: &str) -> toolstack::Result<()> {
        Ok(())
    }
    fn bridge_detach(&self, _netdev: &str) -> toolstack::Result<()> {
        Ok(())
    }
    fn device_model(&self) -> Option<PathBuf> {
        self.device_model.clone()
    }
    fn spawn_device_model(
        &self,
        launch: &DeviceModelLaunch,
    ) -> Result<Box<dyn RunningDeviceModel>, String> {
        self.launches.borrow_mut().push(launch.clone());
        if let Some(hook) = &self.on_spawn {
            hook(launch);
        }
        Ok(Box::new(self.qemu.clone()))
    }
    fn stop_device_model(&self, domid: DomId, pid: u32) -> Result<(), String> {
        self.stops.borrow_mut().push((domid, pid));
        Ok(())
    }
}

fn config(text: &str) -> DomainConfig {
    load_text(
        Path::new("t.cfg"),
        text,
        &LoadOptions::default(),
        &SandboxHost::default(),
    )
    .map(|l| l.config)
    .unwrap_or_else(|e| panic!("config does not load: {e}"))
}

fn booted(hv: &SimHypervisor) -> Booted {
    let handle = [9u8; 16];
    let domid = hv.create_domain(&HvConfig::pv(handle, 1)).unwrap();
    Booted {
        domid,
        uuid: crate::ops::format_uuid(&handle),
        store_mfn: 0x1000,
        store_port: 1,
        console_mfn: 0x1001,
        console_port: 2,
    }
}

fn store() -> MemStore {
    let s = MemStore::new();
    s.write("/local/domain/0/name", "Domain-0").unwrap();
    s
}

fn quick() -> WireOptions {
    WireOptions {
        connect_timeout: Duration::from_millis(80),
        netdev_timeout: Duration::from_millis(60),
        poll: Duration::from_millis(5),
        ..WireOptions::default()
    }
}

fn read(s: &MemStore, path: &str) -> Option<String> {
    s.read(path).unwrap()
}

/// Every node is dom0's own again.
fn only_dom0_nodes(s: &MemStore) -> Vec<String> {
    s.dump()
        .into_keys()
        .filter(|k| !k.starts_with("/local/domain/0/name"))
        .collect()
}

const WEB: &str = "kernel = '/k'\nmemory = 64\nname = 'web'\n";

/// Plays qemu: once started it reports `running` for its domain.
fn reports_running(s: &MemStore) -> impl Fn(&DeviceModelLaunch) + '_ {
    move |launch| {
        s.write(
            &format!("/local/domain/0/device-model/{}/state", launch.domid),
            "running",
        )
        .unwrap();
    }
}

fn pair(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

#[test]
fn a_vnc_vfb_starts_qemu_on_its_display_before_the_guest_runs_and_records_it() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let paused_at_spawn = RefCell::new(None);
    let (hvr, sr) = (&hv, &s);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            vnc: Some("127.0.0.1:5901".into()),
            ..FakeQemu::default()
        },
        on_spawn: Some(Box::new(|launch: &DeviceModelLaunch| {
            *paused_at_spawn.borrow_mut() = Some(hvr.domain_info(d).unwrap().paused);
            reports_running(sr)(launch);
        })),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'type = vnc, vncdisplay = 1' ]\n"));
    let created = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert!(created.warnings.is_empty(), "{:?}", created.warnings);
    assert_eq!(*paused_at_spawn.borrow(), Some(true));
    assert!(!hv.domain_info(d).unwrap().paused);

    let launches = dom0.launches.borrow();
    let launch = &launches[0];
    assert_eq!(launch.program, PathBuf::from(QEMU));
    assert_eq!(launch.log, PathBuf::from("/var/log/xen/qemu-dm-web.log"));
    assert_eq!(pair(&launch.args, "-xen-domid"), Some(d.to_string()));
    assert_eq!(
        pair(&launch.args, "-vnc").as_deref(),
        Some("127.0.0.1:1,to=99")
    );
    assert_eq!(pair(&launch.args, "-machine").as_deref(), Some("xenpv"));
    assert_eq!(pair(&launch.args, "-name").as_deref(), Some("web"));
    assert_eq!(pair(&launch.args, "-m").as_deref(), Some("64"));
    assert!(launch.args.iter().any(|a| a == "-xen-attach"));
    assert!(launch.vnc_secret.is_none());

    // where xl destroy finds qemu, and where xl vncviewer finds the display
    let pid_path = format!("/local/domain/{d}/image/device-model-pid");
    assert_eq!(read(&s, &pid_path), Some(FAKE_PID.to_string()));
    assert_eq!(
        read(&s, &format!("/local/domain/{d}/console/vnc-port")).as_deref(),
        Some("5901")
    );
    assert_eq!(
        read(&s, &format!("/local/domain/{d}/console/vnc-listen")).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        read(&s, &format!("/libxl/{d}/dm-version")).as_deref(),
        Some("qemu_xen")
    );
    // the devices qemu serves
    let be = format!("/local/domain/0/backend/vfb/{d}/0");
    assert_eq!(read(&s, &format!("{be}/vnc")).as_deref(), Some("1"));
    assert_eq!(read(&s, &format!("{be}/vncdisplay")).as_deref(), Some("1"));
    assert_eq!(read(&s, &format!("{be}/vncunused")).as_deref(), Some("1"));
    assert_eq!(
        read(&s, &format!("/local/domain/{d}/device/vfb/0/backend")),
        Some(be)
    );
    assert_eq!(
        read(&s, &format!("/local/domain/0/backend/vkbd/{d}/0/frontend")),
        Some(format!("/local/domain/{d}/device/vkbd/0"))
    );
    assert!(dom0.stops.borrow().is_empty());
}

#[test]
fn destroy_stops_the_recorded_device_model_and_removes_its_nodes() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        on_spawn: Some(Box::new(reports_running(&s))),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=1' ]\n"));
    wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert!(read(&s, &format!("/local/domain/0/device-model/{d}/state")).is_some());

    let domain = crate::ops::Domain {
        info: hv.domain_info(d).unwrap(),
        name: Some("web".into()),
    };
    let mut stopped = Vec::new();
    let report =
        crate::ops::control::destroy_with(&hv, &s, &domain, &mut |_| Ok(()), &mut |domid, pid| {
            stopped.push((domid, pid));
            Ok(())
        })
        .unwrap();
    assert_eq!(stopped, [(d, FAKE_PID)]);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report
        .removed
        .contains(&format!("/local/domain/0/device-model/{d}")));
    assert!(hv.domain_info(d).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn a_device_model_that_exits_fails_the_create_naming_its_log_and_leaves_nothing() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            exits: Some((
                "exit status: 1".into(),
                "could not read keymap file: 'en-us'".into(),
            )),
            ..FakeQemu::default()
        },
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=1' ]\n"));
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exited while starting (exit status: 1)"),
        "{text}"
    );
    assert!(text.contains("/var/log/xen/qemu-dm-web.log"), "{text}");
    assert!(text.contains("keymap"), "{text}");
    assert!(hv.domain_info(b.domid).is_err(), "domain not destroyed");
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
    assert!(dom0.stops.borrow().contains(&(b.domid, FAKE_PID)));
}

#[test]
fn a_device_model_that_never_reports_running_times_out_and_is_stopped() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=1' ]\n"));
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    assert!(err.to_string().contains("did not report running"), "{err}");
    assert!(hv.domain_info(b.domid).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
    assert!(dom0.stops.borrow().contains(&(b.domid, FAKE_PID)));
}

#[test]
fn without_a_device_model_the_guest_boots_without_its_framebuffer_and_a_warning() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0::default();
    let cfg = config(&format!("{WEB}vfb = [ 'type = vnc, vncdisplay = 1' ]\n"));
    let created = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert_eq!(created.warnings.len(), 1);
    let w = &created.warnings[0];
    assert!(
        w.contains("qemu-system-xen") && w.contains("without the framebuffer"),
        "{w}"
    );
    assert!(s
        .list(&format!("/local/domain/0/backend/vfb/{}", b.domid))
        .unwrap()
        .is_empty());
    assert!(!hv.domain_info(b.domid).unwrap().paused);
}

#[test]
fn an_sdl_only_vfb_is_skipped_with_a_warning_and_starts_nothing() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'type=sdl' ]\n"));
    let created = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert_eq!(created.warnings.len(), 1);
    assert!(
        created.warnings[0].contains("SDL"),
        "{:?}",
        created.warnings
    );
    assert!(dom0.launches.borrow().is_empty());
    assert!(s
        .list(&format!("/local/domain/0/backend/vfb/{}", b.domid))
        .unwrap()
        .is_empty());
}

#[test]
fn a_vnc_password_reaches_qemu_through_a_private_file_never_xenstore() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        on_spawn: Some(Box::new(reports_running(&s))),
        ..Dom0::default()
    };
    let cfg = config(&format!(
        "{WEB}vfb = [ 'vnc=1,vncdisplay=2,vncunused=0,vnclisten=0.0.0.0,vncpasswd=s3cret' ]\n"
    ));
    wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    let launches = dom0.launches.borrow();
    let launch = &launches[0];
    let (file, password) = launch.vnc_secret.clone().unwrap();
    assert_eq!(password, "s3cret");
    assert_eq!(
        file,
        PathBuf::from(format!("/var/run/xen/qemu-dm-{d}.vncpw"))
    );
    assert_eq!(
        pair(&launch.args, "-vnc").as_deref(),
        Some("0.0.0.0:2,password-secret=xm-vnc-password")
    );
    assert!(!launch.args.iter().any(|a| a.contains("s3cret")));
    assert!(!s.dump().values().any(|v| v.contains("s3cret")));
    // no search for a free display: the port is known without asking qemu
    assert_eq!(
        read(&s, &format!("/local/domain/{d}/console/vnc-port")).as_deref(),
        Some("5902")
    );
}

#[test]
fn only_the_first_of_two_framebuffers_is_served() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        on_spawn: Some(Box::new(reports_running(&s))),
        ..Dom0::default()
    };
    let cfg = config(&format!(
        "{WEB}vfb = [ 'vnc=1,vncdisplay=3', 'vnc=1,vncdisplay=4' ]\n"
    ));
    let created = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert_eq!(created.warnings.len(), 1);
    assert!(
        created.warnings[0].contains("vncdisplay=4"),
        "{:?}",
        created.warnings
    );
    assert_eq!(dom0.launches.borrow().len(), 1);
    assert_eq!(
        pair(&dom0.launches.borrow()[0].args, "-vnc").as_deref(),
        Some("127.0.0.1:3,to=99")
    );
}

#[test]
fn a_framebuffer_without_vnc_gets_no_vnc_server() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        on_spawn: Some(Box::new(reports_running(&s))),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=0' ]\n"));
    wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    let args = dom0.launches.borrow()[0].args.clone();
    assert_eq!(pair(&args, "-vnc").as_deref(), Some("none"));
    assert!(args.iter().any(|a| a == "-nographic"));
    assert!(read(&s, &format!("/local/domain/{}/console/vnc-port", b.domid)).is_none());
}

#[test]
fn a_display_given_twice_is_refused_before_anything_runs() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..Dom0::default()
    };
    let cfg = config(&format!(
        "{WEB}vfb = [ 'vnc=1,vnclisten=0.0.0.0:5,vncdisplay=1' ]\n"
    ));
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    assert!(err.to_string().starts_with("vfb 'vnc=1,vnclisten"), "{err}");
    assert!(dom0.launches.borrow().is_empty());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn a_device_model_that_dies_after_reporting_running_still_fails_the_create() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let dom0 = Dom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            dies_after_running: Some((
                "exit status: 1".into(),
                "-vnc 127.0.0.1:1,to=99: could not read keymap file: 'xx'".into(),
            )),
            ..FakeQemu::default()
        },
        on_spawn: Some(Box::new(reports_running(&s))),
        ..Dom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=1,keymap=xx' ]\n"));
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("exit status: 1") && text.contains("keymap"),
        "{text}"
    );
    assert!(hv.domain_info(b.domid).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}
