//! The built image is a PV-loadable ELF: the checks Xen's libelf and our
//! domain builder make, done independently with the `object` crate.

use object::elf::{FileHeader64, PF_X, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};
use tiny_pv::{TINY_PV_ELF, TINY_PV_ELF_PATH, TINY_PV_ELF_STABLE_PATH, VIRT_BASE};

const XEN_ELFNOTE_ENTRY: u32 = 1;
const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
const XEN_ELFNOTE_GUEST_OS: u32 = 6;
const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
const XEN_ELFNOTE_LOADER: u32 = 8;
const XEN_ELFNOTE_PAE_MODE: u32 = 9;
const XEN_ELFNOTE_FEATURES: u32 = 10;
const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;

struct LoadSegment {
    vaddr: u64,
    paddr: u64,
    memsz: u64,
    executable: bool,
}

struct Image {
    entry: u64,
    segments: Vec<LoadSegment>,
    /// (type, descriptor) of every note owned by "Xen".
    xen_notes: Vec<(u32, Vec<u8>)>,
}

fn parse(bytes: &[u8]) -> Image {
    let header = FileHeader64::<Endianness>::parse(bytes).expect("tiny-pv is not an ELF64 file");
    let endian = header.endian().expect("ELF endianness");
    assert_eq!(header.e_machine(endian), object::elf::EM_X86_64, "machine");
    assert_eq!(header.e_type(endian), object::elf::ET_EXEC, "ELF type");
    let mut segments = Vec::new();
    let mut xen_notes = Vec::new();
    for phdr in header
        .program_headers(endian, bytes)
        .expect("program headers")
    {
        match phdr.p_type(endian) {
            PT_LOAD => segments.push(LoadSegment {
                vaddr: phdr.p_vaddr(endian),
                paddr: phdr.p_paddr(endian),
                memsz: phdr.p_memsz(endian),
                executable: phdr.p_flags(endian) & PF_X != 0,
            }),
            PT_NOTE => {
                let mut notes = phdr
                    .notes(endian, bytes)
                    .expect("note segment")
                    .expect("notes");
                while let Some(note) = notes.next().expect("well-formed note") {
                    if note.name() == b"Xen" {
                        xen_notes.push((note.n_type(endian), note.desc().to_vec()));
                    }
                }
            }
            _ => {}
        }
    }
    Image {
        entry: header.e_entry(endian),
        segments,
        xen_notes,
    }
}

impl Image {
    fn note(&self, kind: u32) -> &[u8] {
        let matching: Vec<_> = self.xen_notes.iter().filter(|(t, _)| *t == kind).collect();
        assert_eq!(
            matching.len(),
            1,
            "expected exactly one Xen note of type {kind}"
        );
        &matching[0].1
    }

    fn string_note(&self, kind: u32) -> &str {
        let desc = self.note(kind);
        let text = desc
            .strip_suffix(&[0])
            .expect("string notes are NUL-terminated");
        std::str::from_utf8(text).expect("string note is UTF-8")
    }

    fn numeric_note(&self, kind: u32) -> u64 {
        let desc: [u8; 8] = self
            .note(kind)
            .try_into()
            .expect("numeric notes are 8 bytes");
        u64::from_le_bytes(desc)
    }

    fn executable_segment_containing(&self, va: u64) -> Option<&LoadSegment> {
        self.segments
            .iter()
            .find(|s| s.executable && va >= s.vaddr && va < s.vaddr + s.memsz)
    }
}

#[test]
fn xen_string_notes_describe_a_generic_xen_3_pv_kernel() {
    let image = parse(TINY_PV_ELF);
    assert_eq!(image.string_note(XEN_ELFNOTE_GUEST_OS), "tiny-pv");
    assert_eq!(image.string_note(XEN_ELFNOTE_GUEST_VERSION), "0.1");
    // libelf refuses images whose loader is not "generic" unless guest_os is "linux".
    assert_eq!(image.string_note(XEN_ELFNOTE_LOADER), "generic");
    assert_eq!(image.string_note(XEN_ELFNOTE_XEN_VERSION), "xen-3.0");
    assert_eq!(image.string_note(XEN_ELFNOTE_PAE_MODE), "yes");
    assert_eq!(image.string_note(XEN_ELFNOTE_BSD_SYMTAB), "no");
    assert_eq!(
        image.string_note(XEN_ELFNOTE_FEATURES),
        "!writable_page_tables|pae_pgdir_above_4gb"
    );
}

#[test]
fn entry_note_matches_the_elf_entry_inside_an_executable_segment() {
    let image = parse(TINY_PV_ELF);
    assert_eq!(image.numeric_note(XEN_ELFNOTE_ENTRY), image.entry);
    assert!(
        image.executable_segment_containing(image.entry).is_some(),
        "entry {:#x} is not in an executable PT_LOAD",
        image.entry
    );
}

#[test]
fn hypercall_page_is_a_page_aligned_page_of_the_text_segment() {
    let image = parse(TINY_PV_ELF);
    let page = image.numeric_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    assert_eq!(
        page % 4096,
        0,
        "hypercall page {page:#x} is not page aligned"
    );
    let segment = image
        .executable_segment_containing(page)
        .expect("hypercall page outside the executable segment");
    assert!(
        page + 4096 <= segment.vaddr + segment.memsz,
        "hypercall page runs past its segment"
    );

    let file = object::File::parse(TINY_PV_ELF).expect("ELF");
    let symbol = file
        .symbols()
        .find(|s| s.name() == Ok("hypercall_page"))
        .expect("hypercall_page symbol");
    assert_eq!(symbol.address(), page);
}

#[test]
fn segments_are_linked_at_virt_base_with_physical_addresses_from_zero() {
    let image = parse(TINY_PV_ELF);
    assert_eq!(image.numeric_note(XEN_ELFNOTE_VIRT_BASE), VIRT_BASE);
    assert_eq!(image.numeric_note(XEN_ELFNOTE_PADDR_OFFSET), 0);
    assert!(!image.segments.is_empty(), "no PT_LOAD segments");
    let lowest = image
        .segments
        .iter()
        .map(|s| s.vaddr)
        .min()
        .unwrap_or_default();
    assert_eq!(
        lowest, VIRT_BASE,
        "the image must start at VIRT_BASE so pfn 0 is its first page"
    );
    for segment in &image.segments {
        assert_eq!(
            segment.paddr,
            segment.vaddr - VIRT_BASE,
            "segment at {:#x}: paddr must be vaddr - VIRT_BASE",
            segment.vaddr
        );
    }
}

#[test]
fn image_is_a_few_kib() {
    assert!(
        TINY_PV_ELF.len() < 32 * 1024,
        "file is {} bytes",
        TINY_PV_ELF.len()
    );
    let image = parse(TINY_PV_ELF);
    let start = image
        .segments
        .iter()
        .map(|s| s.vaddr)
        .min()
        .unwrap_or_default();
    let end = image
        .segments
        .iter()
        .map(|s| s.vaddr + s.memsz)
        .max()
        .unwrap_or_default();
    // Code, hypercall page, 16 KiB stack and three page-sized mapping slots.
    assert!(
        end - start <= 64 * 1024,
        "image spans {} bytes of memory",
        end - start
    );
}

#[test]
fn stable_copy_is_identical_to_the_built_image() {
    let built = std::fs::read(TINY_PV_ELF_PATH).expect("reading the built image");
    let stable = std::fs::read(TINY_PV_ELF_STABLE_PATH).expect("reading the stable copy");
    assert_eq!(built, TINY_PV_ELF);
    assert_eq!(stable, TINY_PV_ELF, "{TINY_PV_ELF_STABLE_PATH} is stale");
    assert!(TINY_PV_ELF_STABLE_PATH.ends_with("/guests/tiny-pv.elf"));
}

#[test]
fn image_has_no_undefined_symbols_or_relocations() {
    let file = object::File::parse(TINY_PV_ELF).expect("ELF");
    let undefined: Vec<_> = file
        .symbols()
        .filter(|s| s.is_undefined() && !s.name().unwrap_or_default().is_empty())
        .map(|s| s.name().unwrap_or_default().to_owned())
        .collect();
    assert!(undefined.is_empty(), "undefined symbols: {undefined:?}");
    assert!(
        file.dynamic_symbols().next().is_none(),
        "a PV kernel must be static"
    );
}
