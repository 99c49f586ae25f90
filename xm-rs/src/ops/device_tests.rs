//! Host tests of the device commands on the simulated hypervisor, the in-memory store, a
//! fake dom0 and a thread that plays blkback/netback and the guest's drivers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hypervisor::{DomainConfig, Hypervisor, SimHypervisor};

use super::device::DetachOptions;
use super::{dom_path, MemStore, Store};
use crate::cli::device::{execute, DeviceContext};
use crate::cli::Exit;
use crate::create::WireOptions;
use crate::test_support::FakeDom0;

/// Plays the backend drivers and the guest's frontends on a thread: a new backend goes to
/// Connected (4) with rings in the frontend; a backend told to close (online 0, state 5)
/// goes to Closed (6) — unless `hold` says the guest keeps the device busy.
struct Drivers {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drivers {
    fn start(store: Arc<MemStore>, domid: u32, hold: bool) -> Drivers {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                for kind in ["vbd", "vif"] {
                    let root = format!("/local/domain/0/backend/{kind}/{domid}");
                    for dev in store.list(&root).unwrap_or_default() {
                        let be = format!("{root}/{dev}");
                        let fe = format!("{}/device/{kind}/{dev}", dom_path(domid));
                        let state = store.read(&format!("{be}/state")).ok().flatten();
                        let online = store.read(&format!("{be}/online")).ok().flatten();
                        match (state.as_deref(), online.as_deref()) {
                            (Some("1"), Some("1")) => {
                                let rings: &[(&str, &str)] = if kind == "vbd" {
                                    &[("ring-ref", "8"), ("event-channel", "10")]
                                } else {
                                    &[
                                        ("tx-ring-ref", "768"),
                                        ("rx-ring-ref", "769"),
                                        ("event-channel", "11"),
                                    ]
                                };
                                for (k, v) in rings {
                                    let _ = store.write(&format!("{fe}/{k}"), v);
                                }
                                let _ = store.write(&format!("{fe}/state"), "4");
                                let _ = store.write(&format!("{be}/state"), "4");
                            }
                            (Some("5"), Some("0")) if !hold => {
                                let _ = store.write(&format!("{fe}/state"), "6");
                                let _ = store.write(&format!("{be}/state"), "6");
                            }
                            _ => {}
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Drivers {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Drivers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Host {
    hv: SimHypervisor,
    store: Arc<MemStore>,
    dom0: FakeDom0<'static>,
    domid: u32,
}

impl Host {
    fn new() -> Host {
        let store = Arc::new(MemStore::new());
        store.write("/local/domain/0/name", "Domain-0").unwrap();
        let hv = SimHypervisor::new();
        let handle = [0x42; 16];
        let domid = hv.create_domain(&DomainConfig::pv(handle, 1)).unwrap();
        hv.unpause_domain(domid).unwrap();
        store
            .write(&format!("{}/name", dom_path(domid)), "alpha")
            .unwrap();
        Host {
            hv,
            store,
            // images under /images, one LV, bridge xenbr0; netback's interfaces appear as
            // soon as asked for
            dom0: FakeDom0 {
                images_under: Some("/images"),
                netback_creates_vifs: true,
                ..FakeDom0::with_lv("/dev/vg01/data", 3)
            },
            domid,
        }
    }

    fn run(&self, args: &[&str]) -> (Exit, String, String) {
        self.run_timeouts(args, Duration::from_secs(5))
    }

    fn run_timeouts(&self, args: &[&str], timeout: Duration) -> (Exit, String, String) {
        use clap::Parser;
        let cli =
            crate::cli::Cli::try_parse_from(std::iter::once("xm").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"));
        let crate::cli::Command::Device(command) = cli.command else {
            panic!("{args:?} is not a device command");
        };
        let ctx = DeviceContext {
            hv: &self.hv,
            store: self.store.as_ref(),
            devices: &self.dom0,
            wire: WireOptions {
                connect_timeout: timeout,
                netdev_timeout: timeout,
                poll: Duration::from_millis(2),
                ..WireOptions::default()
            },
            detach: DetachOptions {
                force: false,
                close_timeout: timeout,
                poll: Duration::from_millis(2),
            },
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let exit = execute(&command, &ctx, &mut out, &mut err);
        (
            exit,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn read(&self, path: &str) -> Option<String> {
        self.store.read(path).unwrap()
    }

    /// Every node of the domain's devices, in both directions.
    fn device_nodes(&self) -> Vec<String> {
        self.store
            .dump()
            .into_keys()
            .filter(|k| {
                k.contains("/backend/vbd/")
                    || k.contains("/backend/vif/")
                    || k.contains("/device/vbd")
                    || k.contains("/device/vif")
            })
            .collect()
    }
}

/// `xm block-list` as xm's format strings print it (generated under Python).
const GOLDEN_BLOCK_LIST: &str = "\
Vdev  BE handle state evt-ch ring-ref BE-path
51728  0    0     4      10     8     /local/domain/0/backend/vbd/1/51728  
";

#[test]
fn block_attach_of_an_image_connects_and_block_list_shows_it_like_xm() {
    let h = Host::new();
    let _drivers = Drivers::start(Arc::clone(&h.store), h.domid, false);
    let (exit, out, err) = h.run(&[
        "block-attach",
        "alpha",
        "file:/images/data.img",
        "xvdb",
        "w",
    ]);
    assert_eq!((exit, out.as_str(), err.as_str()), (Exit::Ok, "", ""));
    let be = "/local/domain/0/backend/vbd/1/51728";
    assert_eq!(
        h.read(&format!("{be}/params")).as_deref(),
        Some("/images/data.img")
    );
    assert_eq!(h.read(&format!("{be}/node")).as_deref(), Some("/dev/loop0"));
    assert_eq!(
        h.read(&format!("{be}/physical-device")).as_deref(),
        Some("7:0")
    );
    assert_eq!(h.read(&format!("{be}/mode")).as_deref(), Some("w"));
    assert_eq!(h.read(&format!("{be}/bootable")).as_deref(), Some("0"));
    assert_eq!(
        h.read("/local/domain/1/device/vbd/51728/virtual-device")
            .as_deref(),
        Some("51728")
    );
    assert_eq!(*h.dom0.attached.borrow(), vec![PathBuf::from("/dev/loop0")]);

    let (exit, out, _) = h.run(&["block-list", "alpha"]);
    assert_eq!((exit, out.as_str()), (Exit::Ok, GOLDEN_BLOCK_LIST));
    let (_, json, _) = h.run(&["block-list", "--json", "1"]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rows[0]["devid"], 51728);
    assert_eq!(rows[0]["backend_state"], 4);
    let (_, long, _) = h.run(&["block-list", "-l", "alpha"]);
    assert!(long.starts_with("(51728\n    ((backend "), "{long}");
    assert!(long.contains("(virtual-device 51728)"), "{long}");

    // the same vdev again is refused; an xl-style one-argument spec works too
    let (exit, _, err) = h.run(&["block-attach", "alpha", "file:/images/x.img", "xvdb", "r"]);
    assert_eq!(exit, Exit::ConfigError);
    assert!(err.contains("already connected"), "{err}");
    let (exit, _, err) = h.run(&["block-attach", "alpha", "phy:/dev/vg01/data,xvdc,r"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    assert_eq!(
        h.read("/local/domain/0/backend/vbd/1/51744/physical-device")
            .as_deref(),
        Some("fe:3")
    );
}

#[test]
fn block_detach_closes_removes_every_node_and_releases_the_loop() {
    let h = Host::new();
    let _drivers = Drivers::start(Arc::clone(&h.store), h.domid, false);
    assert_eq!(
        h.run(&[
            "block-attach",
            "alpha",
            "file:/images/data.img",
            "xvdb",
            "w"
        ])
        .0,
        Exit::Ok
    );
    let (exit, _, err) = h.run(&["block-detach", "alpha", "xvdb"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    assert!(h.device_nodes().is_empty(), "{:?}", h.device_nodes());
    assert!(h.read("/libxl/1/device/vbd/51728").is_none());
    assert!(h.dom0.attached.borrow().is_empty());
    let (exit, out, _) = h.run(&["block-list", "alpha"]);
    assert_eq!(
        (exit, out.as_str()),
        (Exit::Ok, ""),
        "no devices, no header"
    );
    // detaching it again, or a device never attached, is xl's error
    let (exit, _, err) = h.run(&["block-detach", "alpha", "51728"]);
    assert_eq!(
        (exit, err.as_str()),
        (Exit::ConfigError, "Error: Device 51728 not connected.\n")
    );
}

#[test]
fn a_busy_device_is_left_closing_with_a_hint_and_force_removes_it() {
    let h = Host::new();
    let drivers = Drivers::start(Arc::clone(&h.store), h.domid, true);
    assert_eq!(
        h.run(&[
            "block-attach",
            "alpha",
            "file:/images/data.img",
            "xvdb",
            "w"
        ])
        .0,
        Exit::Ok
    );
    let (exit, _, err) = h.run_timeouts(
        &["block-detach", "alpha", "xvdb"],
        Duration::from_millis(80),
    );
    assert_eq!(exit, Exit::ConfigError);
    assert!(
        err.contains("did not close") && err.contains("--force"),
        "{err}"
    );
    let be = "/local/domain/0/backend/vbd/1/51728";
    assert_eq!(h.read(&format!("{be}/state")).as_deref(), Some("5"));
    assert_eq!(h.read(&format!("{be}/online")).as_deref(), Some("0"));
    assert_eq!(
        h.dom0.attached.borrow().len(),
        1,
        "still in use: not released"
    );
    drop(drivers);
    let (exit, _, err) = h.run(&["block-detach", "--force", "alpha", "xvdb"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    assert!(h.device_nodes().is_empty());
    assert!(h.dom0.attached.borrow().is_empty());
}

#[test]
fn failed_attaches_leave_nothing_behind() {
    let h = Host::new();
    // a missing image
    let (exit, _, err) = h.run(&["block-attach", "alpha", "file:/nowhere.img", "xvdb", "w"]);
    assert_eq!(exit, Exit::ConfigError);
    assert!(
        err.contains("disk xvdb") && err.contains("/nowhere.img"),
        "{err}"
    );
    // no backend driver answers: a timeout naming the states, then a full undo
    let (exit, _, err) = h.run_timeouts(
        &[
            "block-attach",
            "alpha",
            "file:/images/data.img",
            "xvdb",
            "w",
        ],
        Duration::from_millis(50),
    );
    assert_eq!(exit, Exit::ConfigError);
    assert!(
        err.contains("vbd 51728 of domain 1 did not connect"),
        "{err}"
    );
    assert!(err.contains("backend state 1"), "{err}");
    // a missing bridge
    let (exit, _, err) = h.run(&["network-attach", "alpha", "bridge=nosuchbr"]);
    assert_eq!(exit, Exit::ConfigError);
    assert!(err.contains("nosuchbr"), "{err}");
    assert!(h.device_nodes().is_empty(), "{:?}", h.device_nodes());
    assert!(h
        .store
        .dump()
        .keys()
        .all(|k| !k.starts_with("/libxl/1/device")));
    assert!(h.dom0.attached.borrow().is_empty());
}

/// `xm network-list` as xm's format strings print it (generated under Python).
const GOLDEN_NETWORK_LIST: &str = "\
Idx BE     MAC Addr.     handle state evt-ch tx-/rx-ring-ref BE-path
0   0  00:16:3e:00:00:aa    0     4      11    768  /769     /local/domain/0/backend/vif/1/0  
";

#[test]
fn network_attach_bridges_the_next_vif_and_detach_by_mac_takes_it_off() {
    let h = Host::new();
    let _drivers = Drivers::start(Arc::clone(&h.store), h.domid, false);
    let (exit, _, err) = h.run(&["network-attach", "alpha", "mac=00:16:3e:00:00:aa"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    let be = "/local/domain/0/backend/vif/1/0";
    assert_eq!(h.read(&format!("{be}/bridge")).as_deref(), Some("xenbr0"));
    assert_eq!(
        h.read(&format!("{be}/mac")).as_deref(),
        Some("00:16:3e:00:00:aa")
    );
    assert!(h
        .dom0
        .log
        .borrow()
        .contains(&"enslave vif1.0 xenbr0".to_string()));
    let (exit, out, _) = h.run(&["network-list", "alpha"]);
    assert_eq!((exit, out.as_str()), (Exit::Ok, GOLDEN_NETWORK_LIST));

    // the next one gets devid 1, its own stable MAC and its vifname
    let (exit, _, err) = h.run(&["network-attach", "alpha", "vifname=web1", "ip=10.99.0.7"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    let mac1 = h.read("/local/domain/0/backend/vif/1/1/mac").unwrap();
    assert!(
        mac1.starts_with("00:16:3e:") && mac1 != "00:16:3e:00:00:aa",
        "{mac1}"
    );
    assert_eq!(
        h.read("/local/domain/0/backend/vif/1/1/ip").as_deref(),
        Some("10.99.0.7")
    );
    assert!(h
        .dom0
        .log
        .borrow()
        .contains(&"rename vif1.1 web1".to_string()));

    let (exit, _, err) = h.run(&["network-detach", "alpha", "00:16:3E:00:00:AA"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    assert!(h.dom0.log.borrow().contains(&"release vif1.0".to_string()));
    assert!(h.read(be).is_none() && h.read("/local/domain/1/device/vif/0").is_none());
    let (exit, _, err) = h.run(&["network-detach", "alpha", "1"]);
    assert_eq!((exit, err.as_str()), (Exit::Ok, ""));
    assert!(h.dom0.log.borrow().contains(&"release web1".to_string()));
    assert!(h.device_nodes().is_empty(), "{:?}", h.device_nodes());
}

#[test]
fn bad_device_arguments_are_named_with_exit_2_and_unsupported_ones_exit_3() {
    let h = Host::new();
    for (args, named) in [
        (
            &["network-attach", "alpha", "colour=blue"][..],
            "colour=blue",
        ),
        (&["network-attach", "alpha", "mac="], "mac="),
        (&["network-attach", "alpha", "mac=00:16:3e"], "mac"),
        (
            &["block-attach", "alpha", "phy:/dev/vg01/data", "xvdb"],
            "BACKEND-DEV",
        ),
        (
            &["block-attach", "alpha", "phy:/dev/vg01/data", "qqq", "w"],
            "qqq",
        ),
        (&["block-detach", "alpha", "floppy"], "floppy"),
        (&["network-detach", "alpha", "eth0"], "eth0"),
    ] {
        let (exit, _, err) = h.run(args);
        assert_eq!(exit, Exit::Usage, "{args:?}: {err}");
        assert!(
            err.starts_with("Error: ") && err.contains(named),
            "{args:?}: {err}"
        );
    }
    for args in [
        &["network-attach", "alpha", "script=vif-route"][..],
        &[
            "block-attach",
            "alpha",
            "tap:aio:/images/x.img",
            "xvdb",
            "w",
        ],
        &[
            "block-attach",
            "Domain-0",
            "file:/images/x.img",
            "xvdb",
            "w",
        ],
    ] {
        let (exit, _, err) = h.run(args);
        assert_eq!(exit, Exit::NotAvailable, "{args:?}: {err}");
    }
    assert_eq!(h.run(&["block-list", "nosuch"]).0, Exit::ConfigError);
    assert!(h.device_nodes().is_empty());
}

#[test]
fn lists_find_the_rings_of_multi_queue_frontends() {
    let h = Host::new();
    let fe = "/local/domain/1/device/vbd/51712";
    for (k, v) in [
        ("backend-id", "0"),
        ("state", "4"),
        ("backend", "/local/domain/0/backend/vbd/1/51712"),
        ("multi-queue-num-queues", "2"),
        ("queue-0/ring-ref", "9"),
        ("queue-0/event-channel", "12"),
        ("queue-1/ring-ref", "10"),
        ("queue-1/event-channel", "13"),
    ] {
        h.store.write(&format!("{fe}/{k}"), v).unwrap();
    }
    let rows = super::device::device_rows(h.store.as_ref(), 1, "vbd").unwrap();
    assert_eq!((rows[0].ring_ref, rows[0].event_channel), (9, 12));
    let vif = "/local/domain/1/device/vif/0";
    for (k, v) in [
        ("queue-0/tx-ring-ref", "768"),
        ("queue-0/rx-ring-ref", "769"),
        ("queue-0/event-channel-tx", "14"),
        ("queue-0/event-channel-rx", "15"),
        ("handle", "0"),
    ] {
        h.store.write(&format!("{vif}/{k}"), v).unwrap();
    }
    let rows = super::device::device_rows(h.store.as_ref(), 1, "vif").unwrap();
    assert_eq!(
        (
            rows[0].tx_ring_ref,
            rows[0].rx_ring_ref,
            rows[0].event_channel
        ),
        (768, 769, 14)
    );
    // a guest writing nonsense there gets xm's -1, not an error
    h.store
        .write(&format!("{fe}/queue-0/ring-ref"), "lots")
        .unwrap();
    let rows = super::device::device_rows(h.store.as_ref(), 1, "vbd").unwrap();
    assert_eq!(rows[0].ring_ref, -1);
}
