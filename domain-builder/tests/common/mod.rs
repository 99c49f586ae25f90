//! Test helpers: a synthetic PV kernel and an independent page-table walker.
#![allow(dead_code)]

use hypervisor::{Mfn, SimHypervisor};

pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const KERNEL_PADDR: u64 = 0x100_0000;
pub const ENTRY: u64 = VIRT_BASE + KERNEL_PADDR + 0x40;
pub const HYPERCALL: u64 = VIRT_BASE + KERNEL_PADDR + 0x1000;

/// One loadable segment of a synthetic kernel.
pub struct Seg {
    pub paddr: u64,
    pub data: Vec<u8>,
    pub mem_size: u64,
}

/// How the synthetic kernel declares itself to Xen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Declare {
    Notes,
    LegacySection,
    Nothing,
    NotesWithoutXenVersion,
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// The two segments every synthetic kernel has: text (with a bss tail) and data.
pub fn default_segments() -> Vec<Seg> {
    vec![
        Seg {
            paddr: KERNEL_PADDR,
            data: pattern(0x3000, 7),
            mem_size: 0x5000,
        },
        Seg {
            paddr: KERNEL_PADDR + 0x5000,
            data: pattern(0x1800, 91),
            mem_size: 0x2000,
        },
    ]
}

fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    out.extend_from_slice(&4u32.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(b"Xen\0");
    out.extend_from_slice(desc);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn xen_notes(with_version: bool, base: u64, entry: u64, hypercall: u64) -> Vec<u8> {
    let mut n = Vec::new();
    note(&mut n, 6, b"linux\0");
    if with_version {
        note(&mut n, 5, b"xen-3.0\0");
    }
    note(&mut n, 8, b"generic\0");
    note(&mut n, 3, &base.to_le_bytes());
    note(&mut n, 4, &0u64.to_le_bytes());
    note(&mut n, 1, &entry.to_le_bytes());
    note(&mut n, 2, &hypercall.to_le_bytes());
    note(&mut n, 10, b"!writable_page_tables|pae_pgdir_above_4gb\0");
    note(&mut n, 16, &1u32.to_le_bytes());
    n
}

/// A minimal ELF64 x86_64 PV kernel linked at VIRT_BASE.
pub fn synthetic_kernel(segments: &[Seg], declare: Declare) -> Vec<u8> {
    synthetic_kernel_at(VIRT_BASE, segments, declare)
}

/// A minimal ELF64 x86_64 PV kernel with the given VIRT_BASE; entry and hypercall page are at
/// the same offsets from the first segment as in the default kernel.
pub fn synthetic_kernel_at(base: u64, segments: &[Seg], declare: Declare) -> Vec<u8> {
    let first = base + segments[0].paddr;
    let (entry, hypercall) = (first + 0x40, first + 0x1000);
    let notes = match declare {
        Declare::Notes => xen_notes(true, base, entry, hypercall),
        Declare::NotesWithoutXenVersion => xen_notes(false, base, entry, hypercall),
        _ => Vec::new(),
    };
    let legacy = format!(
        "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE={base:#x},ELF_PADDR_OFFSET=0x0,VIRT_ENTRY={entry:#x},HYPERCALL_PAGE={:#x},LOADER=generic\0",
        (hypercall - base) >> 12
    );
    let with_notes = !notes.is_empty();
    let phnum = segments.len() + usize::from(with_notes);
    let mut out = vec![0u8; 64 + phnum * 56];
    let mut phdrs = Vec::new();
    for seg in segments {
        while out.len() % 16 != 0 {
            out.push(0);
        }
        let offset = out.len() as u64;
        out.extend_from_slice(&seg.data);
        phdrs.push((1u32, offset, seg.paddr, seg.data.len() as u64, seg.mem_size));
    }
    if with_notes {
        let offset = out.len() as u64;
        out.extend_from_slice(&notes);
        phdrs.push((4u32, offset, 0, notes.len() as u64, notes.len() as u64));
    }
    // Sections: null, __xen_guest (legacy only), .shstrtab.
    let mut shdrs: Vec<(u32, u32, u64, u64)> = vec![(0, 0, 0, 0)];
    let shstrtab = b"\0__xen_guest\0.shstrtab\0".to_vec();
    if declare == Declare::LegacySection {
        let offset = out.len() as u64;
        out.extend_from_slice(legacy.as_bytes());
        shdrs.push((1, 1, offset, legacy.len() as u64));
    }
    let strtab_offset = out.len() as u64;
    out.extend_from_slice(&shstrtab);
    shdrs.push((13, 3, strtab_offset, shstrtab.len() as u64));
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    for (name, kind, offset, size) in &shdrs {
        let mut sh = vec![0u8; 64];
        sh[0..4].copy_from_slice(&name.to_le_bytes());
        sh[4..8].copy_from_slice(&kind.to_le_bytes());
        sh[24..32].copy_from_slice(&offset.to_le_bytes());
        sh[32..40].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&sh);
    }
    // ELF header.
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[40..48].copy_from_slice(&shoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    out[60..62].copy_from_slice(&(shdrs.len() as u16).to_le_bytes());
    out[62..64].copy_from_slice(&((shdrs.len() - 1) as u16).to_le_bytes());
    for (i, (kind, offset, paddr, filesz, memsz)) in phdrs.into_iter().enumerate() {
        let at = 64 + i * 56;
        let vaddr = if kind == 1 { base + paddr } else { 0 };
        out[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&7u32.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        out[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        out[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
        out[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
        out[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    out
}

/// Wraps a compressed payload in a bzImage setup header (boot protocol 2.15).
pub fn bzimage(payload: &[u8]) -> Vec<u8> {
    let setup_sects = 3u8;
    let pm_start = (usize::from(setup_sects) + 1) * 512;
    let payload_offset = 0x40usize;
    let mut out = vec![0u8; pm_start + payload_offset];
    out[0x1f1] = setup_sects;
    out[0x202..0x206].copy_from_slice(b"HdrS");
    out[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    out[0x248..0x24c].copy_from_slice(&(payload_offset as u32).to_le_bytes());
    out[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    // The kernel build appends the decompressed size; harmless trailing bytes.
    out.extend_from_slice(&[0xaa; 4]);
    out
}

/// A translation found by walking the guest's page tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub mfn: u64,
    pub writable: bool,
}

/// Walks 4-level x86_64 page tables held in simulated machine memory, as the MMU would.
pub struct Walker<'a> {
    pub sim: &'a SimHypervisor,
    pub cr3: u64,
}

fn entry(sim: &SimHypervisor, table: u64, index: u64) -> u64 {
    let frame = sim.read_frame(Mfn(table)).expect("page-table frame exists");
    let at = (index * 8) as usize;
    u64::from_le_bytes(frame[at..at + 8].try_into().expect("8 bytes"))
}

impl Walker<'_> {
    pub fn translate(&self, va: u64) -> Option<Translation> {
        let mut table = self.cr3;
        let mut writable = true;
        for shift in [39u32, 30, 21, 12] {
            let e = entry(self.sim, table, (va >> shift) & 511);
            if e & 1 == 0 {
                return None;
            }
            assert_eq!(e & (1 << 7), 0, "no large pages expected at shift {shift}");
            writable &= e & 2 != 0;
            table = (e & 0x000f_ffff_ffff_f000) >> 12;
        }
        Some(Translation {
            mfn: table,
            writable,
        })
    }

    /// The table frames reachable from cr3 (all levels).
    pub fn table_frames(&self) -> Vec<u64> {
        let mut found = vec![self.cr3];
        let mut level_tables = vec![self.cr3];
        for _ in 0..3 {
            let mut next = Vec::new();
            for table in level_tables {
                for i in 0..512 {
                    let e = entry(self.sim, table, i);
                    if e & 1 != 0 {
                        next.push((e & 0x000f_ffff_ffff_f000) >> 12);
                    }
                }
            }
            found.extend_from_slice(&next);
            level_tables = next;
        }
        found
    }

    pub fn read(&self, va: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut at = va;
        while out.len() < len {
            let t = self
                .translate(at)
                .unwrap_or_else(|| panic!("{at:#x} is not mapped"));
            let frame = self.sim.read_frame(Mfn(t.mfn)).expect("frame");
            let offset = (at & 0xfff) as usize;
            let take = (4096 - offset).min(len - out.len());
            out.extend_from_slice(&frame[offset..offset + take]);
            at += take as u64;
        }
        out
    }

    pub fn read_u64(&self, va: u64) -> u64 {
        u64::from_le_bytes(self.read(va, 8).try_into().expect("8 bytes"))
    }

    pub fn read_u32(&self, va: u64) -> u32 {
        u32::from_le_bytes(self.read(va, 4).try_into().expect("4 bytes"))
    }
}
