//! `phy:` disk sources: the block device behind a path, and who else is using it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A block device as blkback is told about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// The path the config named (an LV symlink such as /dev/vg01/beijaflor.root).
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
}

impl BlockDevice {
    /// `physical-device` as blkback parses it: `major:minor` in hex.
    pub fn physical_device(&self) -> String {
        format!("{:x}:{:x}", self.major, self.minor)
    }
}

/// glibc's `major()` of a `dev_t`.
pub fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0fff)) as u32
}

/// glibc's `minor()` of a `dev_t`.
pub fn dev_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32
}

/// The block device at `path` (symlinks followed, as LVM's /dev/VG/LV are).
pub fn block_device(path: &Path) -> Result<BlockDevice> {
    let meta = std::fs::metadata(path).map_err(|source| Error::DiskSource {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(Error::NotABlockDevice(path.to_path_buf()));
    }
    Ok(BlockDevice {
        path: path.to_path_buf(),
        major: dev_major(meta.rdev()),
        minor: dev_minor(meta.rdev()),
    })
}

/// A vbd some domain already has, as read back from the backend directories in xenstore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VbdInUse {
    pub domid: u32,
    /// `physical-device` as written there (hex `major:minor`).
    pub physical_device: String,
    pub writable: bool,
}

/// xm's sharing rule: a device may be given to several domains only read-only; a writable
/// use by one domain excludes any other use, unless the new use says `w!` (`force`).
pub fn check_sharing(
    dev: &BlockDevice,
    want_writable: bool,
    force: bool,
    in_use: &[VbdInUse],
) -> Result<()> {
    if force {
        return Ok(());
    }
    let ours = dev.physical_device();
    let clash = in_use
        .iter()
        .find(|u| same_device(&u.physical_device, &ours) && (u.writable || want_writable));
    match clash {
        None => Ok(()),
        Some(u) => Err(Error::DeviceBusy {
            path: dev.path.clone(),
            major: dev.major,
            minor: dev.minor,
            domid: u.domid,
            how: if u.writable {
                "read-write"
            } else {
                "read-only"
            },
        }),
    }
}

/// Compares two `major:minor` strings numerically (`fe:0` and `FE:00` are the same device).
fn same_device(a: &str, b: &str) -> bool {
    fn parse(s: &str) -> Option<(u32, u32)> {
        let (ma, mi) = s.trim().split_once(':')?;
        Some((
            u32::from_str_radix(ma, 16).ok()?,
            u32::from_str_radix(mi, 16).ok()?,
        ))
    }
    matches!((parse(a), parse(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv() -> BlockDevice {
        BlockDevice {
            path: "/dev/vg01/beijaflor.root".into(),
            major: 254,
            minor: 0,
        }
    }

    #[test]
    fn dev_t_splits_like_glibc() {
        // makedev(254, 0), makedev(7, 3), makedev(259, 65536) as glibc encodes them
        assert_eq!((dev_major(0xfe00), dev_minor(0xfe00)), (254, 0));
        assert_eq!((dev_major(0x0703), dev_minor(0x0703)), (7, 3));
        // glibc makedev: (major & 0xfff) << 8 | (major & !0xfff) << 32 | (minor & 0xff)
        //               | (minor & !0xff) << 12; here major < 0x1000 and minor & 0xff == 0
        let big: u64 = (259u64 << 8) | (65536u64 << 12);
        assert_eq!((dev_major(big), dev_minor(big)), (259, 65536));
    }

    #[test]
    fn physical_device_is_hex() {
        assert_eq!(lv().physical_device(), "fe:0");
    }

    #[test]
    fn a_regular_file_is_not_a_phy_source() {
        let err = block_device(Path::new("/etc/hostname")).err();
        assert!(matches!(err, Some(Error::NotABlockDevice(_))), "{err:?}");
    }

    #[test]
    fn a_missing_source_names_the_path() {
        let err = block_device(Path::new("/dev/vg01/no-such-lv")).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("/dev/vg01/no-such-lv"), "{msg}");
    }

    #[test]
    fn writable_device_of_another_domain_is_refused() {
        let used = [VbdInUse {
            domid: 3,
            physical_device: "FE:00".into(),
            writable: true,
        }];
        let err = check_sharing(&lv(), false, false, &used)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("/dev/vg01/beijaflor.root (fe:0) is already in use read-write by domain 3; use mode 'w!' to share it anyway")
        );
    }

    #[test]
    fn read_only_sharing_is_allowed_and_writing_over_it_is_not() {
        let used = [VbdInUse {
            domid: 4,
            physical_device: "fe:0".into(),
            writable: false,
        }];
        assert!(check_sharing(&lv(), false, false, &used).is_ok());
        assert!(check_sharing(&lv(), true, false, &used).is_err());
    }

    #[test]
    fn w_bang_overrides_the_check() {
        let used = [VbdInUse {
            domid: 3,
            physical_device: "fe:0".into(),
            writable: true,
        }];
        assert!(check_sharing(&lv(), true, true, &used).is_ok());
    }

    #[test]
    fn other_devices_do_not_clash() {
        let used = [VbdInUse {
            domid: 3,
            physical_device: "fe:1".into(),
            writable: true,
        }];
        assert!(check_sharing(&lv(), true, false, &used).is_ok());
    }
}
