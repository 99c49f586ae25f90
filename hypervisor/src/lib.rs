//! What a Xen toolstack asks of the hypervisor, behind one trait.
//!
//! [`Hypervisor`] is the interface the domain builder and the `xm` daemon program against.
//! [`XenHypervisor`] implements it over libxenctrl (via `xenctrl-sys`) and
//! libxenforeignmemory; it is the only place in the workspace with `unsafe` FFI.
//! [`SimHypervisor`] implements it in memory for host tests: it keeps every guest page, so a
//! test can inspect exactly what a builder wrote, and it checks the rules Xen enforces that a
//! builder can get wrong (memory limits, page ownership, pinning a page table that is still
//! mapped writable).

mod error;
mod sim;
mod types;
pub mod uuid;
mod xen;

pub use error::{Error, Result};
pub use sim::{SimDomainState, SimEventChannels, SimHypervisor, SimMapping};
pub use types::{
    CreditParams, DomId, DomainConfig, DomainInfo, GrantSeed, Mfn, PageProt, Pfn, PhysInfo,
    PvVcpuContext, Scheduler, ShutdownReason, VcpuInfo, PAGE_SHIFT, PAGE_SIZE,
};
pub use xen::{XenEventChannels, XenHypervisor, XenMapping};

/// A window onto guest frames mapped into this process. Unmapped (or, in the simulation,
/// written back) when dropped.
pub trait ForeignMapping {
    /// The mapped frames, back to back, `PAGE_SIZE` bytes each.
    fn bytes(&self) -> &[u8];
    /// The mapped frames, writable; [`Error::ReadOnlyMapping`] if they were mapped
    /// [`PageProt::ReadOnly`].
    fn bytes_mut(&mut self) -> Result<&mut [u8]>;
}

/// dom0's end of interdomain event channels (the event-channel device). Ports bound through
/// it are unbound when it is dropped.
pub trait EventChannels {
    /// Binds a local port to `remote_port` of domain `remote` (which the guest, or the
    /// toolstack for it, allocated unbound for dom0); returns the local port.
    fn bind_interdomain(&mut self, remote: DomId, remote_port: u32) -> Result<u32>;
    /// Signals the remote end of a bound local port.
    fn notify(&self, local_port: u32) -> Result<()>;
    /// Unbinds a local port.
    fn unbind(&mut self, local_port: u32) -> Result<()>;
}

/// The hypervisor operations a PV toolstack needs. Every method names the domain it acts on;
/// errors carry the operation and the domain so an operator can read them.
pub trait Hypervisor {
    /// The mapping type returned by [`Hypervisor::map_foreign`].
    type Mapping: ForeignMapping;
    /// The event-channel device returned by [`Hypervisor::open_event_channels`].
    type EventChannels: EventChannels;

    /// Creates a paused, empty PV domain and returns its id (chosen by the hypervisor).
    fn create_domain(&self, config: &DomainConfig) -> Result<DomId>;
    /// Destroys a domain and frees its memory.
    fn destroy_domain(&self, domid: DomId) -> Result<()>;
    /// Pauses every vcpu of a domain.
    fn pause_domain(&self, domid: DomId) -> Result<()>;
    /// Lets a paused domain run.
    fn unpause_domain(&self, domid: DomId) -> Result<()>;
    /// State of one domain; [`Error::NoSuchDomain`] if it does not exist.
    fn domain_info(&self, domid: DomId) -> Result<DomainInfo>;
    /// State of every domain, dom0 included, in domid order.
    fn list_domains(&self) -> Result<Vec<DomainInfo>>;
    /// Sets how many vcpus the domain may bring up.
    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()>;
    /// Sets the most memory the domain may own, in KiB.
    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()>;
    /// Sets the end of the pseudo-physical memory map a PV guest sees (its e820), in KiB.
    fn set_memmap_limit_kib(&self, domid: DomId, limit_kib: u64) -> Result<()>;
    /// Gives the domain one 4 KiB page for each pseudo-physical frame in `pfns` and returns
    /// the machine frame backing each, in the same order.
    fn populate_physmap(&self, domid: DomId, pfns: &[Pfn]) -> Result<Vec<Mfn>>;
    /// Maps the given machine frames of a domain contiguously into this process.
    fn map_foreign(&self, domid: DomId, frames: &[Mfn], prot: PageProt) -> Result<Self::Mapping>;
    /// Validates and pins `l4` as a top-level page table of the domain
    /// (`MMUEXT_PIN_L4_TABLE`); fails if any table page is still mapped writable.
    fn pin_l4_table(&self, domid: DomId, l4: Mfn) -> Result<()>;
    /// Asks the hypervisor to write its hypercall trampolines into the frame `mfn`.
    fn init_hypercall_page(&self, domid: DomId, mfn: Mfn) -> Result<()>;
    /// Sets the register state vcpu `vcpu` starts with.
    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &PvVcpuContext) -> Result<()>;
    /// Allocates an unbound event channel in `domid` that `remote` may bind to; returns the port.
    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32>;
    /// Opens dom0's event-channel device, to bind to guests' unbound ports.
    fn open_event_channels(&self) -> Result<Self::EventChannels>;
    /// Writes the reserved grant entries for the console and xenstore rings so dom0's
    /// backends can map them (what `xc_dom_gnttab_seed` does).
    fn seed_grant_table(&self, domid: DomId, seed: &GrantSeed) -> Result<()>;
    /// Shuts a domain down as if it had asked to, with the given reason.
    fn shutdown_domain(&self, domid: DomId, reason: ShutdownReason) -> Result<()>;
    /// Sends debug keys to the hypervisor itself (what `xl debug-keys` does).
    fn send_debug_keys(&self, keys: &str) -> Result<()>;
    /// Reads the hypervisor's console ring (`xl dmesg`); `clear` empties it afterwards.
    fn read_console_ring(&self, clear: bool) -> Result<String>;
    /// Writes an ELF core of the domain's memory and vcpus to `path` (`xl dump-core`; what
    /// the coredump-* actions do before destroying or restarting a crashed guest).
    fn dump_core(&self, domid: DomId, path: &std::path::Path) -> Result<()>;
    /// Facts about the host: cpus, memory, free memory.
    fn physinfo(&self) -> Result<PhysInfo>;
    /// State, cpu time, current physical cpu and hard affinity of vcpu `vcpu` of a domain;
    /// [`Error::InvalidArgument`] for a vcpu beyond the domain's maximum.
    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo>;
    /// Restricts vcpu `vcpu` to the physical cpus in `cpus` (hard affinity). Cpus the host
    /// does not have are ignored, as Xen does; none left is an error.
    fn set_vcpu_affinity(&self, domid: DomId, vcpu: u32, cpus: &[u32]) -> Result<()>;
    /// The scheduler of the host's default cpu pool.
    fn scheduler(&self) -> Result<Scheduler>;
    /// The domain's weight and cap under `scheduler` (credit or credit2); fails when that is
    /// not the scheduler running the domain.
    fn sched_params(&self, domid: DomId, scheduler: Scheduler) -> Result<CreditParams>;
    /// Changes the domain's weight and/or cap under `scheduler` (credit or credit2); `None`
    /// leaves one as it is.
    fn set_sched_params(
        &self,
        domid: DomId,
        scheduler: Scheduler,
        weight: Option<u16>,
        cap: Option<u16>,
    ) -> Result<()>;
}
