//! The whole sequence from nothing to a paused, built PV domain, in the order libxl uses:
//! create, max vcpus, max memory, e820 limit, the xenstore and console event channels, then
//! the build. On any failure the half-made domain is destroyed.

use std::time::{Duration, Instant};

use hypervisor::{DomId, DomainConfig, Hypervisor};
use tracing::{info, info_span, warn};

use crate::build::{build_pv_domain, BuildSpec, BuiltDomain};
use crate::error::BuildError;
use crate::image::KernelImage;

/// Slack xl adds to a domain's maximum memory (LIBXL_MAXMEM_CONSTANT), KiB.
pub const MAXMEM_SLACK_KIB: u64 = 1024;

/// A PV domain to create.
#[derive(Clone, Copy, Debug)]
pub struct PvDomainSpec<'a> {
    /// Domain UUID.
    pub handle: [u8; 16],
    /// Vcpus.
    pub vcpus: u32,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// The kernel.
    pub kernel: &'a KernelImage<'a>,
    /// The ramdisk.
    pub ramdisk: Option<&'a [u8]>,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// Domain running xenstored (0 unless a stub domain does).
    pub store_domid: DomId,
    /// Domain running the console backend.
    pub console_domid: DomId,
}

/// A created, built, still paused domain.
#[derive(Clone, Debug)]
pub struct CreatedDomain {
    /// Its id.
    pub domid: DomId,
    /// Where its boot structures are.
    pub built: BuiltDomain,
    /// Guest-side port of the xenstore event channel.
    pub store_port: u32,
    /// Guest-side port of the console event channel.
    pub console_port: u32,
    /// Time from create to built.
    pub build_time: Duration,
}

/// Creates and builds a PV domain; leaves it paused for the caller to introduce to xenstored
/// and unpause. Destroys it again if any step fails.
pub fn create_pv_domain<H: Hypervisor>(
    hv: &H,
    spec: &PvDomainSpec<'_>,
) -> Result<CreatedDomain, BuildError> {
    let started = Instant::now();
    let domid = hv.create_domain(&DomainConfig::pv(spec.handle, spec.vcpus))?;
    let span = info_span!("create_pv_domain", domid);
    let _entered = span.enter();
    match prepare_and_build(hv, domid, spec) {
        Ok((built, store_port, console_port)) => {
            let build_time = started.elapsed();
            info!(build_ms = build_time.as_millis() as u64, "domain built");
            Ok(CreatedDomain {
                domid,
                built,
                store_port,
                console_port,
                build_time,
            })
        }
        Err(err) => {
            if let Err(destroy_err) = hv.destroy_domain(domid) {
                warn!("could not destroy the half-built domain: {destroy_err}");
            }
            Err(err)
        }
    }
}

fn prepare_and_build<H: Hypervisor>(
    hv: &H,
    domid: DomId,
    spec: &PvDomainSpec<'_>,
) -> Result<(BuiltDomain, u32, u32), BuildError> {
    hv.set_max_vcpus(domid, spec.vcpus)?;
    hv.set_max_memory_kib(domid, spec.memory_kib + MAXMEM_SLACK_KIB)?;
    hv.set_memmap_limit_kib(domid, spec.memory_kib)?;
    let store_port = hv.alloc_unbound_evtchn(domid, spec.store_domid)?;
    let console_port = hv.alloc_unbound_evtchn(domid, spec.console_domid)?;
    let built = build_pv_domain(
        hv,
        domid,
        &BuildSpec {
            kernel: spec.kernel,
            ramdisk: spec.ramdisk,
            cmdline: spec.cmdline,
            memory_kib: spec.memory_kib,
            store_evtchn: store_port,
            console_evtchn: console_port,
            store_domid: spec.store_domid,
            console_domid: spec.console_domid,
        },
    )?;
    Ok((built, store_port, console_port))
}
