//! Host tests of the framebuffer's device model in `xm create` and `xm destroy`, on the
//! simulator, an in-memory xenstore and a fake dom0 whose "qemu" is played by the test.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use hypervisor::{Hypervisor, SimHypervisor};

use super::vfb::DeviceModelLaunch;
use super::*;
use crate::test_support::{
    self, config, dom0_store, only_dom0_nodes, FakeDom0, FakeQemu, FAKE_QEMU_PID,
};

const QEMU: &str = "/usr/libexec/xen-qemu-system-i386";

fn booted(hv: &SimHypervisor) -> Booted {
    test_support::booted(hv, 9)
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

/// dom0 with a device model whose qemu reports `running` once started.
fn qemu_reporting_running(s: &MemStore) -> FakeDom0<'_> {
    FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        on_spawn: Some(Box::new(reports_running(s))),
        ..FakeDom0::default()
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
    let s = dom0_store();
    let b = booted(&hv);
    let d = b.domid;
    let paused_at_spawn = RefCell::new(None);
    let (hvr, sr) = (&hv, &s);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            vnc: Some("127.0.0.1:5901".into()),
            ..FakeQemu::default()
        },
        on_spawn: Some(Box::new(|launch: &DeviceModelLaunch| {
            *paused_at_spawn.borrow_mut() = Some(hvr.domain_info(d).unwrap().paused);
            reports_running(sr)(launch);
        })),
        ..FakeDom0::default()
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
    assert_eq!(read(&s, &pid_path), Some(FAKE_QEMU_PID.to_string()));
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
    let s = dom0_store();
    let b = booted(&hv);
    let d = b.domid;
    let dom0 = qemu_reporting_running(&s);
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
    assert_eq!(stopped, [(d, FAKE_QEMU_PID)]);
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            exits: Some((
                "exit status: 1".into(),
                "could not read keymap file: 'en-us'".into(),
            )),
            ..FakeQemu::default()
        },
        ..FakeDom0::default()
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
    assert!(dom0.stops.borrow().contains(&(b.domid, FAKE_QEMU_PID)));
}

#[test]
fn a_device_model_that_never_reports_running_times_out_and_is_stopped() {
    let hv = SimHypervisor::new();
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..FakeDom0::default()
    };
    let cfg = config(&format!("{WEB}vfb = [ 'vnc=1' ]\n"));
    let err = wire(&hv, &s, &dom0, &cfg, &b, &quick()).unwrap_err();
    assert!(err.to_string().contains("did not report running"), "{err}");
    assert!(hv.domain_info(b.domid).is_err());
    assert_eq!(only_dom0_nodes(&s), Vec::<String>::new());
    assert!(dom0.stops.borrow().contains(&(b.domid, FAKE_QEMU_PID)));
}

#[test]
fn without_a_device_model_the_guest_boots_without_its_framebuffer_and_a_warning() {
    let hv = SimHypervisor::new();
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0::default();
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..FakeDom0::default()
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
    let s = dom0_store();
    let b = booted(&hv);
    let d = b.domid;
    let dom0 = qemu_reporting_running(&s);
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = qemu_reporting_running(&s);
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = qemu_reporting_running(&s);
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        ..FakeDom0::default()
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
    let s = dom0_store();
    let b = booted(&hv);
    let dom0 = FakeDom0 {
        device_model: Some(PathBuf::from(QEMU)),
        qemu: FakeQemu {
            dies_after_running: Some((
                "exit status: 1".into(),
                "-vnc 127.0.0.1:1,to=99: could not read keymap file: 'xx'".into(),
            )),
            ..FakeQemu::default()
        },
        on_spawn: Some(Box::new(reports_running(&s))),
        ..FakeDom0::default()
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
