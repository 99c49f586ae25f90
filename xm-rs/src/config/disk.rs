//! Disk specs: xm's legacy `prefix:target,vdev[:cdrom],mode` and xl's positional and
//! `key=value` forms (xl-disk-configuration(5)), and the guest device number of a vdev
//! (xen-vbd-interface(7)).

use serde::{Deserialize, Serialize};

use super::spec::{nearest, SpecError};

/// How the guest may use the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    ReadOnly,
    ReadWrite,
    /// xm's `w!`: writable even if another domain has it writable.
    SharedWrite,
}

impl Access {
    pub fn parse(text: &str) -> Result<Access, SpecError> {
        match text {
            "r" | "ro" => Ok(Access::ReadOnly),
            "w" | "rw" => Ok(Access::ReadWrite),
            "w!" => Ok(Access::SharedWrite),
            other => Err(SpecError::InvalidValue {
                key: "access".into(),
                value: other.into(),
                reason: "expected r, ro, w, rw or w!".into(),
            }),
        }
    }

    /// The xenstore `mode` node value.
    pub fn mode(self) -> &'static str {
        match self {
            Access::ReadOnly => "r",
            Access::ReadWrite => "w",
            Access::SharedWrite => "w!",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow,
    Qcow2,
    Vhd,
    Qed,
}

impl DiskFormat {
    fn parse(text: &str) -> Result<DiskFormat, SpecError> {
        Ok(match text {
            "raw" => DiskFormat::Raw,
            "qcow" => DiskFormat::Qcow,
            "qcow2" => DiskFormat::Qcow2,
            "vhd" => DiskFormat::Vhd,
            "qed" => DiskFormat::Qed,
            other => {
                return Err(SpecError::InvalidValue {
                    key: "format".into(),
                    value: other.into(),
                    reason:
                        "expected raw, qcow, qcow2, vhd or qed (is a vdev in the format position? \
                             legacy specs need a prefix such as phy: or file:)"
                            .into(),
                })
            }
        })
    }
}

/// Which backend serves the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Not said: block devices go to blkback, files need a loop device.
    Auto,
    /// Kernel blkback on a block device (`phy:`, `backendtype=phy`).
    Phy,
    /// xend's `file:`: blkback on a loop device over the file.
    File,
    /// blktap (`tap:`, `tap2:`, `tapdisk:`).
    Tap,
    /// QEMU's qdisk (`backendtype=qdisk`).
    Qdisk,
    Standalone,
}

/// Which syntax the spec was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskSyntax {
    /// `phy:/dev/vg/lv,xvda1,w` and friends.
    XmLegacy,
    /// xl positional and/or key=value.
    Xl,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// The spec as written.
    pub spec: String,
    /// Path or script argument; None for an empty cdrom drive.
    pub target: Option<String>,
    pub vdev: String,
    /// The xenstore device number of `vdev`.
    pub device_number: u32,
    pub access: Access,
    pub cdrom: bool,
    pub format: DiskFormat,
    pub backend: Backend,
    /// `script=` or a legacy `nbd:`/`iscsi:`/`drbd:`/`enbd:` prefix (as `block-NAME`).
    pub script: Option<String>,
    /// Backend domain name, if not dom0.
    pub backend_domain: Option<String>,
    /// xm's `ioemu:` vdev prefix (HVM emulated disk).
    pub emulated: bool,
    /// Legacy prefixes exactly as written, e.g. `["tap", "aio"]`.
    pub legacy_prefixes: Vec<String>,
    /// Other xl keys and flags kept as written (discard, direct-io-safe, specification, colo...).
    pub options: Vec<(String, String)>,
    pub syntax: DiskSyntax,
}

impl Disk {
    /// The host path the backend opens: xm's `phy:sda7` means `/dev/sda7`.
    pub fn host_path(&self) -> Option<String> {
        let target = self.target.as_deref()?;
        if self.script.is_some() || target.starts_with('/') || self.backend != Backend::Phy {
            return Some(target.to_string());
        }
        Some(format!("/dev/{target}"))
    }
}

/// Errors of disk specs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("no vdev given (the guest device name, e.g. xvda)")]
    MissingVdev,
    #[error("too many positional parameters at {0:?} (expected target, format, vdev, access)")]
    TooManyPositional(String),
    #[error("unknown deprecated disk prefix {0:?}")]
    UnknownPrefix(String),
    #[error("unknown device type {0:?} after the vdev (expected cdrom or disk)")]
    UnknownDevtype(String),
    #[error("no target (path) given for a non-cdrom disk")]
    MissingTarget,
    #[error("invalid vdev {vdev:?}: {reason}")]
    BadVdev { vdev: String, reason: String },
}

const KEYS: &[&str] = &[
    "target",
    "format",
    "vdev",
    "access",
    "devtype",
    "backend",
    "backendtype",
    "script",
    "specification",
    "colo-host",
    "colo-port",
    "colo-export",
    "active-disk",
    "hidden-disk",
];
const FLAGS: &[&str] = &[
    "cdrom",
    "direct-io-safe",
    "discard",
    "no-discard",
    "trusted",
    "untrusted",
    "colo",
];
const FORMAT_PREFIXES: &[&str] = &["raw", "qcow", "qcow2", "vhd"];
const SCRIPT_PREFIXES: &[&str] = &["iscsi", "nbd", "enbd", "drbd"];
const IGNORED_PREFIXES: &[&str] = &["tapdisk", "tap", "tap2", "aio", "ioemu", "file", "phy"];

#[derive(Default)]
struct Builder {
    target: Option<String>,
    format: Option<Option<DiskFormat>>,
    vdev: Option<String>,
    access: Option<Option<Access>>,
    cdrom: bool,
    backend: Option<Backend>,
    script: Option<String>,
    backend_domain: Option<String>,
    emulated: bool,
    legacy_prefixes: Vec<String>,
    options: Vec<(String, String)>,
    named: Vec<String>,
}

impl Builder {
    fn once(&mut self, key: &str) -> Result<(), DiskError> {
        if self.named.iter().any(|k| k == key) {
            return Err(SpecError::Duplicate(key.to_string()).into());
        }
        self.named.push(key.to_string());
        Ok(())
    }

    /// `hdc:cdrom` → vdev `hdc` + cdrom.
    fn set_vdev(&mut self, text: &str) -> Result<(), DiskError> {
        self.once("vdev")?;
        let (vdev, devtype) = match text.split_once(':') {
            Some((v, t)) => (v, Some(t)),
            None => (text, None),
        };
        match devtype {
            None | Some("") | Some("disk") => {}
            Some("cdrom") => self.cdrom = true,
            Some(other) => return Err(DiskError::UnknownDevtype(other.to_string())),
        }
        self.vdev = Some(vdev.to_string());
        Ok(())
    }

    /// Strips legacy prefixes (`tap:aio:`, `phy:`, `qcow2:`, `nbd:`...) from a positional value.
    fn strip_prefixes<'a>(&mut self, mut text: &'a str) -> Result<&'a str, DiskError> {
        loop {
            let Some(colon) = text.find(':') else {
                return Ok(text);
            };
            let word = &text[..colon];
            let after = text[colon + 1..].chars().next();
            let looks_like_prefix = !word.is_empty()
                && word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !looks_like_prefix {
                return Ok(text);
            }
            if FORMAT_PREFIXES.contains(&word) {
                self.format = Some(DiskFormat::parse(word).ok());
            } else if SCRIPT_PREFIXES.contains(&word) {
                self.script = Some(format!("block-{word}"));
            } else if IGNORED_PREFIXES.contains(&word) {
                match word {
                    "phy" => self.backend = Some(Backend::Phy),
                    "file" => self.backend = Some(Backend::File),
                    "tap" | "tap2" | "tapdisk" => self.backend = Some(Backend::Tap),
                    "ioemu" => self.emulated = true,
                    _ => {}
                }
            } else if !after.is_some_and(|c| c.is_ascii_alphanumeric()) {
                // Looks like `foo:/path`: a prefix we do not know, not part of a name.
                return Err(DiskError::UnknownPrefix(format!("{word}:")));
            } else {
                return Ok(text);
            }
            self.legacy_prefixes.push(word.to_string());
            text = &text[colon + 1..];
        }
    }
}

/// Parses one disk spec.
pub fn parse_disk(spec: &str) -> Result<Disk, DiskError> {
    let mut b = Builder::default();
    let mut positional_index = 0usize;
    let mut rest = spec;
    loop {
        let trimmed = rest.trim_start();
        // `target=` swallows the rest of the spec, commas and all.
        if let Some(target) = trimmed.strip_prefix("target=") {
            b.once("target")?;
            b.target = Some(target.to_string());
            break;
        }
        let (item, remainder) = match trimmed.find(',') {
            Some(i) => (&trimmed[..i], Some(&trimmed[i + 1..])),
            None => (trimmed, None),
        };
        if let Some((key, value)) = item.split_once('=') {
            let key = key.trim();
            if !KEYS.contains(&key) {
                return Err(SpecError::UnknownKey {
                    key: key.into(),
                    hint: nearest(key, KEYS.iter().chain(FLAGS).copied()),
                }
                .into());
            }
            let value = value.trim();
            match key {
                "format" => {
                    b.once(key)?;
                    b.format = Some(if value.is_empty() {
                        None
                    } else {
                        Some(DiskFormat::parse(value)?)
                    });
                }
                "vdev" => b.set_vdev(value)?,
                "access" => {
                    b.once(key)?;
                    b.access = Some(if value.is_empty() {
                        None
                    } else {
                        Some(Access::parse(value)?)
                    });
                }
                "devtype" => {
                    b.once(key)?;
                    match value {
                        "cdrom" => b.cdrom = true,
                        "disk" | "" => {}
                        other => return Err(DiskError::UnknownDevtype(other.into())),
                    }
                }
                "backendtype" => {
                    b.once(key)?;
                    b.backend = Some(match value {
                        "phy" => Backend::Phy,
                        "qdisk" => Backend::Qdisk,
                        "tap" => Backend::Tap,
                        "standalone" => Backend::Standalone,
                        "" => Backend::Auto,
                        other => {
                            return Err(SpecError::InvalidValue {
                                key: key.into(),
                                value: other.into(),
                                reason: "expected phy, qdisk, tap or standalone".into(),
                            }
                            .into())
                        }
                    });
                }
                "backend" => {
                    b.once(key)?;
                    b.backend_domain = Some(value.to_string()).filter(|v| !v.is_empty());
                }
                "script" => {
                    b.once(key)?;
                    b.script = Some(value.to_string()).filter(|v| !v.is_empty());
                }
                _ => {
                    b.once(key)?;
                    b.options.push((key.to_string(), value.to_string()));
                }
            }
        } else if FLAGS.contains(&item.trim()) {
            let flag = item.trim();
            b.once(flag)?;
            if flag == "cdrom" {
                b.cdrom = true;
            } else {
                b.options.push((flag.to_string(), String::new()));
            }
        } else {
            // A positional parameter: target, format, vdev, access in turn
            // (the format slot is skipped after a legacy prefix, as xend had no format field).
            let value = item.trim_start();
            let value = if positional_index <= 2 {
                b.strip_prefixes(value)?
            } else {
                value
            };
            let had_prefix = !b.legacy_prefixes.is_empty();
            loop {
                match positional_index {
                    0 => {
                        b.target = Some(value.to_string());
                        positional_index = 1;
                        break;
                    }
                    1 if had_prefix || b.format.is_some() => positional_index = 2,
                    1 => {
                        let empty_target = b.target.as_deref().is_some_and(str::is_empty);
                        if empty_target && value.contains(':') {
                            // xend's empty cdrom: `,hdc:cdrom,r`.
                            positional_index = 2;
                            continue;
                        }
                        b.once("format")?;
                        b.format = Some(if value.is_empty() {
                            None
                        } else {
                            Some(DiskFormat::parse(value)?)
                        });
                        positional_index = 2;
                        break;
                    }
                    2 if b.vdev.is_some() => positional_index = 3,
                    2 => {
                        if !value.is_empty() {
                            b.set_vdev(value)?;
                        }
                        positional_index = 3;
                        break;
                    }
                    3 if b.access.is_some() => positional_index = 4,
                    3 => {
                        b.once("access")?;
                        b.access = Some(match value {
                            "" => None,
                            // xl: `/root/image.iso,,hdc,cdrom` puts the flag in the access slot.
                            "cdrom" => {
                                b.cdrom = true;
                                None
                            }
                            v => Some(Access::parse(v)?),
                        });
                        positional_index = 4;
                        break;
                    }
                    _ => {
                        // A trailing comma leaves an empty item: nothing to assign.
                        if value.is_empty() {
                            break;
                        }
                        if FLAGS.contains(&value) {
                            b.once(value)?;
                            if value == "cdrom" {
                                b.cdrom = true;
                            } else {
                                b.options.push((value.to_string(), String::new()));
                            }
                            break;
                        }
                        return Err(DiskError::TooManyPositional(value.to_string()));
                    }
                }
            }
        }
        match remainder {
            Some(r) => rest = r,
            None => break,
        }
    }
    let vdev = b
        .vdev
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or(DiskError::MissingVdev)?;
    let device_number = vdev_number(&vdev)?;
    let target = b.target.clone().filter(|t| !t.is_empty());
    if target.is_none() && !b.cdrom {
        return Err(DiskError::MissingTarget);
    }
    let access = b.access.flatten().unwrap_or(if b.cdrom {
        Access::ReadOnly
    } else {
        Access::ReadWrite
    });
    let syntax = if b.legacy_prefixes.is_empty() && !(spec.trim_start().starts_with(',') && b.cdrom)
    {
        DiskSyntax::Xl
    } else {
        DiskSyntax::XmLegacy
    };
    Ok(Disk {
        spec: spec.to_string(),
        target,
        vdev,
        device_number,
        access,
        cdrom: b.cdrom,
        format: b.format.flatten().unwrap_or(DiskFormat::Raw),
        backend: b.backend.unwrap_or(Backend::Auto),
        script: b.script,
        backend_domain: b.backend_domain,
        emulated: b.emulated,
        legacy_prefixes: b.legacy_prefixes,
        options: b.options,
        syntax,
    })
}

/// `a`→0, `z`→25, `aa`→26, … (bijective base 26, as libxl).
fn disk_index(letters: &str) -> Option<u32> {
    let mut index: u64 = 0;
    for c in letters.chars() {
        if !c.is_ascii_lowercase() {
            return None;
        }
        index = index * 26 + u64::from(c as u8 - b'a') + 1;
        if index > (1 << 20) {
            return None;
        }
    }
    u32::try_from(index.checked_sub(1)?).ok()
}

/// The xenstore device number of a vdev (xen-vbd-interface(7)): `xvda`=51712,
/// `xvda1`=51713, `hda`=768, `sda`=2048, `d1p2`, or a plain number.
pub fn vdev_number(vdev: &str) -> Result<u32, DiskError> {
    let bad = |reason: &str| DiskError::BadVdev {
        vdev: vdev.to_string(),
        reason: reason.to_string(),
    };
    if vdev.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        let parsed = if let Some(hex) = vdev.strip_prefix("0x").or_else(|| vdev.strip_prefix("0X"))
        {
            u32::from_str_radix(hex, 16)
        } else if vdev.len() > 1 && vdev.starts_with('0') {
            u32::from_str_radix(&vdev[1..], 8)
        } else {
            vdev.parse()
        };
        return parsed.map_err(|_| bad("not a number"));
    }
    let (prefix, rest) = ["xvd", "hd", "sd", "d"]
        .iter()
        .find_map(|p| vdev.strip_prefix(p).map(|r| (*p, r)))
        .ok_or_else(|| bad("expected xvdX, hdX, sdX, dNpM or a number"))?;
    let (disk, partition) = if prefix == "d" {
        let (d, p) = match rest.split_once('p') {
            Some((d, p)) => (d, Some(p)),
            None => (rest, None),
        };
        let disk: u32 = d.parse().map_err(|_| bad("dNpM needs a disk number"))?;
        let partition: u32 = match p {
            Some(p) => p
                .parse()
                .map_err(|_| bad("dNpM needs a partition number"))?,
            None => 0,
        };
        (disk, partition)
    } else {
        let split = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (letters, digits) = rest.split_at(split);
        let disk = disk_index(letters).ok_or_else(|| bad("the disk letters must be a-z"))?;
        let partition = if digits.is_empty() {
            0
        } else if digits.starts_with('0') {
            return Err(bad("partition numbers do not start with 0"));
        } else {
            digits.parse().map_err(|_| bad("bad partition number"))?
        };
        (disk, partition)
    };
    match prefix {
        "xvd" | "d" => {
            if disk < 16 && partition < 16 {
                Ok((202 << 8) | (disk << 4) | partition)
            } else if disk < (1 << 20) && partition < 256 {
                Ok((1 << 28) | (disk << 8) | partition)
            } else {
                Err(bad("disk or partition number too large"))
            }
        }
        "sd" => {
            if disk < 16 && partition < 16 {
                Ok((8 << 8) | (disk << 4) | partition)
            } else {
                Err(bad("sd disks stop at sdp15"))
            }
        }
        _ => {
            if partition >= 64 {
                Err(bad("hd partitions stop at 63"))
            } else if disk < 2 {
                Ok((3 << 8) | (disk << 6) | partition)
            } else if disk < 4 {
                Ok((22 << 8) | ((disk - 2) << 6) | partition)
            } else {
                Err(bad("hd disks stop at hdd"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(spec: &str) -> Disk {
        parse_disk(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
    }

    #[test]
    fn vdev_numbers_follow_the_vbd_interface() {
        assert_eq!(vdev_number("xvda"), Ok(51712));
        assert_eq!(vdev_number("xvda1"), Ok(51713));
        assert_eq!(vdev_number("xvda2"), Ok(51714));
        assert_eq!(vdev_number("xvdb"), Ok(51728));
        assert_eq!(vdev_number("hda"), Ok(768));
        assert_eq!(vdev_number("hdb"), Ok(832));
        assert_eq!(vdev_number("hdc"), Ok(5632));
        assert_eq!(vdev_number("sda"), Ok(2048));
        assert_eq!(vdev_number("sda1"), Ok(2049));
        assert_eq!(vdev_number("d0p0"), Ok(51712));
        assert_eq!(vdev_number("d1p2"), Ok(51730));
        assert_eq!(vdev_number("xvdq"), Ok((1 << 28) | (16 << 8)));
        assert_eq!(vdev_number("xvdtq37"), Ok((1 << 28) | (536 << 8) | 37));
        assert_eq!(vdev_number("51712"), Ok(51712));
        assert_eq!(vdev_number("0xca00"), Ok(51712));
        assert!(vdev_number("hde").is_err());
        assert!(vdev_number("sdq").is_err());
        assert!(vdev_number("vda").is_err());
        assert!(vdev_number("xvdA").is_err());
        assert!(vdev_number("xvda01").is_err());
    }

    #[test]
    fn xm_phy_spec() {
        let d = disk("phy:/dev/vg01/beijaflor.root,xvda1,w");
        assert_eq!(d.target.as_deref(), Some("/dev/vg01/beijaflor.root"));
        assert_eq!(
            (d.vdev.as_str(), d.device_number, d.access),
            ("xvda1", 51713, Access::ReadWrite)
        );
        assert_eq!((d.backend, d.syntax), (Backend::Phy, DiskSyntax::XmLegacy));
    }

    #[test]
    fn xm_relative_phy_path_means_dev() {
        assert_eq!(
            disk("phy:sda7,sda1,w").host_path().as_deref(),
            Some("/dev/sda7")
        );
    }

    #[test]
    fn xm_tap_file_and_format_prefixes() {
        let d = disk("tap:aio:/root/some.img,xvda,w");
        assert_eq!(
            (d.backend, d.legacy_prefixes.clone()),
            (Backend::Tap, vec!["tap".to_string(), "aio".to_string()])
        );
        assert_eq!(d.target.as_deref(), Some("/root/some.img"));
        let d = disk("tap2:aio:/root/some.img,xvda,w");
        assert_eq!(d.backend, Backend::Tap);
        let d = disk("tap:qcow2:/img.qcow2,xvda,r");
        assert_eq!((d.format, d.access), (DiskFormat::Qcow2, Access::ReadOnly));
        let d = disk("file:/root/boot.iso,hdc:cdrom,r");
        assert!(d.cdrom);
        assert_eq!((d.backend, d.vdev.as_str()), (Backend::File, "hdc"));
        let d = disk("raw:/dev/vg/guest-volume,hda,w");
        assert_eq!(d.format, DiskFormat::Raw);
        let d = disk("vhd:/x.vhd,xvdb,w!");
        assert_eq!((d.format, d.access), (DiskFormat::Vhd, Access::SharedWrite));
    }

    #[test]
    fn xm_ioemu_vdev_and_empty_cdrom() {
        let d = disk("phy:/dev/HostVG/XenGuest2,ioemu:hda,w");
        assert!(d.emulated);
        assert_eq!(d.vdev, "hda");
        let d = disk(",hdc:cdrom,r");
        assert_eq!(
            (d.target.clone(), d.cdrom, d.access),
            (None, true, Access::ReadOnly)
        );
        assert_eq!(d.syntax, DiskSyntax::XmLegacy);
    }

    #[test]
    fn xm_script_prefix() {
        let d = disk("nbd:134.100.233.115 20004,hda1,w");
        assert_eq!(d.script.as_deref(), Some("block-nbd"));
        assert_eq!(d.target.as_deref(), Some("134.100.233.115 20004"));
    }

    #[test]
    fn xl_equivalent_forms_agree() {
        for spec in [
            "/dev/vg/guest-volume,,hda",
            "/dev/vg/guest-volume,raw,hda,rw",
            "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume",
            "raw:/dev/vg/guest-volume,hda,w",
        ] {
            let d = disk(spec);
            assert_eq!(
                (
                    d.target.as_deref(),
                    d.vdev.as_str(),
                    d.format,
                    d.access,
                    d.cdrom
                ),
                (
                    Some("/dev/vg/guest-volume"),
                    "hda",
                    DiskFormat::Raw,
                    Access::ReadWrite,
                    false
                ),
                "{spec}"
            );
        }
        for spec in [
            "/root/image.iso,,hdc,cdrom",
            "/root/image.iso,,hdc,,cdrom",
            "/root/image.iso,raw,hdc,devtype=cdrom",
            "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso",
            "raw:/root/image.iso,hdc:cdrom,ro",
        ] {
            let d = disk(spec);
            assert_eq!(
                (d.target.as_deref(), d.vdev.as_str(), d.access, d.cdrom),
                (Some("/root/image.iso"), "hdc", Access::ReadOnly, true),
                "{spec}"
            );
        }
    }

    #[test]
    fn xl_target_takes_the_rest_including_commas() {
        let d = disk("format=raw,vdev=hdb,access=rw,backendtype=qdisk,target=rbd:pool/image:mon_host=a\\:1,b");
        assert_eq!(d.target.as_deref(), Some("rbd:pool/image:mon_host=a\\:1,b"));
        assert_eq!(d.backend, Backend::Qdisk);
    }

    #[test]
    fn xl_positional_with_trailing_keys_and_empty_slots() {
        let d = disk("/dev/HostVG/XenGuest2,raw,hda,rw,backendtype=phy");
        assert_eq!(d.backend, Backend::Phy);
        let d = disk("/var/lib/libvirt/images/XenGuest2-home,,hdb,,");
        assert_eq!((d.vdev.as_str(), d.access), ("hdb", Access::ReadWrite));
        let d = disk("format=raw,vdev=hdd,access=ro,devtype=cdrom");
        assert_eq!((d.target.clone(), d.cdrom), (None, true));
        let d = disk("/dev/vg/guest-volume,raw,xvda,rw");
        assert_eq!(d.device_number, 51712);
    }

    #[test]
    fn disk_errors_are_specific() {
        assert_eq!(parse_disk("phy:/dev/x"), Err(DiskError::MissingVdev));
        assert!(matches!(
            parse_disk("/dev/x,xvda,w"),
            Err(DiskError::Spec(SpecError::InvalidValue { .. }))
        ));
        assert!(matches!(
            parse_disk("phy:/dev/x,xvda,rx"),
            Err(DiskError::Spec(SpecError::InvalidValue { .. }))
        ));
        assert_eq!(
            parse_disk("foo:/dev/x,xvda,w"),
            Err(DiskError::UnknownPrefix("foo:".into()))
        );
        assert!(matches!(
            parse_disk("phy:/dev/x,xvda:floppy,w"),
            Err(DiskError::UnknownDevtype(_))
        ));
        assert!(matches!(
            parse_disk("phy:/dev/x,vda,w"),
            Err(DiskError::BadVdev { .. })
        ));
        assert!(matches!(
            parse_disk("/x,raw,xvda,w,extra"),
            Err(DiskError::TooManyPositional(_))
        ));
        assert!(matches!(
            parse_disk("vdev=xvda,vdev=xvdb,target=/x"),
            Err(DiskError::Spec(SpecError::Duplicate(_)))
        ));
        assert!(matches!(
            parse_disk("formt=raw,vdev=xvda,target=/x"),
            Err(DiskError::Spec(SpecError::UnknownKey { hint: Some(_), .. }))
        ));
        assert_eq!(parse_disk("vdev=xvda"), Err(DiskError::MissingTarget));
        assert!(matches!(
            parse_disk(",xvda,w"),
            Err(DiskError::Spec(SpecError::InvalidValue { .. }))
        ));
    }
}
