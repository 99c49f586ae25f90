//! Domain rings on real Xen: dom0's own ring (`/proc/xen/xsd_kva` + `xsd_port`), guests'
//! rings mapped through grant 1, event channels, and domain state for `@releaseDomain`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tracing::{info, warn};

use super::core::{DomainState, Platform};
use crate::sys::{self, DomainInfo, EventChannels, GrantTables, RingPage};
use crate::wire::{Decoder, Errno};

/// One domain's ring.
#[derive(Debug)]
pub struct Ring {
    /// The shared page.
    pub page: RingPage,
    /// Our local event channel port.
    pub port: u32,
    /// Partial request bytes.
    pub decoder: Decoder,
    /// Set after a protocol violation: we stop serving the ring.
    pub broken: bool,
}

/// Everything Xen-specific the daemon holds.
#[derive(Debug)]
pub struct XenRings {
    /// The event channel device.
    pub evtchn: EventChannels,
    gnttab: GrantTables,
    info: Option<DomainInfo>,
    /// Rings by domain id.
    pub rings: HashMap<u32, Ring>,
    /// Local port to domain id.
    pub port_owner: HashMap<u32, u32>,
    /// Port bound to `VIRQ_DOM_EXC`.
    pub virq_port: Option<u32>,
}

/// Why Xen could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum XenSetupError {
    /// A device or library failed.
    #[error("cannot open {what}: {source}")]
    Open {
        /// What we tried.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
}

impl XenRings {
    /// Opens evtchn, gnttab and libxenctrl and binds `VIRQ_DOM_EXC`.
    pub fn open() -> Result<XenRings, XenSetupError> {
        let evtchn = EventChannels::open().map_err(|source| XenSetupError::Open {
            what: "/dev/xen/evtchn",
            source,
        })?;
        let gnttab = GrantTables::open().map_err(|source| XenSetupError::Open {
            what: "/dev/xen/gntdev",
            source,
        })?;
        let info = match DomainInfo::open() {
            Ok(i) => Some(i),
            Err(e) => {
                warn!(error = %e, "libxenctrl unavailable: dead domains will not be noticed");
                None
            }
        };
        let virq_port = match evtchn.bind_virq(sys::VIRQ_DOM_EXC) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(error = %e, "cannot bind VIRQ_DOM_EXC: dead domains will not be noticed");
                None
            }
        };
        Ok(XenRings {
            evtchn,
            gnttab,
            info,
            rings: HashMap::new(),
            port_owner: HashMap::new(),
            virq_port,
        })
    }

    fn add_ring(&mut self, domid: u32, page: RingPage, remote_port: u32) -> Result<(), Errno> {
        let port = self
            .evtchn
            .bind_interdomain(domid, remote_port)
            .map_err(|e| {
                warn!(domid, remote_port, error = %e, "cannot bind xenstore event channel");
                Errno::from_raw_os_error(e.raw_os_error().unwrap_or(0)).unwrap_or(Errno::Einval)
            })?;
        page.set_server_features(sys::FEATURE_ERROR);
        self.port_owner.insert(port, domid);
        self.rings.insert(
            domid,
            Ring {
                page,
                port,
                decoder: Decoder::new(),
                broken: false,
            },
        );
        self.evtchn.notify(port);
        Ok(())
    }

    /// Attaches dom0's own ring (the dom0 kernel's xenbus waits for us on it).
    pub fn attach_dom0(&mut self) -> Result<(), String> {
        let port = sys::dom0_store_port().map_err(|e| format!("/proc/xen/xsd_port: {e}"))?;
        let page = RingPage::map_dom0_kva().map_err(|e| format!("/proc/xen/xsd_kva: {e}"))?;
        self.add_ring(0, page, port)
            .map_err(|e| format!("binding dom0 store port {port}: {e}"))?;
        info!(port, "serving dom0's xenbus ring");
        Ok(())
    }
}

/// [`Platform`] over shared [`XenRings`] (the server uses the same rings for I/O).
#[derive(Debug)]
pub struct XenPlatform(pub Rc<RefCell<XenRings>>);

impl Platform for XenPlatform {
    fn introduce(&mut self, domid: u32, _gfn: u64, port: u32) -> Result<(), Errno> {
        let mut x = self.0.borrow_mut();
        let page = x.gnttab.map_xenstore_ring(domid).map_err(|e| {
            warn!(domid, error = %e, "cannot map the domain's xenstore ring (grant 1)");
            Errno::from_raw_os_error(e.raw_os_error().unwrap_or(0)).unwrap_or(Errno::Einval)
        })?;
        x.add_ring(domid, page, port)
    }

    fn reintroduce(&mut self, domid: u32, port: u32) -> Result<(), Errno> {
        let mut x = self.0.borrow_mut();
        let Some(old) = x.rings.get(&domid).map(|r| r.port) else {
            return Ok(());
        };
        x.evtchn.unbind(old);
        x.port_owner.remove(&old);
        let new = x
            .evtchn
            .bind_interdomain(domid, port)
            .map_err(|_| Errno::Einval)?;
        x.port_owner.insert(new, domid);
        if let Some(r) = x.rings.get_mut(&domid) {
            r.port = new;
        }
        Ok(())
    }

    fn release(&mut self, domid: u32) {
        let mut x = self.0.borrow_mut();
        if let Some(ring) = x.rings.remove(&domid) {
            x.evtchn.unbind(ring.port);
            x.port_owner.remove(&ring.port);
        }
    }

    fn domain_exists(&mut self, domid: u32) -> bool {
        let x = self.0.borrow();
        match &x.info {
            Some(info) => info.query(domid).is_some(),
            None => true,
        }
    }

    fn domain_state(&mut self, domid: u32) -> DomainState {
        let x = self.0.borrow();
        let Some(info) = &x.info else {
            return DomainState::Alive;
        };
        match info.query(domid) {
            None => DomainState::Dead,
            Some(f) if f.dying => DomainState::Dead,
            Some(f) if f.shutdown => DomainState::Shutdown,
            Some(_) => DomainState::Alive,
        }
    }
}
