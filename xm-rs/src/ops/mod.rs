//! What xm's everyday commands do, as a library over the [`hypervisor::Hypervisor`] trait and a
//! small xenstore trait ([`store::Store`]), so host tests run them on
//! [`hypervisor::SimHypervisor`] and [`store::MemStore`]. The `cli` module only parses
//! arguments, opens the real backends and prints.
//!
//! Domains are found the way xend found them: by name first (`/local/domain/N/name`), then by
//! numeric id, then by UUID; they can have been created by Debian's `xl` or by us.

use hypervisor::{DomId, DomainInfo, Hypervisor, ShutdownReason};

pub mod control;
pub mod device;
pub mod format;
pub mod host;
pub mod store;
pub mod vcpu;

pub use store::{MemStore, Store, StoreError, XsStore};

/// What went wrong in a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No domain has that name, id or UUID (xm's wording).
    #[error("Domain '{0}' does not exist.")]
    NoSuchDomain(String),
    /// The hypervisor refused or failed.
    #[error("{0}")]
    Hypervisor(#[from] hypervisor::Error),
    /// xenstore failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The request makes no sense for this domain or value (message says why).
    #[error("{0}")]
    Refused(String),
    /// The request is valid but this build cannot carry it out (names what is missing).
    #[error("{0}")]
    NotAvailable(String),
    /// A command-line argument is malformed (names the argument); exit code 2.
    #[error("{0}")]
    Usage(String),
    /// Whoever read xm's output stopped reading (`xm list | grep -q x`): not a failure, xm
    /// stops writing and exits 0 without a word, as other Unix tools do.
    #[error("the reader of the output went away")]
    OutputClosed,
}

/// Result of a domain operation.
pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// `/local/domain/N`.
pub fn dom_path(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

/// One domain: what the hypervisor says plus what xenstore says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Domain {
    /// The hypervisor's view.
    pub info: DomainInfo,
    /// `/local/domain/N/name`, or `None` when it has none (yet).
    pub name: Option<String>,
}

impl Domain {
    /// Its id.
    pub fn domid(&self) -> DomId {
        self.info.domid
    }

    /// Its name as xm printed it: `??` when xenstore has none.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or("??")
    }

    /// Its UUID in the usual 8-4-4-4-12 form.
    pub fn uuid(&self) -> String {
        hypervisor::uuid::format(&self.info.handle)
    }

    /// Has shut down or is being torn down: no longer a running guest.
    pub fn is_finished(&self) -> bool {
        self.info.shutdown || self.info.dying
    }
}

/// xm's six state letters (`r b p s c d`, `-` when off): running, blocked, paused, shut down,
/// crashed, dying. As in libxenctrl's view that xend used, a crashed domain is `c` and not `s`.
pub fn state_letters(info: &DomainInfo) -> String {
    let crashed = info.shutdown && info.shutdown_reason == Some(ShutdownReason::Crash);
    let shut_down = info.shutdown && !crashed;
    [
        (info.running, 'r'),
        (info.blocked, 'b'),
        (info.paused, 'p'),
        (shut_down, 's'),
        (crashed, 'c'),
        (info.dying, 'd'),
    ]
    .iter()
    .map(|&(on, letter)| if on { letter } else { '-' })
    .collect()
}

fn with_name<S: Store + ?Sized>(store: &S, info: DomainInfo) -> Result<Domain> {
    let name = store.read(&format!("{}/name", dom_path(info.domid)))?;
    Ok(Domain { info, name })
}

/// Every domain, dom0 included, in domid order.
pub fn all_domains<H: Hypervisor, S: Store + ?Sized>(hv: &H, store: &S) -> Result<Vec<Domain>> {
    hv.list_domains()?
        .into_iter()
        .map(|info| with_name(store, info))
        .collect()
}

/// Finds a domain as xend did: by name, then by numeric id, then by UUID.
pub fn find_domain<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    which: &str,
) -> Result<Domain> {
    let domains = all_domains(hv, store)?;
    if let Some(d) = domains.iter().find(|d| d.name.as_deref() == Some(which)) {
        return Ok(d.clone());
    }
    if let Ok(domid) = which.parse::<DomId>() {
        if let Some(d) = domains.iter().find(|d| d.domid() == domid) {
            return Ok(d.clone());
        }
    }
    let lowered = which.to_ascii_lowercase();
    domains
        .into_iter()
        .find(|d| d.uuid() == lowered)
        .ok_or_else(|| OpsError::NoSuchDomain(which.to_string()))
}

/// The domains named on the command line (in that order), or all of them when none is named.
pub fn select_domains<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    names: &[String],
) -> Result<Vec<Domain>> {
    if names.is_empty() {
        return all_domains(hv, store);
    }
    names.iter().map(|n| find_domain(hv, store, n)).collect()
}

/// The domain's current state from the hypervisor, or `None` once it no longer exists.
pub fn refresh<H: Hypervisor>(hv: &H, domid: DomId) -> Result<Option<DomainInfo>> {
    match hv.domain_info(domid) {
        Ok(info) => Ok(Some(info)),
        Err(hypervisor::Error::NoSuchDomain(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod tests;
