//! Kernel images a PV guest boots from: an ELF64 with Xen notes, or a bzImage wrapping one.
//!
//! Everything here parses untrusted bytes: every offset is bounds-checked and every failure is
//! an [`ImageError`], never a panic (the fuzz target in `fuzz/` holds us to that).

mod bzimage;
mod decompress;
pub(crate) mod elf;
mod notes;

use std::borrow::Cow;
use std::fs::File;
use std::io;

pub use bzimage::BZIMAGE_MIN_PROTOCOL;
pub use decompress::Compression;
pub use elf::{ElfFile, LoadSegment};
pub use notes::{XenNoteSource, XenParams};

/// Why a kernel image cannot be booted as a PV guest.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ImageError {
    /// Neither an ELF file nor a bzImage.
    #[error("not a kernel image: no ELF magic and no bzImage header (\"HdrS\" at 0x202)")]
    UnknownFormat,
    /// A bzImage too old to carry a payload we can find.
    #[error(
        "bzImage boot protocol {major}.{minor:02} is older than 2.08; it has no payload fields"
    )]
    OldBzImage {
        /// Protocol major version.
        major: u8,
        /// Protocol minor version.
        minor: u8,
    },
    /// The payload of a bzImage is compressed with something we do not decode.
    #[error("bzImage payload compression not supported (first bytes {magic:02x?}); supported: gzip, xz, lzma, bzip2, lz4, zstd")]
    UnsupportedCompression {
        /// The payload's first bytes.
        magic: Vec<u8>,
    },
    /// Decompressing the payload failed.
    #[error("bzImage payload ({format}) is corrupt: {reason}")]
    Decompress {
        /// The compression format.
        format: Compression,
        /// The decoder's complaint.
        reason: String,
    },
    /// The payload decompresses to more than we allow.
    #[error("bzImage payload ({format}) decompresses to more than {limit} bytes")]
    TooLargeDecompressed {
        /// The compression format.
        format: Compression,
        /// The limit in bytes.
        limit: usize,
    },
    /// An ELF file we cannot use.
    #[error("kernel ELF is invalid: {0}")]
    BadElf(String),
    /// A structure points outside the file.
    #[error("kernel image is truncated or corrupt: {what} at offset {offset:#x} (+{len:#x}) lies outside the {size:#x}-byte file")]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: u64,
        /// How much.
        len: u64,
        /// File size.
        size: usize,
    },
    /// A valid ELF that is not a Xen PV kernel.
    #[error("kernel is not PV-capable: {0}")]
    NotPv(String),
    /// Reading a kernel file failed.
    #[error("reading the kernel ELF: {0}")]
    Read(String),
}

/// A kernel ready to load: the ELF bytes (decompressed from a bzImage when needed) and what
/// its Xen notes say about how to boot it.
#[derive(Debug)]
pub struct KernelImage<'a> {
    elf: ElfData<'a>,
    /// How the ELF was compressed inside a bzImage, or `None` for a bare ELF.
    pub compression: Option<Compression>,
    /// Loadable segments of the ELF.
    pub segments: Vec<LoadSegment>,
    /// Boot parameters from the Xen notes, resolved (virt_base, entry, kernel range).
    pub params: XenParams,
}

/// Where a kernel's ELF bytes are.
#[derive(Debug)]
enum ElfData<'a> {
    /// In memory: the file as read, or decompressed from a bzImage.
    Memory(Cow<'a, [u8]>),
    /// In a file (a kernel cache entry), read segment by segment when loaded.
    File(ElfFile<'a>),
}

impl<'a> KernelImage<'a> {
    /// Parses an ELF or bzImage kernel. `max_decompressed` bounds the size a compressed
    /// payload may expand to (a guard against decompression bombs).
    pub fn parse(bytes: &'a [u8], max_decompressed: usize) -> Result<KernelImage<'a>, ImageError> {
        let (elf, compression): (Cow<'a, [u8]>, _) = if elf::has_elf_magic(bytes) {
            (Cow::Borrowed(bytes), None)
        } else if bzimage::is_bzimage(bytes) {
            let payload = bzimage::payload(bytes)?;
            let (decompressed, format) = decompress::decompress(payload, max_decompressed)?;
            (Cow::Owned(decompressed), Some(format))
        } else {
            return Err(ImageError::UnknownFormat);
        };
        let parsed = elf::Elf64::parse(&elf)?;
        let params = notes::XenParams::from_elf(&parsed)?;
        Ok(KernelImage {
            elf: ElfData::Memory(elf),
            compression,
            segments: parsed.load_segments,
            params,
        })
    }

    /// Parses an ELF kernel in a file without reading its loadable segments: they are read
    /// when the kernel is loaded, straight into guest memory. For decompressed kernels
    /// kept on disk (tens of MiB each), which then never sit in this process's memory.
    pub fn parse_elf_file(file: &'a File) -> Result<KernelImage<'a>, ImageError> {
        let source = ElfFile::new(file)?;
        let parsed = elf::Elf64::parse_from(&source)?;
        let params = notes::XenParams::from_elf(&parsed)?;
        Ok(KernelImage {
            elf: ElfData::File(source),
            compression: None,
            segments: parsed.load_segments,
            params,
        })
    }

    /// Copies a loadable segment's file bytes (its `p_filesz` bytes) into `dest`, which
    /// must be exactly that long.
    pub fn read_segment(&self, segment: &LoadSegment, dest: &mut [u8]) -> io::Result<()> {
        if dest.len() != segment.file_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "segment of {:#x} bytes read into {:#x} bytes",
                    segment.file_size,
                    dest.len()
                ),
            ));
        }
        match &self.elf {
            // Offsets were checked against the file when it was parsed.
            ElfData::Memory(bytes) => {
                let data = bytes
                    .get(segment.file_offset..segment.file_offset + segment.file_size)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                dest.copy_from_slice(data);
                Ok(())
            }
            ElfData::File(file) => file.read_into(segment.file_offset as u64, dest),
        }
    }

    /// The whole ELF file, when it is in memory.
    pub fn elf_bytes(&self) -> Option<&[u8]> {
        match &self.elf {
            ElfData::Memory(bytes) => Some(bytes),
            ElfData::File(_) => None,
        }
    }

    /// The decompressed ELF, when this image was a bzImage (what a kernel cache keeps).
    pub fn into_decompressed(self) -> Option<Vec<u8>> {
        match self.elf {
            ElfData::Memory(Cow::Owned(elf)) => Some(elf),
            _ => None,
        }
    }
}
