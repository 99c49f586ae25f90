//! An in-memory hypervisor for host tests.
//!
//! It keeps every guest page so tests can read back what a builder produced, hands out
//! machine frames in a scrambled order (so a builder that confuses pfns and mfns is caught),
//! and enforces the rules of real Xen a builder can break: memory beyond the domain's maximum,
//! frames of another domain, and pinning page tables that are malformed or still mapped
//! writable. Mappings are copies: a writable mapping writes its bytes back when dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::types::{
    CreditParams, DomId, DomainConfig, DomainInfo, GrantSeed, Mfn, PageProt, Pfn, PhysInfo,
    PvVcpuContext, Scheduler, ShutdownReason, VcpuInfo, PAGE_SIZE,
};
use crate::{EventChannels, ForeignMapping, Hypervisor};

/// Frames this fake host has in all.
const SIM_HOST_PAGES: u64 = 1 << 22;
/// Machine frames are handed out from here, scrambled within 2^24 frames.
const SIM_MFN_BASE: u64 = 0x100_0000;
/// Odd multiplier: n -> n * K mod 2^24 is a bijection, so frames never repeat.
const SIM_MFN_SCRAMBLE: u64 = 0x9E37_79B1;
/// Physical cpus of this fake host.
const SIM_CPUS: u32 = 2;
/// The credit scheduler's default weight.
const DEFAULT_CREDIT_WEIGHT: u16 = 256;
/// First L4 slot reserved for Xen in a 64-bit PV guest's address space.
const XEN_L4_SLOT_FIRST: usize = 256;
/// Last L4 slot reserved for Xen.
const XEN_L4_SLOT_LAST: usize = 271;
const PTE_PRESENT: u64 = 1;
const PTE_RW: u64 = 1 << 1;
const PTE_PSE: u64 = 1 << 7;
const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// What the simulation recorded about one domain, for tests to inspect.
#[derive(Clone, Debug)]
pub struct SimDomainState {
    /// Creation parameters.
    pub config: DomainConfig,
    /// Paused now.
    pub paused: bool,
    /// Shut down, and why.
    pub shutdown: Option<ShutdownReason>,
    /// Set by `set_max_vcpus`.
    pub max_vcpus: u32,
    /// Set by `set_max_memory_kib`.
    pub max_memory_kib: Option<u64>,
    /// Set by `set_memmap_limit_kib`.
    pub memmap_limit_kib: Option<u64>,
    /// The populated pseudo-physical map.
    pub p2m: BTreeMap<Pfn, Mfn>,
    /// Frame of the pinned L4 table.
    pub pinned_l4: Option<Mfn>,
    /// Frame the hypercall page was written to.
    pub hypercall_page: Option<Mfn>,
    /// Boot register state per vcpu.
    pub vcpu_contexts: BTreeMap<u32, PvVcpuContext>,
    /// Event channels allocated unbound: (port, remote domain allowed to bind).
    pub unbound_evtchns: Vec<(u32, DomId)>,
    /// Ports of this domain bound by dom0's event-channel device: port -> dom0's local port.
    pub bound_evtchns: BTreeMap<u32, u32>,
    /// Notifications sent to each port of this domain from dom0.
    pub notifications: BTreeMap<u32, u64>,
    /// Grant entries written: index -> (flags, domid, frame), as in a v1 grant entry.
    pub grant_entries: BTreeMap<u32, (u16, u16, u32)>,
    /// Frame of the domain's shared-info page.
    pub shared_info: Mfn,
    /// Hard affinity set per vcpu (absent: every cpu).
    pub affinity: BTreeMap<u32, Vec<u32>>,
    /// Credit scheduler weight and cap.
    pub credit: CreditParams,
    /// CPU time per vcpu, nanoseconds (tests set it with `set_vcpu_time`).
    pub vcpu_time_ns: BTreeMap<u32, u64>,
}

#[derive(Debug)]
struct Frame {
    owner: DomId,
    data: Box<[u8]>,
    writable_maps: u32,
}

#[derive(Debug)]
struct SimDomain {
    state: SimDomainState,
    /// Table frames validated by a pin: Xen refuses writable mappings of these.
    pinned_tables: HashSet<u64>,
}

#[derive(Debug)]
struct SimState {
    domains: BTreeMap<DomId, SimDomain>,
    frames: HashMap<u64, Frame>,
    next_domid: DomId,
    frames_handed_out: u64,
    console: String,
    scheduler: Scheduler,
    /// What new frames hold: 0, as Xen's scrubbing leaves them, unless a test asks for
    /// the leftovers a host booted with bootscrub=0 can hand out.
    fresh_frame_fill: u8,
}

impl SimState {
    fn alloc_frame(&mut self, owner: DomId) -> Mfn {
        let n = self.frames_handed_out;
        self.frames_handed_out += 1;
        let mfn = SIM_MFN_BASE + (n.wrapping_mul(SIM_MFN_SCRAMBLE) & 0xff_ffff);
        self.frames.insert(
            mfn,
            Frame {
                owner,
                data: vec![self.fresh_frame_fill; PAGE_SIZE].into_boxed_slice(),
                writable_maps: 0,
            },
        );
        Mfn(mfn)
    }

    fn domain(&self, domid: DomId) -> Result<&SimDomain> {
        self.domains.get(&domid).ok_or(Error::NoSuchDomain(domid))
    }

    fn domain_mut(&mut self, domid: DomId) -> Result<&mut SimDomain> {
        self.domains
            .get_mut(&domid)
            .ok_or(Error::NoSuchDomain(domid))
    }

    fn log(&mut self, line: String) {
        self.console.push_str("(XEN) sim: ");
        self.console.push_str(&line);
        self.console.push('\n');
    }

    fn info(&self, domid: DomId, domain: &SimDomain) -> DomainInfo {
        let state = &domain.state;
        DomainInfo {
            domid,
            handle: state.config.handle,
            dying: false,
            shutdown: state.shutdown.is_some(),
            shutdown_reason: state.shutdown,
            paused: state.paused,
            blocked: false,
            running: !state.paused && state.shutdown.is_none(),
            hvm: false,
            total_pages: state.p2m.len() as u64,
            max_pages: state.max_memory_kib.map_or(0, |kib| kib / 4),
            shared_info_frame: state.shared_info,
            cpu_time_ns: 0,
            online_vcpus: state.vcpu_contexts.values().filter(|c| c.online).count() as u32,
            max_vcpu_id: state.max_vcpus.saturating_sub(1),
            ssidref: state.config.ssidref,
            cpupool: 0,
        }
    }

    fn owned_frame(&self, domid: DomId, mfn: u64) -> Result<&Frame> {
        match self.frames.get(&mfn) {
            Some(frame) if frame.owner == domid => Ok(frame),
            _ => Err(Error::ForeignFrame {
                domid,
                mfn: Mfn(mfn),
            }),
        }
    }

    fn entries(&self, domid: DomId, mfn: u64) -> Result<Vec<u64>> {
        let frame = self.owned_frame(domid, mfn)?;
        Ok(frame
            .data
            .chunks_exact(8)
            .map(|e| u64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]))
            .collect())
    }

    /// Xen's checks when pinning an L4: every table reachable is the domain's own, not mapped
    /// writable anywhere, no large pages, no entries in Xen's slots, and no leaf mapping that
    /// would let the guest write a table. Returns the set of table frames.
    fn validate_tables(&self, domid: DomId, l4: u64) -> std::result::Result<HashSet<u64>, String> {
        let mut tables = HashSet::new();
        let mut leaves = Vec::new();
        let mut pending = vec![(l4, 4u32)];
        while let Some((table, level)) = pending.pop() {
            if !tables.insert(table) {
                return Err(format!("table {:#x} is referenced twice", table));
            }
            let entries = self.entries(domid, table).map_err(|e| e.to_string())?;
            for (index, entry) in entries.into_iter().enumerate() {
                if entry & PTE_PRESENT == 0 {
                    continue;
                }
                if level == 4 && (XEN_L4_SLOT_FIRST..=XEN_L4_SLOT_LAST).contains(&index) {
                    return Err(format!("L4 slot {index} is reserved for Xen"));
                }
                if level > 1 && entry & PTE_PSE != 0 {
                    return Err(format!("large page in L{level} entry {index}"));
                }
                let target = (entry & PTE_ADDR_MASK) >> 12;
                self.owned_frame(domid, target).map_err(|e| e.to_string())?;
                if level > 1 {
                    pending.push((target, level - 1));
                } else {
                    leaves.push((target, entry & PTE_RW != 0));
                }
            }
        }
        for table in &tables {
            if self.frames.get(table).is_some_and(|f| f.writable_maps > 0) {
                return Err(format!("table frame {table:#x} is still mapped writable"));
            }
        }
        for (target, writable) in leaves {
            if writable && tables.contains(&target) {
                return Err(format!(
                    "table frame {target:#x} is mapped writable by the guest"
                ));
            }
        }
        Ok(tables)
    }
}

/// The simulated hypervisor. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub struct SimHypervisor {
    state: Arc<Mutex<SimState>>,
}

impl SimDomainState {
    /// A domain as the hypervisor has just made it: nothing populated, set or bound yet.
    fn fresh(config: DomainConfig, paused: bool, shared_info: Mfn) -> SimDomainState {
        SimDomainState {
            max_vcpus: config.max_vcpus,
            config,
            paused,
            shutdown: None,
            max_memory_kib: None,
            memmap_limit_kib: None,
            p2m: BTreeMap::new(),
            pinned_l4: None,
            hypercall_page: None,
            vcpu_contexts: BTreeMap::new(),
            unbound_evtchns: Vec::new(),
            bound_evtchns: BTreeMap::new(),
            notifications: BTreeMap::new(),
            grant_entries: BTreeMap::new(),
            shared_info,
            affinity: BTreeMap::new(),
            credit: CreditParams {
                weight: DEFAULT_CREDIT_WEIGHT,
                cap: 0,
            },
            vcpu_time_ns: BTreeMap::new(),
        }
    }
}

impl Default for SimHypervisor {
    fn default() -> Self {
        SimHypervisor::new()
    }
}

impl SimHypervisor {
    /// A host with only dom0 running.
    pub fn new() -> SimHypervisor {
        let mut state = SimState {
            domains: BTreeMap::new(),
            frames: HashMap::new(),
            next_domid: 1,
            frames_handed_out: 0,
            console: String::new(),
            scheduler: Scheduler::Credit,
            fresh_frame_fill: 0,
        };
        let shared_info = state.alloc_frame(0);
        let dom0 = SimDomainState::fresh(DomainConfig::pv([0; 16], 1), false, shared_info);
        state.domains.insert(
            0,
            SimDomain {
                state: dom0,
                pinned_tables: HashSet::new(),
            },
        );
        SimHypervisor {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// From now on, frames handed out (populate physmap, new domains) are filled with
    /// `byte` instead of zeros: memory Xen never scrubbed (bootscrub=0), for checking that a
    /// builder leaves no such leftovers where the guest expects its own data or zeros.
    pub fn hand_out_unscrubbed_frames(&self, byte: u8) {
        self.lock().fresh_frame_fill = byte;
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic in another test thread must not hide this test's own result.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Everything recorded about a domain.
    pub fn domain_state(&self, domid: DomId) -> Result<SimDomainState> {
        Ok(self.lock().domain(domid)?.state.clone())
    }

    /// The bytes of one machine frame, whoever owns it.
    pub fn read_frame(&self, mfn: Mfn) -> Option<Vec<u8>> {
        self.lock().frames.get(&mfn.0).map(|f| f.data.to_vec())
    }

    /// The domain owning a machine frame.
    pub fn frame_owner(&self, mfn: Mfn) -> Option<DomId> {
        self.lock().frames.get(&mfn.0).map(|f| f.owner)
    }

    /// Machine frames allocated in all (dom0's shared info included).
    pub fn frames_in_use(&self) -> usize {
        self.lock().frames.len()
    }

    /// Brings vcpu `vcpu` of a domain online or offline, as the guest does when it hot-plugs
    /// a cpu (the simulation has no guest to do it).
    pub fn set_vcpu_online(&self, domid: DomId, vcpu: u32, online: bool) -> Result<()> {
        let mut state = self.lock();
        let domain = state.domain_mut(domid)?;
        if vcpu >= domain.state.max_vcpus {
            return Err(Error::InvalidArgument {
                operation: "set vcpu online",
                reason: format!("vcpu {vcpu} does not exist"),
            });
        }
        domain.state.vcpu_contexts.entry(vcpu).or_default().online = online;
        Ok(())
    }

    /// Makes the host run `scheduler` (the simulation starts with credit).
    pub fn set_scheduler(&self, scheduler: Scheduler) {
        self.lock().scheduler = scheduler;
    }

    /// Sets the cpu time a vcpu has used, for tests of time columns.
    pub fn set_vcpu_time(&self, domid: DomId, vcpu: u32, nanoseconds: u64) -> Result<()> {
        self.lock()
            .domain_mut(domid)?
            .state
            .vcpu_time_ns
            .insert(vcpu, nanoseconds);
        Ok(())
    }

    /// Writable mappings of `mfn` not yet dropped.
    pub fn writable_mappings_of(&self, mfn: Mfn) -> u32 {
        self.lock()
            .frames
            .get(&mfn.0)
            .map_or(0, |f| f.writable_maps)
    }
}

/// A copy of guest frames; written back on drop when mapped writable.
#[derive(Debug)]
pub struct SimMapping {
    state: Arc<Mutex<SimState>>,
    frames: Vec<u64>,
    bytes: Vec<u8>,
    writable: bool,
}

impl ForeignMapping for SimMapping {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        if !self.writable {
            return Err(Error::ReadOnlyMapping);
        }
        Ok(&mut self.bytes)
    }
}

impl Drop for SimMapping {
    fn drop(&mut self) {
        if !self.writable {
            return;
        }
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (mfn, chunk) in self.frames.iter().zip(self.bytes.chunks_exact(PAGE_SIZE)) {
            // The domain may have been destroyed meanwhile: its frames are gone then.
            if let Some(frame) = state.frames.get_mut(mfn) {
                frame.data.copy_from_slice(chunk);
                frame.writable_maps = frame.writable_maps.saturating_sub(1);
            }
        }
    }
}

/// dom0's event-channel device in the simulation.
#[derive(Debug)]
pub struct SimEventChannels {
    state: Arc<Mutex<SimState>>,
    /// local port -> (remote domain, remote port)
    bound: BTreeMap<u32, (DomId, u32)>,
    next_local: u32,
}

impl SimEventChannels {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventChannels for SimEventChannels {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: u32) -> Result<u32> {
        let local = self.next_local;
        {
            let mut state = self.lock();
            let domain = state.domain_mut(remote)?;
            let offered = domain
                .state
                .unbound_evtchns
                .iter()
                .any(|(p, r)| *p == remote_port && *r == 0);
            if !offered || domain.state.bound_evtchns.contains_key(&remote_port) {
                return Err(Error::Domain {
                    operation: "bind event channel",
                    domid: remote,
                    source: std::io::Error::from_raw_os_error(libc::EINVAL),
                });
            }
            domain.state.bound_evtchns.insert(remote_port, local);
        }
        self.next_local += 1;
        self.bound.insert(local, (remote, remote_port));
        Ok(local)
    }

    fn notify(&self, local_port: u32) -> Result<()> {
        let &(remote, remote_port) = self.bound.get(&local_port).ok_or(Error::InvalidArgument {
            operation: "notify event channel",
            reason: format!("local port {local_port} is not bound"),
        })?;
        let mut state = self.lock();
        *state
            .domain_mut(remote)?
            .state
            .notifications
            .entry(remote_port)
            .or_default() += 1;
        Ok(())
    }

    fn unbind(&mut self, local_port: u32) -> Result<()> {
        let (remote, remote_port) =
            self.bound
                .remove(&local_port)
                .ok_or(Error::InvalidArgument {
                    operation: "unbind event channel",
                    reason: format!("local port {local_port} is not bound"),
                })?;
        if let Some(domain) = self.lock().domains.get_mut(&remote) {
            domain.state.bound_evtchns.remove(&remote_port);
        }
        Ok(())
    }
}

impl Drop for SimEventChannels {
    fn drop(&mut self) {
        let ports: Vec<u32> = self.bound.keys().copied().collect();
        for port in ports {
            let _ = self.unbind(port);
        }
    }
}

/// The 32-byte stub real Xen writes for hypercall `n` in a 64-bit PV guest:
/// push %rcx; push %r11; mov $n,%eax; syscall; pop %r11; pop %rcx; ret.
fn hypercall_stub(n: u32) -> [u8; 32] {
    let mut stub = [0xccu8; 32];
    let n = n.to_le_bytes();
    let code = [
        0x51, 0x41, 0x53, 0xb8, n[0], n[1], n[2], n[3], 0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3,
    ];
    stub[..code.len()].copy_from_slice(&code);
    stub
}

impl Hypervisor for SimHypervisor {
    type Mapping = SimMapping;
    type EventChannels = SimEventChannels;

    fn open_event_channels(&self) -> Result<SimEventChannels> {
        Ok(SimEventChannels {
            state: Arc::clone(&self.state),
            bound: BTreeMap::new(),
            next_local: 1,
        })
    }

    fn create_domain(&self, config: &DomainConfig) -> Result<DomId> {
        if config.max_vcpus == 0 {
            return Err(Error::InvalidArgument {
                operation: "create domain",
                reason: "max_vcpus must be at least 1".into(),
            });
        }
        let mut state = self.lock();
        let domid = state.next_domid;
        state.next_domid += 1;
        let shared_info = state.alloc_frame(domid);
        let domain = SimDomainState::fresh(config.clone(), true, shared_info);
        state.domains.insert(
            domid,
            SimDomain {
                state: domain,
                pinned_tables: HashSet::new(),
            },
        );
        state.log(format!("created d{domid}"));
        Ok(domid)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<()> {
        if domid == 0 {
            return Err(Error::InvalidArgument {
                operation: "destroy domain",
                reason: "dom0 cannot be destroyed".into(),
            });
        }
        let mut state = self.lock();
        state
            .domains
            .remove(&domid)
            .ok_or(Error::NoSuchDomain(domid))?;
        state.frames.retain(|_, frame| frame.owner != domid);
        state.log(format!("destroyed d{domid}"));
        Ok(())
    }

    fn pause_domain(&self, domid: DomId) -> Result<()> {
        self.lock().domain_mut(domid)?.state.paused = true;
        Ok(())
    }

    fn unpause_domain(&self, domid: DomId) -> Result<()> {
        self.lock().domain_mut(domid)?.state.paused = false;
        Ok(())
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        let state = self.lock();
        let domain = state.domain(domid)?;
        Ok(state.info(domid, domain))
    }

    fn list_domains(&self) -> Result<Vec<DomainInfo>> {
        let state = self.lock();
        Ok(state
            .domains
            .iter()
            .map(|(domid, domain)| state.info(*domid, domain))
            .collect())
    }

    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()> {
        let mut state = self.lock();
        let domain = state.domain_mut(domid)?;
        if max_vcpus == 0 || max_vcpus > domain.state.config.max_vcpus {
            return Err(Error::InvalidArgument {
                operation: "set max vcpus",
                reason: format!(
                    "{max_vcpus} vcpus asked, the domain was created for 1..={}",
                    domain.state.config.max_vcpus
                ),
            });
        }
        domain.state.max_vcpus = max_vcpus;
        Ok(())
    }

    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()> {
        self.lock().domain_mut(domid)?.state.max_memory_kib = Some(max_kib);
        Ok(())
    }

    fn set_memmap_limit_kib(&self, domid: DomId, limit_kib: u64) -> Result<()> {
        self.lock().domain_mut(domid)?.state.memmap_limit_kib = Some(limit_kib);
        Ok(())
    }

    fn populate_physmap(&self, domid: DomId, pfns: &[Pfn]) -> Result<Vec<Mfn>> {
        let mut state = self.lock();
        let domain = state.domain(domid)?;
        let max_pages = domain.state.max_memory_kib.map_or(0, |kib| kib / 4);
        let mut owned = domain.state.p2m.len() as u64;
        let mut seen = HashSet::new();
        for pfn in pfns {
            if domain.state.p2m.contains_key(pfn) || !seen.insert(*pfn) {
                return Err(Error::InvalidArgument {
                    operation: "populate physmap",
                    reason: format!("{pfn} is already populated"),
                });
            }
            owned += 1;
            if owned > max_pages {
                return Err(Error::OutOfMemory {
                    domid,
                    max_pages,
                    pfn: *pfn,
                });
            }
        }
        let mut mfns = Vec::with_capacity(pfns.len());
        for pfn in pfns {
            let mfn = state.alloc_frame(domid);
            state.domain_mut(domid)?.state.p2m.insert(*pfn, mfn);
            mfns.push(mfn);
        }
        Ok(mfns)
    }

    fn map_foreign(&self, domid: DomId, frames: &[Mfn], prot: PageProt) -> Result<SimMapping> {
        let mut state = self.lock();
        let domain = state.domain(domid)?;
        let writable = prot == PageProt::ReadWrite;
        let mut bytes = Vec::with_capacity(frames.len() * PAGE_SIZE);
        for mfn in frames {
            if writable && domain.pinned_tables.contains(&mfn.0) {
                return Err(Error::Domain {
                    operation: "map foreign frame writable",
                    domid,
                    source: std::io::Error::from_raw_os_error(libc::EPERM),
                });
            }
            bytes.extend_from_slice(&state.owned_frame(domid, mfn.0)?.data);
        }
        if writable {
            for mfn in frames {
                if let Some(frame) = state.frames.get_mut(&mfn.0) {
                    frame.writable_maps += 1;
                }
            }
        }
        Ok(SimMapping {
            state: Arc::clone(&self.state),
            frames: frames.iter().map(|m| m.0).collect(),
            bytes,
            writable,
        })
    }

    fn pin_l4_table(&self, domid: DomId, l4: Mfn) -> Result<()> {
        let mut state = self.lock();
        state.domain(domid)?;
        let tables = state
            .validate_tables(domid, l4.0)
            .map_err(|reason| Error::PinRefused { domid, l4, reason })?;
        let domain = state.domain_mut(domid)?;
        domain.state.pinned_l4 = Some(l4);
        domain.pinned_tables = tables;
        Ok(())
    }

    fn init_hypercall_page(&self, domid: DomId, mfn: Mfn) -> Result<()> {
        let mut state = self.lock();
        state.domain(domid)?;
        state.owned_frame(domid, mfn.0)?;
        if let Some(frame) = state.frames.get_mut(&mfn.0) {
            for (n, slot) in frame.data.chunks_exact_mut(32).enumerate() {
                slot.copy_from_slice(&hypercall_stub(n as u32));
            }
        }
        state.domain_mut(domid)?.state.hypercall_page = Some(mfn);
        Ok(())
    }

    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &PvVcpuContext) -> Result<()> {
        let mut state = self.lock();
        let domain = state.domain_mut(domid)?;
        if vcpu >= domain.state.max_vcpus {
            return Err(Error::InvalidArgument {
                operation: "set vcpu context",
                reason: format!("vcpu {vcpu} does not exist"),
            });
        }
        if !domain.pinned_tables.contains(&context.cr3.0) {
            return Err(Error::InvalidArgument {
                operation: "set vcpu context",
                reason: format!("cr3 {} is not a pinned L4 table", context.cr3),
            });
        }
        domain.state.vcpu_contexts.insert(vcpu, *context);
        Ok(())
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        let mut state = self.lock();
        state.domain(remote)?;
        let domain = state.domain_mut(domid)?;
        // Port 0 is never handed out, as in Xen.
        let port = domain.state.unbound_evtchns.len() as u32 + 1;
        domain.state.unbound_evtchns.push((port, remote));
        Ok(port)
    }

    fn seed_grant_table(&self, domid: DomId, seed: &GrantSeed) -> Result<()> {
        let mut state = self.lock();
        for (mfn, _) in seed.console.iter().chain(seed.xenstore.iter()) {
            state.owned_frame(domid, mfn.0)?;
        }
        let domain = state.domain_mut(domid)?;
        // GTF_permit_access = 1; index 0 console, 1 xenstore (GNTTAB_RESERVED_*).
        for (index, entry) in [(0u32, seed.console), (1u32, seed.xenstore)] {
            if let Some((mfn, backend)) = entry {
                let frame = u32::try_from(mfn.0).map_err(|_| Error::InvalidArgument {
                    operation: "seed grant table",
                    reason: format!("{mfn} does not fit a v1 grant entry"),
                })?;
                domain
                    .state
                    .grant_entries
                    .insert(index, (1, backend as u16, frame));
            }
        }
        Ok(())
    }

    fn shutdown_domain(&self, domid: DomId, reason: ShutdownReason) -> Result<()> {
        self.lock().domain_mut(domid)?.state.shutdown = Some(reason);
        Ok(())
    }

    /// Writes a small stand-in core naming the domain and its page count (tests check that
    /// the file exists and is the right domain's, not its format).
    fn dump_core(&self, domid: DomId, path: &std::path::Path) -> Result<()> {
        let pages = self.lock().domain(domid)?.state.p2m.len();
        std::fs::write(path, format!("SIM-CORE domid={domid} pages={pages}\n")).map_err(|e| {
            Error::InvalidArgument {
                operation: "dump core",
                reason: format!("{}: {e}", path.display()),
            }
        })
    }

    fn send_debug_keys(&self, keys: &str) -> Result<()> {
        self.lock().log(format!("debug keys '{keys}'"));
        Ok(())
    }

    fn read_console_ring(&self, clear: bool) -> Result<String> {
        let mut state = self.lock();
        let text = state.console.clone();
        if clear {
            state.console.clear();
        }
        Ok(text)
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let state = self.lock();
        let used = state.frames.len() as u64;
        Ok(PhysInfo {
            nr_cpus: SIM_CPUS,
            threads_per_core: 1,
            cores_per_socket: 2,
            nr_nodes: 1,
            cpu_khz: 2_000_000,
            total_pages: SIM_HOST_PAGES,
            free_pages: SIM_HOST_PAGES.saturating_sub(used),
            scrub_pages: 0,
        })
    }

    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo> {
        let state = self.lock();
        let domain = &state.domain(domid)?.state;
        if vcpu >= domain.max_vcpus {
            return Err(Error::InvalidArgument {
                operation: "read vcpu information",
                reason: format!("vcpu {vcpu} does not exist"),
            });
        }
        let online = domain.vcpu_contexts.get(&vcpu).is_some_and(|c| c.online);
        let hard_affinity = domain
            .affinity
            .get(&vcpu)
            .cloned()
            .unwrap_or_else(|| (0..SIM_CPUS).collect());
        // Runs on the first cpu it may, staggered so vcpus spread out.
        let cpu = hard_affinity
            .get(vcpu as usize % hard_affinity.len().max(1))
            .copied()
            .unwrap_or(0);
        Ok(VcpuInfo {
            vcpu,
            online,
            blocked: false,
            running: online && !domain.paused && domain.shutdown.is_none(),
            cpu_time_ns: domain.vcpu_time_ns.get(&vcpu).copied().unwrap_or(0),
            cpu,
            hard_affinity,
        })
    }

    fn set_vcpu_affinity(&self, domid: DomId, vcpu: u32, cpus: &[u32]) -> Result<()> {
        let mut state = self.lock();
        let domain = state.domain_mut(domid)?;
        if vcpu >= domain.state.max_vcpus {
            return Err(Error::InvalidArgument {
                operation: "set vcpu affinity",
                reason: format!("vcpu {vcpu} does not exist"),
            });
        }
        let mut usable: Vec<u32> = cpus.iter().copied().filter(|c| *c < SIM_CPUS).collect();
        usable.sort_unstable();
        usable.dedup();
        if usable.is_empty() {
            return Err(Error::InvalidArgument {
                operation: "set vcpu affinity",
                reason: format!("none of the cpus {cpus:?} exists on this host"),
            });
        }
        domain.state.affinity.insert(vcpu, usable);
        Ok(())
    }

    fn scheduler(&self) -> Result<Scheduler> {
        Ok(self.lock().scheduler)
    }

    fn sched_params(&self, domid: DomId, scheduler: Scheduler) -> Result<CreditParams> {
        let state = self.lock();
        let domain = state.domain(domid)?;
        if scheduler != state.scheduler {
            // Xen answers EINVAL when asked about a scheduler that does not run the domain.
            return Err(Error::Domain {
                operation: "read scheduler parameters",
                domid,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(domain.state.credit)
    }

    fn set_sched_params(
        &self,
        domid: DomId,
        scheduler: Scheduler,
        weight: Option<u16>,
        cap: Option<u16>,
    ) -> Result<()> {
        if weight == Some(0) {
            return Err(Error::InvalidArgument {
                operation: "set scheduler parameters",
                reason: "a weight of 0 is not allowed (1 to 65535)".into(),
            });
        }
        let mut state = self.lock();
        if scheduler != state.scheduler {
            return Err(Error::Domain {
                operation: "set scheduler parameters",
                domid,
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        let credit = &mut state.domain_mut(domid)?.state.credit;
        if let Some(weight) = weight {
            credit.weight = weight;
        }
        if let Some(cap) = cap {
            credit.cap = cap;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain_with_pages(sim: &SimHypervisor, pages: u64) -> (DomId, Vec<Mfn>) {
        let domid = sim
            .create_domain(&DomainConfig::pv([1; 16], 1))
            .expect("create");
        sim.set_max_memory_kib(domid, pages * 4).expect("maxmem");
        let pfns: Vec<Pfn> = (0..pages).map(Pfn).collect();
        let mfns = sim.populate_physmap(domid, &pfns).expect("populate");
        (domid, mfns)
    }

    #[test]
    fn populating_beyond_max_memory_is_refused() {
        let sim = SimHypervisor::new();
        let (domid, _) = domain_with_pages(&sim, 4);
        let err = sim
            .populate_physmap(domid, &[Pfn(4)])
            .expect_err("over the limit");
        assert!(
            matches!(err, Error::OutOfMemory { max_pages: 4, .. }),
            "{err}"
        );
    }

    #[test]
    fn machine_frames_are_not_pseudo_physical_frames() {
        let sim = SimHypervisor::new();
        let (_, mfns) = domain_with_pages(&sim, 3);
        assert!(mfns.windows(2).all(|w| w[1].0 != w[0].0 + 1), "{mfns:?}");
        assert!(mfns.iter().all(|m| m.0 >= SIM_MFN_BASE));
    }

    #[test]
    fn writable_mapping_writes_back_on_drop() {
        let sim = SimHypervisor::new();
        let (domid, mfns) = domain_with_pages(&sim, 2);
        {
            let mut map = sim
                .map_foreign(domid, &mfns, PageProt::ReadWrite)
                .expect("map");
            map.bytes_mut().expect("writable")[PAGE_SIZE + 7] = 0xab;
            assert_eq!(sim.writable_mappings_of(mfns[1]), 1);
        }
        assert_eq!(sim.read_frame(mfns[1]).expect("frame")[7], 0xab);
        assert_eq!(sim.writable_mappings_of(mfns[1]), 0);
    }

    #[test]
    fn read_only_mappings_refuse_writes() {
        let sim = SimHypervisor::new();
        let (domid, mfns) = domain_with_pages(&sim, 1);
        let mut map = sim
            .map_foreign(domid, &mfns, PageProt::ReadOnly)
            .expect("map");
        assert!(matches!(map.bytes_mut(), Err(Error::ReadOnlyMapping)));
        assert_eq!(map.bytes().len(), PAGE_SIZE);
    }

    #[test]
    fn mapping_another_domains_frame_is_refused() {
        let sim = SimHypervisor::new();
        let (_, theirs) = domain_with_pages(&sim, 1);
        let (mine, _) = domain_with_pages(&sim, 1);
        let err = sim
            .map_foreign(mine, &theirs, PageProt::ReadOnly)
            .expect_err("foreign");
        assert!(matches!(err, Error::ForeignFrame { .. }), "{err}");
    }

    fn write_entry(sim: &SimHypervisor, domid: DomId, table: Mfn, index: usize, value: u64) {
        let mut map = sim
            .map_foreign(domid, &[table], PageProt::ReadWrite)
            .expect("map");
        map.bytes_mut().expect("writable")[index * 8..index * 8 + 8]
            .copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn pinning_refuses_tables_still_mapped_writable_and_writable_self_maps() {
        let sim = SimHypervisor::new();
        let (domid, m) = domain_with_pages(&sim, 4);
        // L4[511] -> L3, L3[0] -> L2, L2[0] -> L1, L1[0] -> the L1 itself, writable.
        write_entry(&sim, domid, m[0], 511, (m[1].0 << 12) | 0x67);
        write_entry(&sim, domid, m[1], 0, (m[2].0 << 12) | 0x67);
        write_entry(&sim, domid, m[2], 0, (m[3].0 << 12) | 0x67);
        write_entry(&sim, domid, m[3], 0, (m[3].0 << 12) | 0x23);
        let err = sim
            .pin_l4_table(domid, m[0])
            .expect_err("writable self map");
        assert!(
            err.to_string().contains("mapped writable by the guest"),
            "{err}"
        );

        write_entry(&sim, domid, m[3], 0, (m[3].0 << 12) | 0x21);
        let held = sim
            .map_foreign(domid, &[m[2]], PageProt::ReadWrite)
            .expect("map");
        let err = sim.pin_l4_table(domid, m[0]).expect_err("still mapped");
        assert!(err.to_string().contains("still mapped writable"), "{err}");
        drop(held);

        sim.pin_l4_table(domid, m[0]).expect("valid tables pin");
        assert!(sim
            .map_foreign(domid, &[m[1]], PageProt::ReadWrite)
            .is_err());
    }

    #[test]
    fn dom0_binds_offered_ports_notifies_them_and_unbinds_on_drop() {
        let sim = SimHypervisor::new();
        let (domid, _) = domain_with_pages(&sim, 1);
        let port = sim.alloc_unbound_evtchn(domid, 0).expect("alloc");
        let mut channels = sim.open_event_channels().expect("open");
        assert!(
            channels.bind_interdomain(domid, port + 7).is_err(),
            "not offered"
        );
        let local = channels.bind_interdomain(domid, port).expect("bind");
        assert!(
            channels.bind_interdomain(domid, port).is_err(),
            "bound once only"
        );
        channels.notify(local).expect("notify");
        channels.notify(local).expect("notify");
        let state = sim.domain_state(domid).expect("state");
        assert_eq!(state.notifications.get(&port), Some(&2));
        assert_eq!(state.bound_evtchns.get(&port), Some(&local));
        drop(channels);
        assert!(sim
            .domain_state(domid)
            .expect("state")
            .bound_evtchns
            .is_empty());
    }

    #[test]
    fn vcpus_report_online_state_and_affinity_and_refuse_hosts_missing_cpus() {
        let sim = SimHypervisor::new();
        let domid = sim
            .create_domain(&DomainConfig::pv([2; 16], 2))
            .expect("create");
        sim.set_vcpu_online(domid, 0, true).expect("online");
        sim.unpause_domain(domid).expect("unpause");
        let v0 = sim.vcpu_info(domid, 0).expect("vcpu 0");
        assert!(v0.online && v0.running);
        assert_eq!(v0.hard_affinity, vec![0, 1]);
        let v1 = sim.vcpu_info(domid, 1).expect("vcpu 1");
        assert!(!v1.online && !v1.running);
        assert!(sim.vcpu_info(domid, 2).is_err(), "beyond max vcpus");

        sim.set_vcpu_affinity(domid, 1, &[1, 7]).expect("pin");
        assert_eq!(
            sim.vcpu_info(domid, 1).expect("vcpu 1").hard_affinity,
            vec![1]
        );
        assert_eq!(sim.vcpu_info(domid, 1).expect("vcpu 1").cpu, 1);
        assert!(
            sim.set_vcpu_affinity(domid, 1, &[5]).is_err(),
            "no such cpu"
        );
    }

    #[test]
    fn credit_parameters_change_only_what_is_given() {
        let sim = SimHypervisor::new();
        let domid = sim
            .create_domain(&DomainConfig::pv([3; 16], 1))
            .expect("create");
        let credit = Scheduler::Credit;
        assert_eq!(sim.scheduler().expect("scheduler"), credit);
        assert_eq!(
            sim.sched_params(domid, credit).expect("get"),
            CreditParams {
                weight: 256,
                cap: 0
            }
        );
        sim.set_sched_params(domid, credit, Some(512), None)
            .expect("set");
        sim.set_sched_params(domid, credit, None, Some(50))
            .expect("set");
        assert_eq!(
            sim.sched_params(domid, credit).expect("get"),
            CreditParams {
                weight: 512,
                cap: 50
            }
        );
        assert!(sim.set_sched_params(domid, credit, Some(0), None).is_err());
        assert!(sim.sched_params(99, credit).is_err());
        // asking about a scheduler that does not run the domain fails, as in Xen
        assert!(sim.sched_params(domid, Scheduler::Credit2).is_err());
    }

    #[test]
    fn destroying_a_domain_frees_its_frames() {
        let sim = SimHypervisor::new();
        let before = sim.frames_in_use();
        let (domid, _) = domain_with_pages(&sim, 8);
        sim.destroy_domain(domid).expect("destroy");
        assert_eq!(sim.frames_in_use(), before);
        assert!(matches!(
            sim.domain_info(domid),
            Err(Error::NoSuchDomain(_))
        ));
        assert_eq!(sim.list_domains().expect("list").len(), 1);
    }
}
