//! Errors of the hypervisor layer, worded for the operator who reads them.

use std::io;

use crate::types::{DomId, Mfn, Pfn};

/// Result of a hypervisor operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to the hypervisor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening a Xen control library failed: typically not dom0, or Xen is not running.
    #[error(
        "cannot open the Xen control interface ({library}): {source}; \
         is this dom0 of a running Xen, with /dev/xen/privcmd present and enough privilege?"
    )]
    Open {
        /// The library whose open call failed.
        library: &'static str,
        /// errno of the failed open.
        #[source]
        source: io::Error,
    },
    /// A hypercall about one domain failed.
    #[error("{operation} failed for domain {domid}: {source}")]
    Domain {
        /// What we asked for, e.g. "populate physmap".
        operation: &'static str,
        /// The domain it was about.
        domid: DomId,
        /// errno reported by the hypercall.
        #[source]
        source: io::Error,
    },
    /// A hypercall about the host as a whole failed.
    #[error("{operation} failed: {source}")]
    Host {
        /// What we asked for, e.g. "physinfo".
        operation: &'static str,
        /// errno reported by the hypercall.
        #[source]
        source: io::Error,
    },
    /// No domain with that id exists.
    #[error("domain {0} does not exist")]
    NoSuchDomain(DomId),
    /// A frame asked for does not belong to the domain.
    #[error("machine frame {mfn} does not belong to domain {domid}")]
    ForeignFrame {
        /// The domain named in the request.
        domid: DomId,
        /// The frame that is not its own.
        mfn: Mfn,
    },
    /// Populating memory would exceed the domain's maximum.
    #[error(
        "domain {domid} may own at most {max_pages} pages; populating pfn {pfn} would exceed it"
    )]
    OutOfMemory {
        /// The domain.
        domid: DomId,
        /// Its limit in pages.
        max_pages: u64,
        /// The first frame that did not fit.
        pfn: Pfn,
    },
    /// A page-table pin was refused: the tables are not valid for the guest.
    #[error("pinning the L4 table {l4} of domain {domid} was refused: {reason}")]
    PinRefused {
        /// The domain.
        domid: DomId,
        /// The top-level table frame.
        l4: Mfn,
        /// Why the tables are not valid.
        reason: String,
    },
    /// Writing through a mapping made read-only.
    #[error("the foreign mapping was made read-only and cannot be written")]
    ReadOnlyMapping,
    /// A Xen library the operation needs could not be loaded.
    #[error("{operation} is not available: {reason}")]
    Unavailable {
        /// What we asked for, e.g. "dump core".
        operation: &'static str,
        /// Which library and why.
        reason: String,
    },
    /// An argument cannot be passed to the hypervisor as given.
    #[error("invalid argument for {operation}: {reason}")]
    InvalidArgument {
        /// The operation.
        operation: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },
}

impl Error {
    /// A domain operation failed with the current `errno`.
    pub(crate) fn domain_errno(operation: &'static str, domid: DomId) -> Error {
        Error::Domain {
            operation,
            domid,
            source: io::Error::last_os_error(),
        }
    }

    /// A host operation failed with the current `errno`.
    pub(crate) fn host_errno(operation: &'static str) -> Error {
        Error::Host {
            operation,
            source: io::Error::last_os_error(),
        }
    }
}
