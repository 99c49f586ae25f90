//! The x86 bzImage container (Documentation/arch/x86/boot.rst): a real-mode setup header and a
//! compressed vmlinux payload whose offset and length the header gives (protocol 2.08+).

use super::ImageError;

/// Oldest boot protocol with `payload_offset`/`payload_length`.
pub const BZIMAGE_MIN_PROTOCOL: u16 = 0x0208;
const SETUP_SECTS: usize = 0x1f1;
const HEADER_MAGIC_AT: usize = 0x202;
const VERSION_AT: usize = 0x206;
const PAYLOAD_OFFSET_AT: usize = 0x248;
const PAYLOAD_LENGTH_AT: usize = 0x24c;
const HEADER_END: usize = 0x250;

pub fn is_bzimage(bytes: &[u8]) -> bool {
    bytes.get(HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4) == Some(b"HdrS")
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The compressed payload of a bzImage.
pub fn payload(bytes: &[u8]) -> Result<&[u8], ImageError> {
    if bytes.len() < HEADER_END {
        return Err(ImageError::OutOfBounds {
            what: "bzImage setup header",
            offset: 0,
            len: HEADER_END as u64,
            size: bytes.len(),
        });
    }
    let version = u16::from_le_bytes([bytes[VERSION_AT], bytes[VERSION_AT + 1]]);
    if version < BZIMAGE_MIN_PROTOCOL {
        let [minor, major] = version.to_le_bytes();
        return Err(ImageError::OldBzImage { major, minor });
    }
    // setup_sects of 0 means 4, for compatibility with ancient images.
    let setup_sects = match bytes[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let protected_mode_start = (setup_sects + 1) * 512;
    let offset = u64::from(u32_at(bytes, PAYLOAD_OFFSET_AT)) + protected_mode_start as u64;
    let length = u64::from(u32_at(bytes, PAYLOAD_LENGTH_AT));
    let oob = ImageError::OutOfBounds {
        what: "bzImage payload",
        offset,
        len: length,
        size: bytes.len(),
    };
    let start = usize::try_from(offset).map_err(|_| oob.clone())?;
    let end = usize::try_from(offset + length).map_err(|_| oob.clone())?;
    bytes.get(start..end).ok_or(oob)
}
