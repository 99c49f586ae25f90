//! The real backends of `xm create`: xenstored through the `xenstore` client, dom0's loop
//! devices, block devices and bridges through `toolstack`, and our domain builder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use domain_builder::{
    build_prepared_domain, prepare_pv_domain, CacheOutcome, KernelCache, PhaseClock, PvDomainSpec,
};
use hypervisor::{DomId, Hypervisor};
use toolstack::blockdev::BlockDevice;
use toolstack::layout::{Access as XsAccess, Perms, XsEntry};
use xenstore::{Client, Errno, Perm, Transaction, XsOps};

use super::{Booted, CreateError, CreateStore, DeviceHost, Prepared};
use crate::config::model::DomainConfig;
use crate::ops::{Store, StoreError, XsStore};

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

fn to_perms(perms: &Perms) -> Vec<Perm> {
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

/// The three requests writing a layout takes, so the plan can be checked without xenstored.
pub(super) trait EntryWriter {
    type Error;
    fn exists(&self, path: &str) -> Result<bool, Self::Error>;
    fn write(&self, path: &str, value: &str) -> Result<(), Self::Error>;
    fn set_perms(&self, path: &str, perms: &Perms) -> Result<(), Self::Error>;
}

impl EntryWriter for Transaction<'_> {
    type Error = xenstore::client::Error;

    fn exists(&self, path: &str) -> Result<bool, Self::Error> {
        match self.read(path) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(Errno::Enoent) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn write(&self, path: &str, value: &str) -> Result<(), Self::Error> {
        XsOps::write(self, path, value.as_bytes())
    }

    fn set_perms(&self, path: &str, perms: &Perms) -> Result<(), Self::Error> {
        XsOps::set_perms(self, path, &to_perms(perms))
    }
}

/// Writes `entries` in order, each with its permissions, in as few requests as xenstored's
/// rule allows: a node created under a parent that this batch itself created inherits the
/// parent's permissions (xenstored gives a privileged writer's new node its parent's), so
/// its own are set only when they differ. Any other node is looked up first; whether or not
/// it existed its permissions are set, and only below a node that did not exist is anything
/// taken to be new. Under emulation each request costs about a millisecond of xenstored's
/// time, and a domain's layout is a hundred entries.
pub(super) fn write_entries_with<W: EntryWriter>(
    writer: &W,
    entries: &[XsEntry],
) -> Result<(), W::Error> {
    // Nodes this batch created, with the permissions they have now.
    let mut created: HashMap<&str, &Perms> = HashMap::new();
    for entry in entries {
        let path = entry.path.as_str();
        let parent = path.rsplit_once('/').map(|(parent, _)| parent);
        let created_parent = parent.and_then(|p| created.get(p).copied());
        match created_parent {
            Some(inherited) if !created.contains_key(path) => {
                writer.write(path, &entry.value)?;
                if *inherited != entry.perms {
                    writer.set_perms(path, &entry.perms)?;
                }
                created.insert(path, &entry.perms);
            }
            _ => {
                let new = !created.contains_key(path) && !writer.exists(path)?;
                writer.write(path, &entry.value)?;
                writer.set_perms(path, &entry.perms)?;
                if new || created.contains_key(path) {
                    created.insert(path, &entry.perms);
                }
            }
        }
    }
    Ok(())
}

impl CreateStore for XsCreateStore {
    fn write_entries(&self, entries: &[XsEntry]) -> Result<(), StoreError> {
        self.client
            .transact(|t| write_entries_with(t, entries))
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

fn read(path: &str) -> Result<Vec<u8>, CreateError> {
    std::fs::read(path).map_err(|source| CreateError::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// Held while a domain is built: the kernel (compressed, decompressed) and ramdisk buffers
/// of one build are ~100 MiB, so parallel creates (`xm autostart --parallel N`, the
/// daemon's restarts) build one at a time and overlap only in their device wiring; three
/// builds at once got xm OOM-killed in a 768 MiB dom0.
pub(super) static BUILD_GATE: Mutex<()> = Mutex::new(());

/// A build that failed, and the domain it leaves (once created) for the caller to destroy.
#[derive(Debug)]
pub struct BuildFailure {
    pub domid: Option<DomId>,
    pub error: CreateError,
}

impl<E: Into<CreateError>> From<E> for BuildFailure {
    fn from(error: E) -> BuildFailure {
        BuildFailure {
            domid: None,
            error: error.into(),
        }
    }
}

/// Reads the kernel (through the cache of decompressed kernels, when given; a miss fills it)
/// and ramdisk and builds the paused domain; destroys it again if the build fails. One build
/// runs at a time in this process.
pub fn build_domain<H: Hypervisor + Sync>(
    hv: &H,
    config: &DomainConfig,
    cache: Option<&KernelCache>,
) -> Result<Booted, CreateError> {
    match build_domain_with(hv, config, cache, |_| Ok(())) {
        Ok((booted, ())) => Ok(booted),
        Err(BuildFailure { domid, error }) => {
            if let Some(domid) = domid {
                if let Err(e) = hv.destroy_domain(domid) {
                    tracing::warn!(domid, "destroying the half-built domain: {e}");
                }
            }
            Err(error)
        }
    }
}

/// [`build_domain`], with `meanwhile` run once the domain exists, on this thread while its
/// memory is built on another (it gets the domain's id, UUID and store event channel): the
/// xenstore layout and the devices, so they and dom0's backends set up during the build. A failure after the domain
/// was created leaves it to the caller, named in the [`BuildFailure`].
pub fn build_domain_with<H: Hypervisor + Sync, T>(
    hv: &H,
    config: &DomainConfig,
    cache: Option<&KernelCache>,
    meanwhile: impl FnOnce(&Prepared) -> Result<T, CreateError>,
) -> Result<(Booted, T), BuildFailure> {
    // A build that panicked left nothing behind the lock guards; carry on.
    let _one_build_at_a_time = BUILD_GATE.lock().unwrap_or_else(PoisonError::into_inner);
    let mut clock = PhaseClock::start();
    let kernel_path = config.kernel.as_deref().unwrap_or_default();
    let loaded =
        KernelCache::load(cache, Path::new(kernel_path)).map_err(|source| CreateError::Read {
            path: PathBuf::from(kernel_path),
            source,
        })?;
    clock.lap("kernel read (cache lookup)");
    let ramdisk = config.ramdisk.as_deref().map(read).transpose()?;
    clock.lap("ramdisk read");
    let kernel = loaded
        .parse(MAX_KERNEL_BYTES)
        .map_err(|source| CreateError::Kernel {
            path: PathBuf::from(kernel_path),
            source,
        })?;
    clock.lap("kernel parse");
    let handle = config
        .uuid
        .as_deref()
        .and_then(hypervisor::uuid::parse)
        .unwrap_or_else(hypervisor::uuid::random);
    let cmdline = super::kernel_cmdline(config);
    let spec = PvDomainSpec {
        handle,
        vcpus: config.vcpus.max(1),
        memory_kib: config.memory_mb * 1024,
        kernel: &kernel,
        ramdisk: ramdisk.as_deref(),
        cmdline: &cmdline,
        store_domid: 0,
        console_domid: 0,
    };
    let prepared = prepare_pv_domain(hv, &spec)?;
    let domid = prepared.domid;
    let failed = |error: CreateError| BuildFailure {
        domid: Some(domid),
        error,
    };
    let uuid = hypervisor::uuid::format(&handle);
    // The memory is built on a second thread while this one describes the domain: the
    // xenstore writes wait on xenstored, the build on Xen, and neither needs the other.
    let (early, created) = std::thread::scope(|scope| {
        let build = scope.spawn(|| build_prepared_domain(hv, &prepared, &spec));
        let early = meanwhile(&Prepared {
            domid,
            uuid: uuid.clone(),
            store_port: prepared.store_port,
        });
        let created = build
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (early, created)
    });
    let early = early.map_err(failed)?;
    let created = created.map_err(|e| failed(CreateError::from(e)))?;
    clock.lap("described and built");
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
            clock.lap("kernel cache fill");
        }
    }
    let booted = Booted {
        domid: created.domid,
        uuid,
        store_mfn: created.built.store_mfn.0,
        store_port: created.store_port,
        console_mfn: created.built.console_mfn.0,
        console_port: created.console_port,
    };
    Ok((booted, early))
}
