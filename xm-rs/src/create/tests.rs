//! Host tests of creation on the simulator, an in-memory xenstore and a fake dom0.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypervisor::{DomainConfig as HvConfig, Hypervisor, SimHypervisor};
use toolstack::blockdev::BlockDevice;

use super::*;
use crate::config::host::SandboxHost;
use crate::config::load::{load_text, LoadOptions};

/// dom0 as the tests want it: which bridges and images exist, and a log of what was done.
#[derive(Default)]
struct FakeDom0<'a> {
    bridges: Vec<&'static str>,
    /// Netdevs netback "creates".
    netdevs: Vec<String>,
    log: RefCell<Vec<String>>,
    attached: RefCell<Vec<PathBuf>>,
    /// Runs when a netdev is enslaved: lets a test play blkback/netback connecting.
    on_enslave: Option<Box<dyn Fn() + 'a>>,
    /// blkback never gets to open the disk.
    vbd_never_opened: bool,
}

impl FakeDom0<'_> {
    fn log(&self, line: String) {
        self.log.borrow_mut().push(line);
    }
}

impl DeviceHost for FakeDom0<'_> {
    fn block_device(&self, path: &Path) -> toolstack::Result<BlockDevice> {
        if path == Path::new("/dev/vg01/root") {
            return Ok(BlockDevice {
                path: path.to_path_buf(),
                major: 0xfe,
                minor: 1,
            });
        }
        Err(toolstack::Error::NotABlockDevice(path.to_path_buf()))
    }
    fn loop_attach(&self, image: &Path, _writable: bool) -> toolstack::Result<BlockDevice> {
        if !image.starts_with("/images") {
            return Err(toolstack::Error::DiskSource {
                path: image.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let n = self.attached.borrow().len();
        let node = PathBuf::from(format!("/dev/loop{n}"));
        self.attached.borrow_mut().push(node.clone());
        self.log(format!("attach {}", node.display()));
        Ok(BlockDevice {
            path: node,
            major: 7,
            minor: n as u32,
        })
    }
    fn loop_detach(&self, node: &Path) -> toolstack::Result<()> {
        self.attached.borrow_mut().retain(|n| n != node);
        self.log(format!("detach {}", node.display()));
        Ok(())
    }
    fn check_bridge(&self, bridge: &str) -> toolstack::Result<()> {
        if self.bridges.contains(&bridge) {
            Ok(())
        } else {
            Err(toolstack::Error::NoSuchBridge(bridge.to_string()))
        }
    }
    fn netdev_exists(&self, name: &str) -> bool {
        self.netdevs.iter().any(|n| n == name)
    }
    fn rename_netdev(&self, from: &str, to: &str) -> toolstack::Result<()> {
        self.log(format!("rename {from} {to}"));
        Ok(())
    }
    fn bridge_attach(&self, netdev: &str, bridge: &str) -> toolstack::Result<()> {
        self.log(format!("enslave {netdev} {bridge}"));
        if let Some(hook) = &self.on_enslave {
            hook();
        }
        Ok(())
    }
    fn bridge_detach(&self, netdev: &str) -> toolstack::Result<()> {
        self.log(format!("release {netdev}"));
        Ok(())
    }
    fn device_model(&self) -> Option<PathBuf> {
        None
    }
    fn vbd_opened(&self, _domid: DomId, _devid: u32) -> bool {
        !self.vbd_never_opened
    }
}

fn config(text: &str) -> DomainConfig {
    let host = SandboxHost::default();
    load_text(Path::new("t.cfg"), text, &LoadOptions::default(), &host)
        .map(|l| l.config)
        .unwrap_or_else(|e| panic!("config does not load: {e}"))
}

/// A simulated paused domain, as the builder would leave it.
fn booted(hv: &SimHypervisor) -> Booted {
    let handle = [7u8; 16];
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

fn quick() -> WireOptions {
    WireOptions {
        paused: false,
        wait: DeviceWait::Connected,
        connect_timeout: Duration::from_millis(60),
        netdev_timeout: Duration::from_millis(60),
        poll: Duration::from_millis(5),
        kernel_cache: None,
        record: None,
    }
}

/// Waiting only for dom0's backends, as `xm create` does by default.
fn quick_ready() -> WireOptions {
    WireOptions {
        wait: DeviceWait::BackendReady,
        ..quick()
    }
}

fn store() -> MemStore {
    let s = MemStore::new();
    s.write("/local/domain/0/name", "Domain-0").unwrap();
    s
}

/// Every node is dom0's own again.
fn only_dom0_nodes(s: &MemStore) -> Vec<String> {
    s.dump()
        .into_keys()
        .filter(|k| !k.starts_with("/local/domain/0/name"))
        .collect()
}

const TINY: &str = "kernel = '/k'\nmemory = 32\nname = 'tiny'\nextra = 'hello'\n";

#[test]
fn paused_create_writes_the_domain_and_console_layout() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let cfg = config(TINY);
    let opts = WireOptions {
        paused: true,
        ..quick()
    };
    let created = wire(&hv, &s, &FakeDom0::default(), &cfg, &b, &opts).unwrap();
    let d = created.domid;
    assert_eq!(
        s.read(&format!("/local/domain/{d}/name"))
            .unwrap()
            .as_deref(),
        Some("tiny")
    );
    assert_eq!(
        s.read(&format!("/local/domain/{d}/console/port"))
            .unwrap()
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        s.read(&format!("/local/domain/{d}/store/ring-ref"))
            .unwrap()
            .as_deref(),
        Some(&*0x1000.to_string())
    );
    assert_eq!(
        s.read(&format!("/vm/{}/image/cmdline", b.uuid))
            .unwrap()
            .as_deref(),
        Some("hello")
    );
    assert!(hv.domain_info(d).unwrap().paused);
}

#[test]
fn missing_bridge_destroys_the_domain_and_removes_every_node() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=nosuchbr0']\n"
    ));
    let dom0 = FakeDom0::default();
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    assert!(err.to_string().contains("nosuchbr0"), "{err}");
    assert!(err.to_string().contains("vif 0"), "{err}");
    assert!(hv.domain_info(b.domid).is_err(), "domain not destroyed");
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
    // the loop was attached for the disk before the vif failed, and released by the rollback
    assert_eq!(
        *dom0.log.borrow(),
        ["attach /dev/loop0", "detach /dev/loop0"]
    );
    assert!(dom0.attached.borrow().is_empty());
}

#[test]
fn missing_image_names_the_disk_and_leaves_nothing() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}disk = ['file:/nowhere/a.img,xvda,w']\n"));
    let err = wire(&hv, &s, &FakeDom0::default(), &cfg, &b, &quick()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("disk xvda (file:/nowhere/a.img,xvda,w)"),
        "{text}"
    );
    assert!(hv.domain_info(b.domid).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn disk_writable_in_another_domain_is_refused_unless_forced() {
    let hv = SimHypervisor::new();
    let s = store();
    s.write(
        "/local/domain/0/backend/vbd/9/51712/physical-device",
        "fe:1",
    )
    .unwrap();
    s.write("/local/domain/0/backend/vbd/9/51712/mode", "w")
        .unwrap();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}disk = ['phy:/dev/vg01/root,xvda,w']\n"));
    let err = wire(&hv, &s, &FakeDom0::default(), &cfg, &b, &quick()).unwrap_err();
    assert!(err.to_string().contains("domain 9"), "{err}");
    assert!(hv.domain_info(b.domid).is_err());
    // the other domain's backend is untouched
    assert_eq!(
        s.read("/local/domain/0/backend/vbd/9/51712/mode")
            .unwrap()
            .as_deref(),
        Some("w")
    );

    let b = booted(&hv);
    let cfg = config(&format!("{TINY}disk = ['phy:/dev/vg01/root,xvda,w!']\n"));
    let opts = WireOptions {
        paused: true,
        ..quick()
    };
    let created = wire(&hv, &s, &FakeDom0::default(), &cfg, &b, &opts).unwrap();
    let pd = format!(
        "/local/domain/0/backend/vbd/{}/51712/physical-device",
        created.domid
    );
    assert_eq!(s.read(&pd).unwrap().as_deref(), Some("fe:1"));
}

#[test]
fn backend_that_never_connects_times_out_naming_both_states_and_rolls_back() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=xenbr0,vifname=web0']\n"
    ));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        netdevs: vec![format!("vif{}.0", b.domid)],
        ..FakeDom0::default()
    };
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("vbd 51712 of domain {} did not connect", b.domid)),
        "{text}"
    );
    assert!(text.contains("frontend state 1, backend state 1"), "{text}");
    let d = b.domid;
    assert_eq!(
        *dom0.log.borrow(),
        [
            "attach /dev/loop0".to_string(),
            format!("rename vif{d}.0 web0"),
            "enslave web0 xenbr0".to_string(),
            "detach /dev/loop0".to_string(),
        ]
    );
    assert!(hv.domain_info(d).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn vif_whose_netdev_never_appears_is_an_error_naming_it() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}vif = ['bridge=xenbr0']\n"));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        ..FakeDom0::default()
    };
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("vif{}.0 did not appear", b.domid)),
        "{err}"
    );
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn connected_backends_complete_the_create_with_a_stable_mac() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let sr = &s;
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=xenbr0']\nvfb = ['vnc=1']\n"
    ));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        netdevs: vec![format!("vif{d}.0")],
        // blkback and netback connect once the vif is on the bridge
        on_enslave: Some(Box::new(move || {
            sr.write(&format!("/local/domain/0/backend/vbd/{d}/51712/state"), "4")
                .unwrap();
            sr.write(&format!("/local/domain/0/backend/vif/{d}/0/state"), "4")
                .unwrap();
        })),
        ..FakeDom0::default()
    };
    let created = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap();
    assert!(!hv.domain_info(d).unwrap().paused);
    let mac = s
        .read(&format!("/local/domain/{d}/device/vif/0/mac"))
        .unwrap()
        .unwrap_or_default();
    assert_eq!(mac, toolstack::mac::stable_mac(&b.uuid, 0));
    // netback fails the device without a script node
    assert_eq!(
        s.read(&format!("/local/domain/0/backend/vif/{d}/0/script"))
            .unwrap()
            .as_deref(),
        Some("")
    );
    assert!(mac.starts_with("00:16:3e:"), "{mac}");
    assert_eq!(created.warnings.len(), 1);
    assert!(created.warnings[0].contains("without the framebuffer"));
    assert_eq!(dom0.attached.borrow().len(), 1);
}

#[test]
fn a_live_domain_with_the_name_is_a_duplicate() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    s.write(&format!("/local/domain/{}/name", b.domid), "tiny")
        .unwrap();
    let err = refuse_duplicate(&hv, &s, "tiny").unwrap_err();
    assert_eq!(err.to_string(), "Domain 'tiny' already exists.");
    refuse_duplicate(&hv, &s, "other").unwrap();
}

#[test]
fn cmdline_is_root_then_extra_unless_given() {
    let cfg = config("kernel='/k'\nmemory=32\nname='a'\nroot='/dev/xvda1 ro'\nextra='quiet'\n");
    assert_eq!(kernel_cmdline(&cfg), "root=/dev/xvda1 ro quiet");
}

/// A guest with a file: disk and a vif on xenbr0.
fn disk_and_vif() -> DomainConfig {
    config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=xenbr0']\n"
    ))
}

/// dom0 with xenbr0, where netback creates domain `d`'s vif and `hook` runs once it is
/// bridged (playing blkback and netback).
fn dom0_playing<'a>(d: DomId, hook: impl Fn() + 'a) -> FakeDom0<'a> {
    FakeDom0 {
        bridges: vec!["xenbr0"],
        netdevs: vec![format!("vif{d}.0")],
        on_enslave: Some(Box::new(hook)),
        ..FakeDom0::default()
    }
}

/// blkback and netback at InitWait, as they are before the guest's drivers start.
fn backends_at_init_wait(s: &MemStore, d: DomId) {
    s.write(&format!("/local/domain/0/backend/vbd/{d}/51712/state"), "2")
        .unwrap();
    s.write(&format!("/local/domain/0/backend/vif/{d}/0/state"), "2")
        .unwrap();
}

#[test]
fn by_default_create_returns_once_the_backends_are_ready_without_waiting_for_the_guest() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let sr = &s;
    let cfg = disk_and_vif();
    let dom0 = dom0_playing(d, move || backends_at_init_wait(sr, d));
    wire(&hv, &s, &dom0, &cfg, &b, &quick_ready()).unwrap();
    assert!(!hv.domain_info(d).unwrap().paused);
    // the frontends never left Initialising: nobody waited for them
    assert_eq!(
        s.read(&format!("/local/domain/{d}/device/vbd/51712/state"))
            .unwrap()
            .as_deref(),
        Some("1")
    );
}

#[test]
fn a_disk_blkback_cannot_open_fails_the_create_with_its_reason_and_rolls_back() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let sr = &s;
    let cfg = disk_and_vif();
    let dom0 = dom0_playing(d, move || {
        sr.write(&format!("/local/domain/0/backend/vbd/{d}/51712/state"), "5")
            .unwrap();
        sr.write(
            &format!("/local/domain/0/error/backend/vbd/{d}/51712/error"),
            "-2 creating vbd structure",
        )
        .unwrap();
    });
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick_ready()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("vbd 51712 of domain {d}: the backend refused")),
        "{text}"
    );
    assert!(text.contains("-2 creating vbd structure"), "{text}");
    assert!(hv.domain_info(d).is_err(), "domain not destroyed");
    assert!(dom0.attached.borrow().is_empty(), "loop device kept");
}

#[test]
fn a_disk_still_unopened_at_the_deadline_is_a_timeout_saying_so() {
    let hv = SimHypervisor::new();
    let s = store();
    let b = booted(&hv);
    let d = b.domid;
    let sr = &s;
    let cfg = disk_and_vif();
    let dom0 = FakeDom0 {
        vbd_never_opened: true,
        ..dom0_playing(d, move || backends_at_init_wait(sr, d))
    };
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick_ready()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("backend state 2, device not opened"),
        "{text}"
    );
    assert!(hv.domain_info(d).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
}

#[test]
fn preflight_refuses_a_busy_disk_and_a_missing_bridge_before_anything_is_built() {
    let s = store();
    s.write(
        "/local/domain/0/backend/vbd/9/51712/physical-device",
        "fe:1",
    )
    .unwrap();
    s.write("/local/domain/0/backend/vbd/9/51712/mode", "w")
        .unwrap();
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        ..FakeDom0::default()
    };
    let busy = config(&format!("{TINY}disk = ['phy:/dev/vg01/root,xvda1,w']\n"));
    let err = preflight(&s, &dom0, &busy).unwrap_err().to_string();
    assert!(
        err.starts_with("disk xvda1 (phy:/dev/vg01/root,xvda1,w)"),
        "{err}"
    );
    assert!(err.contains("domain 9"), "{err}");
    let shared = config(&format!("{TINY}disk = ['phy:/dev/vg01/root,xvda1,w!']\n"));
    preflight(&s, &dom0, &shared).unwrap();
    let no_bridge = config(&format!("{TINY}vif = ['bridge=nosuchbr0']\n"));
    let err = preflight(&s, &dom0, &no_bridge).unwrap_err().to_string();
    assert!(err.contains("nosuchbr0"), "{err}");
    // nothing was attached or written on the way
    assert!(dom0.log.borrow().is_empty());
}
