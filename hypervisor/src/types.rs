//! Plain data passed across the [`crate::Hypervisor`] trait.

use std::fmt;

/// A domain id (dom0 is 0).
pub type DomId = u32;

/// Size of an x86 page.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A guest pseudo-physical frame number: the guest's own view of its memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Pfn(pub u64);

/// A machine frame number: a real page of host memory. A PV guest's page tables hold these.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Mfn(pub u64);

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn {:#x}", self.0)
    }
}

impl fmt::Display for Mfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mfn {:#x}", self.0)
    }
}

/// Access asked for when mapping foreign frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PageProt {
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// Parameters fixed when a PV domain is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// The domain's UUID (Xen calls it the handle).
    pub handle: [u8; 16],
    /// Most vcpus the domain will ever have.
    pub max_vcpus: u32,
    /// Highest event channel port the domain may use.
    pub max_evtchn_port: u32,
    /// Grant table size limit in frames.
    pub max_grant_frames: u32,
    /// Maptrack table size limit in frames.
    pub max_maptrack_frames: u32,
    /// XSM security label; 0 when XSM is off.
    pub ssidref: u32,
}

impl DomainConfig {
    /// The defaults `xl` uses for a PV guest with `max_vcpus` vcpus.
    pub fn pv(handle: [u8; 16], max_vcpus: u32) -> DomainConfig {
        DomainConfig {
            handle,
            max_vcpus,
            max_evtchn_port: 1023,
            max_grant_frames: 64,
            max_maptrack_frames: 1024,
            ssidref: 0,
        }
    }
}

/// Why a domain shut down (or is asked to).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownReason {
    /// Powered off.
    Poweroff,
    /// Asked to reboot.
    Reboot,
    /// Suspended (for save or migration).
    Suspend,
    /// Crashed.
    Crash,
    /// Its watchdog fired.
    Watchdog,
    /// Asked for a soft reset.
    SoftReset,
    /// A code this toolstack does not know.
    Other(u32),
}

impl ShutdownReason {
    /// The hypervisor's numeric code (`SHUTDOWN_*`).
    pub fn code(self) -> u32 {
        match self {
            ShutdownReason::Poweroff => 0,
            ShutdownReason::Reboot => 1,
            ShutdownReason::Suspend => 2,
            ShutdownReason::Crash => 3,
            ShutdownReason::Watchdog => 4,
            ShutdownReason::SoftReset => 5,
            ShutdownReason::Other(code) => code,
        }
    }

    /// The reason for a numeric code.
    pub fn from_code(code: u32) -> ShutdownReason {
        match code {
            0 => ShutdownReason::Poweroff,
            1 => ShutdownReason::Reboot,
            2 => ShutdownReason::Suspend,
            3 => ShutdownReason::Crash,
            4 => ShutdownReason::Watchdog,
            5 => ShutdownReason::SoftReset,
            other => ShutdownReason::Other(other),
        }
    }
}

/// One domain as the hypervisor reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Its id.
    pub domid: DomId,
    /// Its UUID.
    pub handle: [u8; 16],
    /// Being torn down.
    pub dying: bool,
    /// Has shut down (see `shutdown_reason`).
    pub shutdown: bool,
    /// Why it shut down, when `shutdown` is set.
    pub shutdown_reason: Option<ShutdownReason>,
    /// Paused by the toolstack.
    pub paused: bool,
    /// All vcpus blocked.
    pub blocked: bool,
    /// A vcpu is running now.
    pub running: bool,
    /// An HVM guest (this toolstack only builds PV ones).
    pub hvm: bool,
    /// Pages it owns now.
    pub total_pages: u64,
    /// Most pages it may own.
    pub max_pages: u64,
    /// Machine frame of its shared-info page.
    pub shared_info_frame: Mfn,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// Vcpus online.
    pub online_vcpus: u32,
    /// Highest vcpu id.
    pub max_vcpu_id: u32,
    /// XSM label.
    pub ssidref: u32,
    /// CPU pool it runs in.
    pub cpupool: u32,
}

/// Facts about the host.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PhysInfo {
    /// Logical cpus.
    pub nr_cpus: u32,
    /// Threads per core.
    pub threads_per_core: u32,
    /// Cores per socket.
    pub cores_per_socket: u32,
    /// NUMA nodes.
    pub nr_nodes: u32,
    /// CPU frequency in kHz.
    pub cpu_khz: u32,
    /// Host memory, pages.
    pub total_pages: u64,
    /// Free memory, pages.
    pub free_pages: u64,
    /// Memory being scrubbed, pages.
    pub scrub_pages: u64,
}

/// The reserved grant entries to write before a PV guest first runs: each names the guest
/// frame of a ring and the backend domain allowed to map it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantSeed {
    /// Console ring frame and the domain running the console backend.
    pub console: Option<(Mfn, DomId)>,
    /// Xenstore ring frame and the domain running xenstored.
    pub xenstore: Option<(Mfn, DomId)>,
}

/// The boot register state of a 64-bit PV vcpu (the fields a builder sets; the rest are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PvVcpuContext {
    /// Entry point.
    pub rip: u64,
    /// Boot stack top.
    pub rsp: u64,
    /// Virtual address of start_info.
    pub rsi: u64,
    /// Flags register (interrupts enabled: 0x200).
    pub rflags: u64,
    /// Code selector.
    pub cs: u16,
    /// Stack selector.
    pub ss: u16,
    /// Data selectors.
    pub ds: u16,
    /// Extra selector.
    pub es: u16,
    /// fs selector.
    pub fs: u16,
    /// gs selector.
    pub gs: u16,
    /// Kernel stack selector.
    pub kernel_ss: u64,
    /// Kernel stack pointer.
    pub kernel_sp: u64,
    /// Machine frame of the top-level page table.
    pub cr3: Mfn,
    /// Debug status register.
    pub dr6: u64,
    /// Debug control register.
    pub dr7: u64,
    /// Start in guest kernel mode (`VGCF_in_kernel`).
    pub in_kernel: bool,
    /// Vcpu online (`VGCF_online`).
    pub online: bool,
}

/// One vcpu of a domain as the hypervisor reports it (`XEN_DOMCTL_getvcpuinfo` plus its hard
/// affinity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuInfo {
    /// Its number within the domain.
    pub vcpu: u32,
    /// Brought up by the guest.
    pub online: bool,
    /// Waiting for an event.
    pub blocked: bool,
    /// Running on a physical cpu now.
    pub running: bool,
    /// CPU time used, in nanoseconds.
    pub cpu_time_ns: u64,
    /// The physical cpu it runs (or last ran) on.
    pub cpu: u32,
    /// Physical cpus it may run on (hard affinity), ascending.
    pub hard_affinity: Vec<u32>,
}

/// A domain's parameters under the credit or credit2 scheduler (both have a weight and a
/// cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditParams {
    /// Relative share of cpu time (1..=65535; Xen's default 256).
    pub weight: u16,
    /// Most cpu time, in percent of one physical cpu; 0 means no cap.
    pub cap: u16,
}

/// A Xen cpu scheduler (`XEN_SCHEDULER_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheduler {
    /// The credit scheduler (`sched=credit`).
    Credit,
    /// The credit2 scheduler, Xen's default since 4.12.
    Credit2,
    /// ARINC 653.
    Arinc653,
    /// The real-time deferrable server scheduler.
    Rtds,
    /// The null scheduler.
    Null,
    /// An id this toolstack does not know.
    Other(u32),
}

impl Scheduler {
    /// The hypervisor's id (`XEN_SCHEDULER_*`).
    pub fn id(self) -> u32 {
        match self {
            Scheduler::Credit => 5,
            Scheduler::Credit2 => 6,
            Scheduler::Arinc653 => 7,
            Scheduler::Rtds => 8,
            Scheduler::Null => 9,
            Scheduler::Other(id) => id,
        }
    }

    /// The scheduler for an id.
    pub fn from_id(id: u32) -> Scheduler {
        match id {
            5 => Scheduler::Credit,
            6 => Scheduler::Credit2,
            7 => Scheduler::Arinc653,
            8 => Scheduler::Rtds,
            9 => Scheduler::Null,
            other => Scheduler::Other(other),
        }
    }

    /// Its name as `xl info` (`xen_scheduler`) and Xen's `sched=` option spell it.
    pub fn name(self) -> String {
        match self {
            Scheduler::Credit => "credit".into(),
            Scheduler::Credit2 => "credit2".into(),
            Scheduler::Arinc653 => "arinc653".into(),
            Scheduler::Rtds => "rtds".into(),
            Scheduler::Null => "null".into(),
            Scheduler::Other(id) => format!("unknown ({id})"),
        }
    }
}
