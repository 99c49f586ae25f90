//! Xen boot parameters of a PV kernel, from its `Xen` ELF notes (xen/elfnote.h) or, for old
//! kernels, the `__xen_guest` section ("GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=...").

use super::elf::{Elf64, Note};
use super::ImageError;

const NOTE_ENTRY: u32 = 1;
const NOTE_HYPERCALL_PAGE: u32 = 2;
const NOTE_VIRT_BASE: u32 = 3;
const NOTE_PADDR_OFFSET: u32 = 4;
const NOTE_XEN_VERSION: u32 = 5;
const NOTE_GUEST_OS: u32 = 6;
const NOTE_LOADER: u32 = 8;
const NOTE_FEATURES: u32 = 10;
const NOTE_INIT_P2M: u32 = 15;
const NOTE_MOD_START_PFN: u32 = 16;
const NOTE_PHYS32_ENTRY: u32 = 18;

/// Feature names a kernel may list (xen/features.h order).
const KNOWN_FEATURES: [&str; 7] = [
    "writable_page_tables",
    "writable_descriptor_tables",
    "auto_translated_physmap",
    "supervisor_mode_kernel",
    "pae_pgdir_above_4gb",
    "hvm_callback_vector",
    "dom0",
];
/// Features a plain x86_64 PV domU cannot give a kernel that requires them.
const UNAVAILABLE_TO_PV_DOMU: [&str; 4] = [
    "auto_translated_physmap",
    "supervisor_mode_kernel",
    "hvm_callback_vector",
    "dom0",
];

/// Where the parameters came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XenNoteSource {
    /// `Xen` ELF notes.
    ElfNotes,
    /// The legacy `__xen_guest` section.
    LegacySection,
}

/// Resolved boot parameters of a PV kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenParams {
    /// Where they came from.
    pub source: XenNoteSource,
    /// GUEST_OS ("linux", ...).
    pub guest_os: String,
    /// XEN_VERSION ("xen-3.0").
    pub xen_version: String,
    /// LOADER ("generic").
    pub loader: String,
    /// FEATURES string as given.
    pub features: String,
    /// Virtual address pseudo-physical frame 0 is mapped at.
    pub virt_base: u64,
    /// Subtracted from ELF physical addresses before adding `virt_base`.
    pub paddr_offset: u64,
    /// Entry point (virtual).
    pub virt_entry: u64,
    /// Virtual address of the hypercall page the kernel wants filled in, if any.
    pub virt_hypercall: Option<u64>,
    /// First virtual address of the kernel.
    pub virt_kstart: u64,
    /// Address past the kernel's end.
    pub virt_kend: u64,
    /// Where the kernel would like the p2m list mapped (INIT_P2M), if anywhere.
    pub init_p2m: Option<u64>,
    /// Kernel accepts the ramdisk as a pfn (MOD_START_PFN).
    pub mod_start_pfn: bool,
    /// PVH entry point, if the kernel also boots as PVH.
    pub phys32_entry: Option<u64>,
}

#[derive(Default)]
struct RawParams {
    guest_os: Option<String>,
    xen_version: Option<String>,
    loader: Option<String>,
    features: Option<String>,
    virt_base: Option<u64>,
    paddr_offset: Option<u64>,
    entry: Option<u64>,
    hypercall: Option<u64>,
    init_p2m: Option<u64>,
    mod_start_pfn: bool,
    phys32_entry: Option<u64>,
}

fn note_int(desc: &[u8]) -> Option<u64> {
    match desc.len() {
        1 => Some(u64::from(desc[0])),
        2 => Some(u64::from(u16::from_le_bytes([desc[0], desc[1]]))),
        4 => Some(u64::from(u32::from_le_bytes([
            desc[0], desc[1], desc[2], desc[3],
        ]))),
        8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(desc);
            Some(u64::from_le_bytes(raw))
        }
        _ => None,
    }
}

fn note_string(desc: &[u8]) -> String {
    let end = desc.iter().position(|b| *b == 0).unwrap_or(desc.len());
    String::from_utf8_lossy(&desc[..end]).into_owned()
}

fn apply_notes(notes: &[Note], raw: &mut RawParams) -> Result<usize, ImageError> {
    let mut count = 0;
    for note in notes.iter().filter(|n| n.name == b"Xen") {
        count += 1;
        let int = || {
            note_int(&note.desc).ok_or_else(|| {
                ImageError::BadElf(format!(
                    "Xen note {} has a {}-byte value; numbers are 1, 2, 4 or 8 bytes",
                    note.kind,
                    note.desc.len()
                ))
            })
        };
        match note.kind {
            NOTE_ENTRY => raw.entry = Some(int()?),
            NOTE_HYPERCALL_PAGE => raw.hypercall = Some(int()?),
            NOTE_VIRT_BASE => raw.virt_base = Some(int()?),
            NOTE_PADDR_OFFSET => raw.paddr_offset = Some(int()?),
            NOTE_XEN_VERSION => raw.xen_version = Some(note_string(&note.desc)),
            NOTE_GUEST_OS => raw.guest_os = Some(note_string(&note.desc)),
            NOTE_LOADER => raw.loader = Some(note_string(&note.desc)),
            NOTE_FEATURES => raw.features = Some(note_string(&note.desc)),
            NOTE_INIT_P2M => raw.init_p2m = Some(int()?),
            NOTE_MOD_START_PFN => raw.mod_start_pfn = int()? != 0,
            NOTE_PHYS32_ENTRY => raw.phys32_entry = Some(int()?),
            _ => {}
        }
    }
    Ok(count)
}

fn parse_number(key: &str, value: &str) -> Result<u64, ImageError> {
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => value.parse::<u64>(),
    };
    parsed.map_err(|_| ImageError::BadElf(format!("__xen_guest: {key}={value} is not a number")))
}

fn apply_legacy_section(section: &[u8], raw: &mut RawParams) -> Result<(), ImageError> {
    let text = note_string(section);
    let mut hypercall_page = None;
    for item in text.split(',') {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        match key {
            "GUEST_OS" => raw.guest_os = Some(value.to_string()),
            "XEN_VER" => raw.xen_version = Some(value.to_string()),
            "LOADER" => raw.loader = Some(value.to_string()),
            "FEATURES" => raw.features = Some(value.to_string()),
            "VIRT_BASE" => raw.virt_base = Some(parse_number(key, value)?),
            "VIRT_ENTRY" => raw.entry = Some(parse_number(key, value)?),
            "ELF_PADDR_OFFSET" => raw.paddr_offset = Some(parse_number(key, value)?),
            "HYPERCALL_PAGE" => hypercall_page = Some(parse_number(key, value)?),
            _ => {}
        }
    }
    // HYPERCALL_PAGE counts pages from VIRT_BASE in the legacy format.
    if let Some(page) = hypercall_page {
        let base = raw.virt_base.unwrap_or(0);
        let address = page
            .checked_mul(4096)
            .and_then(|offset| base.checked_add(offset));
        raw.hypercall = Some(address.ok_or_else(|| {
            ImageError::BadElf(format!(
                "__xen_guest: HYPERCALL_PAGE={page:#x} is out of range"
            ))
        })?);
    }
    Ok(())
}

fn check_features(features: &str) -> Result<(), ImageError> {
    for feature in features.split('|').filter(|f| !f.is_empty()) {
        let Some(required) = feature.strip_prefix('!') else {
            continue;
        };
        if !KNOWN_FEATURES.contains(&required) {
            return Err(ImageError::NotPv(format!(
                "kernel requires unknown Xen feature '{required}'"
            )));
        }
        if UNAVAILABLE_TO_PV_DOMU.contains(&required) {
            return Err(ImageError::NotPv(format!(
                "kernel requires Xen feature '{required}', which a PV domU does not have"
            )));
        }
    }
    Ok(())
}

impl XenParams {
    pub(super) fn from_elf(elf: &Elf64) -> Result<XenParams, ImageError> {
        let mut raw = RawParams::default();
        let mut source = XenNoteSource::ElfNotes;
        if apply_notes(&elf.segment_notes, &mut raw)? == 0
            && apply_notes(&elf.section_notes, &mut raw)? == 0
        {
            let Some(section) = elf.xen_guest_section.as_deref() else {
                return Err(ImageError::NotPv(
                    "no Xen ELF notes and no __xen_guest section (a kernel built without CONFIG_XEN_PV?)"
                        .into(),
                ));
            };
            apply_legacy_section(section, &mut raw)?;
            source = XenNoteSource::LegacySection;
        }

        let guest_os = raw.guest_os.unwrap_or_default();
        let loader = raw.loader.unwrap_or_default();
        let xen_version = raw.xen_version.unwrap_or_default();
        if !xen_version.starts_with("xen-3.0") {
            let shown = if xen_version.is_empty() {
                "none"
            } else {
                xen_version.as_str()
            };
            return Err(ImageError::NotPv(format!(
                "kernel declares Xen interface version '{shown}', not xen-3.0 (PVH-only kernel?)"
            )));
        }
        if loader != "generic" && guest_os != "linux" {
            return Err(ImageError::NotPv(format!(
                "kernel wants loader '{loader}' for guest OS '{guest_os}'; only the generic loader or Linux are supported"
            )));
        }
        let features = raw.features.unwrap_or_default();
        check_features(&features)?;

        let virt_base = raw.virt_base.unwrap_or(0);
        let paddr_offset = raw.paddr_offset.unwrap_or(match source {
            XenNoteSource::ElfNotes => 0,
            XenNoteSource::LegacySection => virt_base,
        });
        let virt_offset = virt_base.wrapping_sub(paddr_offset);
        let pstart = elf.load_segments.iter().map(|s| s.paddr).min().unwrap_or(0);
        let pend = elf
            .load_segments
            .iter()
            .map(|s| s.paddr + s.mem_size)
            .max()
            .unwrap_or(0);
        let virt_kstart = pstart.wrapping_add(virt_offset);
        let virt_kend = pend.wrapping_add(virt_offset);
        if virt_kstart < virt_base || virt_kend < virt_kstart {
            return Err(ImageError::BadElf(format!(
                "kernel range {virt_kstart:#x}..{virt_kend:#x} starts below VIRT_BASE {virt_base:#x}"
            )));
        }
        let virt_entry = raw.entry.unwrap_or(elf.entry);
        if !(virt_kstart..virt_kend).contains(&virt_entry) {
            return Err(ImageError::BadElf(format!(
                "entry point {virt_entry:#x} lies outside the kernel {virt_kstart:#x}..{virt_kend:#x}"
            )));
        }
        if let Some(hypercall) = raw.hypercall {
            if hypercall % 4096 != 0 || !(virt_kstart..virt_kend).contains(&hypercall) {
                return Err(ImageError::BadElf(format!(
                    "hypercall page {hypercall:#x} is not a page inside the kernel {virt_kstart:#x}..{virt_kend:#x}"
                )));
            }
        }
        Ok(XenParams {
            source,
            guest_os,
            xen_version,
            loader,
            features,
            virt_base,
            paddr_offset,
            virt_entry,
            virt_hypercall: raw.hypercall,
            virt_kstart,
            virt_kend,
            init_p2m: raw.init_p2m,
            mod_start_pfn: raw.mod_start_pfn,
            phys32_entry: raw.phys32_entry,
        })
    }
}
