//! The daemon on the simulator: domains built by the real builder from a synthetic kernel,
//! xenstore in a [`MemStore`], a fake dom0, records in a scratch state directory. Each test
//! makes a guest shut down with a reason (the simulator's `shutdown_domain`), scans, and
//! checks the hypervisor, xenstore, the record and the event log.

use std::path::PathBuf;
use std::time::Duration;

use hypervisor::{DomainConfig as HvConfig, Hypervisor, ShutdownReason, SimHypervisor};

use super::*;
use crate::ops::{MemStore, Store};
use crate::state::events::{parse_lines, LogLine};
use crate::test_support::{config, dom0_store, kernel_in, FakeDom0, Scratch};

/// xl as the tests want it: saved configs by domid, monitors by name.
#[derive(Default)]
struct FakeXl {
    configs: BTreeMap<DomId, String>,
    monitors: BTreeMap<String, u32>,
}

impl HostProbe for FakeXl {
    fn xl_config(&self, domid: DomId, _uuid: &str) -> Option<String> {
        self.configs.get(&domid).cloned()
    }
    fn xl_monitor(&self, name: &str) -> Option<u32> {
        self.monitors.get(name).copied()
    }
}

/// One simulated host with a state directory.
struct Host {
    hv: SimHypervisor,
    store: MemStore,
    dom0: FakeDom0<'static>,
    xl: FakeXl,
    kernel: PathBuf,
    scratch: Scratch,
}

impl Host {
    fn new(tag: &str) -> Host {
        let scratch = Scratch::new(tag);
        let kernel = kernel_in(scratch.path());
        Host {
            hv: SimHypervisor::new(),
            store: dom0_store(),
            dom0: FakeDom0::default(),
            xl: FakeXl::default(),
            kernel,
            scratch,
        }
    }

    fn state(&self) -> StateDir {
        StateDir::new(self.scratch.path().join("state"))
    }

    fn policy(&self) -> Policy {
        Policy {
            storm_deaths: 3,
            storm_window: Duration::from_secs(600),
            tick: Duration::from_millis(10),
            dump_dir: self.scratch.path().join("dump"),
            wire: quick(),
        }
    }

    fn daemon(&self) -> Daemon<'_, SimHypervisor, MemStore, FakeDom0<'static>, FakeXl> {
        Daemon::new(
            &self.hv,
            &self.store,
            &self.dom0,
            &self.xl,
            self.state(),
            self.policy(),
        )
    }

    /// `xm create` of a guest with these extra settings: recorded in the state directory.
    fn create(&self, name: &str, extra: &str) -> DomId {
        let text = format!(
            "name = '{name}'\nkernel = '{}'\nmemory = 32\n{extra}",
            self.kernel.display()
        );
        let config = config(&text);
        let options = WireOptions {
            record: Some(Recording {
                state: self.state(),
                origin: Origin {
                    by: "xm create".into(),
                    config_path: Some(PathBuf::from("/etc/xen/t.cfg")),
                },
            }),
            ..quick()
        };
        create::create_domain(&self.hv, &self.store, &self.dom0, &config, &options)
            .expect("created")
            .domid
    }

    fn domid_of(&self, name: &str) -> Option<DomId> {
        ops::all_domains(&self.hv, &self.store)
            .unwrap()
            .into_iter()
            .find(|d| d.name.as_deref() == Some(name))
            .map(|d| d.domid())
    }

    fn events(&self) -> Vec<Event> {
        let text = std::fs::read_to_string(self.state().events_path()).unwrap_or_default();
        parse_lines(&text)
            .into_iter()
            .filter_map(|l| match l {
                LogLine::Event(e) => Some(e),
                LogLine::Unreadable(_) => None,
            })
            .collect()
    }

    fn events_of(&self, event: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.event == event)
            .collect()
    }
}

fn quick() -> WireOptions {
    WireOptions {
        connect_timeout: Duration::from_millis(50),
        netdev_timeout: Duration::from_millis(50),
        poll: Duration::from_millis(2),
        ..WireOptions::default()
    }
}

#[test]
fn poweroff_under_destroy_leaves_nothing_behind() {
    let host = Host::new("poweroff");
    let domid = host.create("web", "on_poweroff = 'destroy'");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    let uuid = hypervisor::uuid::format(&host.hv.domain_info(domid).unwrap().handle);
    assert!(host.state().read(&uuid).unwrap().is_some());

    host.hv
        .shutdown_domain(domid, ShutdownReason::Poweroff)
        .unwrap();
    daemon.scan().unwrap();

    assert!(host.hv.domain_info(domid).is_err(), "domain still exists");
    assert_eq!(host.store.list("/local/domain").unwrap(), vec!["0"]);
    assert!(host
        .store
        .list("/local/domain/0/backend/console")
        .unwrap()
        .is_empty());
    assert!(host.store.list("/libxl").unwrap().is_empty());
    assert!(host.store.list("/vm").unwrap().is_empty());
    assert_eq!(host.state().read(&uuid).unwrap(), None);
    let events = host.events_of("poweroff");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "destroy");
    assert_eq!(events[0].domain, "web");
    assert!(
        events[0].outcome.starts_with("destroyed"),
        "{:?}",
        events[0]
    );
}

#[test]
fn reboot_under_restart_brings_the_same_name_and_uuid_back_with_a_new_domid() {
    let host = Host::new("reboot");
    let old = host.create("web", "on_reboot = 'restart'");
    let uuid = hypervisor::uuid::format(&host.hv.domain_info(old).unwrap().handle);
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();

    host.hv
        .shutdown_domain(old, ShutdownReason::Reboot)
        .unwrap();
    daemon.scan().unwrap();

    let new = host.domid_of("web").expect("web runs again");
    assert_ne!(new, old);
    assert!(
        host.hv.domain_info(old).is_err(),
        "old domain not destroyed"
    );
    let info = host.hv.domain_info(new).unwrap();
    assert_eq!(hypervisor::uuid::format(&info.handle), uuid);
    assert!(!info.shutdown && !info.paused);
    let record = host.state().read(&uuid).unwrap().expect("record kept");
    assert_eq!(record.domid, new);
    assert_eq!(record.origin.by, "xm create");
    assert_eq!(record.deaths.len(), 1);
    assert_eq!(record.deaths[0].domid, old);
    assert_eq!(record.deaths[0].restarted_as, Some(new));
    let events = host.events_of("reboot");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "restart");
    assert!(
        events[0]
            .outcome
            .ends_with(&format!("restarted as domain {new}")),
        "{:?}",
        events[0]
    );
    // The new domain is simply tracked: nothing more happens on the next scans.
    daemon.scan().unwrap();
    daemon.scan().unwrap();
    assert_eq!(host.domid_of("web"), Some(new));
    assert_eq!(host.events_of("reboot").len(), 1);
    assert_eq!(
        host.events_of("adopted").len(),
        1,
        "the restarted domain was 'adopted'"
    );
}

#[test]
fn while_the_host_is_stopping_a_powered_off_guest_is_not_restarted() {
    let host = Host::new("host-stopping");
    let web = host.create("web", "on_poweroff = 'restart'");
    let db = host.create("db", "on_poweroff = 'restart'");
    let web_uuid = hypervisor::uuid::format(&host.hv.domain_info(web).unwrap().handle);
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();

    // `xm autostart --stop` marks the state directory, then powers the guests off
    host.state().mark_host_stopping().unwrap();
    host.hv
        .shutdown_domain(web, ShutdownReason::Poweroff)
        .unwrap();
    daemon.scan().unwrap();

    assert_eq!(host.domid_of("web"), None, "web was restarted");
    assert!(host.hv.domain_info(web).is_err(), "web not destroyed");
    assert_eq!(host.state().read(&web_uuid).unwrap(), None);
    let events = host.events_of("poweroff");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].domain, "web");
    assert!(
        events[0]
            .outcome
            .starts_with("not restarted: the host is stopping (xm autostart --stop); destroyed"),
        "{:?}",
        events[0]
    );

    // `xm autostart` at the next start removes the marker: restarts are back
    host.state().clear_host_stopping().unwrap();
    host.hv
        .shutdown_domain(db, ShutdownReason::Poweroff)
        .unwrap();
    daemon.scan().unwrap();
    let new = host.domid_of("db").expect("db runs again");
    assert_ne!(new, db);
}

#[test]
fn crash_under_preserve_stays_inspectable_and_is_handled_once() {
    let host = Host::new("preserve");
    let domid = host.create("db", "on_crash = 'preserve'");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    host.hv
        .shutdown_domain(domid, ShutdownReason::Crash)
        .unwrap();
    daemon.scan().unwrap();
    daemon.scan().unwrap();

    let info = host.hv.domain_info(domid).expect("still there");
    assert_eq!(info.shutdown_reason, Some(ShutdownReason::Crash));
    assert_eq!(host.domid_of("db"), Some(domid));
    let record = host.state().find_by_domid(domid).expect("record kept");
    assert!(record
        .left
        .as_ref()
        .is_some_and(|l| l.reason.contains("preserved")));
    let events = host.events_of("crash");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].action, "preserve");

    // A restarted daemon does not act on it again either.
    drop(daemon);
    let mut again = host.daemon();
    again.start().unwrap();
    again.scan().unwrap();
    assert!(host.hv.domain_info(domid).is_ok());
    assert_eq!(host.events_of("crash").len(), 1);
}

#[test]
fn rename_restart_keeps_the_old_domain_under_a_new_name() {
    let host = Host::new("rename");
    let old = host.create("app", "on_crash = 'rename-restart'");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    host.hv.shutdown_domain(old, ShutdownReason::Crash).unwrap();
    daemon.scan().unwrap();

    let new = host.domid_of("app").expect("app runs again");
    assert_ne!(new, old);
    assert_eq!(host.domid_of(&format!("app-{old}")), Some(old));
    assert!(host.hv.domain_info(old).unwrap().shutdown);
    let old_uuid = hypervisor::uuid::format(&host.hv.domain_info(old).unwrap().handle);
    let new_uuid = hypervisor::uuid::format(&host.hv.domain_info(new).unwrap().handle);
    assert_ne!(old_uuid, new_uuid);
    let kept = host.state().read(&old_uuid).unwrap().expect("old record");
    assert!(kept.left.is_some());
    assert_eq!(kept.name, format!("app-{old}"));
    let fresh = host.state().read(&new_uuid).unwrap().expect("new record");
    assert_eq!(fresh.domid, new);
    assert_eq!(fresh.deaths.len(), 1);
    // The kept domain is not acted on again.
    daemon.scan().unwrap();
    assert_eq!(host.events_of("crash").len(), 1);
}

#[test]
fn coredump_actions_write_the_core_first_then_destroy_or_restart() {
    let host = Host::new("coredump");
    let a = host.create("a", "on_crash = 'coredump-destroy'");
    let b = host.create("b", "on_crash = 'coredump-restart'");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    host.hv.shutdown_domain(a, ShutdownReason::Crash).unwrap();
    host.hv.shutdown_domain(b, ShutdownReason::Crash).unwrap();
    daemon.scan().unwrap();

    assert!(host.hv.domain_info(a).is_err());
    assert_eq!(host.domid_of("a"), None);
    let b2 = host.domid_of("b").expect("b restarted");
    assert_ne!(b2, b);
    let events = host.events_of("crash");
    assert_eq!(events.len(), 2);
    // each core was taken from the crashed domain itself, before it went
    let dump = host.scratch.path().join("dump");
    for (name, domid) in [("a", a), ("b", b)] {
        let core = std::fs::read_dir(&dump)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}-")) && n.ends_with(".core"))
            })
            .unwrap_or_else(|| panic!("no core for {name} in {}", dump.display()));
        let text = std::fs::read_to_string(&core).unwrap();
        assert!(
            text.starts_with(&format!("SIM-CORE domid={domid} ")),
            "{text}"
        );
    }
    for e in &events {
        assert!(e.outcome.starts_with("core written to "), "{e:?}");
    }
    assert!(events.iter().any(|e| e.action == "coredump-destroy"));
    assert!(events.iter().any(|e| e.action == "coredump-restart"
        && e.outcome.ends_with(&format!("restarted as domain {b2}"))));
}

#[test]
fn a_restart_storm_is_stopped_with_a_logged_reason() {
    let host = Host::new("storm");
    host.create("loop", "on_reboot = 'restart'");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    // storm_deaths is 3: two restarts, then the third death stops it.
    let mut domids = Vec::new();
    for _ in 0..3 {
        let domid = host.domid_of("loop").expect("loop runs");
        domids.push(domid);
        host.hv
            .shutdown_domain(domid, ShutdownReason::Reboot)
            .unwrap();
        daemon.scan().unwrap();
    }
    assert_eq!(host.domid_of("loop"), None, "restarted despite the storm");
    for d in &domids {
        assert!(host.hv.domain_info(*d).is_err());
    }
    assert!(host.state().load_all().records.is_empty());
    let events = host.events_of("reboot");
    assert_eq!(events.len(), 3);
    assert!(
        events[2].outcome.contains("restart storm (3 deaths"),
        "{:?}",
        events[2]
    );
    assert!(events[2].outcome.contains("left stopped"));
}

#[test]
fn a_restarted_daemon_adopts_domains_created_while_it_was_down_and_drops_stale_records() {
    let host = Host::new("adopt");
    let kept = host.create("kept", "on_reboot = 'restart'");
    let gone = host.create("gone", "");
    let mut first = host.daemon();
    first.start().unwrap();
    first.scan().unwrap();
    // The daemon dies (kill -9: nothing saved beyond the records).
    drop(first);
    // While it is down: `xm create` of another guest, `xl destroy`-like removal of one.
    let late = host.create("late", "on_poweroff = 'destroy'");
    let gone_uuid = hypervisor::uuid::format(&host.hv.domain_info(gone).unwrap().handle);
    host.hv.destroy_domain(gone).unwrap();

    let mut second = host.daemon();
    second.start().unwrap();
    second.scan().unwrap();
    assert_eq!(host.state().read(&gone_uuid).unwrap(), None);
    let adopted: Vec<String> = host
        .events_of("adopted")
        .into_iter()
        .map(|e| e.domain)
        .collect();
    assert!(
        adopted.iter().filter(|n| *n == "late").count() == 1,
        "{adopted:?}"
    );
    assert!(
        adopted.iter().filter(|n| *n == "kept").count() == 2,
        "{adopted:?}"
    );
    // The dead domain's leftovers were swept.
    assert!(!host
        .store
        .list("/local/domain")
        .unwrap()
        .contains(&gone.to_string()));

    host.hv
        .shutdown_domain(kept, ShutdownReason::Reboot)
        .unwrap();
    host.hv
        .shutdown_domain(late, ShutdownReason::Poweroff)
        .unwrap();
    second.scan().unwrap();
    let kept2 = host.domid_of("kept").expect("kept restarted");
    assert_ne!(kept2, kept);
    assert_eq!(host.domid_of("late"), None);
    assert!(host.hv.domain_info(late).is_err());
}

#[test]
fn a_shutdown_seen_before_its_record_is_written_is_handled_once_the_record_appears() {
    let host = Host::new("race");
    let domid = host.create("quick", "on_poweroff = 'destroy'");
    let uuid = hypervisor::uuid::format(&host.hv.domain_info(domid).unwrap().handle);
    let record = host.state().read(&uuid).unwrap().unwrap();
    host.state().remove(&uuid).unwrap();
    host.hv
        .shutdown_domain(domid, ShutdownReason::Poweroff)
        .unwrap();
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    assert!(host.hv.domain_info(domid).is_ok(), "acted without a record");
    assert!(daemon.next_wait() <= Duration::from_millis(100));
    host.state().write(&record).unwrap();
    daemon.scan().unwrap();
    assert!(host.hv.domain_info(domid).is_err());
}

#[test]
fn xl_domains_follow_their_saved_actions_unless_xl_still_monitors_them() {
    let mut host = Host::new("xl");
    let watched = host.hv.create_domain(&HvConfig::pv([1; 16], 1)).unwrap();
    let orphan = host.hv.create_domain(&HvConfig::pv([2; 16], 1)).unwrap();
    let stranger = host.hv.create_domain(&HvConfig::pv([3; 16], 1)).unwrap();
    for (d, n) in [
        (watched, "watched"),
        (orphan, "orphan"),
        (stranger, "stranger"),
    ] {
        host.store
            .write(&format!("/local/domain/{d}/name"), n)
            .unwrap();
    }
    let json = r#"{"c_info": {"name": "x"}, "on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "preserve"}"#;
    host.xl.configs.insert(watched, json.into());
    host.xl.configs.insert(orphan, json.into());
    host.xl.monitors.insert("watched".into(), 4242);
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    for d in [watched, orphan, stranger] {
        host.hv
            .shutdown_domain(d, ShutdownReason::Poweroff)
            .unwrap();
    }
    daemon.scan().unwrap();

    assert!(
        host.hv.domain_info(watched).is_ok(),
        "xl's monitor's domain was touched"
    );
    assert!(host.hv.domain_info(orphan).is_err(), "orphan not destroyed");
    assert!(
        host.hv.domain_info(stranger).is_ok(),
        "a foreign domain was touched"
    );
    let events = host.events_of("poweroff");
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .any(|e| e.domain == "watched" && e.outcome.contains("pid 4242")));
    assert!(events
        .iter()
        .any(|e| e.domain == "orphan" && e.action == "destroy"));
}

#[test]
fn libxl_action_names_are_read() {
    let actions = parse_xl_actions(
        r#"{"on_poweroff": "preserve", "on_reboot": "restart_rename", "on_crash": "coredump_restart"}"#,
    )
    .unwrap();
    assert_eq!(actions.on_poweroff, Action::Preserve);
    assert_eq!(actions.on_reboot, Action::RenameRestart);
    assert_eq!(actions.on_crash, Action::CoredumpRestart);
    assert_eq!(actions.on_watchdog, Action::Destroy);
    assert_eq!(parse_xl_actions("not json"), None);
}

#[test]
fn suspended_domains_are_left_for_whoever_suspended_them() {
    let host = Host::new("suspend");
    let domid = host.create("s", "");
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    host.hv
        .shutdown_domain(domid, ShutdownReason::Suspend)
        .unwrap();
    daemon.scan().unwrap();
    assert!(host.hv.domain_info(domid).is_ok());
    let events = host.events_of("suspend");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "none");
}

#[test]
fn corrupt_records_are_logged_once_and_do_not_stop_the_others() {
    let host = Host::new("corrupt");
    let domid = host.create("fine", "on_poweroff = 'destroy'");
    let bad = host
        .state()
        .domains_dir()
        .join("99999999-9999-9999-9999-999999999999.json");
    std::fs::write(&bad, b"{ half a record").unwrap();
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    host.hv
        .shutdown_domain(domid, ShutdownReason::Poweroff)
        .unwrap();
    daemon.scan().unwrap();
    assert!(host.hv.domain_info(domid).is_err());
    let corrupt = host.events_of("corrupt-record");
    assert_eq!(corrupt.len(), 1, "{corrupt:?}");
    assert!(corrupt[0]
        .outcome
        .contains("99999999-9999-9999-9999-999999999999.json"));
    assert!(bad.exists(), "a corrupt record is reported, not deleted");
}

#[test]
fn leftovers_of_vanished_domains_are_swept_and_their_loops_released() {
    let host = Host::new("sweep");
    let base = "/local/domain/0/backend/vbd/41/51712";
    host.store
        .write(&format!("{base}/node"), "/dev/loop3")
        .unwrap();
    host.store
        .write(&format!("{base}/params"), "/images/a.img")
        .unwrap();
    host.store
        .write("/local/domain/0/backend/vbd/42/51712/node", "/dev/loop4")
        .unwrap();
    host.store
        .write("/local/domain/0/backend/vbd/42/51712/params", "/dev/loop4")
        .unwrap();
    host.store.write("/local/domain/41/name", "ghost").unwrap();
    host.store.write("/libxl/41/type", "pv").unwrap();
    let mut daemon = host.daemon();
    daemon.start().unwrap();
    daemon.scan().unwrap();
    assert!(host
        .store
        .list("/local/domain/0/backend/vbd")
        .unwrap()
        .is_empty());
    assert_eq!(host.store.list("/local/domain").unwrap(), vec!["0"]);
    assert!(host.store.list("/libxl").unwrap().is_empty());
    // Only the loop device we attached is ours to release; phy:/dev/loop4 was the admin's.
    assert_eq!(host.dom0.logged("detach"), vec!["/dev/loop3".to_string()]);
    assert_eq!(host.events_of("leftovers").len(), 2);
}
