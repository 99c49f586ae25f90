//! Kernel image formats: bare ELF, the legacy `__xen_guest` section, and bzImages whose
//! payload is compressed in each format Debian kernels use; corrupt and hostile images fail
//! with clear errors.

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::*;
use domain_builder::image::XenNoteSource;
use domain_builder::{create_pv_domain, Compression, ImageError, KernelImage, PvDomainSpec};
use hypervisor::SimHypervisor;

const LIMIT: usize = 1 << 20;

fn elf() -> Vec<u8> {
    synthetic_kernel(&default_segments(), Declare::Notes)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut enc = xz2::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data).expect("xz");
    enc.finish().expect("xz")
}

fn lzma(data: &[u8]) -> Vec<u8> {
    let options = xz2::stream::LzmaOptions::new_preset(6).expect("preset");
    let stream = xz2::stream::Stream::new_lzma_encoder(&options).expect("lzma encoder");
    let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    enc.write_all(data).expect("lzma");
    enc.finish().expect("lzma")
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    enc.write_all(data).expect("bzip2");
    enc.finish().expect("bzip2")
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

/// The kernel's lz4 "legacy" framing: magic, then (size, block) pairs of at most 8 MiB input.
fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02, 0x21, 0x4c, 0x18];
    for chunk in data.chunks(8 << 20) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

type Compressor = fn(&[u8]) -> Vec<u8>;

fn compressors() -> Vec<(Compression, Compressor)> {
    vec![
        (Compression::Gzip, gzip),
        (Compression::Xz, xz),
        (Compression::Lzma, lzma),
        (Compression::Bzip2, bzip2),
        (Compression::Zstd, zstd),
        (Compression::Lz4, lz4_legacy),
    ]
}

#[test]
fn bzimage_payloads_in_every_debian_compression_yield_the_same_kernel() {
    let elf = elf();
    let bare = KernelImage::parse(&elf, LIMIT).expect("bare ELF");
    assert_eq!(bare.compression, None);
    for (format, compress) in compressors() {
        let image = bzimage(&compress(&elf));
        let kernel =
            KernelImage::parse(&image, LIMIT).unwrap_or_else(|e| panic!("{format} bzImage: {e}"));
        assert_eq!(kernel.compression, Some(format));
        assert!(
            kernel.elf_bytes() == Some(&elf[..]),
            "{format}: decompressed ELF differs"
        );
        assert_eq!(kernel.segments, bare.segments, "{format}");
        assert_eq!(kernel.params, bare.params, "{format}");
    }
}

#[test]
fn xen_notes_give_entry_base_and_hypercall_page() {
    let elf = elf();
    let kernel = KernelImage::parse(&elf, LIMIT).expect("parse");
    let p = &kernel.params;
    assert_eq!(p.source, XenNoteSource::ElfNotes);
    assert_eq!(
        (p.guest_os.as_str(), p.xen_version.as_str()),
        ("linux", "xen-3.0")
    );
    assert_eq!(p.virt_base, VIRT_BASE);
    assert_eq!(p.virt_entry, ENTRY);
    assert_eq!(p.virt_hypercall, Some(HYPERCALL));
    assert_eq!(p.virt_kstart, VIRT_BASE + KERNEL_PADDR);
    assert_eq!(p.virt_kend, VIRT_BASE + KERNEL_PADDR + 0x7000);
    assert!(p.mod_start_pfn);
}

#[test]
fn legacy_xen_guest_section_is_understood() {
    let elf = synthetic_kernel(&default_segments(), Declare::LegacySection);
    let kernel = KernelImage::parse(&elf, LIMIT).expect("parse");
    let p = &kernel.params;
    assert_eq!(p.source, XenNoteSource::LegacySection);
    assert_eq!(p.virt_base, VIRT_BASE);
    assert_eq!(p.paddr_offset, 0);
    assert_eq!(p.virt_entry, ENTRY);
    assert_eq!(
        p.virt_hypercall,
        Some(HYPERCALL),
        "HYPERCALL_PAGE counts pages from VIRT_BASE"
    );
}

#[test]
fn truncated_images_fail_with_an_error_naming_what_is_missing() {
    let elf = elf();
    for cut in [10, 63, 64 + 56, elf.len() / 2, elf.len() - 1] {
        match KernelImage::parse(&elf[..cut], LIMIT) {
            Err(ImageError::OutOfBounds { .. } | ImageError::BadElf(_)) => {}
            other => panic!("cut at {cut}: expected a corruption error, got {other:?}"),
        }
    }
    let image = bzimage(&xz(&elf));
    let err = KernelImage::parse(&image[..0x240], LIMIT).expect_err("header cut");
    assert!(err.to_string().contains("truncated or corrupt"), "{err}");
}

#[test]
fn corrupt_payloads_are_reported_per_format() {
    let elf = elf();
    for (format, compress) in compressors() {
        let mut payload = compress(&elf);
        let keep = payload.len() / 2;
        payload.truncate(keep);
        payload.extend_from_slice(&[0x55; 64]);
        let err = KernelImage::parse(&bzimage(&payload), LIMIT).expect_err("corrupt");
        assert!(
            matches!(
                err,
                ImageError::Decompress { .. }
                    | ImageError::BadElf(_)
                    | ImageError::OutOfBounds { .. }
            ),
            "{format}: {err:?}"
        );
    }
}

#[test]
fn decompression_is_bounded() {
    let mut big = elf();
    big.resize(4 << 20, 0);
    for (format, compress) in compressors() {
        let err = KernelImage::parse(&bzimage(&compress(&big)), 1 << 20).expect_err("bomb");
        assert_eq!(
            err,
            ImageError::TooLargeDecompressed {
                format,
                limit: 1 << 20
            },
            "{format}"
        );
    }
}

#[test]
fn unknown_formats_and_compressions_are_named() {
    assert_eq!(
        KernelImage::parse(b"MZ not a kernel", LIMIT).expect_err("x"),
        ImageError::UnknownFormat
    );
    let err = KernelImage::parse(&bzimage(b"\x89LZO\0 lzo is not used by Debian"), LIMIT)
        .expect_err("lzo");
    assert!(
        matches!(err, ImageError::UnsupportedCompression { .. }),
        "{err}"
    );
    let mut old = bzimage(&gzip(&elf()));
    old[0x206..0x208].copy_from_slice(&0x0204u16.to_le_bytes());
    assert!(KernelImage::parse(&old, LIMIT)
        .expect_err("old")
        .to_string()
        .contains("2.04"));
}

#[test]
fn kernels_requiring_features_a_pv_domu_lacks_are_refused() {
    let mut elf = elf();
    let needle = b"!writable_page_tables";
    let at = elf
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("features note");
    // Same length, so the note stays well formed.
    elf[at..at + needle.len()].copy_from_slice(b"!dom0|writable_tables");
    let err = KernelImage::parse(&elf, LIMIT).expect_err("dom0 only");
    assert!(err.to_string().contains("'dom0'"), "{err}");
}

/// The Debian 6.1 kernel the lab boots, when it is cached on this machine (or named by
/// XM_RS_DEBIAN_VMLINUZ). Skips quietly otherwise: the lab boots it for real.
fn debian_kernel() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("XM_RS_DEBIAN_VMLINUZ") {
        return Some(PathBuf::from(path));
    }
    let cache = PathBuf::from(std::env::var_os("HOME")?).join(".cache/xm-rs-lab/root");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .flatten()
        .filter_map(|entry| std::fs::read_dir(entry.path().join("boot")).ok())
        .flat_map(|dir| dir.flatten().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-6.1"))
        })
        .collect();
    found.sort();
    found.pop()
}

#[test]
fn the_debian_bzimage_builds_when_available() {
    let Some(path) = debian_kernel() else {
        eprintln!("no cached Debian kernel; set XM_RS_DEBIAN_VMLINUZ to test one");
        return;
    };
    let bytes = std::fs::read(&path).expect("read kernel");
    let kernel = KernelImage::parse(&bytes, 512 << 20).expect("Debian kernel parses");
    assert!(kernel.compression.is_some(), "a bzImage");
    let p = &kernel.params;
    assert_eq!(p.guest_os, "linux");
    assert_eq!(p.virt_base, 0xffff_ffff_8000_0000);
    // Kernels since the XSA-466 fixes (6.1.119+) no longer ask for a hypercall page.
    assert!(p.virt_entry >= p.virt_kstart && p.virt_entry < p.virt_kend);
    let sim = SimHypervisor::new();
    let created = create_pv_domain(
        &sim,
        &PvDomainSpec {
            handle: [1; 16],
            vcpus: 1,
            memory_kib: 128 * 1024,
            kernel: &kernel,
            ramdisk: Some(b"not really an initramfs"),
            cmdline: "console=hvc0",
            store_domid: 0,
            console_domid: 0,
        },
    )
    .expect("Debian kernel builds");
    let state = sim.domain_state(created.domid).expect("state");
    let ctx = state.vcpu_contexts[&0];
    assert_eq!(ctx.rip, p.virt_entry);
    let w = Walker {
        sim: &sim,
        cr3: ctx.cr3.0,
    };
    let entry_page = w.translate(p.virt_entry).expect("entry mapped");
    assert!(entry_page.writable);
    let magic = w.read(ctx.rsi, 14);
    assert_eq!(&magic, b"xen-3.0-x86_64");
}

/// A scratch file holding `bytes`, removed when dropped.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new(tag: &str, bytes: &[u8]) -> ScratchFile {
        let path = std::env::temp_dir().join(format!(
            "domain-builder-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, bytes).expect("scratch file written");
        ScratchFile(path)
    }

    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.0).expect("scratch file opens")
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn an_elf_parsed_in_its_file_matches_the_same_bytes_parsed_in_memory() {
    for declare in [Declare::Notes, Declare::LegacySection] {
        let elf = synthetic_kernel(&default_segments(), declare);
        let in_memory = KernelImage::parse(&elf, LIMIT).expect("parse");
        let scratch = ScratchFile::new("same", &elf);
        let file = scratch.open();
        let in_file = KernelImage::parse_elf_file(&file).expect("parse the file");
        assert_eq!(in_file.params, in_memory.params);
        assert_eq!(in_file.segments, in_memory.segments);
        assert_eq!(
            in_file.elf_bytes(),
            None,
            "the file is not read into memory"
        );
        for segment in &in_file.segments {
            let mut from_file = vec![0; segment.file_size];
            let mut from_memory = vec![0; segment.file_size];
            in_file.read_segment(segment, &mut from_file).expect("read");
            in_memory
                .read_segment(segment, &mut from_memory)
                .expect("copy");
            assert_eq!(from_file, from_memory);
        }
    }
}

#[test]
fn a_truncated_elf_file_fails_like_truncated_bytes() {
    let elf = elf();
    for cut in [10, 63, 64 + 56, elf.len() / 2, elf.len() - 1] {
        let scratch = ScratchFile::new("cut", &elf[..cut]);
        let file = scratch.open();
        let from_file = KernelImage::parse_elf_file(&file).map(|k| k.params);
        let from_memory = KernelImage::parse(&elf[..cut], LIMIT).map(|k| k.params);
        assert_eq!(from_file, from_memory, "cut at {cut}");
        assert!(from_file.is_err(), "cut at {cut} parses");
    }
}
