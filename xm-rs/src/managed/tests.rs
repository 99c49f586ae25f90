//! Host tests of managed domains and autostart: definitions on a temporary directory, domains
//! built by the real builder from a synthetic PV kernel on [`SimHypervisor`], xenstore in a
//! [`MemStore`], and a fake dom0 for devices.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hypervisor::{DomainConfig as HvConfig, Hypervisor, ShutdownReason, SimHypervisor};

use super::autostart::{
    self, AutoConfig, LaunchError, Launcher, Outcome, StartOptions, StopOptions, StopOutcome,
};
use super::*;
use crate::ops::MemStore;
use crate::test_support::{config, dom0_store, kernel_in, FakeDom0, Scratch};

fn cfg_text(name: &str, kernel: &Path, extra: &str) -> String {
    format!(
        "name = '{name}'\nkernel = '{}'\nmemory = 32\nvcpus = 1\n{extra}",
        kernel.display()
    )
}

/// dom0 for these tests: one block device (`/dev/vg01/slow`) and bridge xenbr0; nothing
/// plays the backends, so a domain with a disk never connects.
fn fake_dom0() -> FakeDom0<'static> {
    FakeDom0::with_lv("/dev/vg01/slow", 9)
}

fn quick(timeout: Duration) -> WireOptions {
    WireOptions {
        paused: false,
        connect_timeout: timeout,
        netdev_timeout: timeout,
        poll: Duration::from_millis(5),
        ..WireOptions::default()
    }
}

/// Starts domains on the simulator through [`create::create_domain`], counting how many run
/// at once; `delay` stretches each start so overlaps show.
struct SimLauncher<'a> {
    hv: &'a SimHypervisor,
    store: &'a MemStore,
    delay: Duration,
    in_flight: AtomicUsize,
    most_at_once: AtomicUsize,
    launches: AtomicUsize,
}

impl<'a> SimLauncher<'a> {
    fn new(hv: &'a SimHypervisor, store: &'a MemStore) -> SimLauncher<'a> {
        SimLauncher {
            hv,
            store,
            delay: Duration::ZERO,
            in_flight: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            launches: AtomicUsize::new(0),
        }
    }
}

impl Launcher for SimLauncher<'_> {
    fn live(&self) -> Result<Vec<(String, hypervisor::DomId)>, String> {
        autostart::live_names(self.hv, self.store)
    }

    fn launch(
        &self,
        _file: &Path,
        config: &DomainConfig,
        timeout: Duration,
    ) -> Result<hypervisor::DomId, LaunchError> {
        self.launches.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let result =
            create::create_domain(self.hv, self.store, &fake_dom0(), config, &quick(timeout));
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(created) => Ok(created.domid),
            Err(CreateError::Duplicate(_)) => Err(LaunchError::AlreadyRunning),
            Err(e) => Err(LaunchError::Failed(e.to_string())),
        }
    }
}

fn definition(name: &str, kernel: &Path, extra: &str) -> Definition {
    Definition::new(
        config(&cfg_text(name, kernel, extra)),
        PathBuf::from(format!("/etc/xen/{name}.cfg")),
        Vec::new(),
    )
}

fn names_running(hv: &SimHypervisor, s: &MemStore) -> Vec<String> {
    autostart::live_names(hv, s)
        .expect("live")
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "Domain-0")
        .collect()
}

// ---- definitions ----

#[test]
fn a_definition_round_trips_through_the_store_atomically_and_privately() {
    let dir = Scratch::new("roundtrip");
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let mut def = definition("web1", Path::new("/boot/vmlinuz"), "extra = 'quiet'\n");
    def.variables = vec![("vmid".into(), "3".into())];
    defs.put(&def).expect("put");
    assert_eq!(defs.get("web1").expect("get"), Some(def.clone()));
    let files: Vec<String> = std::fs::read_dir(defs.dir())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files,
        vec!["web1.json".to_string()],
        "no temporary file left"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(defs.dir().join("web1.json"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        def.config.uuid.is_some(),
        "a managed domain gets a stable UUID"
    );
}

#[test]
fn definitions_are_listed_in_name_order_and_a_missing_directory_is_empty() {
    let dir = Scratch::new("order");
    let defs = DefinitionStore::new(dir.path().join("managed"));
    assert!(defs.list().expect("empty").is_empty());
    for name in ["tucano-vm", "beijaflor-vm", "colibri-vm"] {
        defs.put(&definition(name, Path::new("/k"), ""))
            .expect("put");
    }
    let names: Vec<String> = defs
        .list()
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["beijaflor-vm", "colibri-vm", "tucano-vm"]);
}

#[test]
fn a_corrupt_definition_is_an_error_naming_its_file() {
    let dir = Scratch::new("corrupt");
    let defs = DefinitionStore::new(dir.path());
    std::fs::write(dir.path().join("bad.json"), "{ not json").expect("write");
    let err = defs.get("bad").expect_err("corrupt");
    assert!(err.to_string().contains("bad.json"), "{err}");
    assert!(err.to_string().contains("not a domain definition"), "{err}");
}

#[test]
fn names_that_are_not_valid_vm_names_are_refused() {
    for bad in ["", "../etc", ".hidden", "a b", "x/y"] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["web1", "db-2.example:a+b_c"] {
        check_name(good).expect(good);
    }
}

#[test]
fn new_refuses_a_name_already_defined_but_replaces_the_same_vm() {
    let dir = Scratch::new("new");
    let defs = DefinitionStore::new(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let first = definition("web1", Path::new("/k"), "");
    assert!(!define(&defs, &hv, &s, &first).expect("first"));
    let other = definition("web1", Path::new("/k2"), "");
    let err = define(&defs, &hv, &s, &other).expect_err("taken");
    assert!(
        err.to_string().starts_with("VM name 'web1' already exists"),
        "{err}"
    );
    assert_eq!(defs.get("web1").expect("get"), Some(first.clone()));
    // Same UUID: the same VM, redefined (xend's rule).
    let mut same = definition("web1", Path::new("/k3"), "");
    same.config.uuid = first.config.uuid.clone();
    assert!(define(&defs, &hv, &s, &same).expect("replace"));
    assert_eq!(
        defs.get("web1").expect("get").map(|d| d.config.kernel),
        Some(Some("/k3".to_string()))
    );
}

#[test]
fn new_refuses_the_name_of_a_running_domain_that_is_another_vm() {
    let dir = Scratch::new("newrunning");
    let defs = DefinitionStore::new(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let domid = hv.create_domain(&HvConfig::pv([9; 16], 1)).expect("domain");
    s.write(&format!("/local/domain/{domid}/name"), "web1")
        .expect("name");
    let err =
        define(&defs, &hv, &s, &definition("web1", Path::new("/k"), "")).expect_err("running");
    assert_eq!(
        err.to_string(),
        format!("VM name 'web1' already exists as domain {domid}")
    );
    assert!(defs.list().expect("list").is_empty());
}

#[test]
fn start_creates_the_defined_domain_and_refuses_a_second_start() {
    let dir = Scratch::new("start");
    let kernel = kernel_in(dir.path());
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let def = definition("web1", &kernel, "");
    define(&defs, &hv, &s, &def).expect("define");
    let created = start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "web1",
        &quick(Duration::from_secs(1)),
    )
    .expect("start");
    assert_eq!(
        s.read(&format!("/local/domain/{}/name", created.domid))
            .expect("read"),
        Some("web1".to_string())
    );
    let info = hv.domain_info(created.domid).expect("info");
    assert!(!info.paused, "started unpaused");
    assert_eq!(
        hypervisor::uuid::format(&info.handle),
        def.config.uuid.clone().expect("uuid"),
        "the definition's UUID is the domain's"
    );
    let again = start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "web1",
        &quick(Duration::from_secs(1)),
    );
    assert!(
        matches!(again, Err(ManagedError::AlreadyRunning { domid, .. }) if domid == created.domid),
        "{again:?}"
    );
    let unknown = start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "nope",
        &quick(Duration::from_secs(1)),
    );
    assert_eq!(
        unknown.map(|c| c.domid).map_err(|e| e.to_string()),
        Err("Domain 'nope' does not exist.".to_string())
    );
}

#[test]
fn start_paused_leaves_the_domain_paused() {
    let dir = Scratch::new("paused");
    let kernel = kernel_in(dir.path());
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    define(&defs, &hv, &s, &definition("web1", &kernel, "")).expect("define");
    let options = WireOptions {
        paused: true,
        ..quick(Duration::from_secs(1))
    };
    let created = start(&defs, &hv, &s, &fake_dom0(), "web1", &options).expect("start");
    assert!(hv.domain_info(created.domid).expect("info").paused);
}

#[test]
fn delete_refuses_while_running_and_forgets_a_halted_domain() {
    let dir = Scratch::new("delete");
    let kernel = kernel_in(dir.path());
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    define(&defs, &hv, &s, &definition("web1", &kernel, "")).expect("define");
    let created = start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "web1",
        &quick(Duration::from_secs(1)),
    )
    .expect("start");
    let err = delete(&defs, &hv, &s, "web1").expect_err("running");
    assert!(matches!(err, ManagedError::NotHalted { .. }), "{err}");
    assert!(defs.get("web1").expect("get").is_some());
    hv.destroy_domain(created.domid).expect("destroy");
    delete(&defs, &hv, &s, "web1").expect("delete");
    assert!(defs.get("web1").expect("get").is_none());
    let err = delete(&defs, &hv, &s, "web1").expect_err("gone");
    assert_eq!(err.to_string(), "Domain 'web1' does not exist.");
}

// ---- xm list ----

#[test]
fn list_shows_halted_definitions_after_live_domains_in_xm_format() {
    let dir = Scratch::new("list");
    let kernel = kernel_in(dir.path());
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    for name in ["zeta", "alpha", "mid"] {
        let extra = if name == "alpha" {
            "vcpus = 2\nmemory = 512\n"
        } else {
            ""
        };
        let def = Definition::new(
            config(&format!(
                "name = '{name}'\nkernel = '{}'\nmemory = 32\n{extra}",
                kernel.display()
            )),
            PathBuf::from("/etc/xen/x.cfg"),
            Vec::new(),
        );
        define(&defs, &hv, &s, &def).expect("define");
    }
    start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "mid",
        &quick(Duration::from_secs(1)),
    )
    .expect("start");
    let entries = list_entries(&hv, &s, &defs, &[], None).expect("list");
    let shown: Vec<(String, bool)> = entries
        .iter()
        .map(|e| match e {
            ListEntry::Live(d) => (d.display_name().to_string(), true),
            ListEntry::Halted(def) => (def.name.clone(), false),
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("Domain-0".to_string(), true),
            ("mid".to_string(), true),
            ("alpha".to_string(), false),
            ("zeta".to_string(), false)
        ]
    );
    let ListEntry::Halted(alpha) = &entries[2] else {
        panic!("alpha is halted");
    };
    // xm: '%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s %(cpu_time)8.1f' with
    // domid and state empty for a dormant domain.
    let expected = [
        format!("alpha{}", " ".repeat(35)), // %-40s
        " ".repeat(5),                      // %5s: no domid
        "  512".to_string(),                // %5d: configured memory
        "    2".to_string(),                // %5d: vcpus
        " ".repeat(10),                     // %10s: no state
        "     0.0".to_string(),             // %8.1f
    ]
    .join(" ");
    assert_eq!(halted_line(alpha), expected);
    let ListEntry::Live(dom0) = &entries[0] else {
        panic!("dom0 is live");
    };
    assert_eq!(halted_line(alpha).len(), ops::format::list_line(dom0).len());
}

#[test]
fn list_state_selects_running_or_halted_and_refuses_names_with_a_state() {
    let dir = Scratch::new("state");
    let kernel = kernel_in(dir.path());
    let defs = DefinitionStore::new(dir.path().join("managed"));
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    for name in ["up", "down"] {
        define(&defs, &hv, &s, &definition(name, &kernel, "")).expect("define");
    }
    start(
        &defs,
        &hv,
        &s,
        &fake_dom0(),
        "up",
        &quick(Duration::from_secs(1)),
    )
    .expect("start");
    let names = |state| -> Vec<String> {
        list_entries(&hv, &s, &defs, &[], Some(state))
            .expect("list")
            .iter()
            .map(|e| match e {
                ListEntry::Live(d) => d.display_name().to_string(),
                ListEntry::Halted(def) => def.name.clone(),
            })
            .collect()
    };
    assert_eq!(names(PowerState::Halted), ["down"]);
    assert_eq!(names(PowerState::Running), ["Domain-0", "up"]);
    assert!(names(PowerState::Paused).is_empty());
    let err =
        list_entries(&hv, &s, &defs, &["up".into()], Some(PowerState::Running)).expect_err("both");
    assert!(
        matches!(err, ManagedError::Ops(OpsError::Usage(_))),
        "{err}"
    );
    // A named managed domain that does not run is shown halted; an unknown one is an error.
    let named = list_entries(&hv, &s, &defs, &["down".into()], None).expect("named");
    assert!(matches!(&named[..], [ListEntry::Halted(d)] if d.name == "down"));
    let err = list_entries(&hv, &s, &defs, &["nope".into()], None).expect_err("unknown");
    assert_eq!(err.to_string(), "Domain 'nope' does not exist.");
    assert_eq!(PowerState::parse("HALTED"), Some(PowerState::Halted));
    assert_eq!(PowerState::parse("sleeping"), None);
}

#[test]
fn a_domain_that_shut_down_or_crashed_is_halted_or_crashed() {
    let hv = SimHypervisor::new();
    let a = hv.create_domain(&HvConfig::pv([1; 16], 1)).expect("a");
    let b = hv.create_domain(&HvConfig::pv([2; 16], 1)).expect("b");
    hv.unpause_domain(a).expect("unpause");
    assert_eq!(
        PowerState::of(&hv.domain_info(a).expect("a")),
        PowerState::Running
    );
    assert_eq!(
        PowerState::of(&hv.domain_info(b).expect("b")),
        PowerState::Paused
    );
    hv.shutdown_domain(a, ShutdownReason::Poweroff)
        .expect("off");
    hv.shutdown_domain(b, ShutdownReason::Crash).expect("crash");
    assert_eq!(
        PowerState::of(&hv.domain_info(a).expect("a")),
        PowerState::Halted
    );
    assert_eq!(
        PowerState::of(&hv.domain_info(b).expect("b")),
        PowerState::Crashed
    );
}

// ---- autostart ----

#[test]
fn scan_lists_configs_in_name_order_and_skips_hidden_files_and_backups() {
    let dir = Scratch::new("scan");
    let real = dir.path().join("real");
    std::fs::create_dir_all(&real).expect("real");
    std::fs::write(real.join("b.cfg"), "x").expect("b");
    let auto = dir.path().join("auto");
    std::fs::create_dir_all(auto.join("subdir")).expect("auto");
    for f in [
        "c.cfg",
        "a.cfg",
        "A.cfg",
        ".hidden",
        "c.cfg~",
        "c.cfg.dpkg-old",
        "d.swp",
    ] {
        std::fs::write(auto.join(f), "x").expect(f);
    }
    std::os::unix::fs::symlink(real.join("b.cfg"), auto.join("b.cfg")).expect("symlink");
    let names: Vec<String> = autostart::scan(&auto)
        .expect("scan")
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["A.cfg", "a.cfg", "b.cfg", "c.cfg"]);
    let err = autostart::scan(&dir.path().join("missing")).expect_err("missing");
    assert!(err.to_string().contains("missing"), "{err}");
}

fn auto(kernel: &Path, names: &[&str]) -> Vec<AutoConfig> {
    names
        .iter()
        .map(|n| AutoConfig {
            file: PathBuf::from(format!("/etc/xen/auto/{n}.cfg")),
            config: Ok(config(&cfg_text(n, kernel, ""))),
        })
        .collect()
}

fn no_progress() -> impl Fn(&autostart::Attempt) + Sync {
    |_: &autostart::Attempt| {}
}

#[test]
fn autostart_starts_every_config_in_name_order() {
    let dir = Scratch::new("order-start");
    let kernel = kernel_in(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let launcher = SimLauncher::new(&hv, &s);
    let attempts = autostart::start_all(
        &launcher,
        auto(&kernel, &["beijaflor-vm", "colibri-vm", "tucano-vm"]),
        StartOptions::default(),
        &no_progress(),
    );
    let domids: Vec<u32> = attempts
        .iter()
        .map(|a| match a.outcome {
            Outcome::Started { domid } => domid,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        domids.windows(2).all(|w| w[0] < w[1]),
        "one at a time, in order: {domids:?}"
    );
    assert_eq!(
        names_running(&hv, &s),
        ["beijaflor-vm", "colibri-vm", "tucano-vm"]
    );
}

#[test]
fn autostart_again_starts_nothing_and_skips_what_runs() {
    let dir = Scratch::new("idempotent");
    let kernel = kernel_in(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let launcher = SimLauncher::new(&hv, &s);
    let names = ["a-vm", "b-vm"];
    let first = autostart::start_all(
        &launcher,
        auto(&kernel, &names),
        StartOptions::default(),
        &no_progress(),
    );
    assert!(first
        .iter()
        .all(|a| matches!(a.outcome, Outcome::Started { .. })));
    let launches = launcher.launches.load(Ordering::SeqCst);
    let before = hv.list_domains().expect("list").len();
    let second = autostart::start_all(
        &launcher,
        auto(&kernel, &names),
        StartOptions::default(),
        &no_progress(),
    );
    assert!(
        second
            .iter()
            .all(|a| matches!(a.outcome, Outcome::AlreadyRunning { domid: Some(_) })),
        "{second:?}"
    );
    assert_eq!(
        launcher.launches.load(Ordering::SeqCst),
        launches,
        "nothing launched"
    );
    assert_eq!(hv.list_domains().expect("list").len(), before);
    assert!(second[0].describe().contains("already running"));
}

#[test]
fn autostart_runs_at_most_parallel_starts_at_once() {
    let dir = Scratch::new("parallel");
    let kernel = kernel_in(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let mut launcher = SimLauncher::new(&hv, &s);
    launcher.delay = Duration::from_millis(80);
    let names = ["v1", "v2", "v3", "v4", "v5"];
    let begun = Instant::now();
    let attempts = autostart::start_all(
        &launcher,
        auto(&kernel, &names),
        StartOptions {
            parallel: 2,
            timeout: Duration::from_secs(1),
        },
        &no_progress(),
    );
    assert!(attempts
        .iter()
        .all(|a| matches!(a.outcome, Outcome::Started { .. })));
    assert_eq!(launcher.most_at_once.load(Ordering::SeqCst), 2);
    // The starts overlapped: together they took less wall time than one after the other.
    let one_by_one: Duration = attempts.iter().map(|a| a.elapsed).sum();
    assert!(
        begun.elapsed() < one_by_one,
        "{:?} vs {one_by_one:?}",
        begun.elapsed()
    );
    let order: Vec<_> = attempts.iter().filter_map(|a| a.name.clone()).collect();
    assert_eq!(order, names, "reported in name order");
}

#[test]
fn a_domain_whose_devices_do_not_connect_fails_at_its_timeout_and_the_others_start() {
    let dir = Scratch::new("timeout");
    let kernel = kernel_in(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let launcher = SimLauncher::new(&hv, &s);
    let mut configs = auto(&kernel, &["a-vm", "c-vm"]);
    configs.insert(
        1,
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/b-vm.cfg"),
            config: Ok(config(&cfg_text(
                "b-vm",
                &kernel,
                "disk = ['phy:/dev/vg01/slow,xvda,w']\n",
            ))),
        },
    );
    let timeout = Duration::from_millis(150);
    let attempts = autostart::start_all(
        &launcher,
        configs,
        StartOptions {
            parallel: 1,
            timeout,
        },
        &no_progress(),
    );
    let b = &attempts[1];
    let Outcome::Failed(why) = &b.outcome else {
        panic!("{b:?}");
    };
    assert!(why.contains("vbd") && why.contains("within 150ms"), "{why}");
    assert!(b.elapsed >= timeout, "{:?}", b.elapsed);
    assert!(b.elapsed < timeout * 10, "{:?}", b.elapsed);
    assert!(matches!(attempts[0].outcome, Outcome::Started { .. }));
    assert!(matches!(attempts[2].outcome, Outcome::Started { .. }));
    assert_eq!(names_running(&hv, &s), ["a-vm", "c-vm"], "b-vm rolled back");
}

#[test]
fn every_failure_is_reported_by_name_after_trying_the_others() {
    let dir = Scratch::new("failures");
    let kernel = kernel_in(dir.path());
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let launcher = SimLauncher::new(&hv, &s);
    let configs = vec![
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/0-broken.cfg"),
            config: Err(
                "/etc/xen/auto/0-broken.cfg:3:1: NameError: name 'x' is not defined".into(),
            ),
        },
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/1-nokernel.cfg"),
            config: Ok(config(&cfg_text(
                "nokernel",
                Path::new("/nonexistent/vmlinuz"),
                "",
            ))),
        },
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/2-good.cfg"),
            config: Ok(config(&cfg_text("good", &kernel, ""))),
        },
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/3-good-again.cfg"),
            config: Ok(config(&cfg_text("good", &kernel, ""))),
        },
        AutoConfig {
            file: PathBuf::from("/etc/xen/auto/4-nobridge.cfg"),
            config: Ok(config(&cfg_text(
                "nobridge",
                &kernel,
                "vif = ['bridge=br9']\n",
            ))),
        },
    ];
    let seen = std::sync::Mutex::new(Vec::new());
    let progress = |a: &autostart::Attempt| seen.lock().expect("seen").push(a.file.clone());
    let attempts = autostart::start_all(&launcher, configs, StartOptions::default(), &progress);
    let failed: Vec<String> = attempts
        .iter()
        .filter(|a| a.failed())
        .map(|a| a.describe())
        .collect();
    assert_eq!(failed.len(), 4, "{failed:#?}");
    assert!(failed[0].contains("0-broken.cfg") && failed[0].contains("NameError"));
    assert!(failed[1].contains("nokernel") && failed[1].contains("/nonexistent/vmlinuz"));
    assert!(failed[2].contains("good") && failed[2].contains("2-good.cfg defines the same name"));
    assert!(failed[3].contains("nobridge") && failed[3].contains("br9"));
    assert_eq!(names_running(&hv, &s), ["good"]);
    assert_eq!(
        seen.lock().expect("seen").len(),
        5,
        "progress saw every attempt"
    );
}

// ---- stop ----

fn guest(hv: &SimHypervisor, s: &MemStore, name: &str, seed: u8) -> u32 {
    let domid = hv
        .create_domain(&HvConfig::pv([seed; 16], 1))
        .expect("domain");
    hv.unpause_domain(domid).expect("unpause");
    s.write(&format!("/local/domain/{domid}/name"), name)
        .expect("name");
    domid
}

/// Plays the guests' PV drivers: the `obedient` guests power off once something waits for
/// a domain change (which `stop_all` does only after asking them all).
fn obey_shutdown(hv: &SimHypervisor, s: &MemStore, obedient: &[u32]) {
    let hv = hv.clone();
    let obedient = obedient.to_vec();
    s.on_wait(Box::new(move |_| {
        for &d in &obedient {
            let _ = hv.shutdown_domain(d, ShutdownReason::Poweroff);
        }
    }));
}

#[test]
fn stop_shuts_every_guest_down_together_and_destroys_the_rest_at_the_timeout() {
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let a = guest(&hv, &s, "a-vm", 1);
    let b = guest(&hv, &s, "b-vm", 2);
    let stubborn = guest(&hv, &s, "stubborn", 3);
    assert!(stubborn > b);
    obey_shutdown(&hv, &s, &[a, b]);
    let timeout = Duration::from_millis(120);
    let options = StopOptions {
        timeout,
        only: None,
        tick: Duration::from_millis(5),
    };
    let mut release = |_: &str| Ok(());
    let begun = Instant::now();
    let stopped = autostart::stop_all(&hv, &s, &options, &mut release).expect("stop");
    let outcomes: Vec<(String, StopOutcome)> = stopped
        .iter()
        .map(|s| (s.name.clone(), s.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("a-vm".to_string(), StopOutcome::ShutDown),
            ("b-vm".to_string(), StopOutcome::ShutDown),
            ("stubborn".to_string(), StopOutcome::TimedOut),
        ]
    );
    assert!(begun.elapsed() >= timeout);
    assert_eq!(
        hv.list_domains().expect("list").len(),
        1,
        "only dom0 is left"
    );
    assert!(
        s.read(&format!("/local/domain/{a}/name"))
            .expect("read")
            .is_none(),
        "reaped"
    );
    assert!(stopped[2]
        .describe(timeout)
        .contains("did not shut down within"));
}

#[test]
fn stop_auto_only_leaves_other_guests_running() {
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let auto_vm = guest(&hv, &s, "auto-vm", 1);
    let other = guest(&hv, &s, "other", 2);
    obey_shutdown(&hv, &s, &[auto_vm]);
    let options = StopOptions {
        timeout: Duration::from_secs(2),
        only: Some(vec!["auto-vm".into()]),
        tick: Duration::from_millis(5),
    };
    let mut release = |_: &str| Ok(());
    let stopped = autostart::stop_all(&hv, &s, &options, &mut release).expect("stop");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].outcome, StopOutcome::ShutDown);
    assert!(hv.domain_info(other).is_ok(), "other still runs");
    assert!(s
        .read(&format!("/local/domain/{other}/control/shutdown"))
        .expect("read")
        .is_none());
}

#[test]
fn status_pairs_each_auto_config_with_its_running_domain() {
    let dir = Scratch::new("status");
    let kernel = kernel_in(dir.path());
    let mut configs = auto(&kernel, &["a-vm", "b-vm"]);
    configs.push(AutoConfig {
        file: PathBuf::from("/etc/xen/auto/broken"),
        config: Err("syntax error".into()),
    });
    let lines = autostart::status(&configs, &[("Domain-0".into(), 0), ("b-vm".into(), 7)]);
    let got: Vec<_> = lines
        .iter()
        .map(|l| (l.name.clone(), l.domid, l.error.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("a-vm".to_string()), None, None),
            (Some("b-vm".to_string()), Some(7), None),
            (None, None, Some("syntax error".to_string())),
        ]
    );
}

#[test]
fn stop_destroys_a_guest_that_crashes_instead_of_powering_off_and_says_so() {
    let (hv, s) = (SimHypervisor::new(), dom0_store());
    let crashing = guest(&hv, &s, "crashy", 1);
    let hv2 = hv.clone();
    s.on_wait(Box::new(move |_| {
        let _ = hv2.shutdown_domain(crashing, ShutdownReason::Crash);
    }));
    let options = StopOptions {
        timeout: Duration::from_secs(2),
        only: None,
        tick: Duration::from_millis(5),
    };
    let mut release = |_: &str| Ok(());
    let stopped = autostart::stop_all(&hv, &s, &options, &mut release).expect("stop");
    assert_eq!(
        stopped[0].outcome,
        StopOutcome::DestroyedAfter("crashed".into())
    );
    assert!(stopped[0].failed());
    assert_eq!(
        stopped[0].describe(options.timeout),
        format!("Xen domain crashy ({crashing}) crashed instead of powering off: destroyed")
    );
    assert_eq!(
        hv.list_domains().expect("list").len(),
        1,
        "only dom0 is left"
    );
}
