//! The tiny-pv guest kernel: a few KiB of C and assembly that boots as an
//! x86_64 Xen PV domain, reports what it sees on its console and powers off.
//!
//! The build script compiles it with the host gcc; this library only tells
//! tests and tools where the image is. See README.md for what the guest does.

/// The image built for this build of the crate (inside cargo's `OUT_DIR`).
pub const TINY_PV_ELF_PATH: &str = env!("TINY_PV_ELF_PATH");

/// The stable copy: `<cargo target dir>/guests/tiny-pv.elf`, e.g.
/// `target/guests/tiny-pv.elf` for a default build of the workspace.
pub const TINY_PV_ELF_STABLE_PATH: &str = env!("TINY_PV_ELF_STABLE_PATH");

/// Page-aligned storage, so ELF parsers that want aligned headers can borrow
/// the image in place.
#[repr(C, align(4096))]
struct PageAligned<T: ?Sized>(T);

static ALIGNED_IMAGE: &PageAligned<[u8]> = &PageAligned(*include_bytes!(env!("TINY_PV_ELF_PATH")));

/// The image itself (page aligned), for host tests of domain builders.
pub static TINY_PV_ELF: &[u8] = &ALIGNED_IMAGE.0;

/// The virtual address the image is linked at; also its `XEN_ELFNOTE_VIRT_BASE`.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// Console markers the guest prints, in order, on a normal boot.
pub mod markers {
    /// The console ring works.
    pub const UP: &str = "TINYPV-UP";
    /// start_info passed every check.
    pub const START_INFO_OK: &str = "TINYPV-STARTINFO-OK";
    /// Followed by a space and the command line.
    pub const CMDLINE: &str = "TINYPV-CMDLINE";
    /// Followed by a space and the domain's name as read from xenstore.
    pub const NAME: &str = "TINYPV-NAME";
    /// Printed instead of DONE when the command line has `tinypv.block`.
    pub const BLOCKING: &str = "TINYPV-BLOCKING";
    /// Followed by the shutdown reason: poweroff, reboot or crash.
    pub const DONE: &str = "TINYPV-DONE";
}

/// Command-line words the guest understands.
pub mod flags {
    /// Print TINYPV-BLOCKING and sleep until `xl shutdown`/`xl reboot`.
    pub const BLOCK: &str = "tinypv.block";
    /// Shut down with SHUTDOWN_crash instead of SHUTDOWN_poweroff.
    pub const CRASH: &str = "tinypv.crash";
    /// Shut down with SHUTDOWN_reboot instead of SHUTDOWN_poweroff.
    pub const REBOOT: &str = "tinypv.reboot";
    /// Map the console and store rings over spare pages with `update_va_mapping`
    /// even when the M2P path works (exercises the fallback for other builders).
    pub const REMAP_RINGS: &str = "tinypv.remap-rings";
}
