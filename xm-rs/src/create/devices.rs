//! One vbd or vif set up in dom0 and described in xenstore: the steps `xm create` takes for
//! each device of a config and `xm block-attach` / `network-attach` take for one device of a
//! running domain, kept here so both paths share them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hypervisor::DomId;
use toolstack::blockdev::{BlockDevice, VbdInUse};
use toolstack::layout::{vbd_layout, vif_layout, Layout, VbdRecord, VifRecord};

use super::{CreateError, DeviceHost, WireOptions};
use crate::config::devices::Vif;
use crate::config::disk::{Access, Backend, Disk};

/// Refuses a disk this build cannot serve (driver domains, block scripts, blktap, an empty
/// cdrom drive), naming the spec.
pub fn check_disk_supported(disk: &Disk) -> Result<(), String> {
    if disk.backend_domain.is_some() || disk.script.is_some() {
        return Err(format!(
            "disk {}: driver domains and block scripts are not supported yet",
            disk.spec
        ));
    }
    if matches!(disk.backend, Backend::Tap) || disk.target.is_none() {
        return Err(format!(
            "disk {}: only phy: and file: disks with a path are supported",
            disk.spec
        ));
    }
    Ok(())
}

fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// Where a disk's data comes from in dom0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    /// An image file (`file:`, or a path that is no block device): served through a loop
    /// device.
    Image(PathBuf),
    /// A block device, already checked against xm's sharing rule.
    BlockDevice(BlockDevice),
}

/// Decides how a disk is served: a `file:` disk, or an unqualified path that is not a block
/// device, is an image for a loop device; anything else must be a block device, and one that
/// another domain has (`in_use`) is refused as xm's sharing rule says. Both the check before
/// the build and the wiring after it decide through here, so they cannot disagree.
pub fn disk_source<D: DeviceHost + ?Sized>(
    devices: &D,
    disk: &Disk,
    in_use: &[VbdInUse],
) -> Result<DiskSource, CreateError> {
    let path = PathBuf::from(disk.host_path().unwrap_or_default());
    let is_image =
        disk.backend == Backend::File || (disk.backend == Backend::Auto && !is_block_device(&path));
    if is_image {
        return Ok(DiskSource::Image(path));
    }
    let dev = devices
        .block_device(&path)
        .map_err(|e| disk_error(disk, e))?;
    toolstack::blockdev::check_sharing(
        &dev,
        disk.access != Access::ReadOnly,
        disk.access == Access::SharedWrite,
        in_use,
    )
    .map_err(|e| disk_error(disk, e))?;
    Ok(DiskSource::BlockDevice(dev))
}

/// A disk's error, naming its vdev and spec.
pub(crate) fn disk_error(disk: &Disk, source: toolstack::Error) -> CreateError {
    CreateError::Disk {
        vdev: disk.vdev.clone(),
        spec: disk.spec.clone(),
        source,
    }
}

/// Gets a disk's backing device ready and adds its vbd entries to `layout`: an image goes
/// on a fresh loop device, recorded in `loops` so a failure can release it; a block device
/// is used as it is (see [`disk_source`]). `bootable` marks the domain's first disk.
pub fn prepare_vbd<D: DeviceHost + ?Sized>(
    devices: &D,
    domid: DomId,
    disk: &Disk,
    in_use: &[VbdInUse],
    bootable: bool,
    layout: &mut Layout,
    loops: &mut Vec<PathBuf>,
) -> Result<(), CreateError> {
    let path = disk.host_path().unwrap_or_default();
    let writable = disk.access != Access::ReadOnly;
    let dev = match disk_source(devices, disk, in_use)? {
        DiskSource::Image(image) => {
            let dev = devices
                .loop_attach(&image, writable)
                .map_err(|e| disk_error(disk, e))?;
            loops.push(dev.path.clone());
            dev
        }
        DiskSource::BlockDevice(dev) => dev,
    };
    let node = dev.path.to_string_lossy().into_owned();
    vbd_layout(
        layout,
        domid,
        &VbdRecord {
            devid: disk.device_number,
            vdev: &disk.vdev,
            params: &path,
            node: &node,
            physical_device: dev.physical_device(),
            writable,
            cdrom: disk.cdrom,
            bootable,
        },
    );
    Ok(())
}

/// Where a vif goes once netback has created its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifPlug {
    /// Device id.
    pub devid: u32,
    /// Bridge to enslave it to.
    pub bridge: String,
    /// The name to give `vifD.N`, when the config asks for one.
    pub vifname: Option<String>,
    /// The MAC the guest sees.
    pub mac: String,
}

/// Checks a vif's bridge exists and adds its entries to `layout` (MAC from the config, else
/// the stable one for this domain's UUID and the device).
pub fn prepare_vif<D: DeviceHost + ?Sized>(
    devices: &D,
    domid: DomId,
    devid: u32,
    vif: &Vif,
    uuid: &str,
    layout: &mut Layout,
) -> Result<VifPlug, CreateError> {
    let bridge = vif.bridge_name().to_string();
    devices
        .check_bridge(&bridge)
        .map_err(|source| CreateError::Vif {
            devid,
            bridge: bridge.clone(),
            source,
        })?;
    let mac = vif.mac.map_or_else(
        || toolstack::mac::stable_mac(uuid, devid),
        |m| m.to_string(),
    );
    let ip = (!vif.ip.is_empty()).then(|| vif.ip.join(" "));
    vif_layout(
        layout,
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
    Ok(VifPlug {
        devid,
        bridge,
        vifname: vif.vifname.clone(),
        mac,
    })
}

/// Waits for netback to create `vifD.N`, renames it when asked and enslaves it to its bridge.
pub fn plug_vif<D: DeviceHost + ?Sized>(
    devices: &D,
    domid: DomId,
    plug: &VifPlug,
    options: &WireOptions,
) -> Result<(), CreateError> {
    let devid = plug.devid;
    let netdev = format!("vif{domid}.{devid}");
    let deadline = Instant::now() + options.netdev_timeout;
    while !devices.netdev_exists(&netdev) {
        if Instant::now() >= deadline {
            return Err(CreateError::NetdevTimeout {
                devid,
                netdev,
                waited: options.netdev_timeout,
            });
        }
        std::thread::sleep(options.poll);
    }
    let vif_err = |source| CreateError::Vif {
        devid,
        bridge: plug.bridge.clone(),
        source,
    };
    let name = match &plug.vifname {
        Some(new) if new != &netdev => {
            devices.rename_netdev(&netdev, new).map_err(vif_err)?;
            new.clone()
        }
        _ => netdev,
    };
    devices.bridge_attach(&name, &plug.bridge).map_err(vif_err)
}
