//! The event loop: one thread, epoll (mio) over the Unix socket, its clients and (on Xen) the
//! event channel device. Work per wake-up is proportional to the connections that are ready,
//! not to the number connected, so idle connections cost nothing.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tracing::{debug, info, warn};

use super::core::{ConnId, Core};
use super::xen::XenRings;
use crate::sys;
use crate::wire::Decoder;

const LISTENER: Token = Token(0);
const EVTCHN: Token = Token(1);
const DOMAIN_CHECK: Token = Token(2);
/// How often, on Xen, the introduced domains are looked at even without `VIRQ_DOM_EXC`: a
/// safety net, so that one lost notification cannot leave a dead domain's toolstack waiting
/// for `@releaseDomain` forever (what it finds is logged as a warning).
const DOMAIN_CHECK_PERIOD: Duration = Duration::from_secs(5);
const FIRST_CONN_TOKEN: usize = 16;
const READ_CHUNK: usize = 8192;

struct SocketClient {
    stream: UnixStream,
    decoder: Decoder,
    /// Bytes read but not yet decoded (at most one read chunk).
    pending: Vec<u8>,
    /// Whether epoll also reports writability. Only while a reply did not fit in the socket
    /// buffer: otherwise every reply the client reads would wake the loop a second time for
    /// nothing (an EPOLLOUT edge per reply), and a wake-up is the dearest thing under Xen.
    wants_writable: bool,
}

/// The running daemon.
pub struct Server {
    core: Core,
    poll: Poll,
    listener: UnixListener,
    clients: HashMap<ConnId, SocketClient, ConnIdHasher>,
    xen: Option<Rc<RefCell<XenRings>>>,
    /// On Xen: the periodic domain check's timer.
    domain_check: Option<sys::PeriodicTimer>,
    /// Connections we stopped reading because of the outstanding-reply limit.
    stalled: HashSet<ConnId, ConnIdHasher>,
    /// Reused buffers of the loop (connections with output, domains with rings), so that a
    /// request costs no allocation here.
    ready: Vec<ConnId>,
    domids: Vec<u32>,
    read_buf: Vec<u8>,
}

/// Hasher for connection ids: they are handed out by us in sequence, never chosen by a
/// client, so a multiply is as good as SipHash here (which costs more than the lookup).
#[derive(Debug, Default, Clone, Copy)]
struct ConnIdHasher(u64);

impl std::hash::Hasher for ConnIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl std::hash::BuildHasher for ConnIdHasher {
    type Hasher = ConnIdHasher;

    fn build_hasher(&self) -> ConnIdHasher {
        ConnIdHasher(0)
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("core", &self.core)
            .field("clients", &self.clients.len())
            .finish()
    }
}

impl Server {
    /// Binds the socket (replacing a stale one) and prepares the loop.
    pub fn bind(
        core: Core,
        socket: &Path,
        xen: Option<Rc<RefCell<XenRings>>>,
    ) -> io::Result<Server> {
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(socket) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut listener = UnixListener::bind(socket)?;
        // Every socket client acts as dom0: only root may connect (as upstream).
        std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut domain_check = None;
        if let Some(x) = &xen {
            let fd: RawFd = x.borrow().evtchn.fd();
            poll.registry()
                .register(&mut SourceFd(&fd), EVTCHN, Interest::READABLE)?;
            let timer = sys::PeriodicTimer::new(DOMAIN_CHECK_PERIOD)?;
            poll.registry().register(
                &mut SourceFd(&timer.fd()),
                DOMAIN_CHECK,
                Interest::READABLE,
            )?;
            domain_check = Some(timer);
        }
        Ok(Server {
            core,
            poll,
            listener,
            clients: HashMap::default(),
            xen,
            domain_check,
            stalled: HashSet::default(),
            ready: Vec::new(),
            domids: Vec::new(),
            read_buf: Vec::new(),
        })
    }

    /// Runs until `stop` is set (checked after every wake-up).
    ///
    /// The loop sleeps without a timeout, as C xenstored does: every source is level-checked
    /// when it fires (sockets are read until they would block, the event channel is drained
    /// until it has nothing pending, and every ring is looked at after any wake-up), so no
    /// notification can be lost and there is nothing to poll for. A timeout would cost a timer
    /// armed and cancelled on every sleep, which under Xen is a hypercall per request.
    pub fn run(&mut self, stop: &Arc<AtomicBool>) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        // Pick up anything queued before the loop started (dom0's ring may hold requests).
        self.handle_evtchn();
        let mut more = self.flush_all();
        while !stop.load(Ordering::Relaxed) {
            // Output left over by a bounded flush round is sent before sleeping.
            let timeout = more.then_some(Duration::ZERO);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut ring_event = false;
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    EVTCHN => ring_event = true,
                    DOMAIN_CHECK => self.periodic_domain_check(),
                    Token(t) => {
                        let id = (t - FIRST_CONN_TOKEN) as ConnId;
                        if ev.is_readable() || ev.is_read_closed() {
                            self.read_client(id);
                        }
                        if ev.is_writable() {
                            self.flush(id);
                        }
                    }
                }
            }
            if ring_event {
                self.handle_evtchn();
            }
            more = self.flush_all();
        }
        info!("xenstored stopping");
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let id = self.core.add_connection(super::core::ConnKind::Socket);
                    let token = Token(id as usize + FIRST_CONN_TOKEN);
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        warn!(error = %e, "cannot watch new client socket");
                        self.core.remove_connection(id);
                        continue;
                    }
                    self.clients.insert(
                        id,
                        SocketClient {
                            stream,
                            decoder: Decoder::new(),
                            pending: Vec::new(),
                            wants_writable: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn close(&mut self, id: ConnId) {
        if let Some(mut c) = self.clients.remove(&id) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.stalled.remove(&id);
        self.core.remove_connection(id);
    }

    fn read_client(&mut self, id: ConnId) {
        // One buffer for the daemon's life: not zeroed again for every request.
        let mut buf = std::mem::take(&mut self.read_buf);
        buf.resize(READ_CHUNK, 0);
        self.read_client_into(id, &mut buf);
        self.read_buf = buf;
    }

    fn read_client_into(&mut self, id: ConnId, buf: &mut [u8]) {
        loop {
            // Requests already read are handled first; we read more only when none are left,
            // so at most one chunk per connection is ever buffered here.
            if !self.process_pending(id) {
                return;
            }
            let Some(client) = self.clients.get_mut(&id) else {
                return;
            };
            let n = match client.stream.read(buf) {
                Ok(0) => {
                    if !client.decoder.at_boundary() {
                        debug!(conn = id, "client closed mid-message");
                    }
                    self.close(id);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!(conn = id, error = %e, "client read failed");
                    self.close(id);
                    return;
                }
            };
            client.pending.extend_from_slice(&buf[..n]);
            if n < buf.len() {
                // The socket is drained; epoll (edge-triggered) reports the next data.
                self.process_pending(id);
                return;
            }
        }
    }

    /// Handles buffered requests while the connection is within its outstanding-reply
    /// limit. Returns false if the connection stalled or was closed.
    fn process_pending(&mut self, id: ConnId) -> bool {
        loop {
            if !self.core.accepts_input(id) {
                self.stalled.insert(id);
                return false;
            }
            let Some(client) = self.clients.get_mut(&id) else {
                return false;
            };
            if client.pending.is_empty() {
                self.stalled.remove(&id);
                return true;
            }
            let mut input = client.pending.as_slice();
            let decoded = client.decoder.decode(&mut input);
            let consumed = client.pending.len() - input.len();
            client.pending.drain(..consumed);
            match decoded {
                Ok(Some(msg)) => self.core.handle(id, msg),
                Ok(None) => {}
                Err(e) => {
                    warn!(conn = id, error = %e, "dropping socket client that violated the protocol");
                    self.close(id);
                    return false;
                }
            }
        }
    }

    fn flush(&mut self, id: ConnId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        let Some(outbox) = self.core.outbox(id) else {
            return;
        };
        let mut failed = false;
        let mut blocked = false;
        while let Some(front) = outbox.front() {
            match client.stream.write(front) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => outbox.consume(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed && blocked != client.wants_writable {
            // Ask for EPOLLOUT only while output waits for socket space.
            let interest = if blocked {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = Token(id as usize + FIRST_CONN_TOKEN);
            match self
                .poll
                .registry()
                .reregister(&mut client.stream, token, interest)
            {
                Ok(()) => client.wants_writable = blocked,
                Err(e) => {
                    warn!(conn = id, error = %e, "cannot change what we wait for on a client socket");
                    failed = true;
                }
            }
        }
        if failed {
            self.close(id);
        } else if self.stalled.contains(&id) && self.core.accepts_input(id) {
            self.read_client(id);
        }
    }

    /// Sends queued output; returns true if some is left for the next round (a round is
    /// bounded so that one busy client cannot keep the others waiting).
    fn flush_all(&mut self) -> bool {
        // Flushing may resume stalled readers, whose requests produce more output.
        let mut ready = std::mem::take(&mut self.ready);
        for _ in 0..64 {
            self.core.take_connections_with_output_into(&mut ready);
            if ready.is_empty() {
                break;
            }
            for &id in &ready {
                if self.clients.contains_key(&id) {
                    self.flush(id);
                }
            }
            self.service_rings();
        }
        let done = ready.is_empty();
        self.ready = ready;
        if done {
            return false;
        }
        self.core.has_output_pending()
    }

    /// The safety net behind `VIRQ_DOM_EXC` (see [`DOMAIN_CHECK_PERIOD`]).
    fn periodic_domain_check(&mut self) {
        if let Some(t) = &self.domain_check {
            t.acknowledge();
        }
        // A notification may be on its way: take pending ports first, so that only a change
        // no notification announced is reported as one.
        self.handle_evtchn();
        if self.core.check_domains() {
            warn!("the periodic check found a domain shut down or dead that no VIRQ_DOM_EXC had announced (lost, or not yet delivered)");
        }
    }

    fn handle_evtchn(&mut self) {
        let Some(xen) = self.xen.clone() else { return };
        let mut dom_exc = false;
        {
            let x = xen.borrow();
            for port in x.evtchn.take_pending() {
                if Some(port) == x.virq_port {
                    dom_exc = true;
                }
            }
        }
        if dom_exc {
            debug!("VIRQ_DOM_EXC: checking the introduced domains");
            self.core.check_domains();
        }
        self.service_rings();
    }

    /// Reads requests from and writes replies to every ring that has work.
    fn service_rings(&mut self) {
        let Some(xen) = self.xen.clone() else { return };
        let mut domids = std::mem::take(&mut self.domids);
        domids.clear();
        domids.extend(xen.borrow().rings.keys().copied());
        for &domid in &domids {
            let Some(conn) = self.core.domain_connection(domid) else {
                continue;
            };
            // Output first: frees ring space and may let us accept more input. The peer is
            // notified once at the end of the pass, for requests taken and replies written
            // alike: it looks at both rings on any event, and a notification per direction
            // would wake dom0's xenbus thread twice per request.
            let mut notify = self.write_ring(&xen, domid, conn);
            while self.core.accepts_input(conn) {
                let bytes = {
                    let x = xen.borrow();
                    let Some(ring) = x.rings.get(&domid) else {
                        break;
                    };
                    if ring.broken || !ring.page.has_requests() {
                        break;
                    }
                    match ring.page.read_requests(1024) {
                        Ok(b) => b,
                        Err(e) => {
                            warn!(domid, error = %e, "stopping service of a domain with a corrupt ring");
                            ring.page.set_error(sys::ERROR_RINGIDX);
                            drop(x);
                            if let Some(r) = xen.borrow_mut().rings.get_mut(&domid) {
                                r.broken = true;
                            }
                            break;
                        }
                    }
                };
                notify |= !bytes.is_empty();
                let mut input = bytes.as_slice();
                while !input.is_empty() {
                    let decoded = {
                        let mut x = xen.borrow_mut();
                        let Some(ring) = x.rings.get_mut(&domid) else {
                            break;
                        };
                        ring.decoder.decode(&mut input)
                    };
                    match decoded {
                        Ok(Some(msg)) => self.core.handle(conn, msg),
                        Ok(None) => {}
                        Err(e) => {
                            warn!(domid, error = %e, "domain violated the protocol; no longer serving its ring");
                            if let Some(r) = xen.borrow_mut().rings.get_mut(&domid) {
                                r.page.set_error(sys::ERROR_PROTO);
                                r.broken = true;
                            }
                            break;
                        }
                    }
                }
                notify |= self.write_ring(&xen, domid, conn);
            }
            if notify {
                let x = xen.borrow();
                if let Some(ring) = x.rings.get(&domid) {
                    x.evtchn.notify(ring.port);
                }
            }
        }
        self.domids = domids;
    }

    /// Moves queued output onto the domain's response ring; true if anything was written
    /// (the caller notifies).
    fn write_ring(&mut self, xen: &Rc<RefCell<XenRings>>, domid: u32, conn: ConnId) -> bool {
        let x = xen.borrow();
        let Some(ring) = x.rings.get(&domid) else {
            return false;
        };
        if ring.broken {
            return false;
        }
        let Some(outbox) = self.core.outbox(conn) else {
            return false;
        };
        let mut wrote = false;
        while let Some(front) = outbox.front() {
            match ring.page.write_responses(front) {
                Ok(0) => break,
                Ok(n) => {
                    outbox.consume(n);
                    wrote = true;
                }
                Err(e) => {
                    warn!(domid, error = %e, "corrupt response ring");
                    break;
                }
            }
        }
        wrote
    }
}
