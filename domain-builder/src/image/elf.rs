//! A minimal, bounds-checked ELF64 little-endian x86_64 reader: program headers, note
//! segments and sections, and section names (for the legacy `__xen_guest` section).

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;

use super::ImageError;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
/// More headers than any real kernel has; bounds the work on hostile input.
const MAX_HEADERS: usize = 4096;

/// A loadable segment, in file and memory terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Physical load address from the program header.
    pub paddr: u64,
    /// Virtual address from the program header.
    pub vaddr: u64,
    /// Offset of its bytes in the file.
    pub file_offset: usize,
    /// Bytes present in the file.
    pub file_size: usize,
    /// Bytes in memory; the tail past `file_size` is zero (bss).
    pub mem_size: u64,
}

/// One ELF note.
#[derive(Clone, Debug)]
pub struct Note {
    /// Owner name, without the NUL.
    pub name: Vec<u8>,
    /// Note type.
    pub kind: u32,
    /// Descriptor bytes.
    pub desc: Vec<u8>,
}

/// What the builder needs from an ELF64 file.
#[derive(Debug)]
pub struct Elf64 {
    /// `e_entry`.
    pub entry: u64,
    /// PT_LOAD segments.
    pub load_segments: Vec<LoadSegment>,
    /// Notes from PT_NOTE segments.
    pub segment_notes: Vec<Note>,
    /// Notes from SHT_NOTE sections (used when no segment carries them).
    pub section_notes: Vec<Note>,
    /// Contents of the `__xen_guest` section, if any.
    pub xen_guest_section: Option<Vec<u8>>,
}

pub fn has_elf_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

/// Where an ELF file's bytes come from: memory, or a file read piece by piece.
pub trait ElfSource {
    /// Length of the file in bytes.
    fn size(&self) -> usize;

    /// The bytes `[offset, offset + len)`, which must lie inside the file.
    fn read(&self, offset: u64, len: u64, what: &'static str) -> Result<Cow<'_, [u8]>, ImageError>;

    /// Fails unless `[offset, offset + len)` lies inside the file.
    fn check(&self, offset: u64, len: u64, what: &'static str) -> Result<(), ImageError> {
        file_range(self.size(), offset, len, what).map(drop)
    }
}

/// `[offset, offset + len)` as indices into a `size`-byte file, or where it overruns.
fn file_range(
    size: usize,
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<std::ops::Range<usize>, ImageError> {
    let oob = || ImageError::OutOfBounds {
        what,
        offset,
        len,
        size,
    };
    let start = usize::try_from(offset).map_err(|_| oob())?;
    let len_usize = usize::try_from(len).map_err(|_| oob())?;
    let end = start.checked_add(len_usize).ok_or_else(oob)?;
    if end > size {
        return Err(oob());
    }
    Ok(start..end)
}

impl ElfSource for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn read(&self, offset: u64, len: u64, what: &'static str) -> Result<Cow<'_, [u8]>, ImageError> {
        Ok(Cow::Borrowed(
            &self[file_range(self.len(), offset, len, what)?],
        ))
    }
}

/// An ELF file on disk, read with positioned reads (its loadable segments can then go
/// straight from the file into guest memory, never through a buffer of their own).
#[derive(Debug)]
pub struct ElfFile<'a> {
    file: &'a File,
    size: usize,
}

/// Most bytes one header, note or section read takes from an [`ElfFile`]: kernels' are a
/// few KiB; a file claiming more is not loaded into memory for it.
const MAX_METADATA_READ: u64 = 16 << 20;

impl<'a> ElfFile<'a> {
    /// The file, whose current length is taken as its size.
    pub fn new(file: &'a File) -> Result<ElfFile<'a>, ImageError> {
        let size = file
            .metadata()
            .map_err(|e| ImageError::Read(e.to_string()))?
            .len();
        let size = usize::try_from(size)
            .map_err(|_| ImageError::Read(format!("{size} bytes is too large")))?;
        Ok(ElfFile { file, size })
    }

    /// Copies `dest.len()` bytes from `offset` into `dest`.
    pub fn read_into(&self, offset: u64, dest: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(dest, offset)
    }
}

impl ElfSource for ElfFile<'_> {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&self, offset: u64, len: u64, what: &'static str) -> Result<Cow<'_, [u8]>, ImageError> {
        let range = file_range(self.size, offset, len, what)?;
        if len > MAX_METADATA_READ {
            return Err(ImageError::BadElf(format!(
                "{what} at offset {offset:#x} is {len:#x} bytes long, more than any kernel's"
            )));
        }
        let mut bytes = vec![0u8; range.len()];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| ImageError::Read(format!("{what} at offset {offset:#x}: {e}")))?;
        Ok(Cow::Owned(bytes))
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(raw)
}

/// Splits a note area into notes; stops with an error at the first malformed one.
fn parse_notes(area: &[u8]) -> Result<Vec<Note>, ImageError> {
    let mut notes = Vec::new();
    let mut at = 0usize;
    let pad4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    while at + 12 <= area.len() {
        let namesz = u32_at(area, at) as usize;
        let descsz = u32_at(area, at + 4) as usize;
        let kind = u32_at(area, at + 8);
        let name_start = at + 12;
        let bad = || ImageError::BadElf(format!("note at offset {at:#x} overruns its note area"));
        let desc_start = pad4(namesz)
            .and_then(|n| name_start.checked_add(n))
            .ok_or_else(bad)?;
        let next = pad4(descsz)
            .and_then(|d| desc_start.checked_add(d))
            .ok_or_else(bad)?;
        let desc_end = desc_start.checked_add(descsz).ok_or_else(bad)?;
        if desc_end > area.len() || name_start + namesz > area.len() {
            return Err(bad());
        }
        let mut name = &area[name_start..name_start + namesz];
        if let [rest @ .., 0] = name {
            name = rest;
        }
        notes.push(Note {
            name: name.to_vec(),
            kind,
            desc: area[desc_start..desc_end].to_vec(),
        });
        at = next;
    }
    Ok(notes)
}

impl Elf64 {
    /// Parses an ELF file held in memory.
    pub fn parse(bytes: &[u8]) -> Result<Elf64, ImageError> {
        Elf64::parse_from(bytes)
    }

    /// Parses an ELF file through `source`, reading its headers, notes and sections but not
    /// its loadable segments (only checked to lie inside the file).
    pub fn parse_from<S: ElfSource + ?Sized>(source: &S) -> Result<Elf64, ImageError> {
        let ehdr = source.read(0, EHDR_SIZE as u64, "ELF header")?;
        let ehdr = &ehdr[..];
        if !has_elf_magic(ehdr) {
            return Err(ImageError::BadElf("no ELF magic".into()));
        }
        if ehdr[4] != ELFCLASS64 || ehdr[5] != ELFDATA2LSB {
            return Err(ImageError::NotPv(
                "not a 64-bit little-endian ELF (only x86_64 PV guests are built)".into(),
            ));
        }
        let machine = u16_at(ehdr, 18);
        if machine != EM_X86_64 {
            return Err(ImageError::NotPv(format!(
                "ELF machine {machine} is not x86_64 (62)"
            )));
        }
        let entry = u64_at(ehdr, 24);
        let phoff = u64_at(ehdr, 32);
        let shoff = u64_at(ehdr, 40);
        let phentsize = u16_at(ehdr, 54) as usize;
        let phnum = u16_at(ehdr, 56) as usize;
        let shentsize = u16_at(ehdr, 58) as usize;
        let shnum = u16_at(ehdr, 60) as usize;
        let shstrndx = u16_at(ehdr, 62) as usize;

        if phnum == 0 {
            return Err(ImageError::BadElf("no program headers".into()));
        }
        if phentsize < PHDR_SIZE || phnum > MAX_HEADERS {
            return Err(ImageError::BadElf(format!(
                "program header table of {phnum} entries of {phentsize} bytes is malformed"
            )));
        }
        let mut elf = Elf64 {
            entry,
            load_segments: Vec::new(),
            segment_notes: Vec::new(),
            section_notes: Vec::new(),
            xen_guest_section: None,
        };
        let phdrs = source.read(phoff, (phentsize * phnum) as u64, "program headers")?;
        for index in 0..phnum {
            let ph = &phdrs[index * phentsize..index * phentsize + PHDR_SIZE];
            let p_type = u32_at(ph, 0);
            let offset = u64_at(ph, 8);
            let vaddr = u64_at(ph, 16);
            let paddr = u64_at(ph, 24);
            let filesz = u64_at(ph, 32);
            let memsz = u64_at(ph, 40);
            match p_type {
                PT_LOAD => {
                    source.check(offset, filesz, "loadable segment")?;
                    if memsz < filesz {
                        return Err(ImageError::BadElf(format!(
                            "segment {index} is smaller in memory ({memsz:#x}) than in the file ({filesz:#x})"
                        )));
                    }
                    if paddr.checked_add(memsz).is_none() || vaddr.checked_add(memsz).is_none() {
                        return Err(ImageError::BadElf(format!(
                            "segment {index} wraps around the address space"
                        )));
                    }
                    elf.load_segments.push(LoadSegment {
                        paddr,
                        vaddr,
                        file_offset: offset as usize,
                        file_size: filesz as usize,
                        mem_size: memsz,
                    });
                }
                PT_NOTE => {
                    let area = source.read(offset, filesz, "note segment")?;
                    elf.segment_notes.extend(parse_notes(&area)?);
                }
                _ => {}
            }
        }
        if elf.load_segments.is_empty() {
            return Err(ImageError::BadElf("no loadable segments".into()));
        }

        if shnum > 0 && shoff != 0 {
            if shentsize < SHDR_SIZE || shnum > MAX_HEADERS {
                return Err(ImageError::BadElf(format!(
                    "section header table of {shnum} entries of {shentsize} bytes is malformed"
                )));
            }
            let shdrs = source.read(shoff, (shentsize * shnum) as u64, "section headers")?;
            let section = |i: usize| &shdrs[i * shentsize..i * shentsize + SHDR_SIZE];
            let names = if shstrndx < shnum {
                let sh = section(shstrndx);
                Some(source.read(u64_at(sh, 24), u64_at(sh, 32), "section name table")?)
            } else {
                None
            };
            for index in 0..shnum {
                let sh = section(index);
                let name_offset = u32_at(sh, 0) as usize;
                let sh_type = u32_at(sh, 4);
                let offset = u64_at(sh, 24);
                let size = u64_at(sh, 32);
                if sh_type == SHT_NOTE {
                    let area = source.read(offset, size, "note section")?;
                    elf.section_notes.extend(parse_notes(&area)?);
                }
                let is_xen_guest = names
                    .as_ref()
                    .and_then(|n| n.get(name_offset..))
                    .is_some_and(|n| n.starts_with(b"__xen_guest\0"));
                if is_xen_guest {
                    elf.xen_guest_section = Some(
                        source
                            .read(offset, size, "__xen_guest section")?
                            .into_owned(),
                    );
                }
            }
        }
        Ok(elf)
    }
}
