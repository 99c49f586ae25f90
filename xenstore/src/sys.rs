//! All `unsafe` of the crate: the Xen interfaces our xenstored needs to serve rings.
//!
//! - event channels through libxenevtchn (`/dev/xen/evtchn`),
//! - guests' ring pages through libxengnttab (grant `GNTTAB_RESERVED_XENSTORE`),
//! - dom0's own ring page by mapping `/proc/xen/xsd_kva` (as C xenstored's `xenbus_map`),
//! - domain state through libxenctrl's `xc_domain_getinfolist`,
//! - volatile/atomic access to the shared `struct xenstore_domain_interface`.
//!
//! Every type here owns its resource and releases it on Drop; the rest of the crate only sees
//! safe methods.

use std::ffi::{c_int, c_uint, c_void};
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// Size of a Xen page (and of the ring interface).
pub const PAGE_SIZE: usize = 4096;
/// `XENSTORE_RING_SIZE`.
pub const RING_SIZE: u32 = 1024;
/// `GNTTAB_RESERVED_XENSTORE`.
const GNTTAB_RESERVED_XENSTORE: u32 = 1;
/// `VIRQ_DOM_EXC`.
pub const VIRQ_DOM_EXC: c_uint = 3;

const OFF_REQ: usize = 0;
const OFF_RSP: usize = 1024;
const OFF_REQ_CONS: usize = 2048;
const OFF_REQ_PROD: usize = 2052;
const OFF_RSP_CONS: usize = 2056;
const OFF_RSP_PROD: usize = 2060;
const OFF_SERVER_FEATURES: usize = 2064;
const OFF_ERROR: usize = 2072;

/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const FEATURE_ERROR: u32 = 2;
/// `XENSTORE_ERROR_RINGIDX`.
pub const ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`.
pub const ERROR_PROTO: u32 = 3;

#[allow(non_camel_case_types)]
type xenevtchn_handle = c_void;
#[allow(non_camel_case_types)]
type xengnttab_handle = c_void;
#[allow(non_camel_case_types)]
type xc_interface = c_void;

#[link(name = "xenevtchn")]
extern "C" {
    fn xenevtchn_open(logger: *mut c_void, flags: c_uint) -> *mut xenevtchn_handle;
    fn xenevtchn_close(xce: *mut xenevtchn_handle) -> c_int;
    fn xenevtchn_fd(xce: *mut xenevtchn_handle) -> c_int;
    fn xenevtchn_notify(xce: *mut xenevtchn_handle, port: u32) -> c_int;
    fn xenevtchn_bind_interdomain(
        xce: *mut xenevtchn_handle,
        domid: u32,
        remote_port: u32,
    ) -> c_int;
    fn xenevtchn_bind_virq(xce: *mut xenevtchn_handle, virq: c_uint) -> c_int;
    fn xenevtchn_unbind(xce: *mut xenevtchn_handle, port: u32) -> c_int;
}

#[link(name = "xengnttab")]
extern "C" {
    fn xengnttab_open(logger: *mut c_void, flags: c_uint) -> *mut xengnttab_handle;
    fn xengnttab_map_grant_ref(
        xgt: *mut xengnttab_handle,
        domid: u32,
        gref: u32,
        prot: c_int,
    ) -> *mut c_void;
    fn xengnttab_unmap(xgt: *mut xengnttab_handle, addr: *mut c_void, count: u32) -> c_int;
    fn xengnttab_set_max_grants(xgt: *mut xengnttab_handle, count: u32) -> c_int;
}

#[link(name = "xenctrl")]
extern "C" {
    fn xc_interface_open(
        logger: *mut c_void,
        dombuild_logger: *mut c_void,
        flags: c_uint,
    ) -> *mut xc_interface;
    fn xc_domain_getinfolist(
        xch: *mut xc_interface,
        first_domain: u32,
        max_domains: c_uint,
        info: *mut c_void,
    ) -> c_int;
}

fn last_os_error() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// An open `/dev/xen/evtchn` (libxenevtchn handle).
#[derive(Debug)]
pub struct EventChannels {
    handle: *mut xenevtchn_handle,
}

impl EventChannels {
    /// Opens the event channel device.
    pub fn open() -> std::io::Result<EventChannels> {
        // SAFETY: null logger is allowed; flags 0; the returned handle is owned by us.
        let handle = unsafe { xenevtchn_open(std::ptr::null_mut(), 0) };
        if handle.is_null() {
            return Err(last_os_error());
        }
        let ec = EventChannels { handle };
        let fd = ec.fd();
        // SAFETY: fcntl on a valid fd owned by the handle; only adds O_NONBLOCK so that
        // reading pending ports returns EAGAIN instead of blocking our event loop.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(last_os_error());
        }
        Ok(ec)
    }

    /// The pollable fd.
    pub fn fd(&self) -> c_int {
        // SAFETY: handle is valid for our lifetime.
        unsafe { xenevtchn_fd(self.handle) }
    }

    /// Binds a local port to `remote_port` of `domid`.
    pub fn bind_interdomain(&self, domid: u32, remote_port: u32) -> std::io::Result<u32> {
        // SAFETY: valid handle; plain integer arguments.
        let rc = unsafe { xenevtchn_bind_interdomain(self.handle, domid, remote_port) };
        u32::try_from(rc).map_err(|_| last_os_error())
    }

    /// Binds a virtual IRQ.
    pub fn bind_virq(&self, virq: c_uint) -> std::io::Result<u32> {
        // SAFETY: valid handle; plain integer arguments.
        let rc = unsafe { xenevtchn_bind_virq(self.handle, virq) };
        u32::try_from(rc).map_err(|_| last_os_error())
    }

    /// Unbinds a local port.
    pub fn unbind(&self, port: u32) {
        // SAFETY: valid handle; unbinding an unknown port only returns an error.
        unsafe { xenevtchn_unbind(self.handle, port) };
    }

    /// Signals a local port's peer.
    pub fn notify(&self, port: u32) {
        // SAFETY: valid handle; plain integer argument.
        unsafe { xenevtchn_notify(self.handle, port) };
    }

    /// Takes every port that fired since the last call and re-enables delivery on them.
    ///
    /// Reads the device directly (its ABI: a read returns pending ports as `u32`s, a write of
    /// ports unmasks them), up to 64 ports per read, instead of libxenevtchn's one read per
    /// port plus one that finds none: a read shorter than asked for proves the queue empty.
    /// Under Xen every system call is dear, and this runs once per ring wake-up.
    pub fn take_pending(&self) -> Vec<u32> {
        const BATCH: usize = 64;
        let fd = self.fd();
        let mut all = Vec::new();
        loop {
            let mut ports = [0u32; BATCH];
            // SAFETY: reads at most size_of_val(&ports) bytes into our own array; the fd is
            // the (non-blocking) event channel device owned by the handle.
            let n = unsafe {
                libc::read(
                    fd,
                    ports.as_mut_ptr().cast::<c_void>(),
                    std::mem::size_of_val(&ports),
                )
            };
            let Ok(bytes) = usize::try_from(n) else {
                // EAGAIN: nothing pending (any other error: nothing we can take either).
                break;
            };
            let count = bytes / std::mem::size_of::<u32>();
            if count == 0 {
                break;
            }
            // SAFETY: writes `count` ports from our own array to the device, which unmasks
            // them; ports not bound to this handle are rejected by the driver.
            unsafe {
                libc::write(
                    fd,
                    ports.as_ptr().cast::<c_void>(),
                    count * std::mem::size_of::<u32>(),
                )
            };
            all.extend_from_slice(&ports[..count]);
            if count < BATCH {
                break;
            }
        }
        all
    }
}

impl Drop for EventChannels {
    fn drop(&mut self) {
        // SAFETY: handle came from xenevtchn_open and is closed exactly once.
        unsafe { xenevtchn_close(self.handle) };
    }
}

/// An open grant table device (libxengnttab). Kept for the daemon's lifetime: mapped pages
/// refer to it.
#[derive(Debug)]
pub struct GrantTables {
    handle: *mut xengnttab_handle,
}

impl GrantTables {
    /// Opens the gntdev device, allowing one mapping per possible domain.
    pub fn open() -> std::io::Result<GrantTables> {
        // SAFETY: null logger is allowed; flags 0.
        let handle = unsafe { xengnttab_open(std::ptr::null_mut(), 0) };
        if handle.is_null() {
            return Err(last_os_error());
        }
        // SAFETY: valid handle; a plain count.
        unsafe { xengnttab_set_max_grants(handle, 0x7ff0) };
        Ok(GrantTables { handle })
    }

    /// Maps a guest's xenstore ring page (grant 1, filled in by the domain builder).
    pub fn map_xenstore_ring(&self, domid: u32) -> std::io::Result<RingPage> {
        // SAFETY: valid handle; on success the result is a page-sized RW mapping that stays
        // valid until xengnttab_unmap (done by RingPage's Drop).
        let addr = unsafe {
            xengnttab_map_grant_ref(
                self.handle,
                domid,
                GNTTAB_RESERVED_XENSTORE,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if addr.is_null() {
            return Err(last_os_error());
        }
        Ok(RingPage {
            base: addr.cast(),
            unmap: Unmap::Grant(self.handle),
        })
    }
}

#[derive(Debug)]
enum Unmap {
    Grant(*mut xengnttab_handle),
    Munmap,
}

/// A mapped `struct xenstore_domain_interface` shared with a domain. Indexes are accessed
/// atomically and checked on every use (the other side is untrusted); data bytes are copied
/// with volatile accesses.
#[derive(Debug)]
pub struct RingPage {
    base: *mut u8,
    unmap: Unmap,
}

/// A ring whose indexes make no sense: the peer is broken or hostile.
#[derive(Debug, thiserror::Error)]
#[error("xenstore ring indexes are inconsistent (producer {prod}, consumer {cons})")]
pub struct RingIndexError {
    /// Producer index read.
    pub prod: u32,
    /// Consumer index read.
    pub cons: u32,
}

impl RingPage {
    /// Maps dom0's own ring, which the dom0 kernel exposes at `/proc/xen/xsd_kva`.
    pub fn map_dom0_kva() -> std::io::Result<RingPage> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/proc/xen/xsd_kva")?;
        // SAFETY: mapping one page of a device file we hold open; MAP_SHARED so both sides
        // see writes. The mapping outlives the fd by design (munmap in Drop).
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(last_os_error());
        }
        Ok(RingPage {
            base: addr.cast(),
            unmap: Unmap::Munmap,
        })
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset % 4 == 0 && offset + 4 <= PAGE_SIZE);
        // SAFETY: base is a live, page-aligned mapping of PAGE_SIZE bytes for self's lifetime;
        // offset is 4-aligned and in bounds; the other side only ever treats these words as
        // u32, and AtomicU32 has u32's layout.
        unsafe { AtomicU32::from_ptr(self.base.wrapping_add(offset).cast()) }
    }

    fn load_byte(&self, offset: usize) -> u8 {
        // SAFETY: offset < PAGE_SIZE (callers mask ring indexes); volatile because the peer
        // writes the page concurrently.
        unsafe { std::ptr::read_volatile(self.base.wrapping_add(offset)) }
    }

    fn store_byte(&self, offset: usize, value: u8) {
        // SAFETY: as load_byte.
        unsafe { std::ptr::write_volatile(self.base.wrapping_add(offset), value) }
    }

    /// Advertises server features.
    pub fn set_server_features(&self, features: u32) {
        self.word(OFF_SERVER_FEATURES)
            .store(features, Ordering::Release);
    }

    /// Reports why we stopped talking to this domain.
    pub fn set_error(&self, error: u32) {
        self.word(OFF_ERROR).store(error, Ordering::Release);
    }

    /// True if the request ring has unread bytes.
    pub fn has_requests(&self) -> bool {
        self.word(OFF_REQ_PROD).load(Ordering::Acquire)
            != self.word(OFF_REQ_CONS).load(Ordering::Acquire)
    }

    /// Takes up to `max` request bytes.
    pub fn read_requests(&self, max: usize) -> Result<Vec<u8>, RingIndexError> {
        let cons = self.word(OFF_REQ_CONS).load(Ordering::Acquire);
        let prod = self.word(OFF_REQ_PROD).load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let avail = prod.wrapping_sub(cons);
        if avail > RING_SIZE {
            return Err(RingIndexError { prod, cons });
        }
        let n = (avail as usize).min(max);
        let out: Vec<u8> = (0..n)
            .map(|i| {
                self.load_byte(OFF_REQ + (cons.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize)
            })
            .collect();
        fence(Ordering::SeqCst);
        self.word(OFF_REQ_CONS)
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        Ok(out)
    }

    /// Puts as many response bytes as fit; returns how many.
    pub fn write_responses(&self, data: &[u8]) -> Result<usize, RingIndexError> {
        let cons = self.word(OFF_RSP_CONS).load(Ordering::Acquire);
        let prod = self.word(OFF_RSP_PROD).load(Ordering::Acquire);
        fence(Ordering::SeqCst);
        let used = prod.wrapping_sub(cons);
        if used > RING_SIZE {
            return Err(RingIndexError { prod, cons });
        }
        let n = ((RING_SIZE - used) as usize).min(data.len());
        for (i, &b) in data[..n].iter().enumerate() {
            self.store_byte(
                OFF_RSP + (prod.wrapping_add(i as u32) & (RING_SIZE - 1)) as usize,
                b,
            );
        }
        fence(Ordering::SeqCst);
        self.word(OFF_RSP_PROD)
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }
}

impl Drop for RingPage {
    fn drop(&mut self) {
        match self.unmap {
            Unmap::Grant(handle) => {
                // SAFETY: base came from xengnttab_map_grant_ref on this handle (which is never
                // closed) and is unmapped exactly once.
                unsafe { xengnttab_unmap(handle, self.base.cast(), 1) };
            }
            Unmap::Munmap => {
                // SAFETY: base came from mmap of PAGE_SIZE bytes and is unmapped exactly once.
                unsafe { libc::munmap(self.base.cast(), PAGE_SIZE) };
            }
        }
    }
}

/// A libxenctrl handle, used only to ask whether domains exist, shut down or died.
#[derive(Debug)]
pub struct DomainInfo {
    handle: *mut xc_interface,
}

/// What `xc_domain_getinfolist` says about one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainFlags {
    /// `XEN_DOMINF_dying`.
    pub dying: bool,
    /// `XEN_DOMINF_shutdown`.
    pub shutdown: bool,
}

impl DomainInfo {
    /// Opens libxenctrl.
    pub fn open() -> std::io::Result<DomainInfo> {
        // SAFETY: null loggers are allowed; flags 0.
        let handle = unsafe { xc_interface_open(std::ptr::null_mut(), std::ptr::null_mut(), 0) };
        if handle.is_null() {
            return Err(last_os_error());
        }
        Ok(DomainInfo { handle })
    }

    /// Flags of `domid`, `None` if the domain does not exist.
    pub fn query(&self, domid: u32) -> Option<DomainFlags> {
        // One xen_domctl_getdomaininfo is well under 1 KiB (domid u16, pad u16, flags u32, ...);
        // a u64 buffer keeps the 8-byte alignment its uint64_aligned_t fields need.
        let mut buf = [0u64; 128];
        // SAFETY: valid handle; we ask for at most one entry and buf is larger than one entry.
        let n = unsafe { xc_domain_getinfolist(self.handle, domid, 1, buf.as_mut_ptr().cast()) };
        if n != 1 {
            return None;
        }
        let word0 = buf[0].to_ne_bytes();
        let found = u16::from_ne_bytes([word0[0], word0[1]]);
        let flags = u32::from_ne_bytes([word0[4], word0[5], word0[6], word0[7]]);
        (u32::from(found) == domid).then_some(DomainFlags {
            dying: flags & 1 != 0,
            shutdown: flags & 4 != 0,
        })
    }
}

/// A periodic timer as a pollable fd (`timerfd`): armed once, it costs nothing per request
/// (an epoll timeout would arm and cancel a timer on every sleep, a hypercall each under Xen).
#[derive(Debug)]
pub struct PeriodicTimer {
    fd: std::os::fd::OwnedFd,
}

impl PeriodicTimer {
    /// A non-blocking timer that fires every `period`.
    pub fn new(period: std::time::Duration) -> std::io::Result<PeriodicTimer> {
        // SAFETY: plain integer arguments; the returned fd (if any) is owned by us.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let every = libc::timespec {
            tv_sec: libc::time_t::try_from(period.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(period.subsec_nanos()),
        };
        let spec = libc::itimerspec {
            it_interval: every,
            it_value: every,
        };
        // SAFETY: valid timerfd; `spec` lives across the call; the old value is not asked for.
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(last_os_error());
        }
        Ok(PeriodicTimer { fd })
    }

    /// The pollable fd.
    pub fn fd(&self) -> c_int {
        self.fd.as_raw_fd()
    }

    /// Consumes the expirations so far (the fd stays readable until this is called).
    pub fn acknowledge(&self) {
        let mut count = 0u64;
        // SAFETY: reads at most 8 bytes into our own u64 from the (non-blocking) timerfd.
        unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                std::ptr::addr_of_mut!(count).cast::<c_void>(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

/// Reads dom0's xenstore event channel from `/proc/xen/xsd_port`.
pub fn dom0_store_port() -> std::io::Result<u32> {
    let text = std::fs::read_to_string("/proc/xen/xsd_port")?;
    text.trim()
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Which side of [`fork_into_background`] we are on.
#[derive(Debug)]
pub enum ForkRole {
    /// The starter: `report` is what the child wrote before closing its end ("OK" when it is
    /// serving, an error text otherwise, empty if it died first).
    Parent {
        /// The child's startup report.
        report: String,
    },
    /// The daemon: write the startup report here, then drop it.
    Child {
        /// Write end of the report pipe.
        report: std::fs::File,
    },
}

/// Forks the daemon off, keeping a pipe so the starter can wait until the daemon is serving
/// (or learn why it failed) before it exits. Call while single-threaded and before opening
/// any Xen handle: privcmd and gntdev mappings are not inherited by a child.
pub fn fork_into_background() -> std::io::Result<ForkRole> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0 as c_int; 2];
    // SAFETY: fds has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } < 0 {
        return Err(last_os_error());
    }
    // SAFETY: pipe() just returned this descriptor; we are its only owner.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above, for the write end.
    let write_end = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    // SAFETY: called while the process is single-threaded (documented precondition), so the
    // child's copy of the address space is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(last_os_error());
    }
    if pid > 0 {
        drop(write_end);
        let mut report = String::new();
        let _ = std::fs::File::from(read_end).read_to_string(&mut report);
        return Ok(ForkRole::Parent { report });
    }
    drop(read_end);
    // SAFETY: setsid has no memory-safety preconditions.
    unsafe { libc::setsid() };
    Ok(ForkRole::Child {
        report: std::fs::File::from(write_end),
    })
}

/// Points stdin and stdout at /dev/null and stderr at `log` (a daemon must not hold its
/// starter's terminal or pipes open).
pub fn detach_stdio(log: &std::fs::File) -> std::io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for (from, to) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        // SAFETY: both fds are valid; dup2 atomically replaces the standard descriptor.
        if unsafe { libc::dup2(from, to) } < 0 {
            return Err(last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn readable(fd: c_int) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on our stack; no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn periodic_timer_fires_and_is_quiet_once_acknowledged() {
        let t = PeriodicTimer::new(Duration::from_millis(30)).expect("timerfd");
        assert!(!readable(t.fd()), "not before its first period");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !readable(t.fd()) {
            assert!(Instant::now() < deadline, "the timer never fired");
            std::thread::sleep(Duration::from_millis(5));
        }
        t.acknowledge();
        assert!(!readable(t.fd()), "acknowledged");
        std::thread::sleep(Duration::from_millis(100));
        assert!(readable(t.fd()), "and it fires again");
    }
}
