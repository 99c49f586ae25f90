//! Kernel images a PV guest boots from: an ELF64 with Xen notes, or a bzImage wrapping one.
//!
//! Everything here parses untrusted bytes: every offset is bounds-checked and every failure is
//! an [`ImageError`], never a panic (the fuzz target in `fuzz/` holds us to that).

mod bzimage;
mod decompress;
pub(crate) mod elf;
mod notes;

use std::borrow::Cow;

pub use bzimage::BZIMAGE_MIN_PROTOCOL;
pub use decompress::Compression;
pub use elf::LoadSegment;
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
}

/// A kernel ready to load: the ELF bytes (decompressed from a bzImage when needed) and what
/// its Xen notes say about how to boot it.
#[derive(Debug)]
pub struct KernelImage<'a> {
    elf: Cow<'a, [u8]>,
    /// How the ELF was compressed inside a bzImage, or `None` for a bare ELF.
    pub compression: Option<Compression>,
    /// Loadable segments of the ELF.
    pub segments: Vec<LoadSegment>,
    /// Boot parameters from the Xen notes, resolved (virt_base, entry, kernel range).
    pub params: XenParams,
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
        let segments = parsed.load_segments;
        Ok(KernelImage {
            elf,
            compression,
            segments,
            params,
        })
    }

    /// The bytes of a loadable segment as stored in the file (its `p_filesz` bytes).
    pub fn segment_bytes(&self, segment: &LoadSegment) -> &[u8] {
        // Offsets were checked against the file in `Elf64::parse`.
        self.elf
            .get(segment.file_offset..segment.file_offset + segment.file_size)
            .unwrap_or(&[])
    }

    /// The whole ELF file.
    pub fn elf_bytes(&self) -> &[u8] {
        &self.elf
    }

    /// The decompressed ELF, when this image was a bzImage (what a kernel cache keeps).
    pub fn into_decompressed(self) -> Option<Vec<u8>> {
        match self.elf {
            Cow::Owned(elf) => Some(elf),
            Cow::Borrowed(_) => None,
        }
    }
}
