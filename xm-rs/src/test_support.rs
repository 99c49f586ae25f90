//! What the host tests of creation, devices, managed domains and the daemon share: a fake
//! dom0 (the [`DeviceHost`] of a test), a fake qemu, scratch directories, the builder's
//! synthetic PV kernel and the setup of a simulated domain.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hypervisor::{DomId, DomainConfig as HvConfig, Hypervisor, SimHypervisor};
use toolstack::blockdev::BlockDevice;

use crate::config::host::SandboxHost;
use crate::config::load::{load_text, LoadOptions};
use crate::config::model::DomainConfig;
use crate::create::vfb::{DeviceModelLaunch, RunningDeviceModel};
use crate::create::{Booted, DeviceHost};
use crate::ops::{MemStore, Store};

/// The builder's own synthetic PV kernel, so tests build real domains on the simulator.
#[path = "../../domain-builder/tests/common/mod.rs"]
pub(crate) mod synthetic_kernel;

/// A scratch directory below the system's temporary directory, removed when dropped.
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    /// A fresh, empty directory named after `tag`, this process and a counter.
    pub(crate) fn new(tag: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xm-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the synthetic PV kernel into `dir` and returns its path.
pub(crate) fn kernel_in(dir: &Path) -> PathBuf {
    let path = dir.join("vmlinuz");
    let image = synthetic_kernel::synthetic_kernel(
        &synthetic_kernel::default_segments(),
        synthetic_kernel::Declare::Notes,
    );
    std::fs::write(&path, image).expect("kernel written");
    path
}

/// A config from its text, on a host where nothing exists; panics when it does not load.
pub(crate) fn config(text: &str) -> DomainConfig {
    load_text(
        Path::new("t.cfg"),
        text,
        &LoadOptions::default(),
        &SandboxHost::default(),
    )
    .map(|l| l.config)
    .unwrap_or_else(|e| panic!("config does not load: {e}"))
}

/// xenstore holding only dom0's name.
pub(crate) fn dom0_store() -> MemStore {
    let s = MemStore::new();
    s.write("/local/domain/0/name", "Domain-0")
        .expect("dom0 name");
    s
}

/// Every node of `s` but dom0's own: what a failed or destroyed domain must not leave.
pub(crate) fn only_dom0_nodes(s: &MemStore) -> Vec<String> {
    s.dump()
        .into_keys()
        .filter(|k| !k.starts_with("/local/domain/0/name"))
        .collect()
}

/// A simulated paused domain with the handle `[tag; 16]`, as the builder would leave it.
pub(crate) fn booted(hv: &SimHypervisor, tag: u8) -> Booted {
    let handle = [tag; 16];
    let domid = hv
        .create_domain(&HvConfig::pv(handle, 1))
        .expect("simulated domain");
    Booted {
        domid,
        uuid: hypervisor::uuid::format(&handle),
        store_mfn: 0x1000,
        store_port: 1,
        console_mfn: 0x1001,
        console_port: 2,
    }
}

/// The pid every [`FakeQemu`] has.
pub(crate) const FAKE_QEMU_PID: u32 = 4711;

/// The fake qemu: how it behaves once "started".
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeQemu {
    /// It exits at once with this status (and this log).
    pub exits: Option<(String, String)>,
    /// What it reports as its VNC address.
    pub vnc: Option<String>,
    /// It reports `running`, then dies while opening its display (as qemu does with a keymap
    /// it cannot read) with this status and log.
    pub dies_after_running: Option<(String, String)>,
    pub asked_monitor: bool,
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
        FAKE_QEMU_PID
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

/// What a test does when xm starts "qemu" (e.g. writes `running` as qemu would).
pub(crate) type SpawnHook<'a> = Box<dyn Fn(&DeviceModelLaunch) + 'a>;

/// dom0 as a test wants it: which block devices, images, bridges and netdevs exist, and a
/// log of what xm did (`attach /dev/loopN`, `detach …`, `rename A B`, `enslave N BR`,
/// `release N`). Nothing exists unless the test says so.
#[derive(Default)]
pub(crate) struct FakeDom0<'a> {
    /// Block devices that exist (major 0xfe, as an LV) with their minor numbers.
    pub block_devices: Vec<(&'static str, u32)>,
    /// Images `loop_attach` finds are below this directory (others do not exist); with
    /// none, every image is refused as not a block device.
    pub images_under: Option<&'static str>,
    pub bridges: Vec<&'static str>,
    /// Netdevs that exist (netback "created" them).
    pub netdevs: RefCell<Vec<String>>,
    /// netback creates `vifD.N` as soon as xm looks for it.
    pub netback_creates_vifs: bool,
    pub log: RefCell<Vec<String>>,
    /// Loop devices attached and not yet detached.
    pub attached: RefCell<Vec<PathBuf>>,
    /// Runs when a netdev is enslaved: lets a test play blkback/netback connecting.
    pub on_enslave: Option<Box<dyn Fn() + 'a>>,
    /// blkback never gets to open the disk.
    pub vbd_never_opened: bool,
    /// The device model binary, when this dom0 has one.
    pub device_model: Option<PathBuf>,
    /// How the device model behaves once started.
    pub qemu: FakeQemu,
    /// Plays qemu starting up, given its launch.
    pub on_spawn: Option<SpawnHook<'a>>,
    pub launches: RefCell<Vec<DeviceModelLaunch>>,
    /// `(domid, pid)` of every device model stopped.
    pub stops: RefCell<Vec<(DomId, u32)>>,
}

impl FakeDom0<'_> {
    /// dom0 with bridge xenbr0 and the block device `lv` (minor `minor`).
    pub(crate) fn with_lv(lv: &'static str, minor: u32) -> Self {
        FakeDom0 {
            block_devices: vec![(lv, minor)],
            bridges: vec!["xenbr0"],
            ..FakeDom0::default()
        }
    }

    fn note(&self, line: String) {
        self.log.borrow_mut().push(line);
    }

    /// The lines of the log that start with `verb ` (without it), in order.
    pub(crate) fn logged(&self, verb: &str) -> Vec<String> {
        let prefix = format!("{verb} ");
        self.log
            .borrow()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }
}

impl DeviceHost for FakeDom0<'_> {
    fn block_device(&self, path: &Path) -> toolstack::Result<BlockDevice> {
        match self
            .block_devices
            .iter()
            .find(|(p, _)| Path::new(p) == path)
        {
            Some(&(_, minor)) => Ok(BlockDevice {
                path: path.to_path_buf(),
                major: 0xfe,
                minor,
            }),
            None => Err(toolstack::Error::NotABlockDevice(path.to_path_buf())),
        }
    }
    fn loop_attach(&self, image: &Path, _writable: bool) -> toolstack::Result<BlockDevice> {
        let Some(dir) = self.images_under else {
            return Err(toolstack::Error::NotABlockDevice(image.to_path_buf()));
        };
        if !image.starts_with(dir) {
            return Err(toolstack::Error::DiskSource {
                path: image.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let n = self.attached.borrow().len();
        let node = PathBuf::from(format!("/dev/loop{n}"));
        self.attached.borrow_mut().push(node.clone());
        self.note(format!("attach {}", node.display()));
        Ok(BlockDevice {
            path: node,
            major: 7,
            minor: u32::try_from(n).expect("few loop devices"),
        })
    }
    fn loop_detach(&self, node: &Path) -> toolstack::Result<()> {
        self.attached.borrow_mut().retain(|n| n != node);
        self.note(format!("detach {}", node.display()));
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
        let exists = self.netdevs.borrow().iter().any(|n| n == name);
        if !exists && self.netback_creates_vifs && name.starts_with("vif") {
            self.netdevs.borrow_mut().push(name.to_string());
            return true;
        }
        exists
    }
    fn rename_netdev(&self, from: &str, to: &str) -> toolstack::Result<()> {
        self.note(format!("rename {from} {to}"));
        for name in self.netdevs.borrow_mut().iter_mut() {
            if name == from {
                *name = to.to_string();
            }
        }
        Ok(())
    }
    fn bridge_attach(&self, netdev: &str, bridge: &str) -> toolstack::Result<()> {
        self.note(format!("enslave {netdev} {bridge}"));
        if let Some(hook) = &self.on_enslave {
            hook();
        }
        Ok(())
    }
    fn bridge_detach(&self, netdev: &str) -> toolstack::Result<()> {
        self.note(format!("release {netdev}"));
        self.netdevs.borrow_mut().retain(|n| n != netdev);
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
    fn vbd_opened(&self, _domid: DomId, _devid: u32) -> bool {
        !self.vbd_never_opened
    }
}
