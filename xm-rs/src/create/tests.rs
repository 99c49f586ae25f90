//! Host tests of creation on the simulator, an in-memory xenstore and a fake dom0.

use std::cell::RefCell;
use std::time::Duration;

use hypervisor::{Hypervisor, SimHypervisor};

use super::*;
use crate::test_support::{self, config, dom0_store, only_dom0_nodes, FakeDom0};

/// dom0 for these tests: the LV /dev/vg01/root and images under /images; no bridges.
fn fake_dom0<'a>() -> FakeDom0<'a> {
    FakeDom0 {
        block_devices: vec![("/dev/vg01/root", 1)],
        images_under: Some("/images"),
        ..FakeDom0::default()
    }
}

fn booted(hv: &SimHypervisor) -> Booted {
    test_support::booted(hv, 7)
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

const TINY: &str = "kernel = '/k'\nmemory = 32\nname = 'tiny'\nextra = 'hello'\n";

#[test]
fn paused_create_writes_the_domain_and_console_layout() {
    let hv = SimHypervisor::new();
    let s = dom0_store();
    let b = booted(&hv);
    let cfg = config(TINY);
    let opts = WireOptions {
        paused: true,
        ..quick()
    };
    let created = wire(&hv, &s, &fake_dom0(), &cfg, &b, &opts).unwrap();
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
    let s = dom0_store();
    let b = booted(&hv);
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=nosuchbr0']\n"
    ));
    let dom0 = fake_dom0();
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
    let s = dom0_store();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}disk = ['file:/nowhere/a.img,xvda,w']\n"));
    let err = wire(&hv, &s, &fake_dom0(), &cfg, &b, &quick()).unwrap_err();
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
    let s = dom0_store();
    s.write(
        "/local/domain/0/backend/vbd/9/51712/physical-device",
        "fe:1",
    )
    .unwrap();
    s.write("/local/domain/0/backend/vbd/9/51712/mode", "w")
        .unwrap();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}disk = ['phy:/dev/vg01/root,xvda,w']\n"));
    let err = wire(&hv, &s, &fake_dom0(), &cfg, &b, &quick()).unwrap_err();
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
    let created = wire(&hv, &s, &fake_dom0(), &cfg, &b, &opts).unwrap();
    let pd = format!(
        "/local/domain/0/backend/vbd/{}/51712/physical-device",
        created.domid
    );
    assert_eq!(s.read(&pd).unwrap().as_deref(), Some("fe:1"));
}

#[test]
fn backend_that_never_connects_times_out_naming_both_states_and_rolls_back() {
    let hv = SimHypervisor::new();
    let s = dom0_store();
    let b = booted(&hv);
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=xenbr0,vifname=web0']\n"
    ));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        netdevs: RefCell::new(vec![format!("vif{}.0", b.domid)]),
        ..fake_dom0()
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
    let s = dom0_store();
    let b = booted(&hv);
    let cfg = config(&format!("{TINY}vif = ['bridge=xenbr0']\n"));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        ..fake_dom0()
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
    let s = dom0_store();
    let b = booted(&hv);
    let d = b.domid;
    let sr = &s;
    let cfg = config(&format!(
        "{TINY}disk = ['file:/images/a.img,xvda,w']\nvif = ['bridge=xenbr0']\nvfb = ['vnc=1']\n"
    ));
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        netdevs: RefCell::new(vec![format!("vif{d}.0")]),
        // blkback and netback connect once the vif is on the bridge
        on_enslave: Some(Box::new(move || {
            sr.write(&format!("/local/domain/0/backend/vbd/{d}/51712/state"), "4")
                .unwrap();
            sr.write(&format!("/local/domain/0/backend/vif/{d}/0/state"), "4")
                .unwrap();
        })),
        ..fake_dom0()
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
    let s = dom0_store();
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
        netdevs: RefCell::new(vec![format!("vif{d}.0")]),
        on_enslave: Some(Box::new(hook)),
        ..fake_dom0()
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
    let s = dom0_store();
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
    let s = dom0_store();
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
    let s = dom0_store();
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
    let s = dom0_store();
    s.write(
        "/local/domain/0/backend/vbd/9/51712/physical-device",
        "fe:1",
    )
    .unwrap();
    s.write("/local/domain/0/backend/vbd/9/51712/mode", "w")
        .unwrap();
    let dom0 = FakeDom0 {
        bridges: vec!["xenbr0"],
        ..fake_dom0()
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
