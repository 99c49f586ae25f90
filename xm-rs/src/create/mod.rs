//! What `xm create` does once the config is loaded: build the PV domain, write the xenstore
//! layout libxl writes, wire its disks and network interfaces, unpause it and wait until every
//! backend is Connected. Any failure rolls everything back (domain destroyed, nodes removed,
//! loop devices released) before the error is returned.
//!
//! The steps run over the [`Hypervisor`] trait, the [`CreateStore`] trait (xenstore) and the
//! [`DeviceHost`] trait (loop devices, block devices, bridges), so host tests drive them on
//! [`hypervisor::SimHypervisor`], [`MemStore`] and a fake device host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hypervisor::{DomId, Hypervisor};
use toolstack::blockdev::{BlockDevice, VbdInUse};
use toolstack::layout::{
    console_layout, domain_layout, vbd_layout, vif_layout, ConsoleRecord, DomainRecord, Layout,
    VbdRecord, VifRecord, XsEntry,
};

use crate::config::disk::{Access, Backend};
use crate::config::model::DomainConfig;
use crate::ops::{self, MemStore, Store, StoreError};

mod real;
#[cfg(test)]
mod tests;

pub use real::{build_domain, random_uuid, RealDevices, XsCreateStore};

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
    #[error("domain {domid} died while its devices were connecting")]
    DomainGone { domid: DomId },
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
    /// Whether a qemu Xen device model (the vfb backend) is installed.
    fn device_model(&self) -> Option<PathBuf>;
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

/// How to finish the creation.
#[derive(Debug, Clone)]
pub struct WireOptions {
    pub paused: bool,
    /// How long backends may take to reach Connected.
    pub connect_timeout: Duration,
    /// How long netback may take to create `vifD.N`.
    pub netdev_timeout: Duration,
    /// Poll interval while waiting.
    pub poll: Duration,
}

impl Default for WireOptions {
    fn default() -> Self {
        WireOptions {
            paused: false,
            connect_timeout: Duration::from_secs(30),
            netdev_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(20),
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
        if disk.backend_domain.is_some() || disk.script.is_some() {
            return no(format!(
                "disk {}: driver domains and block scripts are not supported yet",
                disk.spec
            ));
        }
        if matches!(disk.backend, Backend::Tap) || disk.target.is_none() {
            return no(format!(
                "disk {}: only phy: and file: disks with a path are supported",
                disk.spec
            ));
        }
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
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let mut undo = Undo::default();
    match wire_steps(hv, store, devices, config, booted, options, &mut undo) {
        Ok(created) => Ok(created),
        Err(err) => {
            tracing::info!(domid = booted.domid, "create failed, rolling back: {err}");
            rollback(hv, store, devices, booted.domid, &undo);
            Err(err)
        }
    }
}

/// Destroys the domain, removes its nodes and releases every loop device we attached.
fn rollback<H, S, D>(hv: &H, store: &S, devices: &D, domid: DomId, undo: &Undo)
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
    let domain = ops::refresh(hv, domid)
        .ok()
        .flatten()
        .map(|info| ops::Domain { info, name: None });
    match domain {
        Some(domain) => match ops::control::destroy(hv, store, &domain, &mut release) {
            Ok(report) => {
                for p in report.problems {
                    tracing::warn!("rollback: {p}");
                }
            }
            Err(e) => tracing::warn!("rollback: destroying domain {domid}: {e}"),
        },
        None => {
            // Already gone: only the nodes remain.
            for path in [
                format!("/local/domain/{domid}"),
                format!("/libxl/{domid}"),
                format!("/local/domain/0/backend/vbd/{domid}"),
                format!("/local/domain/0/backend/vif/{domid}"),
                format!("/local/domain/0/backend/console/{domid}"),
            ] {
                let _ = store.remove(&path);
            }
        }
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
fn vbds_in_use<S: Store + ?Sized>(store: &S) -> Result<Vec<VbdInUse>, StoreError> {
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
    let domid = booted.domid;
    let mut created = Created {
        domid,
        warnings: Vec::new(),
    };
    let cmdline = kernel_cmdline(config);
    let start_time = now_text();
    let record = DomainRecord {
        domid,
        name: &config.name,
        uuid: &booted.uuid,
        vcpus: config.vcpus,
        max_vcpus: config.max_vcpus.max(config.vcpus),
        max_memory_kib: config.maxmem_mb.max(config.memory_mb) * 1024,
        target_memory_kib: config.memory_mb * 1024,
        kernel: config.kernel.as_deref().unwrap_or(""),
        ramdisk: config.ramdisk.as_deref(),
        cmdline: &cmdline,
        store_port: booted.store_port,
        store_mfn: booted.store_mfn,
        start_time: &start_time,
    };
    let mut layout = domain_layout(&record);
    console_layout(
        &mut layout,
        domid,
        &ConsoleRecord {
            port: booted.console_port,
            ring_mfn: booted.console_mfn,
        },
    );
    store.write_entries(&layout.entries)?;
    store.introduce(domid, booted.store_mfn, booted.store_port)?;

    // Disks: check and prepare every one before writing any.
    let mut devices_layout = Layout::default();
    let in_use = vbds_in_use(store)?;
    let mut vbd_ids = Vec::new();
    for disk in &config.disks {
        let disk_err = |source| CreateError::Disk {
            vdev: disk.vdev.clone(),
            spec: disk.spec.clone(),
            source,
        };
        let path = disk.host_path().unwrap_or_default();
        let writable = disk.access != Access::ReadOnly;
        let dev = if disk.backend == Backend::File
            || (disk.backend == Backend::Auto && !is_block_device(&path))
        {
            let dev = devices
                .loop_attach(Path::new(&path), writable)
                .map_err(disk_err)?;
            undo.loops.push(dev.path.clone());
            dev
        } else {
            let dev = devices.block_device(Path::new(&path)).map_err(disk_err)?;
            toolstack::blockdev::check_sharing(
                &dev,
                writable,
                disk.access == Access::SharedWrite,
                &in_use,
            )
            .map_err(disk_err)?;
            dev
        };
        let node = dev.path.to_string_lossy().into_owned();
        vbd_layout(
            &mut devices_layout,
            domid,
            &VbdRecord {
                devid: disk.device_number,
                vdev: &disk.vdev,
                params: &path,
                node: &node,
                physical_device: dev.physical_device(),
                writable,
                cdrom: disk.cdrom,
                bootable: vbd_ids.is_empty(),
            },
        );
        vbd_ids.push(disk.device_number);
    }

    // Vifs: refuse a missing bridge before the guest sees anything.
    let mut vif_ids = Vec::new();
    for (index, vif) in config.vifs.iter().enumerate() {
        let devid = vif.devid.unwrap_or(index as u32);
        let bridge = vif.bridge_name().to_string();
        devices
            .check_bridge(&bridge)
            .map_err(|source| CreateError::Vif {
                devid,
                bridge: bridge.clone(),
                source,
            })?;
        let mac = vif.mac.map_or_else(
            || toolstack::mac::stable_mac(&booted.uuid, devid),
            |m| m.to_string(),
        );
        let ip = (!vif.ip.is_empty()).then(|| vif.ip.join(" "));
        vif_layout(
            &mut devices_layout,
            domid,
            &VifRecord {
                devid,
                mac: &mac,
                bridge: &bridge,
                script: None,
                ip: ip.as_deref(),
                vifname: vif.vifname.as_deref(),
                rate: vif
                    .rate
                    .as_ref()
                    .map(|r| format!("{},{}", r.bytes_per_second, r.interval_us)),
            },
        );
        // Linux netback refuses a backend without a `script` node ("reading script"); it only
        // passes it on in uevents. Empty: we do the hotplug work in-process.
        let backend_mac = format!("/local/domain/0/backend/vif/{domid}/{devid}/mac");
        if let Some(perms) = devices_layout.get(&backend_mac).map(|e| e.perms.clone()) {
            devices_layout.entries.push(XsEntry {
                path: format!("/local/domain/0/backend/vif/{domid}/{devid}/script"),
                value: String::new(),
                perms,
            });
        }
        vif_ids.push((devid, bridge, vif.vifname.clone()));
    }
    if !config.vfbs.is_empty() {
        let warning = match devices.device_model() {
            None => format!(
                "Warning: {}: the config has a vfb (framebuffer), but no qemu Xen device model \
                 (qemu-system-i386 from qemu-system-xen) is installed; booting without the framebuffer",
                config.name
            ),
            Some(qemu) => format!(
                "Warning: {}: the config has a vfb; starting {} as its backend is not supported yet, \
                 booting without the framebuffer",
                config.name,
                qemu.display()
            ),
        };
        created.warnings.push(warning);
    }
    store.write_entries(&devices_layout.entries)?;

    // Netback creates vifD.N once it sees the backend directory.
    for (devid, bridge, vifname) in &vif_ids {
        let netdev = format!("vif{domid}.{devid}");
        let deadline = Instant::now() + options.netdev_timeout;
        while !devices.netdev_exists(&netdev) {
            if Instant::now() >= deadline {
                return Err(CreateError::NetdevTimeout {
                    devid: *devid,
                    netdev,
                    waited: options.netdev_timeout,
                });
            }
            std::thread::sleep(options.poll);
        }
        let vif_err = |source| CreateError::Vif {
            devid: *devid,
            bridge: bridge.clone(),
            source,
        };
        let name = match vifname {
            Some(new) if new != &netdev => {
                devices.rename_netdev(&netdev, new).map_err(vif_err)?;
                new.clone()
            }
            _ => netdev,
        };
        devices.bridge_attach(&name, bridge).map_err(vif_err)?;
    }

    if !options.paused {
        hv.unpause_domain(domid)?;
        let mut pending: Vec<(&'static str, u32)> = vbd_ids.iter().map(|&d| ("vbd", d)).collect();
        pending.extend(vif_ids.iter().map(|(d, _, _)| ("vif", *d)));
        wait_connected(hv, store, domid, &pending, options)?;
    }
    Ok(created)
}

fn is_block_device(path: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// Waits for every backend's `state` to read Connected.
fn wait_connected<H: Hypervisor, S: Store + ?Sized>(
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
            match hv.domain_info(domid) {
                Err(hypervisor::Error::NoSuchDomain(_)) => {
                    return Err(CreateError::DomainGone { domid })
                }
                Ok(info) if info.dying || info.shutdown => {
                    return Err(CreateError::DomainGone { domid })
                }
                _ => {}
            }
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
