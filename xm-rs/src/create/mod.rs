//! What `xm create` does once the config is loaded: create the PV domain, write the xenstore
//! layout libxl writes and wire its disks and network interfaces while its memory is built
//! (dom0's backends set the devices up meanwhile), then introduce it to xenstored, unpause it
//! and wait until every backend is ready (or Connected). Any failure rolls everything back
//! (domain destroyed, nodes removed, loop devices released) before the error is returned.
//! `xm -vv create` (or `RUST_LOG=xm_rs=debug,domain_builder=debug`) logs each phase's time.
//!
//! The steps run over the [`Hypervisor`] trait, the [`CreateStore`] trait (xenstore) and the
//! [`DeviceHost`] trait (loop devices, block devices, bridges), so host tests drive them on
//! [`hypervisor::SimHypervisor`], [`MemStore`] and a fake device host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use domain_builder::PhaseClock;
use hypervisor::{DomId, Hypervisor};
use toolstack::blockdev::{BlockDevice, VbdInUse};
use toolstack::layout::{
    console_layout, domain_layout, ConsoleRecord, DomainRecord, Layout, XsEntry,
};

use crate::config::model::DomainConfig;
use crate::ops::{self, MemStore, Store, StoreError};

pub mod devices;
#[cfg(test)]
mod entry_writer_tests;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod overlap_tests;
pub mod qmp;
mod real;
#[cfg(test)]
mod tests;
pub mod vfb;
#[cfg(test)]
mod vfb_tests;

pub use real::{build_domain, build_domain_with, BuildFailure, RealDevices, XsCreateStore};

/// xenbus state Connected.
const CONNECTED: &str = "4";

/// What went wrong while creating a domain; each message names the domain or device.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// xm's wording for a duplicate name.
    #[error("Domain '{0}' already exists.")]
    Duplicate(String),
    #[error("{0}: {1}")]
    Unsupported(String, String),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel {path}: {source}")]
    Kernel {
        path: PathBuf,
        source: domain_builder::ImageError,
    },
    #[error("building the domain: {0}")]
    Build(#[from] domain_builder::BuildError),
    #[error("{0}")]
    Hypervisor(#[from] hypervisor::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ops(#[from] ops::OpsError),
    #[error("disk {vdev} ({spec}): {source}")]
    Disk {
        vdev: String,
        spec: String,
        source: toolstack::Error,
    },
    #[error("vif {devid} (bridge {bridge}): {source}")]
    Vif {
        devid: u32,
        bridge: String,
        source: toolstack::Error,
    },
    #[error("vif {devid}: netback's interface {netdev} did not appear within {waited:?}")]
    NetdevTimeout {
        devid: u32,
        netdev: String,
        waited: Duration,
    },
    /// A backend did not reach Connected in time; names the states seen last.
    #[error(
        "{kind} {devid} of domain {domid} did not connect within {waited:?}: frontend state {frontend}, backend state {backend}"
    )]
    DeviceTimeout {
        kind: &'static str,
        devid: u32,
        domid: DomId,
        waited: Duration,
        frontend: String,
        backend: String,
    },
    /// A backend was not ready for its frontend in time (`xm create` without
    /// `--wait-connected`); names the states seen last.
    #[error(
        "{kind} {devid} of domain {domid}: the backend was not ready within {waited:?} (backend state {backend}, device {opened})"
    )]
    BackendTimeout {
        kind: &'static str,
        devid: u32,
        domid: DomId,
        waited: Duration,
        backend: String,
        opened: &'static str,
    },
    /// The backend gave up on the device (state Closing/Closed), e.g. blkback could not
    /// open the disk; `reason` is what it wrote under dom0's error/ directory.
    #[error("{kind} {devid} of domain {domid}: the backend refused the device (state {state}): {reason}")]
    BackendFailed {
        kind: &'static str,
        devid: u32,
        domid: DomId,
        state: String,
        reason: String,
    },
    #[error("domain {domid} died while its devices were connecting")]
    DomainGone { domid: DomId },
    #[error("vfb '{spec}': {reason}")]
    Vfb { spec: String, reason: String },
    #[error("device model {program}: {reason}")]
    DeviceModel { program: PathBuf, reason: String },
    #[error("the device model (qemu) of domain {domid} exited while starting ({status}); its log {log} ends: {tail}")]
    DeviceModelExited {
        domid: DomId,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("the device model (qemu) of domain {domid} did not report running within {waited:?}; see {log}")]
    DeviceModelTimeout {
        domid: DomId,
        waited: Duration,
        log: PathBuf,
    },
}

/// The xenstore operations creation needs beyond [`Store`].
pub trait CreateStore: Store {
    /// Writes the entries (values and permissions) atomically, in order.
    fn write_entries(&self, entries: &[XsEntry]) -> Result<(), StoreError>;
    /// XS_INTRODUCE: tells xenstored about the domain's store ring.
    fn introduce(&self, domid: DomId, store_mfn: u64, store_port: u32) -> Result<(), StoreError>;
}

impl CreateStore for MemStore {
    fn write_entries(&self, entries: &[XsEntry]) -> Result<(), StoreError> {
        for e in entries {
            self.write(&e.path, &e.value)?;
        }
        Ok(())
    }

    fn introduce(&self, _domid: DomId, _mfn: u64, _port: u32) -> Result<(), StoreError> {
        Ok(())
    }
}

/// dom0's side of devices: block devices, loop devices, network interfaces.
pub trait DeviceHost {
    fn block_device(&self, path: &Path) -> toolstack::Result<BlockDevice>;
    fn loop_attach(&self, image: &Path, writable: bool) -> toolstack::Result<BlockDevice>;
    fn loop_detach(&self, node: &Path) -> toolstack::Result<()>;
    fn check_bridge(&self, bridge: &str) -> toolstack::Result<()>;
    /// Whether network interface `name` exists.
    fn netdev_exists(&self, name: &str) -> bool;
    fn rename_netdev(&self, from: &str, to: &str) -> toolstack::Result<()>;
    fn bridge_attach(&self, netdev: &str, bridge: &str) -> toolstack::Result<()>;
    /// Takes `netdev` off whatever bridge it is on (vif detach).
    fn bridge_detach(&self, netdev: &str) -> toolstack::Result<()>;
    /// Whether a qemu Xen device model (the vfb backend) is installed.
    fn device_model(&self) -> Option<PathBuf>;
    /// Starts the device model (see [`vfb`]). Only asked of hosts whose
    /// [`device_model`](Self::device_model) names one.
    fn spawn_device_model(
        &self,
        launch: &vfb::DeviceModelLaunch,
    ) -> Result<Box<dyn vfb::RunningDeviceModel>, String> {
        Err(format!(
            "{}: this host cannot start device models",
            launch.program.display()
        ))
    }
    /// Stops the device model recorded for `domid` under `pid` (destroy, rollback); a pid
    /// that is no longer that domain's device model is left alone.
    fn stop_device_model(&self, _domid: DomId, _pid: u32) -> Result<(), String> {
        Ok(())
    }
    /// Whether a disk image can be opened (before building the domain; `loop_attach`
    /// decides for good).
    fn check_image(&self, image: &Path) -> toolstack::Result<()> {
        std::fs::File::open(image)
            .map(drop)
            .map_err(|source| toolstack::Error::DiskSource {
                path: image.to_path_buf(),
                source,
            })
    }
    /// Whether blkback has opened vbd `devid` of `domid` (it publishes the device in sysfs
    /// only after opening it, so this separates "InitWait, fine" from "InitWait, not yet").
    fn vbd_opened(&self, _domid: DomId, _devid: u32) -> bool {
        true
    }
}

/// What the builder left: a paused domain and its two rings.
#[derive(Debug, Clone)]
pub struct Booted {
    pub domid: DomId,
    pub uuid: String,
    pub store_mfn: u64,
    pub store_port: u32,
    pub console_mfn: u64,
    pub console_port: u32,
}

/// What creation waits for once the domain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceWait {
    /// Every backend has accepted its device and waits for the guest (InitWait with the disk
    /// opened and the vif bridged, or further): what xl waits for. Problems on dom0's side
    /// (a disk blkback cannot open) are caught; the guest's own drivers are not waited for.
    #[default]
    BackendReady,
    /// Every backend reached Connected: the guest's frontends are up too.
    Connected,
}

/// How to finish the creation.
#[derive(Debug, Clone)]
pub struct WireOptions {
    pub paused: bool,
    /// What to wait for after unpausing.
    pub wait: DeviceWait,
    /// How long backends may take to reach the state `wait` asks for.
    pub connect_timeout: Duration,
    /// How long netback may take to create `vifD.N`.
    pub netdev_timeout: Duration,
    /// Poll interval while waiting.
    pub poll: Duration,
    /// Where decompressed kernels are kept between builds (None: decompress every time).
    pub kernel_cache: Option<domain_builder::KernelCache>,
    /// Where to record the created domain for the lifecycle daemon (None: not recorded).
    pub record: Option<Recording>,
}

/// Where and how [`create_domain`] records a domain it created (see [`crate::state`]).
#[derive(Debug, Clone)]
pub struct Recording {
    pub state: crate::state::StateDir,
    pub origin: crate::state::Origin,
}

impl Recording {
    /// The host's state directory (`XM_STATE_DIR`, default /var/lib/xm-rs), created by `by`.
    pub fn for_host(by: &str) -> Recording {
        Recording {
            state: crate::state::StateDir::from_env(),
            origin: crate::state::Origin {
                by: by.to_string(),
                config_path: None,
            },
        }
    }
}

impl WireOptions {
    /// The options of a real create on this host: the connect timeout from
    /// `XM_CREATE_TIMEOUT` (seconds, default 30) and the kernel cache from `XM_KERNEL_CACHE`
    /// (a directory, or `off`; default /var/cache/xm-rs/kernels).
    pub fn for_host() -> WireOptions {
        let connect_timeout = std::env::var("XM_CREATE_TIMEOUT")
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs);
        let kernel_cache = match std::env::var_os("XM_KERNEL_CACHE") {
            Some(dir) if dir == "off" => None,
            Some(dir) if !dir.is_empty() => Some(domain_builder::KernelCache::new(dir)),
            _ => Some(domain_builder::KernelCache::new(
                domain_builder::kernel_cache::DEFAULT_DIR,
            )),
        };
        WireOptions {
            connect_timeout,
            kernel_cache,
            record: Some(Recording::for_host("xm create")),
            ..WireOptions::default()
        }
    }
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            paused: false,
            wait: DeviceWait::default(),
            connect_timeout: Duration::from_secs(30),
            netdev_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(20),
            kernel_cache: None,
            record: None,
        }
    }
}

/// What a successful creation reports.
#[derive(Debug, Clone, Default)]
pub struct Created {
    pub domid: DomId,
    /// Operator-facing warnings (e.g. the framebuffer was skipped).
    pub warnings: Vec<String>,
}

/// Creates a PV domain from a resolved config: checks it, refuses a duplicate name, builds the
/// domain, writes its layout, wires its devices and (unless paused) unpauses it. This is the one
/// path `xm create`, managed-domain starts, autostart and the daemon's restarts all take.
/// On failure nothing is left behind.
pub fn create_domain<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    config: &DomainConfig,
    options: &WireOptions,
) -> Result<Created, CreateError>
where
    H: Hypervisor + Sync,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut clock = PhaseClock::start();
    check_supported(config)?;
    refuse_duplicate(hv, store, &config.name)?;
    clock.lap("duplicate-name check");
    preflight(store, devices, config)?;
    clock.lap("preflight");
    let mut created = Created::default();
    let mut undo = Undo::default();
    let built = build_domain_with(hv, config, options.kernel_cache.as_ref(), |prepared| {
        created.domid = prepared.domid;
        describe_domain(
            store,
            devices,
            config,
            prepared,
            &mut undo,
            &mut created.warnings,
        )
    });
    clock.lap("kernel load, layout, devices and domain build");
    let (booted, described) = match built {
        Ok(built) => built,
        Err(BuildFailure { domid, error }) => {
            if let Some(domid) = domid {
                tracing::info!(domid, "create failed, rolling back: {error}");
                rollback(hv, store, devices, domid, &mut undo);
            }
            return Err(error);
        }
    };
    if let Err(err) = finish_domain(
        hv, store, devices, config, &booted, described, options, &mut undo,
    ) {
        tracing::info!(domid = booted.domid, "create failed, rolling back: {err}");
        rollback(hv, store, devices, booted.domid, &mut undo);
        return Err(err);
    }
    clock.lap("introduce, vifs, unpause, backend waits");
    if let Some(recording) = &options.record {
        let record = crate::state::DomainRecord::new(
            created.domid,
            &booted.uuid,
            config,
            recording.origin.clone(),
        );
        if let Err(e) = recording.state.write(&record) {
            tracing::warn!(domid = created.domid, "recording the domain: {e}");
            created.warnings.push(format!(
                "Warning: {}: the lifecycle daemon will not know this domain: {e}",
                config.name
            ));
        }
        clock.lap("state record");
    }
    Ok(created)
}

/// What can be refused before the (expensive) build: a disk image or block device that is not
/// there, a block device another domain has writable (xm's sharing rule), a missing bridge.
/// `wire` checks all of it again when it sets the devices up; this only fails early.
fn preflight<S, D>(store: &S, devices: &D, config: &DomainConfig) -> Result<(), CreateError>
where
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    let in_use = vbds_in_use(store)?;
    for disk in &config.disks {
        if let devices::DiskSource::Image(image) = devices::disk_source(devices, disk, &in_use)? {
            devices
                .check_image(&image)
                .map_err(|e| devices::disk_error(disk, e))?;
        }
    }
    for (index, vif) in config.vifs.iter().enumerate() {
        let bridge = vif.bridge_name().to_string();
        devices
            .check_bridge(&bridge)
            .map_err(|source| CreateError::Vif {
                devid: vif.devid.unwrap_or(index as u32),
                bridge,
                source,
            })?;
    }
    Ok(())
}

/// The kernel command line xm built: `cmdline`, else `root=ROOT EXTRA`.
pub fn kernel_cmdline(config: &DomainConfig) -> String {
    if let Some(c) = &config.cmdline {
        return c.clone();
    }
    let mut parts = Vec::new();
    if let Some(root) = &config.root {
        parts.push(format!("root={root}"));
    }
    if let Some(extra) = &config.extra {
        parts.push(extra.clone());
    }
    parts.join(" ")
}

/// Refuses a name a live domain already has, as xm did.
pub fn refuse_duplicate<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    name: &str,
) -> Result<(), CreateError> {
    let taken = ops::all_domains(hv, store)?
        .iter()
        .any(|d| d.name.as_deref() == Some(name) && !d.info.dying);
    if taken {
        return Err(CreateError::Duplicate(name.to_string()));
    }
    Ok(())
}

/// Refuses what this build cannot create, before anything is touched.
pub fn check_supported(config: &DomainConfig) -> Result<(), CreateError> {
    let no = |what: String| Err(CreateError::Unsupported(config.name.clone(), what));
    if config.kernel.is_none() {
        return no("no kernel given (bootloaders such as pygrub are not supported yet)".into());
    }
    for disk in &config.disks {
        devices::check_disk_supported(disk)
            .map_err(|what| CreateError::Unsupported(config.name.clone(), what))?;
    }
    for vif in &config.vifs {
        if vif.script.is_some() {
            return no(format!(
                "vif {}: script= is not supported yet (bridging is done in-process)",
                vif.spec
            ));
        }
    }
    Ok(())
}

fn now_text() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:02}", now.as_secs(), now.subsec_millis() / 10)
}

/// What has been set up so far, so a failure undoes exactly that.
#[derive(Debug, Default)]
struct Undo {
    loops: Vec<PathBuf>,
    /// The framebuffer's qemu, once started.
    device_model: Option<Box<dyn vfb::RunningDeviceModel>>,
}

/// Writes the layout, wires the devices, unpauses and waits; on any failure destroys the domain
/// and removes everything it had.
pub fn wire<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    config: &DomainConfig,
    booted: &Booted,
    options: &WireOptions,
) -> Result<Created, CreateError>
where
    H: Hypervisor + Sync,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut undo = Undo::default();
    match wire_steps(hv, store, devices, config, booted, options, &mut undo) {
        Ok(created) => Ok(created),
        Err(err) => {
            tracing::info!(domid = booted.domid, "create failed, rolling back: {err}");
            rollback(hv, store, devices, booted.domid, &mut undo);
            Err(err)
        }
    }
}

/// Destroys the domain, removes its nodes and releases every loop device we attached.
fn rollback<H, S, D>(hv: &H, store: &S, devices: &D, domid: DomId, undo: &mut Undo)
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut released: Vec<String> = Vec::new();
    let mut release = |node: &str| {
        released.push(node.to_string());
        devices
            .loop_detach(Path::new(node))
            .map_err(|e| e.to_string())
    };
    let mut stopped: Vec<u32> = Vec::new();
    let domain = ops::refresh(hv, domid)
        .ok()
        .flatten()
        .map(|info| ops::Domain { info, name: None });
    match domain {
        Some(domain) => {
            let mut stop = |d, pid| {
                stopped.push(pid);
                devices.stop_device_model(d, pid)
            };
            match ops::control::destroy_with(hv, store, &domain, &mut release, &mut stop) {
                Ok(report) => {
                    for p in report.problems {
                        tracing::warn!("rollback: {p}");
                    }
                }
                Err(e) => tracing::warn!("rollback: destroying domain {domid}: {e}"),
            }
        }
        None => {
            // Already gone: only the nodes remain.
            for path in [
                format!("/local/domain/{domid}"),
                format!("/libxl/{domid}"),
                format!("/local/domain/0/backend/vbd/{domid}"),
                format!("/local/domain/0/backend/vif/{domid}"),
                format!("/local/domain/0/backend/console/{domid}"),
                format!("/local/domain/0/backend/vfb/{domid}"),
                format!("/local/domain/0/backend/vkbd/{domid}"),
                vfb::device_model_dir(domid),
            ] {
                let _ = store.remove(&path);
            }
        }
    }
    // The framebuffer's qemu: destroy stopped it through its recorded pid; this covers one
    // started but not yet recorded, and reaps it.
    if let Some(dm) = undo.device_model.take() {
        if !stopped.contains(&dm.pid()) {
            if let Err(e) = devices.stop_device_model(domid, dm.pid()) {
                tracing::warn!("rollback: stopping the device model: {e}");
            }
        }
        dm.release();
    }
    // Loops attached before their vbd reached xenstore are not known to destroy.
    for node in &undo.loops {
        let text = node.to_string_lossy();
        if !released.iter().any(|r| r == text.as_ref()) {
            if let Err(e) = devices.loop_detach(node) {
                tracing::warn!("rollback: releasing {text}: {e}");
            }
        }
    }
}

/// The vbds other domains have, from dom0's backend directory.
pub(crate) fn vbds_in_use<S: Store + ?Sized>(store: &S) -> Result<Vec<VbdInUse>, StoreError> {
    let root = "/local/domain/0/backend/vbd";
    let mut out = Vec::new();
    for dom in store.list(root)? {
        let Ok(domid) = dom.parse::<u32>() else {
            continue;
        };
        for dev in store.list(&format!("{root}/{dom}"))? {
            let base = format!("{root}/{dom}/{dev}");
            let Some(physical_device) = store.read(&format!("{base}/physical-device"))? else {
                continue;
            };
            let mode = store.read(&format!("{base}/mode"))?.unwrap_or_default();
            out.push(VbdInUse {
                domid,
                physical_device,
                writable: mode.starts_with('w'),
            });
        }
    }
    Ok(out)
}

fn wire_steps<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    config: &DomainConfig,
    booted: &Booted,
    options: &WireOptions,
    undo: &mut Undo,
) -> Result<Created, CreateError>
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut created = Created {
        domid: booted.domid,
        warnings: Vec::new(),
    };
    let early = describe_domain(
        store,
        devices,
        config,
        &booted.prepared(),
        undo,
        &mut created.warnings,
    )?;
    finish_domain(hv, store, devices, config, booted, early, options, undo)?;
    Ok(created)
}

/// What a domain needs before its memory is built: its id, UUID and store event channel.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub domid: DomId,
    pub uuid: String,
    pub store_port: u32,
}

impl Booted {
    /// What was known before the build.
    pub fn prepared(&self) -> Prepared {
        Prepared {
            domid: self.domid,
            uuid: self.uuid.clone(),
            store_port: self.store_port,
        }
    }
}

/// What [`describe_domain`] set up for [`finish_domain`].
#[derive(Debug)]
struct Described {
    domain: DomainRecordOwned,
    vbd_ids: Vec<u32>,
    vifs: Vec<devices::VifPlug>,
    framebuffer: Option<vfb::Plan>,
}

/// The parts of the domain's [`DomainRecord`] that outlive [`describe_domain`].
#[derive(Debug)]
struct DomainRecordOwned {
    cmdline: String,
    start_time: String,
}

fn domain_record<'a>(
    config: &'a DomainConfig,
    prepared: &'a Prepared,
    owned: &'a DomainRecordOwned,
    store_mfn: u64,
) -> DomainRecord<'a> {
    DomainRecord {
        domid: prepared.domid,
        name: &config.name,
        uuid: &prepared.uuid,
        vcpus: config.vcpus,
        max_vcpus: config.max_vcpus.max(config.vcpus),
        max_memory_kib: config.maxmem_mb.max(config.memory_mb) * 1024,
        target_memory_kib: config.memory_mb * 1024,
        kernel: config.kernel.as_deref().unwrap_or(""),
        ramdisk: config.ramdisk.as_deref(),
        cmdline: &owned.cmdline,
        store_port: prepared.store_port,
        store_mfn,
        start_time: &owned.start_time,
    }
}

/// The xenstore node naming the store ring's frame, which only the build knows.
fn is_store_ring_ref(entry: &XsEntry) -> bool {
    entry.path.ends_with("/store/ring-ref")
}

/// Everything that needs the domain's id but not its memory: the domain's xenstore layout
/// (but the store ring's frame), its disks on loop devices and its vbd, vif and vfb
/// entries. Runs while the domain is still being built, so blkback and netback set the
/// devices up meanwhile.
fn describe_domain<S, D>(
    store: &S,
    devices: &D,
    config: &DomainConfig,
    prepared: &Prepared,
    undo: &mut Undo,
    warnings: &mut Vec<String>,
) -> Result<Described, CreateError>
where
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut clock = PhaseClock::start();
    let domid = prepared.domid;
    let owned = DomainRecordOwned {
        cmdline: kernel_cmdline(config),
        start_time: now_text(),
    };
    let mut layout = domain_layout(&domain_record(config, prepared, &owned, 0));
    layout.entries.retain(|e| !is_store_ring_ref(e));
    store.write_entries(&layout.entries)?;
    clock.lap("domain layout write");

    // Disks: check and prepare every one before writing any.
    let mut devices_layout = Layout::default();
    let in_use = vbds_in_use(store)?;
    clock.lap("vbds in use");
    let mut vbd_ids = Vec::new();
    for disk in &config.disks {
        devices::prepare_vbd(
            devices,
            domid,
            disk,
            &in_use,
            vbd_ids.is_empty(),
            &mut devices_layout,
            &mut undo.loops,
        )?;
        vbd_ids.push(disk.device_number);
        clock.lap("vbd prepared (loop attach)");
    }

    // Vifs: refuse a missing bridge before the guest sees anything.
    let mut vifs = Vec::new();
    for (index, vif) in config.vifs.iter().enumerate() {
        let devid = vif.devid.unwrap_or(index as u32);
        let plug = devices::prepare_vif(
            devices,
            domid,
            devid,
            vif,
            &prepared.uuid,
            &mut devices_layout,
        )?;
        vifs.push(plug);
        clock.lap("vif prepared");
    }
    let framebuffer = vfb::plan(devices, config, domid, &mut devices_layout, warnings)?;
    store.write_entries(&devices_layout.entries)?;
    clock.lap("device layout write");
    Ok(Described {
        domain: owned,
        vbd_ids,
        vifs,
        framebuffer,
    })
}

/// What needs the built domain: the store ring's frame and the console, the introduction to
/// xenstored, the framebuffer's qemu, the vifs on their bridges, then (unless paused) the
/// unpause and the wait for the backends.
#[allow(clippy::too_many_arguments)]
fn finish_domain<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    config: &DomainConfig,
    booted: &Booted,
    described: Described,
    options: &WireOptions,
    undo: &mut Undo,
) -> Result<(), CreateError>
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut clock = PhaseClock::start();
    let domid = booted.domid;
    let prepared = booted.prepared();
    let full = domain_layout(&domain_record(
        config,
        &prepared,
        &described.domain,
        booted.store_mfn,
    ));
    let mut layout = Layout::default();
    layout
        .entries
        .extend(full.entries.into_iter().filter(is_store_ring_ref));
    console_layout(
        &mut layout,
        domid,
        &ConsoleRecord {
            port: booted.console_port,
            ring_mfn: booted.console_mfn,
        },
    );
    store.write_entries(&layout.entries)?;
    clock.lap("store ring and console layout write");
    store.introduce(domid, booted.store_mfn, booted.store_port)?;
    clock.lap("introduce");
    if let Some(plan) = &described.framebuffer {
        vfb::start(store, devices, plan, options, &mut undo.device_model)?;
    }

    // Netback creates vifD.N once it sees the backend directory.
    for plug in &described.vifs {
        devices::plug_vif(devices, domid, plug, options)?;
        clock.lap("vif plugged (netdev wait, bridge)");
    }

    if !options.paused {
        hv.unpause_domain(domid)?;
        clock.lap("unpause");
        let mut pending: Vec<(&'static str, u32)> =
            described.vbd_ids.iter().map(|&d| ("vbd", d)).collect();
        pending.extend(described.vifs.iter().map(|plug| ("vif", plug.devid)));
        match options.wait {
            DeviceWait::Connected => wait_connected(hv, store, domid, &pending, options)?,
            DeviceWait::BackendReady => {
                wait_backends_ready(hv, store, devices, domid, &pending, options)?
            }
        }
        clock.lap("backend waits");
    }
    if let Some(dm) = undo.device_model.take() {
        dm.release();
    }
    Ok(())
}

/// xenbus states at which a backend has given up on a device.
const CLOSING: &str = "5";
const CLOSED: &str = "6";

/// A backend that gave up: its state and the reason it wrote under dom0's `error/` tree.
fn backend_failure<S: Store + ?Sized>(
    store: &S,
    kind: &'static str,
    domid: DomId,
    devid: u32,
    state: &str,
) -> Option<CreateError> {
    if state != CLOSING && state != CLOSED {
        return None;
    }
    let reason = store
        .read(&format!(
            "/local/domain/0/error/backend/{kind}/{domid}/{devid}/error"
        ))
        .ok()
        .flatten()
        .unwrap_or_else(|| "no reason given".to_string());
    Some(CreateError::BackendFailed {
        kind,
        devid,
        domid,
        state: state.to_string(),
        reason,
    })
}

/// Fails when the domain died (or shut down) under us.
fn check_alive<H: Hypervisor>(hv: &H, domid: DomId) -> Result<(), CreateError> {
    match hv.domain_info(domid) {
        Err(hypervisor::Error::NoSuchDomain(_)) => Err(CreateError::DomainGone { domid }),
        Ok(info) if info.dying || info.shutdown => Err(CreateError::DomainGone { domid }),
        _ => Ok(()),
    }
}

/// Waits until every backend is ready for its frontend: InitWait or later, with a vbd's disk
/// opened by blkback. A backend that closes fails at once, naming the reason it gave.
fn wait_backends_ready<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domid: DomId,
    pending: &[(&'static str, u32)],
    options: &WireOptions,
) -> Result<(), CreateError>
where
    H: Hypervisor,
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    let deadline = Instant::now() + options.connect_timeout;
    for &(kind, devid) in pending {
        let backend = format!("/local/domain/0/backend/{kind}/{domid}/{devid}/state");
        loop {
            let seen = store
                .read(&backend)?
                .unwrap_or_else(|| "(none)".to_string());
            if let Some(failure) = backend_failure(store, kind, domid, devid, &seen) {
                return Err(failure);
            }
            let opened = kind != "vbd" || devices.vbd_opened(domid, devid);
            let ready = match seen.as_str() {
                CONNECTED => true,
                "2" | "3" => opened,
                _ => false,
            };
            if ready {
                tracing::debug!(kind, devid, state = %seen, "backend ready");
                break;
            }
            check_alive(hv, domid)?;
            if Instant::now() >= deadline {
                return Err(CreateError::BackendTimeout {
                    kind,
                    devid,
                    domid,
                    waited: options.connect_timeout,
                    backend: seen,
                    opened: if opened { "opened" } else { "not opened" },
                });
            }
            std::thread::sleep(options.poll);
        }
    }
    Ok(())
}

/// Waits for every backend's `state` to read Connected.
pub(crate) fn wait_connected<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domid: DomId,
    pending: &[(&'static str, u32)],
    options: &WireOptions,
) -> Result<(), CreateError> {
    let deadline = Instant::now() + options.connect_timeout;
    let state = |path: String| -> Result<String, StoreError> {
        Ok(store.read(&path)?.unwrap_or_else(|| "(none)".to_string()))
    };
    for &(kind, devid) in pending {
        let backend = format!("/local/domain/0/backend/{kind}/{domid}/{devid}/state");
        loop {
            let seen = state(backend.clone())?;
            if seen == CONNECTED {
                break;
            }
            if let Some(failure) = backend_failure(store, kind, domid, devid, &seen) {
                return Err(failure);
            }
            check_alive(hv, domid)?;
            if Instant::now() >= deadline {
                let frontend = state(format!("/local/domain/{domid}/device/{kind}/{devid}/state"))?;
                return Err(CreateError::DeviceTimeout {
                    kind,
                    devid,
                    domid,
                    waited: options.connect_timeout,
                    frontend,
                    backend: seen,
                });
            }
            std::thread::sleep(options.poll);
        }
    }
    Ok(())
}
