//! Where everything goes in a new x86_64 PV guest, following the start_info contract in
//! xen/include/public/xen.h: one virtually contiguous region starting at `virt_base` holds,
//! page aligned and in this order, the kernel, the ramdisk, the p2m list, start_info, the
//! xenstore and console rings, the bootstrap page tables and the boot stack; the region is
//! mapped 1:1 onto the first pseudo-physical frames, extends at least 512 KiB past the last
//! element and ends on a 4 MiB boundary.

use hypervisor::PAGE_SIZE;

use crate::error::BuildError;
use crate::image::XenParams;

const PAGE: u64 = PAGE_SIZE as u64;
/// Pages of guaranteed padding after the boot stack (512 KiB).
pub const PADDING_PAGES: u64 = 128;
/// The region ends on a multiple of this.
const REGION_ALIGN: u64 = 4 << 20;
/// Bytes of one p2m entry.
const P2M_ENTRY: u64 = 8;

/// A run of pages in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First pseudo-physical frame.
    pub pfn: u64,
    /// Length in pages.
    pub pages: u64,
}

impl Segment {
    /// Frame past the end.
    pub fn end_pfn(&self) -> u64 {
        self.pfn + self.pages
    }

    /// Frames of the segment.
    pub fn pfns(&self) -> std::ops::Range<u64> {
        self.pfn..self.end_pfn()
    }
}

/// The complete placement of a guest's boot structures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Virtual address of pfn 0.
    pub virt_base: u64,
    /// Pages of guest memory.
    pub total_pages: u64,
    /// The kernel image.
    pub kernel: Segment,
    /// The ramdisk, if any.
    pub ramdisk: Option<Segment>,
    /// The p2m list: one 8-byte machine frame per guest page.
    pub p2m: Segment,
    /// The start_info page.
    pub start_info_pfn: u64,
    /// The xenstore ring page.
    pub xenstore_pfn: u64,
    /// The console ring page.
    pub console_pfn: u64,
    /// Bootstrap page tables: the L4 first, then L3, L2 and L1 tables.
    pub page_tables: Segment,
    /// Number of tables per level, index 0 = L1 ... 3 = L4.
    pub tables_per_level: [u64; 4],
    /// The boot stack page.
    pub boot_stack_pfn: u64,
    /// End (exclusive) of the mapped region.
    pub virt_end: u64,
}

/// Page tables needed to map [from, to) with 4 KiB pages: per level, L1 first.
fn tables_needed(from: u64, to: u64) -> [u64; 4] {
    let last = to - 1;
    let count = |shift: u32| (last >> shift) - (from >> shift) + 1;
    [count(21), count(30), count(39), 1]
}

fn round_up(value: u64, align: u64) -> Option<u64> {
    value.checked_add(align - 1).map(|v| v & !(align - 1))
}

impl Layout {
    /// Virtual address of a frame in the region.
    pub fn virt_of(&self, pfn: u64) -> u64 {
        self.virt_base + pfn * PAGE
    }

    /// Frames the initial mapping covers.
    pub fn mapped_pages(&self) -> u64 {
        (self.virt_end - self.virt_base) / PAGE
    }

    /// Frame of the first table of `level` (1..=4) in the page-table segment.
    pub fn first_table_pfn(&self, level: usize) -> u64 {
        // L4 first, then the L3s, L2s, L1s.
        let before: u64 = self.tables_per_level[level..].iter().sum();
        self.page_tables.pfn + before
    }

    /// Places kernel, ramdisk and boot structures for a guest of `total_pages` pages.
    pub fn compute(
        params: &XenParams,
        ramdisk_len: Option<usize>,
        total_pages: u64,
    ) -> Result<Layout, BuildError> {
        let virt_base = params.virt_base;
        if virt_base % PAGE != 0 {
            return Err(BuildError::BadLayout(format!(
                "VIRT_BASE {virt_base:#x} is not page aligned"
            )));
        }
        let kstart_pfn = (params.virt_kstart - virt_base) / PAGE;
        let kend_pfn = round_up(params.virt_kend - virt_base, PAGE)
            .ok_or_else(|| BuildError::BadLayout("kernel end overflows".into()))?
            / PAGE;
        let kernel = Segment {
            pfn: kstart_pfn,
            pages: kend_pfn - kstart_pfn,
        };
        let mut next = kernel.end_pfn();
        let ramdisk = ramdisk_len.map(|len| {
            let segment = Segment {
                pfn: next,
                pages: (len as u64).div_ceil(PAGE),
            };
            next = segment.end_pfn();
            segment
        });
        let p2m = Segment {
            pfn: next,
            pages: (total_pages * P2M_ENTRY).div_ceil(PAGE),
        };
        next = p2m.end_pfn();
        let start_info_pfn = next;
        let xenstore_pfn = next + 1;
        let console_pfn = next + 2;
        let tables_pfn = next + 3;

        // More tables can widen the region and so need more tables: iterate to a fixed point.
        let mut tables_per_level = [0u64; 4];
        let (virt_end, table_count) = loop {
            let count: u64 = tables_per_level.iter().sum();
            let stack_end_pfn = tables_pfn + count + 1;
            let end = (stack_end_pfn + PADDING_PAGES)
                .checked_mul(PAGE)
                .and_then(|bytes| virt_base.checked_add(bytes))
                .and_then(|end| round_up(end, REGION_ALIGN))
                .ok_or_else(|| {
                    BuildError::BadLayout("region end overflows the address space".into())
                })?;
            let needed = tables_needed(virt_base, end);
            if needed == tables_per_level {
                break (end, count);
            }
            tables_per_level = needed;
        };
        let page_tables = Segment {
            pfn: tables_pfn,
            pages: table_count,
        };
        let layout = Layout {
            virt_base,
            total_pages,
            kernel,
            ramdisk,
            p2m,
            start_info_pfn,
            xenstore_pfn,
            console_pfn,
            page_tables,
            tables_per_level,
            boot_stack_pfn: page_tables.end_pfn(),
            virt_end,
        };
        if layout.mapped_pages() > total_pages {
            return Err(BuildError::TooBig {
                needed_kib: layout.mapped_pages() * 4,
                memory_kib: total_pages * 4,
            });
        }
        Ok(layout)
    }
}
