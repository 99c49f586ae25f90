//! `file:` disk images on loop devices that we attach and release ourselves (what Xen's
//! `block` hotplug script does with `losetup`, without a shell per disk).
//!
//! No autoclear: the device must outlive our process (blkback holds it while the guest runs)
//! and is released explicitly when the domain's devices are torn down.

use std::path::{Path, PathBuf};

use loopdev::{LoopControl, LoopDevice};

use crate::blockdev::BlockDevice;
use crate::error::{Error, Result};

/// A loop device bound to an image file by us.
#[derive(Debug)]
pub struct AttachedLoop {
    pub image: PathBuf,
    pub device: BlockDevice,
}

/// Binds `image` to the next free loop device, read-only unless `writable`.
pub fn attach(image: &Path, writable: bool) -> Result<AttachedLoop> {
    let err = |source| Error::Loop {
        path: image.to_path_buf(),
        source,
    };
    // a missing or unreadable image is the common mistake: say so before touching /dev/loop*
    std::fs::metadata(image).map_err(|source| Error::DiskSource {
        path: image.to_path_buf(),
        source,
    })?;
    let control = LoopControl::open().map_err(err)?;
    let dev = control.next_free().map_err(err)?;
    dev.with().read_only(!writable).attach(image).map_err(err)?;
    let node = dev
        .path()
        .ok_or_else(|| err(std::io::Error::other("loop device has no /dev node")))?;
    let (major, minor) = match (dev.major(), dev.minor()) {
        (Ok(ma), Ok(mi)) => (ma, mi),
        (Err(e), _) | (_, Err(e)) => {
            let _ = dev.detach();
            return Err(err(e));
        }
    };
    tracing::debug!(image = %image.display(), node = %node.display(), "attached loop device");
    Ok(AttachedLoop {
        image: image.to_path_buf(),
        device: BlockDevice {
            path: node,
            major,
            minor,
        },
    })
}

/// Releases the loop device at `node` (e.g. /dev/loop3).
pub fn detach(node: &Path) -> Result<()> {
    let dev = LoopDevice::open(node).map_err(|source| Error::Loop {
        path: node.to_path_buf(),
        source,
    })?;
    dev.detach().map_err(|source| Error::Loop {
        path: node.to_path_buf(),
        source,
    })?;
    tracing::debug!(node = %node.display(), "released loop device");
    Ok(())
}
