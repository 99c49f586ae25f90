//! The real hypervisor: libxenctrl (through `xenctrl-sys`) and libxenforeignmemory.
//!
//! `xenctrl-sys` binds `xenctrl.h`, which includes neither `xenforeignmemory.h` nor
//! `xenevtchn.h`; the eleven functions of those libraries we need are declared by hand in
//! [`ffi`] (stable ABI since Xen 4.7/4.11) rather than running a second bindgen.
//! The libraries are linked on every build, so host builds need libxen-dev; opening the
//! handles fails at run time, with [`Error::Open`], where Xen is not running.

use std::ffi::{c_int, c_uint, c_void, CString};
use std::io;
use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use tracing::debug;
use xenctrl_sys as xc;

use crate::error::{Error, Result};
use crate::types::{
    CreditParams, DomId, DomainConfig, DomainInfo, GrantSeed, Mfn, PageProt, Pfn, PhysInfo,
    PvVcpuContext, Scheduler, ShutdownReason, VcpuInfo, PAGE_SIZE,
};
use crate::{EventChannels, ForeignMapping, Hypervisor};

/// Hand-written declarations for libxenforeignmemory (see the module comment).
mod ffi {
    use std::ffi::{c_int, c_uint, c_ulong, c_void};

    /// Opaque `xenforeignmemory_handle`.
    #[repr(C)]
    pub struct ForeignMemoryHandle {
        _private: [u8; 0],
    }

    /// Opaque `xenforeignmemory_resource_handle`.
    #[repr(C)]
    pub struct ResourceHandle {
        _private: [u8; 0],
    }

    /// Opaque `xenevtchn_handle`.
    #[repr(C)]
    pub struct EvtchnHandle {
        _private: [u8; 0],
    }

    #[link(name = "xenevtchn")]
    extern "C" {
        pub fn xenevtchn_open(logger: *mut c_void, flags: c_uint) -> *mut EvtchnHandle;
        pub fn xenevtchn_close(xce: *mut EvtchnHandle) -> c_int;
        pub fn xenevtchn_bind_interdomain(
            xce: *mut EvtchnHandle,
            domid: u32,
            remote_port: u32,
        ) -> c_int;
        pub fn xenevtchn_notify(xce: *mut EvtchnHandle, port: u32) -> c_int;
        pub fn xenevtchn_unbind(xce: *mut EvtchnHandle, port: u32) -> c_int;
    }

    #[link(name = "xenforeignmemory")]
    extern "C" {
        pub fn xenforeignmemory_open(
            logger: *mut c_void,
            flags: c_uint,
        ) -> *mut ForeignMemoryHandle;
        pub fn xenforeignmemory_close(fmem: *mut ForeignMemoryHandle) -> c_int;
        pub fn xenforeignmemory_map(
            fmem: *mut ForeignMemoryHandle,
            dom: u32,
            prot: c_int,
            pages: usize,
            arr: *const u64,
            err: *mut c_int,
        ) -> *mut c_void;
        pub fn xenforeignmemory_unmap(
            fmem: *mut ForeignMemoryHandle,
            addr: *mut c_void,
            pages: usize,
        ) -> c_int;
        pub fn xenforeignmemory_map_resource(
            fmem: *mut ForeignMemoryHandle,
            domid: u16,
            resource_type: c_uint,
            id: c_uint,
            frame: c_ulong,
            nr_frames: c_ulong,
            paddr: *mut *mut c_void,
            prot: c_int,
            flags: c_int,
        ) -> *mut ResourceHandle;
        pub fn xenforeignmemory_unmap_resource(
            fmem: *mut ForeignMemoryHandle,
            fres: *mut ResourceHandle,
        ) -> c_int;
    }
}

/// Populate at most this many frames per hypercall, as libxc does.
const POPULATE_BATCH: usize = 1 << 20;
/// Size of a v1 grant entry: flags u16, domid u16, frame u32.
const GRANT_ENTRY_V1_SIZE: usize = 8;

/// An open libxenforeignmemory handle, shared by the hypervisor and its live mappings so a
/// mapping can never outlive it.
#[derive(Debug)]
struct ForeignMemory(NonNull<ffi::ForeignMemoryHandle>);

// SAFETY: libxenforeignmemory handles are plain file descriptors plus immutable state; the
// library documents them as usable from any thread.
unsafe impl Send for ForeignMemory {}
// SAFETY: as above; concurrent map/unmap calls on one handle are supported by the library.
unsafe impl Sync for ForeignMemory {}

impl Drop for ForeignMemory {
    fn drop(&mut self) {
        // SAFETY: the pointer came from xenforeignmemory_open and is closed exactly once, here;
        // every mapping holds an Arc to us, so none is left when we run.
        unsafe { ffi::xenforeignmemory_close(self.0.as_ptr()) };
    }
}

/// The libxenctrl interface handle.
#[derive(Debug)]
struct ControlInterface(NonNull<xc::xc_interface>);

// SAFETY: libxenctrl serialises hypercalls through its own locks; one xc_interface may be used
// from several threads (libxl does so).
unsafe impl Send for ControlInterface {}
// SAFETY: as above.
unsafe impl Sync for ControlInterface {}

impl Drop for ControlInterface {
    fn drop(&mut self) {
        // SAFETY: the handle came from xc_interface_open and is closed exactly once, here.
        unsafe { xc::xc_interface_close(self.0.as_ptr()) };
    }
}

/// A vcpu number as libxenctrl's affinity calls take it.
fn vcpu_number(vcpu: u32, operation: &'static str) -> Result<c_int> {
    c_int::try_from(vcpu).map_err(|_| Error::InvalidArgument {
        operation,
        reason: format!("vcpu {vcpu} is out of range"),
    })
}

/// `xc_domain_dumpcore`, as xenctrl.h declares it.
type DumpcoreFn =
    unsafe extern "C" fn(*mut xc::xc_interface, u32, *const std::ffi::c_char) -> c_int;

/// `xc_domain_dumpcore` lives in libxenguest since Xen 4.16, and libxenguest brings lzma, zstd
/// and zlib with it. Only a crash dump needs it, so it is loaded on first use instead of linked:
/// linked, every `xm` command would load four more libraries at start, which under emulation
/// is a visible part of a create.
fn xenguest_dumpcore() -> std::result::Result<DumpcoreFn, String> {
    static LOADED: std::sync::OnceLock<std::result::Result<DumpcoreFn, String>> =
        std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut tried = Vec::new();
            for library in [c"libxenguest.so.4.17", c"libxenguest.so"] {
                // SAFETY: dlopen of a NUL-terminated library name; the handle is never closed,
                // so symbols taken from it stay valid for the process's life.
                let handle =
                    unsafe { libc::dlopen(library.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
                if handle.is_null() {
                    tried.push(library.to_string_lossy().into_owned());
                    continue;
                }
                // SAFETY: dlsym on the live handle with a NUL-terminated symbol name.
                let symbol = unsafe { libc::dlsym(handle, c"xc_domain_dumpcore".as_ptr()) };
                if symbol.is_null() {
                    return Err(format!(
                        "{} has no xc_domain_dumpcore",
                        library.to_string_lossy()
                    ));
                }
                // SAFETY: the symbol is xc_domain_dumpcore from a library that stays loaded,
                // and DumpcoreFn is its C signature.
                return Ok(unsafe { std::mem::transmute::<*mut c_void, DumpcoreFn>(symbol) });
            }
            Err(format!(
                "cannot load libxenguest (tried {}); is Xen's libxenmisc installed?",
                tried.join(", ")
            ))
        })
        .clone()
}

/// Xen, through libxenctrl and libxenforeignmemory.
#[derive(Debug)]
pub struct XenHypervisor {
    xch: ControlInterface,
    fmem: Arc<ForeignMemory>,
}

impl XenHypervisor {
    /// Opens the control interfaces. Fails with [`Error::Open`] where Xen is not running or
    /// this is not a privileged domain.
    pub fn open() -> Result<XenHypervisor> {
        // SAFETY: null loggers ask libxenctrl for its default stderr logger; no flags.
        let xch = unsafe { xc::xc_interface_open(ptr::null_mut(), ptr::null_mut(), 0) };
        let xch = NonNull::new(xch).ok_or_else(|| Error::Open {
            library: "libxenctrl",
            source: io::Error::last_os_error(),
        })?;
        let xch = ControlInterface(xch);
        // SAFETY: null logger selects the default one; no flags.
        let fmem = unsafe { ffi::xenforeignmemory_open(ptr::null_mut(), 0) };
        let fmem = NonNull::new(fmem).ok_or_else(|| Error::Open {
            library: "libxenforeignmemory",
            source: io::Error::last_os_error(),
        })?;
        Ok(XenHypervisor {
            xch,
            fmem: Arc::new(ForeignMemory(fmem)),
        })
    }

    fn xch(&self) -> *mut xc::xc_interface {
        self.xch.0.as_ptr()
    }

    /// Runs a domain-scoped libxenctrl call that returns 0 on success, -1 and errno on failure.
    fn check(rc: c_int, operation: &'static str, domid: DomId) -> Result<()> {
        if rc < 0 {
            Err(Error::domain_errno(operation, domid))
        } else {
            Ok(())
        }
    }

    fn getinfolist(&self, first: DomId, max: usize) -> Result<Vec<DomainInfo>> {
        let mut infos: Vec<xc::xc_domaininfo_t> = vec![xc::xc_domaininfo_t::default(); max];
        let max_domains = c_uint::try_from(max).unwrap_or(c_uint::MAX);
        // SAFETY: `infos` has room for `max_domains` entries, which the call fills in.
        let n = unsafe {
            xc::xc_domain_getinfolist(self.xch(), first, max_domains, infos.as_mut_ptr())
        };
        if n < 0 {
            return Err(Error::host_errno("list domains"));
        }
        infos.truncate(usize::try_from(n).unwrap_or(0));
        Ok(infos.iter().map(domain_info_from).collect())
    }

    /// Bytes in a cpu bitmap of this host (what libxenctrl bounces for affinity calls).
    fn cpumap_bytes(&self) -> Result<usize> {
        // SAFETY: plain query on a live interface handle.
        let size = unsafe { xc::xc_get_cpumap_size(self.xch()) };
        match usize::try_from(size) {
            Ok(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(Error::host_errno("read the size of a cpu map")),
        }
    }

    fn domctl(&self, domctl: &mut xc::xen_domctl, operation: &'static str) -> Result<()> {
        let domid = DomId::from(domctl.domain);
        // SAFETY: `domctl` is a fully initialised xen_domctl; libxenctrl fills in the interface
        // version and bounces it through a hypercall buffer.
        let rc = unsafe { xc::xc_domctl(self.xch(), domctl) };
        Self::check(rc, operation, domid)
    }
}

fn domain_info_from(raw: &xc::xc_domaininfo_t) -> DomainInfo {
    let flags = raw.flags;
    let shutdown = flags & xc::XEN_DOMINF_shutdown != 0;
    let reason_code = (flags >> xc::XEN_DOMINF_shutdownshift) & xc::XEN_DOMINF_shutdownmask;
    DomainInfo {
        domid: DomId::from(raw.domain),
        handle: raw.handle,
        dying: flags & xc::XEN_DOMINF_dying != 0,
        shutdown,
        shutdown_reason: shutdown.then(|| ShutdownReason::from_code(reason_code)),
        paused: flags & xc::XEN_DOMINF_paused != 0,
        blocked: flags & xc::XEN_DOMINF_blocked != 0,
        running: flags & xc::XEN_DOMINF_running != 0,
        hvm: flags & xc::XEN_DOMINF_hvm_guest != 0,
        total_pages: raw.tot_pages,
        max_pages: raw.max_pages,
        shared_info_frame: Mfn(raw.shared_info_frame),
        cpu_time_ns: raw.cpu_time,
        online_vcpus: raw.nr_online_vcpus,
        max_vcpu_id: raw.max_vcpu_id,
        ssidref: raw.ssidref,
        cpupool: raw.cpupool,
    }
}

/// The cpus set in a byte-wise cpu bitmap (bit n of byte n/8 is cpu n), ascending.
fn cpus_of_map(map: &[u8]) -> Vec<u32> {
    let mut cpus = Vec::new();
    for (index, byte) in map.iter().enumerate() {
        for bit in 0..8u32 {
            if byte & (1 << bit) != 0 {
                cpus.push(index as u32 * 8 + bit);
            }
        }
    }
    cpus
}

/// A byte-wise cpu bitmap of `bytes` bytes with `cpus` set; cpus beyond it are dropped.
fn map_of_cpus(cpus: &[u32], bytes: usize) -> Vec<u8> {
    let mut map = vec![0u8; bytes];
    for &cpu in cpus {
        if let Some(byte) = map.get_mut((cpu / 8) as usize) {
            *byte |= 1 << (cpu % 8);
        }
    }
    map
}

fn to_domid16(domid: DomId, operation: &'static str) -> Result<u16> {
    u16::try_from(domid).map_err(|_| Error::InvalidArgument {
        operation,
        reason: format!("domain id {domid} is out of range"),
    })
}

/// Frames of a domain mapped into this process; unmapped on drop.
#[derive(Debug)]
pub struct XenMapping {
    fmem: Arc<ForeignMemory>,
    addr: NonNull<u8>,
    pages: usize,
    writable: bool,
}

// SAFETY: the mapping is ordinary process memory owned by this value alone.
unsafe impl Send for XenMapping {}

impl ForeignMapping for XenMapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `addr` maps `pages` whole readable pages for as long as `self` lives, and
        // `&self` stops anyone in this process writing through `bytes_mut` meanwhile. The
        // guest could write them too if it runs: the builder maps frames of paused domains
        // only, and every byte read is treated as untrusted data.
        unsafe { std::slice::from_raw_parts(self.addr.as_ptr(), self.pages * PAGE_SIZE) }
    }

    fn bytes_mut(&mut self) -> Result<&mut [u8]> {
        if !self.writable {
            return Err(Error::ReadOnlyMapping);
        }
        // SAFETY: as in `bytes`, and the pages were mapped PROT_WRITE; `&mut self` makes this
        // the only reference in this process.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.addr.as_ptr(), self.pages * PAGE_SIZE) })
    }
}

impl Drop for XenMapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`pages` are exactly what xenforeignmemory_map returned for this handle,
        // which `fmem` keeps open; the mapping is unmapped once, here.
        let rc = unsafe {
            ffi::xenforeignmemory_unmap(self.fmem.0.as_ptr(), self.addr.as_ptr().cast(), self.pages)
        };
        if rc != 0 {
            tracing::warn!(
                pages = self.pages,
                "unmapping foreign pages failed: {}",
                io::Error::last_os_error()
            );
        }
    }
}

/// dom0's event-channel device (libxenevtchn); closing it unbinds every port bound through it.
#[derive(Debug)]
pub struct XenEventChannels {
    handle: NonNull<ffi::EvtchnHandle>,
}

// SAFETY: the handle is a file descriptor plus immutable state, owned by this value alone.
unsafe impl Send for XenEventChannels {}

impl XenEventChannels {
    /// Opens /dev/xen/evtchn.
    pub fn open() -> Result<XenEventChannels> {
        // SAFETY: null logger selects the default one; no flags.
        let handle = unsafe { ffi::xenevtchn_open(ptr::null_mut(), 0) };
        let handle = NonNull::new(handle).ok_or_else(|| Error::Open {
            library: "libxenevtchn",
            source: io::Error::last_os_error(),
        })?;
        Ok(XenEventChannels { handle })
    }
}

impl EventChannels for XenEventChannels {
    fn bind_interdomain(&mut self, remote: DomId, remote_port: u32) -> Result<u32> {
        // SAFETY: live handle; plain integer arguments.
        let port =
            unsafe { ffi::xenevtchn_bind_interdomain(self.handle.as_ptr(), remote, remote_port) };
        if port < 0 {
            return Err(Error::domain_errno("bind event channel", remote));
        }
        Ok(port.unsigned_abs())
    }

    fn notify(&self, local_port: u32) -> Result<()> {
        // SAFETY: live handle; plain integer argument.
        let rc = unsafe { ffi::xenevtchn_notify(self.handle.as_ptr(), local_port) };
        if rc < 0 {
            return Err(Error::host_errno("notify event channel"));
        }
        Ok(())
    }

    fn unbind(&mut self, local_port: u32) -> Result<()> {
        // SAFETY: live handle; plain integer argument.
        let rc = unsafe { ffi::xenevtchn_unbind(self.handle.as_ptr(), local_port) };
        if rc < 0 {
            return Err(Error::host_errno("unbind event channel"));
        }
        Ok(())
    }
}

impl Drop for XenEventChannels {
    fn drop(&mut self) {
        // SAFETY: the handle came from xenevtchn_open and is closed once, here; the driver
        // unbinds the ports bound through it.
        unsafe { ffi::xenevtchn_close(self.handle.as_ptr()) };
    }
}

impl Hypervisor for XenHypervisor {
    type Mapping = XenMapping;
    type EventChannels = XenEventChannels;

    fn open_event_channels(&self) -> Result<XenEventChannels> {
        XenEventChannels::open()
    }

    fn create_domain(&self, config: &DomainConfig) -> Result<DomId> {
        let mut create = xc::xen_domctl_createdomain {
            ssidref: config.ssidref,
            handle: config.handle,
            flags: 0,
            iommu_opts: 0,
            max_vcpus: config.max_vcpus,
            max_evtchn_port: config.max_evtchn_port,
            max_grant_frames: i32::try_from(config.max_grant_frames).unwrap_or(i32::MAX),
            max_maptrack_frames: i32::try_from(config.max_maptrack_frames).unwrap_or(i32::MAX),
            grant_opts: 1, // XEN_DOMCTL_GRANT_version(1)
            vmtrace_size: 0,
            cpupool_id: 0,
            arch: xc::xen_arch_domainconfig {
                emulation_flags: 0,
                misc_flags: 0,
            },
        };
        // 0 asks Xen to choose the id.
        let mut domid: u32 = 0;
        // SAFETY: both pointers are to initialised locals that outlive the call.
        let rc = unsafe { xc::xc_domain_create(self.xch(), &mut domid, &mut create) };
        if rc < 0 {
            return Err(Error::host_errno("create domain"));
        }
        debug!(domid, "created domain");
        Ok(domid)
    }

    fn destroy_domain(&self, domid: DomId) -> Result<()> {
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_destroy(self.xch(), domid) };
        Self::check(rc, "destroy domain", domid)
    }

    fn pause_domain(&self, domid: DomId) -> Result<()> {
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_pause(self.xch(), domid) };
        Self::check(rc, "pause domain", domid)
    }

    fn unpause_domain(&self, domid: DomId) -> Result<()> {
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_unpause(self.xch(), domid) };
        Self::check(rc, "unpause domain", domid)
    }

    fn domain_info(&self, domid: DomId) -> Result<DomainInfo> {
        match self.getinfolist(domid, 1)?.into_iter().next() {
            Some(info) if info.domid == domid => Ok(info),
            _ => Err(Error::NoSuchDomain(domid)),
        }
    }

    fn list_domains(&self) -> Result<Vec<DomainInfo>> {
        // In batches: libxenctrl bounces the whole array through a hypercall buffer.
        const BATCH: usize = 128;
        let mut domains = Vec::new();
        let mut first: DomId = 0;
        loop {
            let batch = self.getinfolist(first, BATCH)?;
            let done = batch.len() < BATCH;
            if let Some(last) = batch.last() {
                first = last.domid + 1;
            }
            domains.extend(batch);
            // DOMID_FIRST_RESERVED bounds the ids a domain can have.
            if done || first >= 0x7ff0 {
                return Ok(domains);
            }
        }
    }

    fn set_max_vcpus(&self, domid: DomId, max_vcpus: u32) -> Result<()> {
        let max = c_uint::try_from(max_vcpus).unwrap_or(c_uint::MAX);
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_max_vcpus(self.xch(), domid, max) };
        Self::check(rc, "set max vcpus", domid)
    }

    fn set_max_memory_kib(&self, domid: DomId, max_kib: u64) -> Result<()> {
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_setmaxmem(self.xch(), domid, max_kib) };
        Self::check(rc, "set max memory", domid)
    }

    fn set_memmap_limit_kib(&self, domid: DomId, limit_kib: u64) -> Result<()> {
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_set_memmap_limit(self.xch(), domid, limit_kib) };
        Self::check(rc, "set memory map limit", domid)
    }

    fn populate_physmap(&self, domid: DomId, pfns: &[Pfn]) -> Result<Vec<Mfn>> {
        // For a PV guest Xen writes the machine frame back over each pfn of the array.
        let mut frames: Vec<u64> = pfns.iter().map(|p| p.0).collect();
        for batch in frames.chunks_mut(POPULATE_BATCH) {
            let count = std::ffi::c_ulong::try_from(batch.len()).unwrap_or(0);
            // SAFETY: `batch` holds `count` xen_pfn_t entries, read and rewritten by the call.
            let rc = unsafe {
                xc::xc_domain_populate_physmap_exact(
                    self.xch(),
                    domid,
                    count,
                    0,
                    0,
                    batch.as_mut_ptr(),
                )
            };
            Self::check(rc, "populate physmap", domid)?;
        }
        Ok(frames.into_iter().map(Mfn).collect())
    }

    fn map_foreign(&self, domid: DomId, frames: &[Mfn], prot: PageProt) -> Result<XenMapping> {
        if frames.is_empty() {
            return Err(Error::InvalidArgument {
                operation: "map foreign frames",
                reason: "no frames given".into(),
            });
        }
        let writable = prot == PageProt::ReadWrite;
        let prot = match prot {
            PageProt::ReadOnly => libc::PROT_READ,
            PageProt::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        let list: Vec<u64> = frames.iter().map(|m| m.0).collect();
        let mut errors: Vec<c_int> = vec![0; list.len()];
        // SAFETY: `list` and `errors` both hold `list.len()` entries and outlive the call.
        let addr = unsafe {
            ffi::xenforeignmemory_map(
                self.fmem.0.as_ptr(),
                domid,
                prot,
                list.len(),
                list.as_ptr(),
                errors.as_mut_ptr(),
            )
        };
        let addr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| Error::domain_errno("map foreign frames", domid))?;
        let mapping = XenMapping {
            fmem: Arc::clone(&self.fmem),
            addr,
            pages: list.len(),
            writable,
        };
        if let Some((index, errno)) = errors.iter().enumerate().find(|(_, e)| **e != 0) {
            // `mapping` unmaps on the way out.
            return Err(Error::Domain {
                operation: "map foreign frames",
                domid,
                source: io::Error::other(format!(
                    "{}: {}",
                    Mfn(list[index]),
                    io::Error::from_raw_os_error(errno.abs())
                )),
            });
        }
        Ok(mapping)
    }

    fn pin_l4_table(&self, domid: DomId, l4: Mfn) -> Result<()> {
        let mut op = xc::mmuext_op {
            cmd: xc::MMUEXT_PIN_L4_TABLE,
            arg1: xc::mmuext_op__bindgen_ty_1 { mfn: l4.0 },
            arg2: xc::mmuext_op__bindgen_ty_2::default(),
        };
        // SAFETY: one initialised mmuext_op, bounced by libxenctrl.
        let rc = unsafe { xc::xc_mmuext_op(self.xch(), &mut op, 1, domid) };
        if rc < 0 {
            return Err(Error::PinRefused {
                domid,
                l4,
                reason: io::Error::last_os_error().to_string(),
            });
        }
        Ok(())
    }

    fn init_hypercall_page(&self, domid: DomId, mfn: Mfn) -> Result<()> {
        let mut domctl = zeroed_domctl();
        domctl.cmd = xc::XEN_DOMCTL_hypercall_init;
        domctl.domain = to_domid16(domid, "init hypercall page")?;
        domctl.u.hypercall_init = xc::xen_domctl_hypercall_init { gmfn: mfn.0 };
        self.domctl(&mut domctl, "init hypercall page")
    }

    fn set_vcpu_context(&self, domid: DomId, vcpu: u32, context: &PvVcpuContext) -> Result<()> {
        let any = MaybeUninit::<xc::vcpu_guest_context_any_t>::zeroed();
        // SAFETY: the union is plain C data for which all-zero bytes are a valid value.
        let mut any = unsafe { any.assume_init() };
        // SAFETY: the x64 member is the one we initialise and the one Xen reads for a 64-bit
        // PV guest; writing a union field of Copy type is sound.
        let ctxt = unsafe { &mut any.x64 };
        let regs = &mut ctxt.user_regs;
        regs.__bindgen_anon_16.rip = context.rip;
        regs.__bindgen_anon_18.rsp = context.rsp;
        regs.__bindgen_anon_14.rsi = context.rsi;
        regs.__bindgen_anon_17.rflags = context.rflags;
        regs.cs = context.cs;
        regs.ss = context.ss;
        regs.ds = context.ds;
        regs.es = context.es;
        regs.fs = context.fs;
        regs.gs = context.gs;
        ctxt.kernel_ss = context.kernel_ss;
        ctxt.kernel_sp = context.kernel_sp;
        ctxt.ctrlreg[3] = context.cr3.0 << 12;
        ctxt.debugreg[6] = context.dr6;
        ctxt.debugreg[7] = context.dr7;
        let mut flags = 0u64;
        if context.in_kernel {
            flags |= u64::from(xc::VGCF_in_kernel);
        }
        if context.online {
            flags |= u64::from(xc::VGCF_online);
        }
        ctxt.flags = flags;
        // SAFETY: `any` is initialised and lives across the call, which copies it.
        let rc = unsafe { xc::xc_vcpu_setcontext(self.xch(), domid, vcpu, &mut any) };
        Self::check(rc, "set vcpu context", domid)
    }

    fn alloc_unbound_evtchn(&self, domid: DomId, remote: DomId) -> Result<u32> {
        // SAFETY: plain hypercall on a live interface handle.
        let port = unsafe { xc::xc_evtchn_alloc_unbound(self.xch(), domid, remote) };
        if port < 0 {
            return Err(Error::domain_errno("allocate event channel", domid));
        }
        Ok(u32::try_from(port).unwrap_or(0))
    }

    fn seed_grant_table(&self, domid: DomId, seed: &GrantSeed) -> Result<()> {
        let domid16 = to_domid16(domid, "seed grant table")?;
        let mut addr: *mut c_void = ptr::null_mut();
        // SAFETY: maps frame 0 of the domain's shared grant table (one page) and stores its
        // address in `addr`, which outlives the call.
        let resource = unsafe {
            ffi::xenforeignmemory_map_resource(
                self.fmem.0.as_ptr(),
                domid16,
                xc::XENMEM_resource_grant_table,
                xc::XENMEM_resource_grant_table_id_shared,
                0,
                1,
                &mut addr,
                libc::PROT_READ | libc::PROT_WRITE,
                0,
            )
        };
        if resource.is_null() || addr.is_null() {
            return Err(Error::domain_errno("map grant table", domid));
        }
        // SAFETY: the resource maps one whole page at `addr` until unmapped below; nothing
        // else in this process refers to it.
        let table = unsafe { std::slice::from_raw_parts_mut(addr.cast::<u8>(), PAGE_SIZE) };
        let mut result = Ok(());
        for (index, entry) in [
            (xc::GNTTAB_RESERVED_CONSOLE, seed.console),
            (xc::GNTTAB_RESERVED_XENSTORE, seed.xenstore),
        ] {
            let Some((mfn, backend)) = entry else {
                continue;
            };
            if backend == domid {
                continue;
            }
            let (Ok(frame), Ok(backend)) = (u32::try_from(mfn.0), u16::try_from(backend)) else {
                result = Err(Error::InvalidArgument {
                    operation: "seed grant table",
                    reason: format!(
                        "{mfn} or backend domain {backend} does not fit a v1 grant entry"
                    ),
                });
                continue;
            };
            let at = index as usize * GRANT_ENTRY_V1_SIZE;
            let slot = &mut table[at..at + GRANT_ENTRY_V1_SIZE];
            slot[2..4].copy_from_slice(&backend.to_ne_bytes());
            slot[4..8].copy_from_slice(&frame.to_ne_bytes());
            // Flags last, so the entry is never valid with a stale frame.
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            slot[0..2].copy_from_slice(&(xc::GTF_permit_access as u16).to_ne_bytes());
        }
        // SAFETY: `resource` came from map_resource on this handle and is released once.
        unsafe { ffi::xenforeignmemory_unmap_resource(self.fmem.0.as_ptr(), resource) };
        result
    }

    fn shutdown_domain(&self, domid: DomId, reason: ShutdownReason) -> Result<()> {
        let code = c_int::try_from(reason.code()).unwrap_or(c_int::MAX);
        // SAFETY: plain hypercall on a live interface handle.
        let rc = unsafe { xc::xc_domain_shutdown(self.xch(), domid, code) };
        Self::check(rc, "shut down domain", domid)
    }

    fn dump_core(&self, domid: DomId, path: &std::path::Path) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let name =
            CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::InvalidArgument {
                operation: "dump core",
                reason: "the path contains a NUL byte".into(),
            })?;
        let dumpcore = xenguest_dumpcore().map_err(|reason| Error::Unavailable {
            operation: "dump core",
            reason,
        })?;
        // SAFETY: `dumpcore` is libxenguest's xc_domain_dumpcore (the signature xenctrl.h
        // declares); `name` is a NUL-terminated path that outlives the call, and the library
        // opens, writes and closes the file itself.
        let rc = unsafe { dumpcore(self.xch(), domid, name.as_ptr()) };
        Self::check(rc, "dump core", domid)
    }

    fn send_debug_keys(&self, keys: &str) -> Result<()> {
        let keys = CString::new(keys).map_err(|_| Error::InvalidArgument {
            operation: "send debug keys",
            reason: "keys contain a NUL byte".into(),
        })?;
        // SAFETY: `keys` is a NUL-terminated string that outlives the call.
        let rc = unsafe { xc::xc_send_debug_keys(self.xch(), keys.as_ptr()) };
        if rc < 0 {
            return Err(Error::host_errno("send debug keys"));
        }
        Ok(())
    }

    fn read_console_ring(&self, clear: bool) -> Result<String> {
        let mut buffer = vec![0u8; 1 << 20];
        let mut count = c_uint::try_from(buffer.len()).unwrap_or(c_uint::MAX);
        let mut index: u32 = 0;
        // SAFETY: `buffer` has room for `count` bytes; the call sets `count` to what it wrote.
        let rc = unsafe {
            xc::xc_readconsolering(
                self.xch(),
                buffer.as_mut_ptr().cast(),
                &mut count,
                c_int::from(clear),
                0,
                &mut index,
            )
        };
        if rc < 0 {
            return Err(Error::host_errno("read the hypervisor console"));
        }
        buffer.truncate(usize::try_from(count).unwrap_or(0).min(buffer.len()));
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }

    fn physinfo(&self) -> Result<PhysInfo> {
        let mut info = xc::xc_physinfo_t::default();
        // SAFETY: `info` is an initialised struct the call fills in.
        let rc = unsafe { xc::xc_physinfo(self.xch(), &mut info) };
        if rc < 0 {
            return Err(Error::host_errno("physinfo"));
        }
        Ok(PhysInfo {
            nr_cpus: info.nr_cpus,
            threads_per_core: info.threads_per_core,
            cores_per_socket: info.cores_per_socket,
            nr_nodes: info.nr_nodes,
            cpu_khz: info.cpu_khz,
            total_pages: info.total_pages,
            free_pages: info.free_pages,
            scrub_pages: info.scrub_pages,
        })
    }

    fn vcpu_info(&self, domid: DomId, vcpu: u32) -> Result<VcpuInfo> {
        let mut raw = xc::xc_vcpuinfo_t::default();
        // SAFETY: `raw` is an initialised struct the call fills in; it outlives the call.
        let rc = unsafe { xc::xc_vcpu_getinfo(self.xch(), domid, vcpu, &mut raw) };
        Self::check(rc, "read vcpu information", domid)?;
        let bytes = self.cpumap_bytes()?;
        let mut hard = vec![0u8; bytes];
        let mut soft = vec![0u8; bytes];
        let vcpu_arg = vcpu_number(vcpu, "read vcpu affinity")?;
        // SAFETY: both maps hold `xc_get_cpumap_size` bytes, the size libxenctrl bounces, and
        // outlive the call.
        let rc = unsafe {
            xc::xc_vcpu_getaffinity(
                self.xch(),
                domid,
                vcpu_arg,
                hard.as_mut_ptr(),
                soft.as_mut_ptr(),
                xc::XEN_VCPUAFFINITY_HARD,
            )
        };
        Self::check(rc, "read vcpu affinity", domid)?;
        Ok(VcpuInfo {
            vcpu: raw.vcpu,
            online: raw.online != 0,
            blocked: raw.blocked != 0,
            running: raw.running != 0,
            cpu_time_ns: raw.cpu_time,
            cpu: raw.cpu,
            hard_affinity: cpus_of_map(&hard),
        })
    }

    fn set_vcpu_affinity(&self, domid: DomId, vcpu: u32, cpus: &[u32]) -> Result<()> {
        let bytes = self.cpumap_bytes()?;
        let mut hard = map_of_cpus(cpus, bytes);
        if hard.iter().all(|b| *b == 0) {
            return Err(Error::InvalidArgument {
                operation: "set vcpu affinity",
                reason: format!("none of the cpus {cpus:?} exists on this host"),
            });
        }
        let mut soft = vec![0u8; bytes];
        let vcpu_arg = vcpu_number(vcpu, "set vcpu affinity")?;
        // SAFETY: both maps hold `xc_get_cpumap_size` bytes, as libxenctrl expects; the call
        // may write the effective maps back into them; they outlive the call.
        let rc = unsafe {
            xc::xc_vcpu_setaffinity(
                self.xch(),
                domid,
                vcpu_arg,
                hard.as_mut_ptr(),
                soft.as_mut_ptr(),
                xc::XEN_VCPUAFFINITY_HARD,
            )
        };
        Self::check(rc, "set vcpu affinity", domid)
    }

    fn scheduler(&self) -> Result<Scheduler> {
        let mut id: c_int = 0;
        // SAFETY: `id` is an initialised local the call writes.
        let rc = unsafe { xc::xc_sched_id(self.xch(), &mut id) };
        if rc < 0 {
            return Err(Error::host_errno("read the scheduler"));
        }
        Ok(Scheduler::from_id(u32::try_from(id).unwrap_or(u32::MAX)))
    }

    fn sched_params(&self, domid: DomId, scheduler: Scheduler) -> Result<CreditParams> {
        let operation = "read scheduler parameters";
        match scheduler {
            Scheduler::Credit => {
                let mut params = xc::xen_domctl_sched_credit::default();
                // SAFETY: `params` is an initialised struct the call fills in.
                let rc = unsafe { xc::xc_sched_credit_domain_get(self.xch(), domid, &mut params) };
                Self::check(rc, operation, domid)?;
                Ok(CreditParams {
                    weight: params.weight,
                    cap: params.cap,
                })
            }
            Scheduler::Credit2 => {
                let mut params = xc::xen_domctl_sched_credit2::default();
                // SAFETY: `params` is an initialised struct the call fills in.
                let rc = unsafe { xc::xc_sched_credit2_domain_get(self.xch(), domid, &mut params) };
                Self::check(rc, operation, domid)?;
                Ok(CreditParams {
                    weight: params.weight,
                    cap: params.cap,
                })
            }
            other => Err(Error::InvalidArgument {
                operation,
                reason: format!("the {} scheduler has no weight and cap", other.name()),
            }),
        }
    }

    fn set_sched_params(
        &self,
        domid: DomId,
        scheduler: Scheduler,
        weight: Option<u16>,
        cap: Option<u16>,
    ) -> Result<()> {
        let operation = "set scheduler parameters";
        if weight == Some(0) {
            return Err(Error::InvalidArgument {
                operation,
                reason: "a weight of 0 is not allowed (1 to 65535)".into(),
            });
        }
        // credit2 reads a cap of 0 as "remove the cap", so a cap not given is sent as the
        // current one; a weight of 0 leaves the weight as it is in both schedulers.
        let current = self.sched_params(domid, scheduler)?;
        let weight = weight.unwrap_or(0);
        let cap = cap.unwrap_or(current.cap);
        let rc = match scheduler {
            Scheduler::Credit => {
                let mut params = xc::xen_domctl_sched_credit { weight, cap };
                // SAFETY: `params` is an initialised struct the call reads.
                unsafe { xc::xc_sched_credit_domain_set(self.xch(), domid, &mut params) }
            }
            Scheduler::Credit2 => {
                let mut params = xc::xen_domctl_sched_credit2 { weight, cap };
                // SAFETY: `params` is an initialised struct the call reads.
                unsafe { xc::xc_sched_credit2_domain_set(self.xch(), domid, &mut params) }
            }
            other => {
                return Err(Error::InvalidArgument {
                    operation,
                    reason: format!("the {} scheduler has no weight and cap", other.name()),
                })
            }
        };
        Self::check(rc, operation, domid)
    }
}

fn zeroed_domctl() -> xc::xen_domctl {
    let domctl = MaybeUninit::<xc::xen_domctl>::zeroed();
    // SAFETY: xen_domctl is plain C data (integers and unions of integers); all-zero is valid.
    unsafe { domctl.assume_init() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_maps_round_trip_bit_per_cpu() {
        let map = map_of_cpus(&[0, 3, 9, 200], 2);
        assert_eq!(map, vec![0b0000_1001, 0b0000_0010]);
        assert_eq!(cpus_of_map(&map), vec![0, 3, 9]);
    }

    #[test]
    fn dumpcore_is_found_in_libxenguest_on_first_use() {
        // libxen-dev (a build requirement) installs libxenguest; xm itself no longer links it.
        assert!(
            xenguest_dumpcore().is_ok(),
            "{:?}",
            xenguest_dumpcore().err()
        );
        // the second call reuses the loaded library
        assert!(xenguest_dumpcore().is_ok());
    }

    #[test]
    fn opening_without_xen_fails_with_a_clear_error_instead_of_crashing() {
        // On a build host there is no /dev/xen/privcmd; in dom0 the open succeeds.
        match XenHypervisor::open() {
            Ok(hv) => assert!(hv.physinfo().is_ok()),
            Err(err) => {
                let text = err.to_string();
                assert!(
                    text.contains("cannot open the Xen control interface"),
                    "{text}"
                );
            }
        }
    }
}
