//! Kernel image parsing (ELF, Xen notes, `__xen_guest`, bzImage header, every payload
//! decompressor) must turn any bytes into a kernel or an `ImageError`, never a panic, and
//! never expand past its limit. Parsed kernels also go through the layout computation.
#![no_main]

use domain_builder::{KernelImage, Layout};
use libfuzzer_sys::{fuzz_target, Corpus};

/// Small, so a fuzzed payload cannot spend the run decompressing.
const LIMIT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(kernel) = KernelImage::parse(data, LIMIT) else {
        return Corpus::Keep;
    };
    assert!(kernel.elf_bytes().map_or(0, <[u8]>::len) <= LIMIT.max(data.len()));
    for segment in &kernel.segments {
        if segment.file_size <= LIMIT {
            let mut dest = vec![0; segment.file_size];
            kernel.read_segment(segment, &mut dest).expect("a parsed segment reads");
        }
    }
    let p = &kernel.params;
    assert!(p.virt_kstart <= p.virt_entry && p.virt_entry < p.virt_kend);
    // Layout of a 64 MiB guest with a small ramdisk: an error or a consistent placement.
    if let Ok(layout) = Layout::compute(p, Some(4096), 16384) {
        assert!(layout.mapped_pages() <= 16384);
        assert!(layout.kernel.end_pfn() <= layout.p2m.pfn);
        assert!(layout.boot_stack_pfn < layout.mapped_pages());
    }
    Corpus::Keep
});
