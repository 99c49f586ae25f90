//! Decoders for every compression a Linux bzImage payload may use, picked by magic bytes, each
//! bounded so a hostile payload cannot expand without limit.

use std::fmt;
use std::io::Read;

use super::ImageError;

/// A payload compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip (deflate).
    Gzip,
    /// xz.
    Xz,
    /// lzma "alone" format.
    Lzma,
    /// bzip2.
    Bzip2,
    /// lz4 legacy frames, as the kernel's lz4 wrapper writes them.
    Lz4,
    /// zstd.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lzma => "lzma",
            Compression::Bzip2 => "bzip2",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];
/// Largest block the lz4 legacy format produces.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

impl Compression {
    /// Recognises a payload by its first bytes.
    pub fn detect(payload: &[u8]) -> Option<Compression> {
        match payload {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Compression::Xz),
            [b'B', b'Z', b'h', ..] => Some(Compression::Bzip2),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            [0x02, 0x21, 0x4c, 0x18, ..] => Some(Compression::Lz4),
            // lzma alone: properties byte 0x5d (lc=3, lp=0, pb=2) then a little-endian
            // dictionary size; the kernel's lzma -9 writes 0x5d 00 00.
            [0x5d, 0x00, 0x00, ..] => Some(Compression::Lzma),
            _ => None,
        }
    }
}

/// Reads all of `reader`, failing once more than `limit` bytes come out.
fn read_bounded(
    reader: impl Read,
    limit: usize,
    format: Compression,
    size_hint: usize,
) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::with_capacity(size_hint.min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| ImageError::Decompress {
            format,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(ImageError::TooLargeDecompressed { format, limit });
    }
    Ok(out)
}

fn lz4_legacy(payload: &[u8], limit: usize) -> Result<Vec<u8>, ImageError> {
    let format = Compression::Lz4;
    let corrupt = |reason: String| ImageError::Decompress { format, reason };
    let mut out = Vec::new();
    let mut at = LZ4_LEGACY_MAGIC.len();
    while at < payload.len() {
        let Some(size_bytes) = payload.get(at..at + 4) else {
            return Err(corrupt(format!("block header at {at:#x} is cut short")));
        };
        at += 4;
        if size_bytes == LZ4_LEGACY_MAGIC {
            // Another stream follows.
            continue;
        }
        if at == payload.len() && !out.is_empty() {
            // The kernel build appends the decompressed size after the last block.
            break;
        }
        let size = u32::from_le_bytes([size_bytes[0], size_bytes[1], size_bytes[2], size_bytes[3]]);
        let size = size as usize;
        let block = payload.get(at..at.saturating_add(size)).ok_or_else(|| {
            corrupt(format!(
                "block of {size} bytes at {at:#x} overruns the payload"
            ))
        })?;
        at += size;
        let start = out.len();
        let room = LZ4_LEGACY_BLOCK.min(limit.saturating_sub(start).saturating_add(1));
        out.resize(start + room, 0);
        let written = lz4_flex::block::decompress_into(block, &mut out[start..]).map_err(|e| {
            if room < LZ4_LEGACY_BLOCK {
                ImageError::TooLargeDecompressed { format, limit }
            } else {
                corrupt(e.to_string())
            }
        })?;
        out.truncate(start + written);
        if out.len() > limit {
            return Err(ImageError::TooLargeDecompressed { format, limit });
        }
    }
    Ok(out)
}

/// Decodes one xz or lzma stream and stops at its end: the kernel build appends the
/// decompressed size after the stream, which a streaming reader would take for a corrupt
/// second stream.
fn liblzma_single_stream(
    mut stream: xz2::stream::Stream,
    payload: &[u8],
    limit: usize,
    format: Compression,
    hint: usize,
) -> Result<Vec<u8>, ImageError> {
    let corrupt = |reason: String| ImageError::Decompress { format, reason };
    let mut out: Vec<u8> = Vec::with_capacity(hint.min(limit).max(4096));
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(ImageError::TooLargeDecompressed { format, limit });
            }
            out.reserve(out.len().max(1 << 20));
        }
        let consumed = usize::try_from(stream.total_in())
            .unwrap_or(usize::MAX)
            .min(payload.len());
        let produced_before = out.len();
        let status = stream
            .process_vec(&payload[consumed..], &mut out, xz2::stream::Action::Run)
            .map_err(|e| corrupt(e.to_string()))?;
        if out.len() > limit {
            return Err(ImageError::TooLargeDecompressed { format, limit });
        }
        if status == xz2::stream::Status::StreamEnd {
            return Ok(out);
        }
        let consumed_now = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        if consumed_now >= payload.len()
            && out.len() == produced_before
            && out.len() < out.capacity()
        {
            return Err(corrupt("the stream ends before its end marker".into()));
        }
    }
}

/// Decompresses a bzImage payload, refusing output larger than `limit` bytes.
pub fn decompress(payload: &[u8], limit: usize) -> Result<(Vec<u8>, Compression), ImageError> {
    let format =
        Compression::detect(payload).ok_or_else(|| ImageError::UnsupportedCompression {
            magic: payload.iter().take(6).copied().collect(),
        })?;
    // The kernel build appends the decompressed size (le32) to every payload; use it to size
    // the output once, when it is plausible.
    let trailer = payload
        .len()
        .checked_sub(4)
        .and_then(|at| payload.get(at..))
        .map_or(0, |t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize);
    let hint = if (payload.len()..=limit).contains(&trailer) {
        trailer
    } else {
        payload.len().saturating_mul(4)
    };
    let corrupt = |reason: String| ImageError::Decompress { format, reason };
    let out = match format {
        Compression::Gzip => {
            read_bounded(flate2::read::GzDecoder::new(payload), limit, format, hint)?
        }
        Compression::Xz => {
            let stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
                .map_err(|e| corrupt(e.to_string()))?;
            liblzma_single_stream(stream, payload, limit, format, hint)?
        }
        Compression::Lzma => {
            let stream = xz2::stream::Stream::new_lzma_decoder(u64::MAX)
                .map_err(|e| corrupt(e.to_string()))?;
            liblzma_single_stream(stream, payload, limit, format, hint)?
        }
        Compression::Bzip2 => {
            read_bounded(bzip2::read::BzDecoder::new(payload), limit, format, hint)?
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(payload)
                .map_err(|e| corrupt(e.to_string()))?;
            read_bounded(decoder.single_frame(), limit, format, hint)?
        }
        Compression::Lz4 => lz4_legacy(payload, limit)?,
    };
    Ok((out, format))
}
