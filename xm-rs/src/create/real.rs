//! The real backends of `xm create`: xenstored through the `xenstore` client, dom0's loop
//! devices, block devices and bridges through `toolstack`, and our domain builder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use domain_builder::{create_pv_domain, CacheOutcome, KernelCache, KernelImage, PvDomainSpec};
use hypervisor::{DomId, Hypervisor};
use toolstack::blockdev::BlockDevice;
use toolstack::layout::{Access as XsAccess, XsEntry};
use xenstore::{Client, Perm, XsOps};

use super::{Booted, CreateError, CreateStore, DeviceHost};
use crate::config::model::DomainConfig;
use crate::ops::{format_uuid, Store, StoreError, XsStore};

/// Largest kernel a bzImage may decompress to.
const MAX_KERNEL_BYTES: usize = 512 << 20;

/// xenstored, for creation: the everyday [`XsStore`] plus a client for transactions,
/// permissions and XS_INTRODUCE.
#[derive(Debug)]
pub struct XsCreateStore {
    store: XsStore,
    client: Client,
}

impl XsCreateStore {
    pub fn open() -> Result<XsCreateStore, StoreError> {
        Ok(XsCreateStore {
            store: XsStore::open()?,
            client: Client::open().map_err(|e| StoreError(e.to_string()))?,
        })
    }

    /// The client, e.g. to wait for the console's tty.
    pub fn store(&self) -> &XsStore {
        &self.store
    }
}

fn to_perms(perms: &toolstack::layout::Perms) -> Vec<Perm> {
    let perm = |domid, access: XsAccess| Perm {
        domid,
        read: matches!(access, XsAccess::Read | XsAccess::Both),
        write: matches!(access, XsAccess::Write | XsAccess::Both),
        ignore: false,
    };
    let mut out = vec![perm(perms.owner, perms.others)];
    out.extend(perms.acl.iter().map(|&(d, a)| perm(d, a)));
    out
}

impl Store for XsCreateStore {
    fn read(&self, path: &str) -> Result<Option<String>, StoreError> {
        self.store.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<(), StoreError> {
        self.store.write(path, value)
    }
    fn remove(&self, path: &str) -> Result<(), StoreError> {
        self.store.remove(path)
    }
    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.store.list(path)
    }
    fn wait_domain_change(&self, timeout: Duration) -> Result<(), StoreError> {
        self.store.wait_domain_change(timeout)
    }
}

impl CreateStore for XsCreateStore {
    fn write_entries(&self, entries: &[XsEntry]) -> Result<(), StoreError> {
        self.client
            .transact(|t| {
                for e in entries {
                    t.write(&e.path, e.value.as_bytes())?;
                    t.set_perms(&e.path, &to_perms(&e.perms))?;
                }
                Ok(())
            })
            .map_err(|e| StoreError(e.to_string()))
    }

    fn introduce(&self, domid: DomId, store_mfn: u64, store_port: u32) -> Result<(), StoreError> {
        self.client
            .introduce(domid, store_mfn, store_port)
            .map_err(|e| StoreError(format!("introducing domain {domid}: {e}")))
    }
}

/// dom0 itself.
#[derive(Debug, Default)]
pub struct RealDevices;

impl DeviceHost for RealDevices {
    fn block_device(&self, path: &Path) -> toolstack::Result<BlockDevice> {
        toolstack::blockdev::block_device(path)
    }
    fn loop_attach(&self, image: &Path, writable: bool) -> toolstack::Result<BlockDevice> {
        toolstack::loopback::attach(image, writable).map(|l| l.device)
    }
    fn loop_detach(&self, node: &Path) -> toolstack::Result<()> {
        toolstack::loopback::detach(node)
    }
    fn check_bridge(&self, bridge: &str) -> toolstack::Result<()> {
        toolstack::bridge::check_bridge(bridge).map(drop)
    }
    fn netdev_exists(&self, name: &str) -> bool {
        Path::new("/sys/class/net").join(name).exists()
    }
    fn rename_netdev(&self, from: &str, to: &str) -> toolstack::Result<()> {
        toolstack::bridge::rename(from, to)
    }
    fn bridge_attach(&self, netdev: &str, bridge: &str) -> toolstack::Result<()> {
        toolstack::bridge::attach(netdev, bridge)
    }
    fn bridge_detach(&self, netdev: &str) -> toolstack::Result<()> {
        toolstack::bridge::detach(netdev)
    }
    fn vbd_opened(&self, domid: DomId, devid: u32) -> bool {
        Path::new(&format!(
            "/sys/bus/xen-backend/devices/vbd-{domid}-{devid}/physical_device"
        ))
        .exists()
    }
    fn device_model(&self) -> Option<PathBuf> {
        // Only a qemu built with Xen support will do: the plain qemu-system-i386 on PATH
        // (package qemu-system-x86) has no -xen-domid.
        use std::os::unix::fs::PermissionsExt;
        super::vfb::DEVICE_MODEL_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }
    fn spawn_device_model(
        &self,
        launch: &super::vfb::DeviceModelLaunch,
    ) -> Result<Box<dyn super::vfb::RunningDeviceModel>, String> {
        Ok(Box::new(super::vfb::QemuProcess::spawn(launch)?))
    }
    fn stop_device_model(&self, domid: DomId, pid: u32) -> Result<(), String> {
        super::vfb::stop_on_host(domid, pid)
    }
}

/// A fresh random UUID from the kernel.
pub fn random_uuid() -> [u8; 16] {
    hypervisor::uuid::random()
}

fn read(path: &str) -> Result<Vec<u8>, CreateError> {
    std::fs::read(path).map_err(|source| CreateError::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// Reads the kernel (through the cache of decompressed kernels, when given; a miss fills it)
/// and ramdisk and builds the paused domain.
pub fn build_domain<H: Hypervisor>(
    hv: &H,
    config: &DomainConfig,
    cache: Option<&KernelCache>,
) -> Result<Booted, CreateError> {
    let kernel_path = config.kernel.as_deref().unwrap_or_default();
    let loaded =
        KernelCache::load(cache, Path::new(kernel_path)).map_err(|source| CreateError::Read {
            path: PathBuf::from(kernel_path),
            source,
        })?;
    let ramdisk = config.ramdisk.as_deref().map(read).transpose()?;
    let kernel = KernelImage::parse(&loaded.bytes, MAX_KERNEL_BYTES).map_err(|source| {
        CreateError::Kernel {
            path: PathBuf::from(kernel_path),
            source,
        }
    })?;
    let handle = config
        .uuid
        .as_deref()
        .and_then(hypervisor::uuid::parse)
        .unwrap_or_else(random_uuid);
    let cmdline = super::kernel_cmdline(config);
    let created = create_pv_domain(
        hv,
        &PvDomainSpec {
            handle,
            vcpus: config.vcpus.max(1),
            memory_kib: config.memory_mb * 1024,
            kernel: &kernel,
            ramdisk: ramdisk.as_deref(),
            cmdline: &cmdline,
            store_domid: 0,
            console_domid: 0,
        },
    )?;
    tracing::info!(
        kernel_cache = loaded.outcome.as_str(),
        build_ms = created.build_time.as_millis() as u64,
        "domain {} built",
        created.domid
    );
    // Filled at once, not after the devices are up: holding a decompressed kernel (tens of
    // MiB) through the wiring multiplies dom0's memory use when creates run in parallel
    // (autostart), and dom0 is small.
    if let (Some(cache), Some(elf)) = (cache, kernel.into_decompressed()) {
        if loaded.outcome == CacheOutcome::Miss {
            cache.store(&loaded, &elf);
        }
    }
    let booted = Booted {
        domid: created.domid,
        uuid: format_uuid(&handle),
        store_mfn: created.built.store_mfn.0,
        store_port: created.store_port,
        console_mfn: created.built.console_mfn.0,
        console_port: created.console_port,
    };
    Ok(booted)
}
