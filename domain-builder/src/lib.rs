//! Builds x86_64 PV guests: loads the kernel (ELF with Xen notes, or a bzImage in any of the
//! compressions Debian kernels use), lays out memory the way the start_info contract demands,
//! writes page tables, p2m list, start_info and the ring pages, and sets up the boot vcpu.
//! All hypervisor access goes through [`hypervisor::Hypervisor`]; this crate has no `unsafe`.

#![forbid(unsafe_code)]

pub mod boot;
pub mod build;
pub mod error;
pub mod image;
pub mod kernel_cache;
pub mod layout;
pub mod phases;

pub use boot::{
    build_prepared_domain, create_pv_domain, prepare_pv_domain, CreatedDomain, PreparedDomain,
    PvDomainSpec,
};
pub use build::{build_pv_domain, BuildSpec, BuiltDomain};
pub use error::BuildError;
pub use image::{Compression, ImageError, KernelImage};
pub use kernel_cache::{CacheOutcome, KernelCache, KernelSource, LoadedKernel};
pub use layout::Layout;
pub use phases::PhaseClock;
