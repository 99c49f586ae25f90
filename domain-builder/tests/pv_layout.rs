//! The layout a built guest sees, checked through its own page tables on the simulated
//! hypervisor: every address is translated virtual -> machine by walking the tables from cr3,
//! and compared with the guest-visible p2m (pseudo-physical -> machine) and with what the
//! hypervisor itself recorded, never with the builder's own bookkeeping.

mod common;

use common::*;
use domain_builder::{create_pv_domain, BuildError, ImageError, KernelImage, PvDomainSpec};
use hypervisor::{Hypervisor, Mfn, Pfn, SimHypervisor};

const MEMORY_KIB: u64 = 64 * 1024;
const CMDLINE: &str = "console=hvc0 root=/dev/xvda1 marker=layout-test";

struct Booted {
    sim: SimHypervisor,
    domid: u32,
    ramdisk: Vec<u8>,
    store_port: u32,
    console_port: u32,
}

fn boot(declare: Declare, ramdisk_len: usize) -> Booted {
    boot_on(SimHypervisor::new(), declare, ramdisk_len)
}

/// The spec every test here builds, for `kernel` without a ramdisk.
fn spec<'a>(kernel: &'a KernelImage<'a>) -> PvDomainSpec<'a> {
    PvDomainSpec {
        handle: [9; 16],
        vcpus: 1,
        memory_kib: MEMORY_KIB,
        kernel,
        ramdisk: None,
        cmdline: CMDLINE,
        store_domid: 0,
        console_domid: 0,
    }
}

fn boot_on(sim: SimHypervisor, declare: Declare, ramdisk_len: usize) -> Booted {
    let kernel_elf = synthetic_kernel(&default_segments(), declare);
    let kernel = KernelImage::parse(&kernel_elf, 1 << 20).expect("synthetic kernel parses");
    let ramdisk: Vec<u8> = (0..ramdisk_len).map(|i| (i % 251) as u8).collect();
    let created = create_pv_domain(
        &sim,
        &PvDomainSpec {
            handle: [9; 16],
            vcpus: 1,
            memory_kib: MEMORY_KIB,
            kernel: &kernel,
            ramdisk: (ramdisk_len > 0).then_some(&ramdisk[..]),
            cmdline: CMDLINE,
            store_domid: 0,
            console_domid: 0,
        },
    )
    .expect("guest builds");
    Booted {
        sim,
        domid: created.domid,
        ramdisk,
        store_port: created.store_port,
        console_port: created.console_port,
    }
}

fn walker(b: &Booted) -> Walker<'_> {
    let state = b.sim.domain_state(b.domid).expect("domain");
    let ctx = state.vcpu_contexts[&0];
    Walker {
        sim: &b.sim,
        cr3: ctx.cr3.0,
    }
}

/// start_info fields, read through the guest's own mapping at rsi.
struct StartInfo {
    magic: Vec<u8>,
    nr_pages: u64,
    shared_info: u64,
    flags: u32,
    store_mfn: u64,
    store_evtchn: u32,
    console_mfn: u64,
    console_evtchn: u32,
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmd_line: Vec<u8>,
}

fn start_info(w: &Walker<'_>, rsi: u64) -> StartInfo {
    StartInfo {
        magic: w.read(rsi, 32),
        nr_pages: w.read_u64(rsi + 32),
        shared_info: w.read_u64(rsi + 40),
        flags: w.read_u32(rsi + 48),
        store_mfn: w.read_u64(rsi + 56),
        store_evtchn: w.read_u32(rsi + 64),
        console_mfn: w.read_u64(rsi + 72),
        console_evtchn: w.read_u32(rsi + 80),
        pt_base: w.read_u64(rsi + 88),
        nr_pt_frames: w.read_u64(rsi + 96),
        mfn_list: w.read_u64(rsi + 104),
        mod_start: w.read_u64(rsi + 112),
        mod_len: w.read_u64(rsi + 120),
        cmd_line: w.read(rsi + 128, 1024),
    }
}

/// First unmapped virtual address at or after VIRT_BASE.
fn mapped_end(w: &Walker<'_>) -> u64 {
    let mut va = VIRT_BASE;
    while w.translate(va).is_some() {
        va += 4096;
    }
    va
}

#[test]
fn boot_vcpu_starts_at_the_entry_with_start_info_in_rsi_and_flat_kernel_selectors() {
    let b = boot(Declare::Notes, 10_000);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let ctx = state.vcpu_contexts[&0];
    assert_eq!(ctx.rip, ENTRY);
    assert_eq!((ctx.cs, ctx.ss, ctx.ds), (0xe033, 0xe02b, 0));
    assert!(ctx.in_kernel && ctx.online);
    assert_eq!(ctx.rflags & 0x200, 0x200, "interrupts enabled");
    assert_eq!(state.pinned_l4, Some(ctx.cr3), "cr3 is the pinned L4");
    let w = walker(&b);
    let si = start_info(&w, ctx.rsi);
    assert_eq!(&si.magic[..15], b"xen-3.0-x86_64\0");
    assert_eq!(si.nr_pages, MEMORY_KIB / 4);
    assert_eq!(si.flags, 0, "an unprivileged domU");
    let stack = w.translate(ctx.rsp - 8).expect("stack mapped");
    assert!(stack.writable);
    assert!(state.paused, "the caller unpauses");
}

#[test]
fn every_mapped_page_agrees_with_the_guest_visible_p2m_and_the_hypervisor() {
    let b = boot(Declare::Notes, 70_000);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let w = walker(&b);
    let si = start_info(&w, state.vcpu_contexts[&0].rsi);
    let end = mapped_end(&w);
    let pages = (end - VIRT_BASE) / 4096;
    assert!(pages <= si.nr_pages);
    for pfn in 0..pages {
        let va = VIRT_BASE + pfn * 4096;
        let machine = w.translate(va).expect("mapped").mfn;
        let p2m_entry = w.read_u64(si.mfn_list + pfn * 8);
        assert_eq!(
            machine, p2m_entry,
            "pfn {pfn:#x}: page tables and p2m disagree"
        );
        assert_eq!(
            Some(&Mfn(machine)),
            state.p2m.get(&Pfn(pfn)),
            "pfn {pfn:#x}"
        );
    }
    // The guest-visible p2m covers all its memory, matching what was populated.
    for (pfn, mfn) in &state.p2m {
        assert_eq!(w.read_u64(si.mfn_list + pfn.0 * 8), mfn.0);
    }
    assert_eq!(state.p2m.len() as u64, si.nr_pages);
}

#[test]
fn page_tables_are_mapped_read_only_and_everything_else_writable() {
    let b = boot(Declare::Notes, 0);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let w = walker(&b);
    let si = start_info(&w, state.vcpu_contexts[&0].rsi);
    let tables = w.table_frames();
    assert_eq!(
        tables.len() as u64,
        si.nr_pt_frames,
        "nr_pt_frames counts every table"
    );
    let cr3 = state.vcpu_contexts[&0].cr3.0;
    assert_eq!(w.translate(si.pt_base).expect("pt_base mapped").mfn, cr3);
    let end = mapped_end(&w);
    let mut read_only = 0;
    let mut va = VIRT_BASE;
    while va < end {
        let t = w.translate(va).expect("mapped");
        assert_eq!(t.writable, !tables.contains(&t.mfn), "va {va:#x}");
        read_only += u64::from(!t.writable);
        va += 4096;
    }
    assert_eq!(
        read_only, si.nr_pt_frames,
        "each table is mapped exactly once"
    );
    for table in &tables {
        assert_eq!(
            b.sim.writable_mappings_of(Mfn(*table)),
            0,
            "no toolstack mapping left"
        );
    }
}

#[test]
fn kernel_segments_are_loaded_at_their_virtual_addresses_with_bss_zeroed() {
    let b = boot(Declare::Notes, 0);
    let w = walker(&b);
    for seg in default_segments() {
        let va = VIRT_BASE + seg.paddr;
        let loaded = w.read(va, seg.data.len());
        // The hypercall page inside the text is Xen's to fill; every other byte is the file's.
        let differing: Vec<u64> = (0..seg.data.len())
            .filter(|i| loaded[*i] != seg.data[*i])
            .map(|i| va + i as u64)
            .filter(|a| !(HYPERCALL..HYPERCALL + 4096).contains(a))
            .collect();
        assert!(
            differing.is_empty(),
            "segment at {va:#x} differs at {:#x?}",
            &differing[..differing.len().min(4)]
        );
        let bss = w.read(
            va + seg.data.len() as u64,
            (seg.mem_size as usize) - seg.data.len(),
        );
        assert!(
            bss.iter().all(|b| *b == 0),
            "bss of segment at {va:#x} is zero"
        );
    }
}

#[test]
fn nothing_from_the_kernel_to_the_boot_stack_is_left_as_xen_handed_it_out() {
    // Frames full of 0xc2 (the synthetic kernel's bytes are all odd, the ramdisk's are
    // i % 251): what a host booted with bootscrub=0 may hand out.
    let sim = SimHypervisor::new();
    sim.hand_out_unscrubbed_frames(0xc2);
    let b = boot_on(sim, Declare::Notes, 12_345);
    let w = walker(&b);
    let stack_top = b.sim.domain_state(b.domid).expect("domain").vcpu_contexts[&0].rsp;
    let kernel_start = VIRT_BASE + KERNEL_PADDR;
    let region = w.read(kernel_start, (stack_top - kernel_start) as usize);
    let leftover = region
        .chunks_exact(8)
        .position(|word| word.iter().all(|b| *b == 0xc2));
    assert_eq!(
        leftover.map(|i| format!("{:#x}", kernel_start + 8 * i as u64)),
        None,
        "unwritten bytes left in the boot region"
    );
}

#[test]
fn ramdisk_and_command_line_reach_the_guest_through_start_info() {
    let b = boot(Declare::Notes, 123_457);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let w = walker(&b);
    let si = start_info(&w, state.vcpu_contexts[&0].rsi);
    assert_eq!(si.mod_len, b.ramdisk.len() as u64);
    assert_eq!(w.read(si.mod_start, b.ramdisk.len()), b.ramdisk);
    let end = si
        .cmd_line
        .iter()
        .position(|c| *c == 0)
        .expect("NUL terminated");
    assert_eq!(&si.cmd_line[..end], CMDLINE.as_bytes());
}

#[test]
fn boot_elements_come_in_the_documented_order_and_the_region_is_padded_and_aligned() {
    let b = boot(Declare::Notes, 5000);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let ctx = state.vcpu_contexts[&0];
    let w = walker(&b);
    let si = start_info(&w, ctx.rsi);
    let kernel_end = VIRT_BASE + KERNEL_PADDR + 0x7000;
    assert!(kernel_end <= si.mod_start);
    assert!(si.mod_start + si.mod_len <= si.mfn_list);
    assert!(si.mfn_list + si.nr_pages * 8 <= ctx.rsi);
    assert!(ctx.rsi < si.pt_base);
    assert!(si.pt_base + si.nr_pt_frames * 4096 < ctx.rsp);
    let end = mapped_end(&w);
    assert_eq!(end % (4 << 20), 0, "region ends on a 4 MiB boundary");
    assert!(
        end - ctx.rsp >= 512 * 1024,
        "at least 512 KiB mapped past the boot stack"
    );
}

#[test]
fn rings_are_zeroed_granted_to_dom0_and_announced_in_start_info() {
    let b = boot(Declare::Notes, 0);
    let state = b.sim.domain_state(b.domid).expect("domain");
    let w = walker(&b);
    let si = start_info(&w, state.vcpu_contexts[&0].rsi);
    for mfn in [si.store_mfn, si.console_mfn] {
        assert_eq!(b.sim.frame_owner(Mfn(mfn)), Some(b.domid));
        assert!(b
            .sim
            .read_frame(Mfn(mfn))
            .expect("frame")
            .iter()
            .all(|x| *x == 0));
    }
    assert_ne!(si.store_mfn, si.console_mfn);
    // GNTTAB_RESERVED_CONSOLE = 0, GNTTAB_RESERVED_XENSTORE = 1; GTF_permit_access, dom0.
    assert_eq!(
        state.grant_entries.get(&0),
        Some(&(1, 0, si.console_mfn as u32))
    );
    assert_eq!(
        state.grant_entries.get(&1),
        Some(&(1, 0, si.store_mfn as u32))
    );
    assert_eq!(
        (si.store_evtchn, si.console_evtchn),
        (b.store_port, b.console_port)
    );
    assert_eq!(
        state.unbound_evtchns,
        vec![(b.store_port, 0), (b.console_port, 0)]
    );
    assert_eq!(si.shared_info, state.shared_info.0 << 12);
    let shared = b.sim.read_frame(state.shared_info).expect("shared info");
    assert!(
        (0..32).all(|vcpu| shared[vcpu * 64 + 1] == 1),
        "event upcalls masked"
    );
}

#[test]
fn hypercall_page_is_filled_where_the_notes_ask() {
    for declare in [Declare::Notes, Declare::LegacySection] {
        let b = boot(declare, 0);
        let state = b.sim.domain_state(b.domid).expect("domain");
        let w = walker(&b);
        let page = w.translate(HYPERCALL).expect("hypercall page mapped");
        assert_eq!(state.hypercall_page, Some(Mfn(page.mfn)));
        // Hypercall 0's stub: ... mov $0, %eax; syscall.
        assert_eq!(&w.read(HYPERCALL + 3, 7), &[0xb8, 0, 0, 0, 0, 0x0f, 0x05]);
    }
}

#[test]
fn domain_limits_follow_xl() {
    let b = boot(Declare::Notes, 0);
    let state = b.sim.domain_state(b.domid).expect("domain");
    assert_eq!(state.max_memory_kib, Some(MEMORY_KIB + 1024));
    assert_eq!(state.memmap_limit_kib, Some(MEMORY_KIB));
    assert_eq!(state.max_vcpus, 1);
}

fn try_boot(
    kernel_bytes: &[u8],
    memory_kib: u64,
    cmdline: &str,
) -> (SimHypervisor, Result<u32, BuildError>) {
    let sim = SimHypervisor::new();
    let result = KernelImage::parse(kernel_bytes, 1 << 20)
        .map_err(BuildError::from)
        .and_then(|kernel| {
            create_pv_domain(
                &sim,
                &PvDomainSpec {
                    handle: [0; 16],
                    vcpus: 1,
                    memory_kib,
                    kernel: &kernel,
                    ramdisk: None,
                    cmdline,
                    store_domid: 0,
                    console_domid: 0,
                },
            )
            .map(|c| c.domid)
        });
    (sim, result)
}

#[test]
fn a_guest_too_big_for_its_memory_is_refused_and_leaves_no_domain() {
    let elf = synthetic_kernel(&default_segments(), Declare::Notes);
    // The kernel sits at 16 MiB: 16 MiB of memory cannot hold it.
    let (sim, result) = try_boot(&elf, 16 * 1024, "");
    let err = result.expect_err("too big");
    assert!(matches!(err, BuildError::TooBig { .. }), "{err}");
    assert!(err.to_string().contains("give it more memory"), "{err}");
    assert_eq!(sim.list_domains().expect("list").len(), 1, "only dom0 left");
}

#[test]
fn an_overlong_command_line_is_refused() {
    let elf = synthetic_kernel(&default_segments(), Declare::Notes);
    let (_, result) = try_boot(&elf, MEMORY_KIB, &"x".repeat(1024));
    assert!(matches!(
        result,
        Err(BuildError::CmdlineTooLong { len: 1024 })
    ));
}

#[test]
fn kernels_without_xen_support_are_not_pv_capable() {
    let elf = synthetic_kernel(&default_segments(), Declare::Nothing);
    let err = KernelImage::parse(&elf, 1 << 20).expect_err("no notes");
    assert!(matches!(err, ImageError::NotPv(_)), "{err}");
    assert!(err.to_string().contains("not PV-capable"), "{err}");

    let elf = synthetic_kernel(&default_segments(), Declare::NotesWithoutXenVersion);
    let err = KernelImage::parse(&elf, 1 << 20).expect_err("no xen version");
    assert!(err.to_string().contains("xen-3.0"), "{err}");
}

#[test]
fn a_region_crossing_512_gib_and_1_gib_boundaries_gets_a_table_per_span() {
    // 2 MiB below a 512 GiB boundary, so the bootstrap region spans two L4 slots, two L3
    // tables, two L2 tables and several L1 tables.
    let base: u64 = 0xffff_ff80_0000_0000 - (2 << 20);
    let segments = vec![Seg {
        paddr: 0,
        data: vec![0x5a; 0x3000],
        mem_size: 0x3000,
    }];
    let elf = synthetic_kernel_at(base, &segments, Declare::Notes);
    let kernel = KernelImage::parse(&elf, 1 << 20).expect("parse");
    let sim = SimHypervisor::new();
    let created = create_pv_domain(
        &sim,
        &PvDomainSpec {
            handle: [3; 16],
            vcpus: 1,
            memory_kib: 32 * 1024,
            kernel: &kernel,
            ramdisk: Some(&[7u8; 3 << 20]),
            cmdline: "",
            store_domid: 0,
            console_domid: 0,
        },
    )
    .expect("guest builds");
    assert_eq!(
        created.built.layout.tables_per_level,
        [3, 2, 2, 1],
        "L1, L2, L3, L4 tables"
    );
    let state = sim.domain_state(created.domid).expect("domain");
    let ctx = state.vcpu_contexts[&0];
    let w = Walker {
        sim: &sim,
        cr3: ctx.cr3.0,
    };
    assert_eq!(w.table_frames().len(), 8);
    let si = start_info(&w, ctx.rsi);
    let mut va = base;
    while let Some(t) = w.translate(va) {
        let pfn = (va - base) / 4096;
        assert_eq!(t.mfn, w.read_u64(si.mfn_list + pfn * 8), "va {va:#x}");
        va += 4096;
    }
    assert!(
        va > 0xffff_ff80_0000_0000,
        "mapping continues past the 512 GiB boundary"
    );
    assert_eq!(va % (4 << 20), 0);
    assert_eq!(w.read(si.mod_start + (3 << 20) - 1, 1), vec![7]);
}

#[test]
fn a_kernel_read_from_its_file_loads_the_same_bytes_as_from_memory() {
    let elf = synthetic_kernel(&default_segments(), Declare::Notes);
    let path = std::env::temp_dir().join(format!("pv-layout-kernel-{}", std::process::id()));
    std::fs::write(&path, &elf).expect("kernel written");
    let file = std::fs::File::open(&path).expect("kernel opens");
    let from_file = KernelImage::parse_elf_file(&file).expect("kernel parses");
    let sim = SimHypervisor::new();
    sim.hand_out_unscrubbed_frames(0xc2);
    let built = create_pv_domain(&sim, &spec(&from_file)).expect("guest builds");
    let reference = boot(Declare::Notes, 0);
    let _ = std::fs::remove_file(&path);

    let w = Walker {
        sim: &sim,
        cr3: sim.domain_state(built.domid).expect("domain").vcpu_contexts[&0]
            .cr3
            .0,
    };
    let kernel_start = VIRT_BASE + KERNEL_PADDR;
    let kernel_len = (from_file.params.virt_kend - kernel_start) as usize;
    assert_eq!(
        w.read(kernel_start, kernel_len),
        walker(&reference).read(kernel_start, kernel_len)
    );
}

#[test]
fn a_kernel_file_cut_short_after_parsing_fails_the_build_and_leaves_no_domain() {
    let elf = synthetic_kernel(&default_segments(), Declare::Notes);
    let path = std::env::temp_dir().join(format!("pv-layout-cut-{}", std::process::id()));
    std::fs::write(&path, &elf).expect("kernel written");
    let file = std::fs::File::open(&path).expect("kernel opens");
    let kernel = KernelImage::parse_elf_file(&file).expect("kernel parses");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(0x200))
        .expect("kernel truncated");
    let sim = SimHypervisor::new();
    let err = create_pv_domain(&sim, &spec(&kernel)).expect_err("the build fails");
    let _ = std::fs::remove_file(&path);
    assert!(matches!(err, BuildError::KernelRead { .. }), "{err:?}");
    assert!(
        err.to_string().contains("loading the kernel's segment"),
        "{err}"
    );
    assert_eq!(
        sim.list_domains().expect("list").len(),
        1,
        "only dom0 is left"
    );
}
