//! Errors of the domain builder.

use crate::image::ImageError;

/// Why a PV domain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The kernel image is unusable.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Kernel, ramdisk and boot structures do not fit in the memory given.
    #[error(
        "the guest needs {needed_kib} KiB for its kernel, ramdisk and boot structures \
         (plus 512 KiB of padding), but has only {memory_kib} KiB; give it more memory"
    )]
    TooBig {
        /// KiB the initial mapping needs.
        needed_kib: u64,
        /// KiB the guest was given.
        memory_kib: u64,
    },
    /// The kernel's addresses do not form a usable layout.
    #[error("kernel layout is unusable: {0}")]
    BadLayout(String),
    /// The command line does not fit start_info.
    #[error("kernel command line is {len} bytes; Xen passes at most 1023")]
    CmdlineTooLong {
        /// Its length.
        len: usize,
    },
    /// Reading a kernel segment into guest memory failed (a kernel file that shrank or
    /// could not be read after it was parsed).
    #[error("loading the kernel's segment at file offset {offset:#x} into guest memory: {source}")]
    KernelRead {
        /// Where in the ELF file the segment starts.
        offset: usize,
        /// The read's error.
        source: std::io::Error,
    },
    /// A hypervisor operation failed.
    #[error(transparent)]
    Hypervisor(#[from] hypervisor::Error),
}
