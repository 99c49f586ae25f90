//! The whole sequence from nothing to a paused, built PV domain, in the order libxl uses:
//! create, max vcpus, max memory, e820 limit, the xenstore and console event channels, then
//! the build. On any failure the half-made domain is destroyed.

use std::time::{Duration, Instant};

use hypervisor::{DomId, DomainConfig, Hypervisor};
use tracing::{info, info_span, warn};

use crate::build::{build_pv_domain, BuildSpec, BuiltDomain};
use crate::error::BuildError;
use crate::image::KernelImage;
use crate::phases::PhaseClock;

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

/// A created domain with its limits and its two event channels, not built yet: what a
/// caller needs to describe the domain (and its devices) in xenstore while the build runs.
#[derive(Clone, Copy, Debug)]
pub struct PreparedDomain {
    /// Its id.
    pub domid: DomId,
    /// Guest-side port of the xenstore event channel.
    pub store_port: u32,
    /// Guest-side port of the console event channel.
    pub console_port: u32,
    started: Instant,
}

/// Creates and builds a PV domain; leaves it paused for the caller to introduce to xenstored
/// and unpause. Destroys it again if any step fails.
pub fn create_pv_domain<H: Hypervisor>(
    hv: &H,
    spec: &PvDomainSpec<'_>,
) -> Result<CreatedDomain, BuildError> {
    let prepared = prepare_pv_domain(hv, spec)?;
    build_prepared_domain(hv, &prepared, spec).inspect_err(|_| {
        if let Err(destroy_err) = hv.destroy_domain(prepared.domid) {
            warn!(
                domid = prepared.domid,
                "could not destroy the half-built domain: {destroy_err}"
            );
        }
    })
}

/// The first half of [`create_pv_domain`]: creates the domain (paused) and sets its vcpus,
/// memory limits and event channels, in libxl's order. Destroys it again if a step fails.
pub fn prepare_pv_domain<H: Hypervisor>(
    hv: &H,
    spec: &PvDomainSpec<'_>,
) -> Result<PreparedDomain, BuildError> {
    let started = Instant::now();
    let mut clock = PhaseClock::start();
    let domid = hv.create_domain(&DomainConfig::pv(spec.handle, spec.vcpus))?;
    clock.lap("create domain");
    let span = info_span!("prepare_pv_domain", domid);
    let _entered = span.enter();
    let limits_and_channels = || -> Result<(u32, u32), BuildError> {
        hv.set_max_vcpus(domid, spec.vcpus)?;
        hv.set_max_memory_kib(domid, spec.memory_kib + MAXMEM_SLACK_KIB)?;
        hv.set_memmap_limit_kib(domid, spec.memory_kib)?;
        let store_port = hv.alloc_unbound_evtchn(domid, spec.store_domid)?;
        let console_port = hv.alloc_unbound_evtchn(domid, spec.console_domid)?;
        Ok((store_port, console_port))
    };
    match limits_and_channels() {
        Ok((store_port, console_port)) => {
            clock.lap("vcpus, memory limits, event channels");
            Ok(PreparedDomain {
                domid,
                store_port,
                console_port,
                started,
            })
        }
        Err(err) => {
            if let Err(destroy_err) = hv.destroy_domain(domid) {
                warn!("could not destroy the half-made domain: {destroy_err}");
            }
            Err(err)
        }
    }
}

/// The second half of [`create_pv_domain`]: builds a prepared domain from `spec` (the
/// same spec it was prepared with). The domain is left as it is on failure: whoever
/// prepared it destroys it.
pub fn build_prepared_domain<H: Hypervisor>(
    hv: &H,
    prepared: &PreparedDomain,
    spec: &PvDomainSpec<'_>,
) -> Result<CreatedDomain, BuildError> {
    let domid = prepared.domid;
    let span = info_span!("create_pv_domain", domid);
    let _entered = span.enter();
    let built = build_pv_domain(
        hv,
        domid,
        &BuildSpec {
            kernel: spec.kernel,
            ramdisk: spec.ramdisk,
            cmdline: spec.cmdline,
            memory_kib: spec.memory_kib,
            store_evtchn: prepared.store_port,
            console_evtchn: prepared.console_port,
            store_domid: spec.store_domid,
            console_domid: spec.console_domid,
        },
    )?;
    let build_time = prepared.started.elapsed();
    info!(build_ms = build_time.as_millis() as u64, "domain built");
    Ok(CreatedDomain {
        domid,
        built,
        store_port: prepared.store_port,
        console_port: prepared.console_port,
        build_time,
    })
}
