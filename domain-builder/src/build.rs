//! Lays a PV kernel out in a freshly created, paused domain (what libxc's xc_dom_* do for a
//! 64-bit PV guest), leaving it ready to unpause.

use hypervisor::{
    DomId, ForeignMapping, GrantSeed, Hypervisor, Mfn, PageProt, Pfn, PvVcpuContext, PAGE_SIZE,
};
use tracing::{debug, info_span};

use crate::phases::PhaseClock;

use crate::error::BuildError;
use crate::image::{KernelImage, LoadSegment};
use crate::layout::Layout;

const PAGE: u64 = PAGE_SIZE as u64;
/// start_info magic for a 64-bit PV guest.
pub const START_INFO_MAGIC: &str = "xen-3.0-x86_64";
/// Longest command line start_info holds, NUL included.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User-accessible.
    pub const USER: u64 = 1 << 2;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// Machine address bits.
    pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
    /// Leaf entries, as libxc writes them.
    pub const L1_PROT: u64 = PRESENT | RW | ACCESSED;
    /// Entries pointing at lower tables.
    pub const UPPER_PROT: u64 = PRESENT | RW | ACCESSED | DIRTY | USER;
}

/// Byte offsets in `struct start_info` (xen/include/public/xen.h, x86_64).
pub mod start_info {
    /// Magic string, 32 bytes.
    pub const MAGIC: usize = 0;
    /// Total pages.
    pub const NR_PAGES: usize = 32;
    /// Machine address of shared info.
    pub const SHARED_INFO: usize = 40;
    /// SIF_* flags.
    pub const FLAGS: usize = 48;
    /// Xenstore ring frame.
    pub const STORE_MFN: usize = 56;
    /// Xenstore event channel.
    pub const STORE_EVTCHN: usize = 64;
    /// Console ring frame.
    pub const CONSOLE_MFN: usize = 72;
    /// Console event channel.
    pub const CONSOLE_EVTCHN: usize = 80;
    /// Virtual address of the L4 table.
    pub const PT_BASE: usize = 88;
    /// Number of page-table frames.
    pub const NR_PT_FRAMES: usize = 96;
    /// Virtual address of the p2m list.
    pub const MFN_LIST: usize = 104;
    /// Virtual address (or pfn) of the ramdisk.
    pub const MOD_START: usize = 112;
    /// Ramdisk length.
    pub const MOD_LEN: usize = 120;
    /// Command line, 1024 bytes.
    pub const CMD_LINE: usize = 128;
}

/// Size of `struct shared_info` on x86_64.
const SHARED_INFO_SIZE: usize = 3136;
/// `struct vcpu_info` entries at the start of shared info, and their size.
const LEGACY_VCPUS: usize = 32;
const VCPU_INFO_SIZE: usize = 64;
const VCPU_INFO_UPCALL_MASK: usize = 1;
/// Flat segment selectors Xen provides to 64-bit PV kernels.
const FLAT_KERNEL_CS64: u16 = 0xe033;
const FLAT_KERNEL_SS64: u16 = 0xe02b;
const FLAT_KERNEL_DS64: u16 = 0;
const RFLAGS_IF: u64 = 1 << 9;
const DR6_DEFAULT: u64 = 0xffff_0ff0;
const DR7_DEFAULT: u64 = 0x400;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct BuildSpec<'a> {
    /// The kernel.
    pub kernel: &'a KernelImage<'a>,
    /// The ramdisk, passed as the boot module.
    pub ramdisk: Option<&'a [u8]>,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// Guest memory in KiB.
    pub memory_kib: u64,
    /// Event channel (in the guest) for the xenstore ring.
    pub store_evtchn: u32,
    /// Event channel (in the guest) for the console ring.
    pub console_evtchn: u32,
    /// Domain running xenstored.
    pub store_domid: DomId,
    /// Domain running the console backend.
    pub console_domid: DomId,
}

/// What was built: where the guest's boot structures are.
#[derive(Clone, Debug)]
pub struct BuiltDomain {
    /// The placement.
    pub layout: Layout,
    /// Machine frame of every pseudo-physical frame.
    pub p2m: Vec<Mfn>,
    /// start_info frame.
    pub start_info_mfn: Mfn,
    /// Xenstore ring frame (for XS_INTRODUCE and /local/domain/N/store/ring-ref).
    pub store_mfn: Mfn,
    /// Console ring frame (for /local/domain/N/console/ring-ref).
    pub console_mfn: Mfn,
    /// The pinned L4 table.
    pub l4_mfn: Mfn,
}

fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn frames(p2m: &[Mfn], pfns: std::ops::Range<u64>) -> Vec<Mfn> {
    p2m[pfns.start as usize..pfns.end as usize].to_vec()
}

/// Writes the bootstrap page tables into `tables` (the page-table segment's bytes).
fn write_page_tables(layout: &Layout, p2m: &[Mfn], tables: &mut [u8]) {
    let base = layout.virt_base;
    let table_index = |va: u64, shift: u32| (va >> shift) - (base >> shift);
    let entry = |level_first: u64, index: u64, pfn: u64, prot: u64| {
        let at = ((level_first - layout.page_tables.pfn + index) * PAGE) as usize;
        (at, (p2m[pfn as usize].0 << 12) | prot)
    };
    let [l1_first, l2_first, l3_first, l4_first] =
        [1, 2, 3, 4].map(|level| layout.first_table_pfn(level));
    let mut va = base;
    while va < layout.virt_end {
        let pfn = (va - base) / PAGE;
        // Leaf: the page itself; read-only if it is one of the page tables.
        let prot = if layout.page_tables.pfns().contains(&pfn) {
            pte::L1_PROT & !pte::RW
        } else {
            pte::L1_PROT
        };
        let (table_at, value) = entry(l1_first, table_index(va, 21), pfn, prot);
        let slot = table_at + ((va >> 12) & 511) as usize * 8;
        put_u64(tables, slot, value);
        if va % (1 << 21) == 0 || va == base {
            let l1 = l1_first + table_index(va, 21);
            let (at, value) = entry(l2_first, table_index(va, 30), l1, pte::UPPER_PROT);
            put_u64(tables, at + ((va >> 21) & 511) as usize * 8, value);
        }
        if va % (1 << 30) == 0 || va == base {
            let l2 = l2_first + table_index(va, 30);
            let (at, value) = entry(l3_first, table_index(va, 39), l2, pte::UPPER_PROT);
            put_u64(tables, at + ((va >> 30) & 511) as usize * 8, value);
        }
        if va % (1 << 39) == 0 || va == base {
            let l3 = l3_first + table_index(va, 39);
            let (at, value) = entry(l4_first, 0, l3, pte::UPPER_PROT);
            put_u64(tables, at + ((va >> 39) & 511) as usize * 8, value);
        }
        va += PAGE;
    }
}

/// Writes the kernel's loadable segments into `bytes`, the kernel segment's pages, and
/// zeroes every byte no segment's file data covers.
fn load_kernel_segments(
    kernel: &KernelImage<'_>,
    layout: &Layout,
    bytes: &mut [u8],
) -> Result<(), BuildError> {
    let kernel_vstart = layout.virt_of(layout.kernel.pfn);
    let virt_offset = kernel
        .params
        .virt_base
        .wrapping_sub(kernel.params.paddr_offset);
    let mut placed: Vec<(usize, &LoadSegment)> = kernel
        .segments
        .iter()
        .map(|segment| {
            let va = segment.paddr.wrapping_add(virt_offset);
            ((va - kernel_vstart) as usize, segment)
        })
        .collect();
    placed.sort_by_key(|&(at, _)| at);
    let mut written = 0;
    for (at, segment) in placed {
        if at > written {
            bytes[written..at].fill(0);
        }
        let end = at + segment.file_size;
        kernel
            .read_segment(segment, &mut bytes[at..end])
            .map_err(|source| BuildError::KernelRead {
                offset: segment.file_offset,
                source,
            })?;
        written = written.max(end);
    }
    bytes[written..].fill(0);
    Ok(())
}

fn write_start_info(
    page: &mut [u8],
    spec: &BuildSpec<'_>,
    layout: &Layout,
    p2m: &[Mfn],
    shared_info: Mfn,
) {
    page.fill(0);
    let magic = START_INFO_MAGIC.as_bytes();
    page[start_info::MAGIC..start_info::MAGIC + magic.len()].copy_from_slice(magic);
    put_u64(page, start_info::NR_PAGES, layout.total_pages);
    put_u64(page, start_info::SHARED_INFO, shared_info.0 << 12);
    put_u32(page, start_info::FLAGS, 0);
    put_u64(
        page,
        start_info::STORE_MFN,
        p2m[layout.xenstore_pfn as usize].0,
    );
    put_u32(page, start_info::STORE_EVTCHN, spec.store_evtchn);
    put_u64(
        page,
        start_info::CONSOLE_MFN,
        p2m[layout.console_pfn as usize].0,
    );
    put_u32(page, start_info::CONSOLE_EVTCHN, spec.console_evtchn);
    put_u64(
        page,
        start_info::PT_BASE,
        layout.virt_of(layout.page_tables.pfn),
    );
    put_u64(page, start_info::NR_PT_FRAMES, layout.page_tables.pages);
    put_u64(page, start_info::MFN_LIST, layout.virt_of(layout.p2m.pfn));
    if let (Some(segment), Some(ramdisk)) = (layout.ramdisk, spec.ramdisk.filter(|r| !r.is_empty()))
    {
        put_u64(page, start_info::MOD_START, layout.virt_of(segment.pfn));
        put_u64(page, start_info::MOD_LEN, ramdisk.len() as u64);
    }
    let cmdline = spec.cmdline.as_bytes();
    page[start_info::CMD_LINE..start_info::CMD_LINE + cmdline.len()].copy_from_slice(cmdline);
}

/// Builds the guest in `domid`, which must be freshly created and paused, with its maximum
/// memory set and its two event channels allocated. Does not unpause it.
pub fn build_pv_domain<H: Hypervisor>(
    hv: &H,
    domid: DomId,
    spec: &BuildSpec<'_>,
) -> Result<BuiltDomain, BuildError> {
    let span = info_span!("build_pv_domain", domid);
    let _entered = span.enter();
    let mut clock = PhaseClock::start();
    if spec.cmdline.len() >= MAX_GUEST_CMDLINE {
        return Err(BuildError::CmdlineTooLong {
            len: spec.cmdline.len(),
        });
    }
    let total_pages = spec.memory_kib / 4;
    let kernel = spec.kernel;
    let ramdisk = spec.ramdisk.filter(|r| !r.is_empty());
    let layout = Layout::compute(&kernel.params, ramdisk.map(<[u8]>::len), total_pages)?;
    debug!(?layout, "layout");

    let pfns: Vec<Pfn> = (0..total_pages).map(Pfn).collect();
    let p2m = hv.populate_physmap(domid, &pfns)?;
    clock.lap("populate physmap");

    // Kernel: every byte of its pages written once, with the segments' file bytes or zero
    // (gaps, bss, the tail of the last page), as libxc's cleared segments end up. Fresh
    // domain pages are scrubbed by Xen, but not with bootscrub=0 on never-used memory, so
    // nothing is left as it came.
    {
        let mut map = hv.map_foreign(
            domid,
            &frames(&p2m, layout.kernel.pfns()),
            PageProt::ReadWrite,
        )?;
        clock.lap("map kernel segment");
        load_kernel_segments(kernel, &layout, map.bytes_mut()?)?;
        clock.lap("kernel copied, gaps zeroed");
    }
    if let (Some(segment), Some(ramdisk)) = (layout.ramdisk, ramdisk) {
        let mut map = hv.map_foreign(domid, &frames(&p2m, segment.pfns()), PageProt::ReadWrite)?;
        let bytes = map.bytes_mut()?;
        bytes[..ramdisk.len()].copy_from_slice(ramdisk);
        bytes[ramdisk.len()..].fill(0);
        clock.lap("map and copy ramdisk");
    }
    {
        let mut map =
            hv.map_foreign(domid, &frames(&p2m, layout.p2m.pfns()), PageProt::ReadWrite)?;
        let bytes = map.bytes_mut()?;
        for (slot, mfn) in bytes.chunks_exact_mut(8).zip(&p2m) {
            slot.copy_from_slice(&mfn.0.to_le_bytes());
        }
        bytes[p2m.len() * 8..].fill(0);
    }
    clock.lap("p2m list");
    let info = hv.domain_info(domid)?;
    {
        // start_info, xenstore ring, console ring: three consecutive pages.
        let magic_pages = layout.start_info_pfn..layout.console_pfn + 1;
        let mut map = hv.map_foreign(domid, &frames(&p2m, magic_pages), PageProt::ReadWrite)?;
        let bytes = map.bytes_mut()?;
        bytes.fill(0);
        write_start_info(
            &mut bytes[..PAGE_SIZE],
            spec,
            &layout,
            &p2m,
            info.shared_info_frame,
        );
    }
    clock.lap("start_info and rings");
    {
        // Page tables and the boot stack page after them; dropped (unmapped) before pinning.
        let pages = layout.page_tables.pfn..layout.boot_stack_pfn + 1;
        let mut map = hv.map_foreign(domid, &frames(&p2m, pages), PageProt::ReadWrite)?;
        let bytes = map.bytes_mut()?;
        bytes.fill(0);
        write_page_tables(&layout, &p2m, bytes);
    }
    clock.lap("page tables");
    if let Some(hypercall) = kernel.params.virt_hypercall {
        let pfn = (hypercall - layout.virt_base) / PAGE;
        hv.init_hypercall_page(domid, p2m[pfn as usize])?;
    }
    let l4_mfn = p2m[layout.page_tables.pfn as usize];
    hv.pin_l4_table(domid, l4_mfn)?;
    clock.lap("hypercall page and pin");
    {
        let mut map = hv.map_foreign(domid, &[info.shared_info_frame], PageProt::ReadWrite)?;
        let bytes = map.bytes_mut()?;
        bytes[..SHARED_INFO_SIZE].fill(0);
        for vcpu in 0..LEGACY_VCPUS {
            bytes[vcpu * VCPU_INFO_SIZE + VCPU_INFO_UPCALL_MASK] = 1;
        }
    }
    let store_mfn = p2m[layout.xenstore_pfn as usize];
    let console_mfn = p2m[layout.console_pfn as usize];
    hv.seed_grant_table(
        domid,
        &GrantSeed {
            console: Some((console_mfn, spec.console_domid)),
            xenstore: Some((store_mfn, spec.store_domid)),
        },
    )?;
    let stack_top = layout.virt_of(layout.boot_stack_pfn + 1);
    let context = PvVcpuContext {
        rip: kernel.params.virt_entry,
        rsp: stack_top,
        rsi: layout.virt_of(layout.start_info_pfn),
        rflags: RFLAGS_IF,
        cs: FLAT_KERNEL_CS64,
        ss: FLAT_KERNEL_SS64,
        ds: FLAT_KERNEL_DS64,
        es: FLAT_KERNEL_DS64,
        fs: FLAT_KERNEL_DS64,
        gs: FLAT_KERNEL_DS64,
        kernel_ss: u64::from(FLAT_KERNEL_SS64),
        kernel_sp: stack_top,
        cr3: l4_mfn,
        dr6: DR6_DEFAULT,
        dr7: DR7_DEFAULT,
        in_kernel: true,
        online: true,
    };
    hv.set_vcpu_context(domid, 0, &context)?;
    clock.lap("shared info, grants, vcpu");
    debug!(
        total_ms = clock.total_ms(),
        tables = layout.page_tables.pages,
        "built"
    );
    Ok(BuiltDomain {
        start_info_mfn: p2m[layout.start_info_pfn as usize],
        store_mfn,
        console_mfn,
        l4_mfn,
        p2m,
        layout,
    })
}
