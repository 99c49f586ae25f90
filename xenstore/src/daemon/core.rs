//! The store and the request semantics, independent of any transport.
//!
//! [`Core::handle`] takes one decoded request from one connection and queues the reply (and
//! any watch events, for any connection) in per-connection outboxes. Nothing here blocks or
//! does I/O; the server drains the outboxes. Semantics follow upstream C xenstored (Xen 4.17),
//! which the conformance suite checks side by side.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use tracing::{debug, info, warn};

use super::config::Quotas;
use crate::wire::{self, Errno, Message, MsgType};

/// Identifies a connection for the life of the daemon (never reused).
pub type ConnId = u64;

const PERM_READ: u8 = 1;
const PERM_WRITE: u8 = 2;
const PERM_OWNER: u8 = 4;

/// First reserved domain id (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;
/// `DOMID_SELF`.
const DOMID_SELF: u32 = 0x7ff0;

const SPECIAL_NODES: [&str; 2] = ["@introduceDomain", "@releaseDomain"];

/// One permission entry: `n`, `r`, `w` or `b` followed by a domain id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perm {
    /// Domain the entry is about (for the first entry: the owner).
    pub domid: u32,
    /// Read access.
    pub read: bool,
    /// Write access.
    pub write: bool,
    /// Entry names a domain that does not exist: kept for display, ignored for access, so a
    /// future domain reusing the id gets nothing (XSA-322).
    pub ignore: bool,
}

impl Perm {
    fn bits(&self) -> u8 {
        (if self.read { PERM_READ } else { 0 }) | (if self.write { PERM_WRITE } else { 0 })
    }

    /// The wire form, e.g. `r5`.
    pub fn to_wire(&self) -> String {
        let c = match (self.read, self.write) {
            (false, false) => 'n',
            (true, false) => 'r',
            (false, true) => 'w',
            (true, true) => 'b',
        };
        format!("{c}{}", self.domid)
    }

    /// Parses the wire form like C's `xenstore_strings_to_perms` (domain id as `strtol(.., 0)`).
    pub fn parse(s: &[u8]) -> Option<Perm> {
        let (&kind, rest) = s.split_first()?;
        let (read, write) = match kind {
            b'n' => (false, false),
            b'r' => (true, false),
            b'w' => (false, true),
            b'b' => (true, true),
            _ => return None,
        };
        Some(Perm {
            domid: strtol_base0(rest) as u32,
            read,
            write,
            ignore: false,
        })
    }
}

/// C `strtol(s, NULL, 0)`: optional whitespace and sign, `0x` hex, leading-0 octal, stops at
/// the first invalid digit, saturates.
fn strtol_base0(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && (s[i] as char).is_ascii_whitespace() {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut radix = 10;
    if s[i..].starts_with(b"0x") || s[i..].starts_with(b"0X") {
        if s.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit()) {
            radix = 16;
            i += 2;
        }
    } else if s.get(i) == Some(&b'0') {
        radix = 8;
    }
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(radix)) {
        v = v
            .saturating_mul(i64::from(radix))
            .saturating_add(i64::from(d));
        i += 1;
    }
    if neg {
        -v
    } else {
        v
    }
}

/// C `atoi`: whitespace, sign, decimal digits; garbage gives 0.
pub fn atoi(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && (s[i] as char).is_ascii_whitespace() {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    let v = if neg { -v } else { v };
    // C int truncation.
    i64::from(v as i32)
}

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Value bytes.
    pub value: Vec<u8>,
    /// Permissions, first entry is the owner.
    pub perms: Vec<Perm>,
    /// Child names in creation order (as upstream lists them).
    pub children: Vec<String>,
    /// Generation of the last modification (transaction conflict detection).
    pub generation: u64,
}

impl Node {
    fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.domid)
    }

    /// Accounted size for the node-size quota.
    fn accounted_size(&self) -> usize {
        self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
            + self.perms.len() * 8
    }
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// True if `child` is `parent` or below it.
fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    child
        .strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a connection is, as far as permissions go.
#[derive(Debug, Clone, Copy)]
struct Who {
    domid: u32,
    privileged: bool,
    target: Option<u32>,
}

impl Who {
    fn perm_for(&self, perms: &[Perm]) -> u8 {
        let Some(first) = perms.first() else { return 0 };
        let matches = |p: &Perm| p.domid == self.domid || Some(p.domid) == self.target;
        if self.privileged || matches(first) {
            return PERM_READ | PERM_WRITE | PERM_OWNER;
        }
        for p in &perms[1..] {
            if !p.ignore && matches(p) {
                return p.bits();
            }
        }
        first.bits()
    }
}

#[derive(Debug)]
struct Watch {
    /// Canonical (absolute or `@`) path.
    path: String,
    token: Vec<u8>,
    /// Bytes to strip from event paths for watches registered with a relative path.
    relative_prefix: usize,
}

/// What kind of peer a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A tool on the Unix socket: acts as dom0.
    Socket,
    /// A domain's ring (dom0's own in-kernel xenbus included).
    Domain(u32),
}

/// Replies and events waiting to be sent to one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Encoded messages, oldest first, each flagged true if it is a reply.
    queue: VecDeque<(Vec<u8>, bool)>,
    /// Bytes already sent of the front message.
    front_sent: usize,
    bytes: usize,
    replies: usize,
    dropped_events: u64,
}

impl Outbox {
    /// Marks `n` bytes of the front message as sent; pops it when complete.
    pub fn consume(&mut self, n: usize) {
        self.front_sent += n;
        if let Some((front, is_reply)) = self.queue.front() {
            if self.front_sent >= front.len() {
                self.bytes = self.bytes.saturating_sub(front.len());
                if *is_reply {
                    self.replies = self.replies.saturating_sub(1);
                }
                self.queue.pop_front();
                self.front_sent = 0;
            }
        }
    }

    /// The unsent part of the front message.
    pub fn front(&self) -> Option<&[u8]> {
        self.queue
            .front()
            .map(|(m, _)| &m[self.front_sent.min(m.len())..])
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Watch events dropped because the client did not read.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }
}

#[derive(Debug)]
struct Conn {
    kind: ConnKind,
    who: Who,
    watches: Vec<Watch>,
    next_tx: u32,
    open_txs: BTreeSet<u32>,
    outbox: Outbox,
    /// Listed in `Core::with_output` (so it is listed once however much it gets).
    output_listed: bool,
}

#[derive(Debug, Clone)]
struct QueuedEvent {
    path: String,
    exact: bool,
    old_perms: Option<Vec<Perm>>,
}

#[derive(Debug, Default)]
struct Transaction {
    /// Generation of every node seen by the transaction (None: did not exist).
    accessed: HashMap<String, Option<u64>>,
    /// Transaction-local versions (None: deleted).
    modified: HashMap<String, Option<Node>>,
    /// Node ownership changes, for the nodes quota.
    owner_delta: HashMap<u32, i64>,
    events: Vec<QueuedEvent>,
    event_index: HashMap<String, usize>,
}

#[derive(Debug)]
struct DomainEntry {
    conn: ConnId,
    shutdown: bool,
}

/// State of a domain as the hypervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    /// Running (or paused).
    Alive,
    /// Shut down but not yet destroyed.
    Shutdown,
    /// Dying or gone.
    Dead,
}

/// What the daemon needs from the platform (Xen, or nothing on a plain host).
pub trait Platform {
    /// Maps the domain's ring and binds its event channel. `Err` is sent back to the caller.
    fn introduce(&mut self, domid: u32, gfn: u64, port: u32) -> Result<(), Errno>;
    /// Re-binds the event channel of an already introduced domain.
    fn reintroduce(&mut self, domid: u32, port: u32) -> Result<(), Errno>;
    /// Unmaps and unbinds a domain's ring.
    fn release(&mut self, domid: u32);
    /// Whether the hypervisor knows the domain (for permissions naming it).
    fn domain_exists(&mut self, domid: u32) -> bool;
    /// Current state of an introduced domain.
    fn domain_state(&mut self, domid: u32) -> DomainState;
}

/// The platform without Xen: no rings; only dom0 and introduced domains exist.
#[derive(Debug, Default)]
pub struct NoXen;

impl Platform for NoXen {
    fn introduce(&mut self, _domid: u32, _gfn: u64, _port: u32) -> Result<(), Errno> {
        Err(Errno::Enosys)
    }
    fn reintroduce(&mut self, _domid: u32, _port: u32) -> Result<(), Errno> {
        Ok(())
    }
    fn release(&mut self, _domid: u32) {}
    fn domain_exists(&mut self, _domid: u32) -> bool {
        false
    }
    fn domain_state(&mut self, _domid: u32) -> DomainState {
        DomainState::Alive
    }
}

/// A reply's payload, stored behind room for its header so that the message is built in the
/// buffer the payload was written to (one allocation and one copy per reply).
#[derive(Debug)]
struct Body(Vec<u8>);

impl Body {
    fn new(payload: &[u8]) -> Body {
        let mut buf = Vec::with_capacity(wire::HEADER_LEN + payload.len());
        buf.extend_from_slice(&[0; wire::HEADER_LEN]);
        buf.extend_from_slice(payload);
        Body(buf)
    }

    fn ok() -> Body {
        Body::new(b"OK\0")
    }

    fn payload_len(&self) -> usize {
        self.0.len() - wire::HEADER_LEN
    }

    /// The encoded message; the caller has checked the payload against [`wire::PAYLOAD_MAX`].
    fn into_message(mut self, msg_type: MsgType, req_id: u32, tx_id: u32) -> Vec<u8> {
        let header = wire::Header {
            msg_type: msg_type.code(),
            req_id,
            tx_id,
            len: self.payload_len() as u32,
        };
        self.0[..wire::HEADER_LEN].copy_from_slice(&header.encode());
        self.0
    }
}

impl From<Vec<u8>> for Body {
    fn from(payload: Vec<u8>) -> Body {
        Body::new(&payload)
    }
}

type Reply = Result<Body, Errno>;

/// The daemon state: tree, connections, transactions, domains.
pub struct Core {
    quotas: Quotas,
    nodes: HashMap<String, Node>,
    special: HashMap<&'static str, Vec<Perm>>,
    owner_counts: HashMap<u32, i64>,
    generation: u64,
    conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    txs: HashMap<(ConnId, u32), Transaction>,
    domains: BTreeMap<u32, DomainEntry>,
    platform: Box<dyn Platform>,
    /// Connections that got output since the server last looked, each once.
    with_output: Vec<ConnId>,
    /// Connections with at least one watch: the only ones an event is matched against.
    watchers: BTreeSet<ConnId>,
    /// Set while a request is handled: the initial event of a new watch goes after the reply.
    deferred: Vec<(ConnId, Vec<u8>)>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("nodes", &self.nodes.len())
            .field("connections", &self.conns.len())
            .field("transactions", &self.txs.len())
            .field("domains", &self.domains.len())
            .finish()
    }
}

fn dom0_perms() -> Vec<Perm> {
    vec![Perm {
        domid: 0,
        read: false,
        write: false,
        ignore: false,
    }]
}

impl Core {
    /// A store holding the nodes upstream creates at start: `/`, `/tool`, `/tool/xenstored`,
    /// `/local`, `/local/domain` (created by tools later too).
    pub fn new(quotas: Quotas, platform: Box<dyn Platform>) -> Core {
        let mut core = Core {
            quotas,
            nodes: HashMap::new(),
            special: SPECIAL_NODES.iter().map(|&n| (n, dom0_perms())).collect(),
            owner_counts: HashMap::new(),
            generation: 0,
            conns: BTreeMap::new(),
            next_conn: 1,
            txs: HashMap::new(),
            domains: BTreeMap::new(),
            platform,
            with_output: Vec::new(),
            watchers: BTreeSet::new(),
            deferred: Vec::new(),
        };
        core.generation += 1;
        core.nodes.insert(
            "/".into(),
            Node {
                value: Vec::new(),
                perms: dom0_perms(),
                children: Vec::new(),
                generation: core.generation,
            },
        );
        core.owner_counts.insert(0, 1);
        let root = Who {
            domid: 0,
            privileged: true,
            target: None,
        };
        for p in ["/tool/xenstored", "/local/domain"] {
            // Cannot fail for dom0 on an empty store.
            let _ = core.create_node(root, None, p, Vec::new());
        }
        core
    }

    /// Number of nodes in the store.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Registers a new connection.
    pub fn add_connection(&mut self, kind: ConnKind) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let domid = match kind {
            ConnKind::Socket => 0,
            ConnKind::Domain(d) => d,
        };
        let who = Who {
            domid,
            privileged: domid == 0,
            target: None,
        };
        self.conns.insert(
            id,
            Conn {
                kind,
                who,
                watches: Vec::new(),
                next_tx: 1,
                open_txs: BTreeSet::new(),
                outbox: Outbox::default(),
                output_listed: false,
            },
        );
        debug!(conn = id, ?kind, "connection added");
        id
    }

    /// Drops a connection with its watches and transactions. A domain's connection going away
    /// does not release the domain (only RELEASE or the domain's death do).
    pub fn remove_connection(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(&id) {
            for tx in conn.open_txs {
                self.txs.remove(&(id, tx));
            }
            debug!(conn = id, "connection removed");
        }
        self.with_output.retain(|&c| c != id);
        self.watchers.remove(&id);
    }

    /// The outbox of a connection.
    pub fn outbox(&mut self, id: ConnId) -> Option<&mut Outbox> {
        self.conns.get_mut(&id).map(|c| &mut c.outbox)
    }

    /// Connections that got output since the last call.
    pub fn take_connections_with_output(&mut self) -> Vec<ConnId> {
        let mut ids = Vec::new();
        self.take_connections_with_output_into(&mut ids);
        ids
    }

    /// [`Core::take_connections_with_output`] into the caller's buffer (replacing its
    /// contents), so that the event loop allocates nothing per request.
    pub fn take_connections_with_output_into(&mut self, ids: &mut Vec<ConnId>) {
        ids.clear();
        std::mem::swap(ids, &mut self.with_output);
        for id in ids.iter() {
            if let Some(c) = self.conns.get_mut(id) {
                c.output_listed = false;
            }
        }
    }

    /// True if some connection got output not yet taken by
    /// [`Core::take_connections_with_output`].
    pub fn has_output_pending(&self) -> bool {
        !self.with_output.is_empty()
    }

    /// False while the connection has `outstanding` replies it has not consumed: we stop
    /// reading its requests until it catches up.
    pub fn accepts_input(&self, id: ConnId) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.outbox.replies < self.quotas.max_outstanding.max(1))
    }

    /// The connection serving a domain's ring.
    pub fn domain_connection(&self, domid: u32) -> Option<ConnId> {
        self.domains.get(&domid).map(|d| d.conn)
    }

    /// Introduced domains.
    pub fn introduced_domains(&self) -> Vec<u32> {
        self.domains.keys().copied().collect()
    }

    /// What kind of peer a connection is.
    pub fn connection_kind(&self, id: ConnId) -> Option<ConnKind> {
        self.conns.get(&id).map(|c| c.kind)
    }

    /// Connection count (for logs and tests).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn push(&mut self, id: ConnId, bytes: Vec<u8>, is_event: bool) {
        let limit = self.quotas.max_queued_output_bytes;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let out = &mut conn.outbox;
        if is_event && out.bytes + bytes.len() > limit {
            out.dropped_events += 1;
            if out.dropped_events.is_power_of_two() {
                warn!(
                    conn = id,
                    dropped = out.dropped_events,
                    "client does not read its watch events; dropping"
                );
            }
            return;
        }
        out.bytes += bytes.len();
        if !is_event {
            out.replies += 1;
        }
        out.queue.push_back((bytes, !is_event));
        if !conn.output_listed {
            conn.output_listed = true;
            self.with_output.push(id);
        }
    }

    fn encode(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Vec<u8> {
        let m = Message::new(msg_type, req_id, tx_id, payload);
        // Payloads are bounded by construction (E2BIG is checked by callers); fall back to an
        // error reply rather than panic if one ever is not.
        m.encode().unwrap_or_else(|_| {
            Message::new(
                MsgType::Error,
                req_id,
                tx_id,
                wire::join_strings(&[Errno::E2big.name()]),
            )
            .encode()
            .unwrap_or_default()
        })
    }

    fn watch_event(path: &str, token: &[u8]) -> Vec<u8> {
        Self::encode(
            MsgType::WatchEvent,
            0,
            0,
            wire::join_strings(&[path.as_bytes(), token]),
        )
    }

    /// Handles one request from a connection; replies and events go to outboxes.
    pub fn handle(&mut self, id: ConnId, msg: Message) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let who = conn.who;
        let kind = msg.kind();
        let result = self.dispatch(id, who, &msg);
        let bytes = match result {
            Ok(body) => {
                let t = kind.unwrap_or(MsgType::Error);
                if body.payload_len() > wire::PAYLOAD_MAX {
                    Self::encode(
                        MsgType::Error,
                        msg.req_id,
                        msg.tx_id,
                        wire::join_strings(&[Errno::E2big.name()]),
                    )
                } else {
                    body.into_message(t, msg.req_id, msg.tx_id)
                }
            }
            Err(e) => {
                debug!(
                    conn = id,
                    op = kind.map_or("unknown", MsgType::name),
                    error = e.name(),
                    "request failed"
                );
                Self::encode(
                    MsgType::Error,
                    msg.req_id,
                    msg.tx_id,
                    wire::join_strings(&[e.name()]),
                )
            }
        };
        self.push(id, bytes, false);
        for (target, event) in std::mem::take(&mut self.deferred) {
            self.push(target, event, true);
        }
    }

    fn dispatch(&mut self, id: ConnId, who: Who, msg: &Message) -> Reply {
        let Some(kind) = msg.kind() else {
            return Err(Errno::Enosys);
        };
        let privileged_only = matches!(
            kind,
            MsgType::Control
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::IsDomainIntroduced
                | MsgType::Resume
                | MsgType::SetTarget
        );
        let implemented = !matches!(
            kind,
            MsgType::WatchEvent
                | MsgType::Error
                | MsgType::Invalid
                | MsgType::GetFeature
                | MsgType::SetFeature
                | MsgType::GetQuota
                | MsgType::SetQuota
        );
        if !implemented {
            return Err(Errno::Enosys);
        }
        if privileged_only && !who.privileged {
            return Err(Errno::Eacces);
        }
        let tx = if matches!(kind, MsgType::Watch | MsgType::Unwatch) || msg.tx_id == 0 {
            None
        } else if self.txs.contains_key(&(id, msg.tx_id)) {
            Some((id, msg.tx_id))
        } else {
            return Err(Errno::Enoent);
        };
        if let (Some(key), false) = (tx, kind == MsgType::TransactionEnd) {
            let limit = self.quotas.max_transaction_nodes;
            if !who.privileged
                && self
                    .txs
                    .get(&key)
                    .is_some_and(|t| t.accessed.len() >= limit)
            {
                return Err(Errno::Enospc);
            }
        }
        let p = msg.payload.as_slice();
        match kind {
            MsgType::Read => self.do_read(id, who, tx, p),
            MsgType::Directory => self.do_directory(id, who, tx, p),
            MsgType::DirectoryPart => self.do_directory_part(id, who, tx, p),
            MsgType::GetPerms => self.do_get_perms(id, who, tx, p),
            MsgType::Write => self.do_write(id, who, tx, p),
            MsgType::Mkdir => self.do_mkdir(id, who, tx, p),
            MsgType::Rm => self.do_rm(id, who, tx, p),
            MsgType::SetPerms => self.do_set_perms(id, who, tx, p),
            MsgType::Watch => self.do_watch(id, who, p),
            MsgType::Unwatch => self.do_unwatch(id, who, p),
            MsgType::TransactionStart => self.do_transaction_start(id, who, tx),
            MsgType::TransactionEnd => self.do_transaction_end(id, tx, p),
            MsgType::Introduce => self.do_introduce(p),
            MsgType::Release => self.do_release(p),
            MsgType::GetDomainPath => {
                let arg = wire::one_arg(p).ok_or(Errno::Einval)?;
                Ok(format!("/local/domain/{}\0", atoi(arg) as i32 as u32)
                    .into_bytes()
                    .into())
            }
            MsgType::IsDomainIntroduced => {
                let domid = atoi(wire::one_arg(p).ok_or(Errno::Einval)?) as u32;
                let yes = domid == DOMID_SELF || domid == 0 || self.domains.contains_key(&domid);
                Ok(Body::new(if yes { b"T\0" } else { b"F\0" }))
            }
            MsgType::Resume => {
                let domid = atoi(wire::one_arg(p).ok_or(Errno::Einval)?) as u32;
                self.connected_domain(domid)?;
                if let Some(d) = self.domains.get_mut(&domid) {
                    d.shutdown = false;
                }
                Ok(Body::ok())
            }
            MsgType::SetTarget => {
                let args = wire::split_strings(p);
                if args.len() < 2 {
                    return Err(Errno::Einval);
                }
                let (domid, target) = (atoi(args[0]) as u32, atoi(args[1]) as u32);
                let conn = self.connected_domain(domid)?;
                self.connected_domain(target)?;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.who.target = Some(target);
                }
                Ok(Body::ok())
            }
            MsgType::ResetWatches => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.watches.clear();
                    self.watchers.remove(&id);
                    for tx in std::mem::take(&mut c.open_txs) {
                        self.txs.remove(&(id, tx));
                    }
                }
                Ok(Body::ok())
            }
            MsgType::Control => self.do_control(p),
            MsgType::WatchEvent
            | MsgType::Error
            | MsgType::Invalid
            | MsgType::GetFeature
            | MsgType::SetFeature
            | MsgType::GetQuota
            | MsgType::SetQuota => Err(Errno::Enosys),
        }
    }

    fn home(who: Who) -> String {
        format!("/local/domain/{}", who.domid)
    }

    /// C `canonicalize()`: syntax, relative paths, length limits.
    /// Absolute paths are borrowed from the request, not copied.
    fn canonicalize<'a>(
        &self,
        who: Who,
        raw: Option<&'a [u8]>,
        allow_special: bool,
    ) -> Result<Cow<'a, str>, Errno> {
        let raw = raw.ok_or(Errno::Einval)?;
        wire::check_path_syntax(raw, allow_special).map_err(|_| Errno::Einval)?;
        // Syntax check guarantees ASCII.
        let text = std::str::from_utf8(raw).map_err(|_| Errno::Einval)?;
        let full = if raw[0] == b'/' || raw[0] == b'@' {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(format!("{}/{}", Self::home(who), text))
        };
        if full.len() > wire::ABS_PATH_MAX {
            return Err(Errno::Einval);
        }
        // As upstream (4.17 `is_valid_nodename`), for every connection: the part below
        // `/local/domain/<id>/` may not exceed the path quota (2048).
        if full.starts_with('/') {
            let local_off = full
                .strip_prefix("/local/domain/")
                .and_then(|rest| {
                    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                    (digits > 0 && digits <= 5 && rest.as_bytes().get(digits) == Some(&b'/'))
                        .then_some("/local/domain/".len() + digits + 1)
                })
                .unwrap_or(0);
            if full.len() - local_off > self.quotas.max_relative_path {
                return Err(Errno::Einval);
            }
        }
        Ok(full)
    }

    /// Permissions of a special (`@`) watch node; None for any other path. Skips the lookup
    /// for ordinary paths, which is every request's case.
    fn special_perms(&self, path: &str) -> Option<&Vec<Perm>> {
        if path.starts_with('@') {
            self.special.get(path)
        } else {
            None
        }
    }

    /// Looks a node up through the transaction (recording the access) or in the store.
    fn view(&mut self, tx: Option<(ConnId, u32)>, path: &str) -> Option<&Node> {
        if let Some(key) = tx {
            if let Some(t) = self.txs.get_mut(&key) {
                if !t.modified.contains_key(path) {
                    if !t.accessed.contains_key(path) {
                        let seen = self.nodes.get(path).map(|n| n.generation);
                        t.accessed.insert(path.to_string(), seen);
                    }
                    return self.nodes.get(path);
                }
                return self
                    .txs
                    .get(&key)
                    .and_then(|t| t.modified.get(path))
                    .and_then(Option::as_ref);
            }
        }
        self.nodes.get(path)
    }

    fn view_perms(&mut self, tx: Option<(ConnId, u32)>, path: &str) -> Option<Vec<Perm>> {
        if let Some(special) = self.special_perms(path) {
            return Some(special.clone());
        }
        self.view(tx, path).map(|n| n.perms.clone())
    }

    /// `who`'s rights on `path` through the transaction; None if the node is absent.
    fn view_rights(&mut self, who: Who, tx: Option<(ConnId, u32)>, path: &str) -> Option<u8> {
        if let Some(special) = self.special_perms(path) {
            return Some(who.perm_for(special));
        }
        self.view(tx, path).map(|n| who.perm_for(&n.perms))
    }

    /// Nearest existing ancestor's permission for `who` (C `ask_parents`).
    fn parent_perm(&mut self, who: Who, tx: Option<(ConnId, u32)>, path: &str) -> u8 {
        let mut cur = path;
        loop {
            let parent = parent_of(cur);
            if let Some(rights) = self.view(tx, parent).map(|n| who.perm_for(&n.perms)) {
                return rights;
            }
            if parent == "/" {
                return 0;
            }
            cur = parent;
        }
    }

    /// C `get_node` + `get_node_chk_perm`: Ok(true) node exists and `need` is granted;
    /// Ok(false) node is absent and the caller may know that; Err otherwise.
    fn check_node(
        &mut self,
        who: Who,
        tx: Option<(ConnId, u32)>,
        path: &str,
        need: u8,
    ) -> Result<bool, Errno> {
        match self.view_rights(who, tx, path) {
            Some(rights) if rights & need == need => Ok(true),
            Some(_) => Err(Errno::Eacces),
            None => {
                if self.parent_perm(who, tx, path) & need != 0 {
                    Ok(false)
                } else {
                    Err(Errno::Eacces)
                }
            }
        }
    }

    fn do_read(&mut self, _id: ConnId, who: Who, tx: Option<(ConnId, u32)>, p: &[u8]) -> Reply {
        let path = self.canonicalize(who, wire::one_arg(p), false)?;
        if tx.is_none() {
            // The common case in one lookup: an existing node outside a transaction (the
            // same decision as `check_node`, whose other cases are for absent nodes).
            if let Some(node) = self.nodes.get(&*path) {
                return if who.perm_for(&node.perms) & PERM_READ != 0 {
                    Ok(Body::new(&node.value))
                } else {
                    Err(Errno::Eacces)
                };
            }
        }
        if !self.check_node(who, tx, &path, PERM_READ)? {
            return Err(Errno::Enoent);
        }
        Ok(Body::new(
            self.view(tx, &path).map_or(&[][..], |n| n.value.as_slice()),
        ))
    }

    fn children_bytes(node: &Node) -> Vec<u8> {
        wire::join_strings(&node.children)
    }

    fn do_directory(
        &mut self,
        _id: ConnId,
        who: Who,
        tx: Option<(ConnId, u32)>,
        p: &[u8],
    ) -> Reply {
        let path = self.canonicalize(who, wire::one_arg(p), false)?;
        if !self.check_node(who, tx, &path, PERM_READ)? {
            return Err(Errno::Enoent);
        }
        let bytes = self
            .view(tx, &path)
            .map(Self::children_bytes)
            .unwrap_or_default();
        if bytes.len() > wire::PAYLOAD_MAX {
            return Err(Errno::E2big);
        }
        Ok(bytes.into())
    }

    fn do_directory_part(
        &mut self,
        _id: ConnId,
        who: Who,
        tx: Option<(ConnId, u32)>,
        p: &[u8],
    ) -> Reply {
        let args = wire::split_strings(p);
        if args.len() != 2 {
            return Err(Errno::Einval);
        }
        let path = self.canonicalize(who, Some(args[0]), false)?;
        if !self.check_node(who, tx, &path, PERM_READ)? {
            return Err(Errno::Enoent);
        }
        let offset = atoi(args[1]).max(0) as usize;
        let (children, generation) = self
            .view(tx, &path)
            .map(|n| (Self::children_bytes(n), n.generation))
            .unwrap_or_default();
        let mut out = format!("{generation}\0").into_bytes();
        if offset >= children.len() {
            out.push(0);
            return Ok(out.into());
        }
        let max = wire::PAYLOAD_MAX - out.len() - 1;
        let mut len = 0;
        let rest = &children[offset..];
        for name in rest.split_inclusive(|&b| b == 0) {
            if len + name.len() > max {
                break;
            }
            len += name.len();
        }
        out.extend_from_slice(&rest[..len]);
        if offset + len == children.len() {
            out.push(0);
        }
        Ok(out.into())
    }

    fn do_get_perms(
        &mut self,
        _id: ConnId,
        who: Who,
        tx: Option<(ConnId, u32)>,
        p: &[u8],
    ) -> Reply {
        // Special watch nodes are not readable nodes (EINVAL, as upstream 4.17).
        let path = self.canonicalize(who, wire::one_arg(p), false)?;
        if !self.check_node(who, tx, &path, PERM_READ)? {
            return Err(Errno::Enoent);
        }
        let perms = self.view_perms(tx, &path).unwrap_or_default();
        Ok(wire::join_strings(&perms.iter().map(Perm::to_wire).collect::<Vec<_>>()).into())
    }

    /// Stores a node (through the transaction if any), keeping ownership counts.
    fn put(&mut self, tx: Option<(ConnId, u32)>, path: &str, mut node: Node) {
        let old_owner = self.view(tx, path).map(Node::owner);
        let new_owner = node.owner();
        self.generation += 1;
        node.generation = self.generation;
        match tx.and_then(|k| self.txs.get_mut(&k)) {
            Some(t) => {
                if let Some(o) = old_owner {
                    *t.owner_delta.entry(o).or_default() -= 1;
                }
                *t.owner_delta.entry(new_owner).or_default() += 1;
                t.modified.insert(path.to_string(), Some(node));
            }
            None => {
                if let Some(o) = old_owner {
                    *self.owner_counts.entry(o).or_default() -= 1;
                }
                *self.owner_counts.entry(new_owner).or_default() += 1;
                self.nodes.insert(path.to_string(), node);
            }
        }
    }

    fn delete(&mut self, tx: Option<(ConnId, u32)>, path: &str) {
        let Some(old_owner) = self.view(tx, path).map(Node::owner) else {
            return;
        };
        match tx.and_then(|k| self.txs.get_mut(&k)) {
            Some(t) => {
                *t.owner_delta.entry(old_owner).or_default() -= 1;
                t.modified.insert(path.to_string(), None);
            }
            None => {
                *self.owner_counts.entry(old_owner).or_default() -= 1;
                self.nodes.remove(path);
            }
        }
    }

    fn owned_nodes(&self, tx: Option<(ConnId, u32)>, domid: u32) -> i64 {
        let base = self.owner_counts.get(&domid).copied().unwrap_or(0);
        let delta = tx
            .and_then(|k| self.txs.get(&k))
            .and_then(|t| t.owner_delta.get(&domid))
            .copied()
            .unwrap_or(0);
        base + delta
    }

    fn check_size(&self, who: Who, node: &Node) -> Result<(), Errno> {
        if !who.privileged && node.accounted_size() > self.quotas.max_node_size {
            return Err(Errno::Enospc);
        }
        Ok(())
    }

    /// Creates `path` and missing ancestors (C `construct_node` + `create_node`): each new
    /// node inherits its parent's permissions; an unprivileged creator becomes the owner.
    fn create_node(
        &mut self,
        who: Who,
        tx: Option<(ConnId, u32)>,
        path: &str,
        value: Vec<u8>,
    ) -> Result<(), Errno> {
        let mut missing = vec![path.to_string()];
        let mut parent = parent_of(path).to_string();
        while self.view(tx, &parent).is_none() {
            if parent == "/" {
                return Err(Errno::Eio);
            }
            missing.push(parent.clone());
            parent = parent_of(&parent).to_string();
        }
        if !who.privileged {
            let owned = self.owned_nodes(tx, who.domid);
            if owned + missing.len() as i64 >= self.quotas.max_nodes as i64 {
                return Err(Errno::Enospc);
            }
        }
        // Validate every size before changing anything.
        let mut parent_node = self.view(tx, &parent).cloned().ok_or(Errno::Eio)?;
        let mut perms = parent_node.perms.clone();
        if !who.privileged {
            if let Some(first) = perms.first_mut() {
                first.domid = who.domid;
                first.ignore = false;
            }
        }
        let mut new_nodes = Vec::with_capacity(missing.len());
        for (i, name) in missing.iter().enumerate().rev() {
            let mut node = Node {
                value: Vec::new(),
                perms: perms.clone(),
                children: Vec::new(),
                generation: 0,
            };
            if i == 0 {
                node.value = value.clone();
            } else {
                node.children.push(basename(&missing[i - 1]).to_string());
            }
            self.check_size(who, &node)?;
            new_nodes.push((name.clone(), node));
        }
        parent_node
            .children
            .push(basename(&missing[missing.len() - 1]).to_string());
        self.check_size(who, &parent_node)?;
        self.put(tx, &parent, parent_node);
        for (name, node) in new_nodes {
            self.put(tx, &name, node);
        }
        Ok(())
    }

    /// The store's permissions of `path` (a special node's or a node's), outside transactions.
    fn store_perms(&self, path: &str) -> Option<&[Perm]> {
        match self.special_perms(path) {
            Some(special) => Some(special),
            None => self.nodes.get(path).map(|n| n.perms.as_slice()),
        }
    }

    /// Fires (outside transactions) or queues (inside) a watch event for `path`.
    fn emit(&mut self, tx: Option<(ConnId, u32)>, path: &str, exact: bool, old: Option<Vec<Perm>>) {
        match tx.and_then(|k| self.txs.get_mut(&k)) {
            Some(t) => {
                if let Some(&i) = t.event_index.get(path) {
                    t.events[i].exact &= exact;
                    if t.events[i].old_perms.is_none() {
                        t.events[i].old_perms = old;
                    }
                } else {
                    t.event_index.insert(path.to_string(), t.events.len());
                    t.events.push(QueuedEvent {
                        path: path.to_string(),
                        exact,
                        old_perms: old,
                    });
                }
            }
            None => self.fire(path, exact, old.as_deref()),
        }
    }

    /// Delivers an event for `path` (as the store is now) to every watch that matches and
    /// whose connection may see it (C `fire_watches` + `watch_permitted`): a connection sees
    /// it if privileged, or if it could read the node before a permission change (`old`), or
    /// the node exists and it can read the node or its parent. Only connections with watches
    /// are looked at, and permissions only for a connection that has a matching watch, so a
    /// write costs nothing per idle connection.
    fn fire(&mut self, path: &str, exact: bool, old: Option<&[Perm]>) {
        let mut out = Vec::new();
        // Looked up only once an unprivileged watcher matches (most events have none).
        let mut store_perms = None;
        for &id in &self.watchers {
            let Some(conn) = self.conns.get(&id) else {
                continue;
            };
            let mut matching = conn.watches.iter().filter(|w| {
                if exact {
                    path == w.path
                } else {
                    is_child(path, &w.path)
                }
            });
            let Some(first) = matching.next() else {
                continue;
            };
            let who = conn.who;
            let readable = |p: Option<&[Perm]>| p.is_some_and(|p| who.perm_for(p) & PERM_READ != 0);
            let permitted = who.privileged || readable(old) || {
                let (node_perms, parent_perms) = *store_perms.get_or_insert_with(|| {
                    let parent = if path.starts_with('/') {
                        parent_of(path)
                    } else {
                        "/"
                    };
                    (self.store_perms(path), self.store_perms(parent))
                });
                node_perms.is_some() && (readable(node_perms) || readable(parent_perms))
            };
            if !permitted {
                continue;
            }
            for w in std::iter::once(first).chain(matching) {
                let shown = path.get(w.relative_prefix..).unwrap_or(path);
                out.push((id, Self::watch_event(shown, &w.token)));
            }
        }
        for (id, bytes) in out {
            self.push(id, bytes, true);
        }
    }

    fn do_write(&mut self, _id: ConnId, who: Who, tx: Option<(ConnId, u32)>, p: &[u8]) -> Reply {
        let nul = p.iter().position(|&b| b == 0).ok_or(Errno::Einval)?;
        let (raw_path, value) = (&p[..nul], &p[nul + 1..]);
        let path = self.canonicalize(who, Some(raw_path), false)?;
        if tx.is_none() {
            // The common case without copying the node: an existing node outside a
            // transaction. Same checks as below (`check_node`, then `check_size` on the node
            // with its new value); its owner, and so the nodes quota, do not change.
            let max_node_size = self.quotas.max_node_size;
            if let Some(node) = self.nodes.get_mut(&*path) {
                if who.perm_for(&node.perms) & PERM_WRITE == 0 {
                    return Err(Errno::Eacces);
                }
                let new_size = node.accounted_size() - node.value.len() + value.len();
                if !who.privileged && new_size > max_node_size {
                    return Err(Errno::Enospc);
                }
                node.value = value.to_vec();
                self.generation += 1;
                node.generation = self.generation;
                self.fire(&path, false, None);
                return Ok(Body::ok());
            }
        }
        if self.check_node(who, tx, &path, PERM_WRITE)? {
            let mut node = self.view(tx, &path).cloned().ok_or(Errno::Eio)?;
            node.value = value.to_vec();
            self.check_size(who, &node)?;
            self.put(tx, &path, node);
        } else {
            self.create_node(who, tx, &path, value.to_vec())?;
        }
        self.emit(tx, &path, false, None);
        Ok(Body::ok())
    }

    fn do_mkdir(&mut self, _id: ConnId, who: Who, tx: Option<(ConnId, u32)>, p: &[u8]) -> Reply {
        let path = self.canonicalize(who, wire::one_arg(p), false)?;
        if !self.check_node(who, tx, &path, PERM_WRITE)? {
            self.create_node(who, tx, &path, Vec::new())?;
            self.emit(tx, &path, false, None);
        }
        Ok(Body::ok())
    }

    fn do_rm(&mut self, _id: ConnId, who: Who, tx: Option<(ConnId, u32)>, p: &[u8]) -> Reply {
        let path = self.canonicalize(who, wire::one_arg(p), false)?;
        if !self.check_node(who, tx, &path, PERM_WRITE)? {
            return if self.view(tx, parent_of(&path)).is_some() {
                Ok(Body::ok())
            } else {
                Err(Errno::Enoent)
            };
        }
        if path == "/" {
            return Err(Errno::Einval);
        }
        self.remove_subtree(tx, &path);
        Ok(Body::ok())
    }

    /// Removes a subtree without recursion (paths may be ~1500 levels deep), firing an event
    /// per removed node, exact for descendants and subtree-wide for the root (as upstream).
    fn remove_subtree(&mut self, tx: Option<(ConnId, u32)>, root: &str) {
        let mut order = Vec::new();
        let mut stack = vec![root.to_string()];
        while let Some(path) = stack.pop() {
            if let Some(node) = self.view(tx, &path) {
                let children: Vec<String> = node.children.iter().map(|c| join(&path, c)).collect();
                stack.extend(children);
                order.push(path);
            }
        }
        // Children before parents, so events can still see each node's permissions.
        for path in order.iter().rev() {
            let exact = path != root;
            match tx {
                Some(_) => {
                    let old = self.view_perms(tx, path);
                    self.emit(tx, path, exact, old);
                }
                None => self.fire(path, exact, None),
            }
            self.delete(tx, path);
        }
        let parent = parent_of(root).to_string();
        if let Some(mut pnode) = self.view(tx, &parent).cloned() {
            let name = basename(root);
            pnode.children.retain(|c| c != name);
            self.put(tx, &parent, pnode);
        }
    }

    fn domain_exists(&mut self, domid: u32) -> bool {
        domid == 0 || self.domains.contains_key(&domid) || self.platform.domain_exists(domid)
    }

    fn do_set_perms(
        &mut self,
        _id: ConnId,
        who: Who,
        tx: Option<(ConnId, u32)>,
        p: &[u8],
    ) -> Reply {
        let args = wire::split_strings(p);
        if args.len() < 2 {
            return Err(Errno::Einval);
        }
        if !who.privileged && args.len() - 1 > self.quotas.max_permissions {
            return Err(Errno::Enospc);
        }
        let mut perms = Vec::with_capacity(args.len() - 1);
        for a in &args[1..] {
            perms.push(Perm::parse(a).ok_or(Errno::Einval)?);
        }
        for perm in perms.iter_mut() {
            perm.ignore = !self.domain_exists(perm.domid);
        }
        if perms[0].ignore {
            return Err(Errno::Enoent);
        }
        if args[0].starts_with(b"@") {
            // Upstream's set_perms_special(): only the two known names, W and owner rights.
            let special = SPECIAL_NODES
                .iter()
                .find(|&&s| s.as_bytes() == args[0])
                .ok_or(Errno::Einval)?;
            let current = self
                .special
                .get(special)
                .cloned()
                .unwrap_or_else(dom0_perms);
            if who.perm_for(&current) & (PERM_WRITE | PERM_OWNER) != PERM_WRITE | PERM_OWNER {
                return Err(Errno::Eacces);
            }
            self.special.insert(special, perms);
            return Ok(Body::ok());
        }
        let path = self.canonicalize(who, Some(args[0]), false)?;
        if !self.check_node(who, tx, &path, PERM_WRITE | PERM_OWNER)? {
            return Err(Errno::Enoent);
        }
        let mut node = self.view(tx, &path).cloned().ok_or(Errno::Eio)?;
        if !who.privileged && perms[0].domid != node.owner() {
            return Err(Errno::Eperm);
        }
        let old = std::mem::replace(&mut node.perms, perms);
        self.check_size(who, &node)?;
        self.put(tx, &path, node);
        self.emit(tx, &path, false, Some(old));
        Ok(Body::ok())
    }

    fn do_watch(&mut self, id: ConnId, who: Who, p: &[u8]) -> Reply {
        let args = wire::split_strings(p);
        if args.len() != 2 {
            return Err(Errno::Einval);
        }
        let relative = !args[0].starts_with(b"/") && !args[0].starts_with(b"@");
        let path = self.canonicalize(who, Some(args[0]), true)?;
        let token = args[1].to_vec();
        let max_watches = self.quotas.max_watches;
        let conn = self.conns.get_mut(&id).ok_or(Errno::Eio)?;
        if conn
            .watches
            .iter()
            .any(|w| w.path == path && w.token == token)
        {
            return Err(Errno::Eexist);
        }
        // Upstream 4.17 answers E2BIG when the watch quota is reached.
        if !who.privileged && conn.watches.len() >= max_watches {
            return Err(Errno::E2big);
        }
        let relative_prefix = if relative {
            Self::home(who).len() + 1
        } else {
            0
        };
        let shown = path.get(relative_prefix..).unwrap_or(&path).to_string();
        conn.watches.push(Watch {
            path: path.into_owned(),
            token: token.clone(),
            relative_prefix,
        });
        self.watchers.insert(id);
        self.deferred.push((id, Self::watch_event(&shown, &token)));
        Ok(Body::ok())
    }

    fn do_unwatch(&mut self, id: ConnId, who: Who, p: &[u8]) -> Reply {
        let args = wire::split_strings(p);
        if args.len() != 2 {
            return Err(Errno::Einval);
        }
        let path = self.canonicalize(who, Some(args[0]), true)?;
        let conn = self.conns.get_mut(&id).ok_or(Errno::Eio)?;
        let pos = conn
            .watches
            .iter()
            .position(|w| w.path == path && w.token == args[1])
            .ok_or(Errno::Enoent)?;
        conn.watches.remove(pos);
        if conn.watches.is_empty() {
            self.watchers.remove(&id);
        }
        Ok(Body::ok())
    }

    fn do_transaction_start(&mut self, id: ConnId, who: Who, tx: Option<(ConnId, u32)>) -> Reply {
        if tx.is_some() {
            return Err(Errno::Ebusy);
        }
        let max = self.quotas.max_transactions;
        let conn = self.conns.get_mut(&id).ok_or(Errno::Eio)?;
        if !who.privileged && conn.open_txs.len() >= max {
            return Err(Errno::Enospc);
        }
        let mut tx_id = conn.next_tx;
        while tx_id == 0 || conn.open_txs.contains(&tx_id) {
            tx_id = tx_id.wrapping_add(1);
        }
        conn.next_tx = tx_id.wrapping_add(1);
        conn.open_txs.insert(tx_id);
        self.txs.insert((id, tx_id), Transaction::default());
        Ok(format!("{tx_id}\0").into_bytes().into())
    }

    fn do_transaction_end(&mut self, id: ConnId, tx: Option<(ConnId, u32)>, p: &[u8]) -> Reply {
        let arg = wire::one_arg(p).ok_or(Errno::Einval)?;
        let commit = match arg {
            b"T" => true,
            b"F" => false,
            _ => return Err(Errno::Einval),
        };
        let key = tx.ok_or(Errno::Enoent)?;
        let t = self.txs.remove(&key).ok_or(Errno::Enoent)?;
        if let Some(c) = self.conns.get_mut(&id) {
            c.open_txs.remove(&key.1);
        }
        if !commit {
            return Ok(Body::ok());
        }
        for (path, seen) in &t.accessed {
            if self.nodes.get(path).map(|n| n.generation) != *seen {
                debug!(conn = id, tx = key.1, path, "transaction conflict");
                return Err(Errno::Eagain);
            }
        }
        let who = self.conns.get(&id).map(|c| c.who);
        if let Some(who) = who.filter(|w| !w.privileged) {
            let delta = t.owner_delta.get(&who.domid).copied().unwrap_or(0);
            let owned = self.owner_counts.get(&who.domid).copied().unwrap_or(0);
            if delta > 0 && owned + delta >= self.quotas.max_nodes as i64 {
                return Err(Errno::Enospc);
            }
        }
        // Old permissions of nodes about to change, for watch permission checks.
        let old_perms: HashMap<String, Vec<Perm>> = t
            .events
            .iter()
            .filter_map(|e| {
                self.nodes
                    .get(&e.path)
                    .map(|n| (e.path.clone(), n.perms.clone()))
            })
            .collect();
        for (path, node) in t.modified {
            match node {
                Some(node) => self.put(None, &path, node),
                None => self.delete(None, &path),
            }
        }
        for q in t.events {
            let old = q.old_perms.or_else(|| old_perms.get(&q.path).cloned());
            self.fire(&q.path, q.exact, old.as_deref());
        }
        Ok(Body::ok())
    }

    fn connected_domain(&self, domid: u32) -> Result<ConnId, Errno> {
        if domid == 0 || domid >= DOMID_FIRST_RESERVED {
            return Err(Errno::Einval);
        }
        self.domains
            .get(&domid)
            .map(|d| d.conn)
            .ok_or(Errno::Enoent)
    }

    fn do_introduce(&mut self, p: &[u8]) -> Reply {
        let args = wire::split_strings(p);
        if args.len() < 3 {
            return Err(Errno::Einval);
        }
        let domid = atoi(args[0]) as u32;
        let gfn = strtol_base0(args[1]) as u64;
        let port = atoi(args[2]);
        if port <= 0 {
            return Err(Errno::Einval);
        }
        if domid >= DOMID_FIRST_RESERVED {
            return Err(Errno::Einval);
        }
        if self.domains.contains_key(&domid) {
            self.platform.reintroduce(domid, port as u32)?;
            return Ok(Body::ok());
        }
        self.platform.introduce(domid, gfn, port as u32)?;
        self.attach_domain(domid);
        Ok(Body::ok())
    }

    /// Registers an introduced domain and its connection and fires `@introduceDomain`. Used by
    /// INTRODUCE after the ring is mapped, by the server for dom0's own ring, and by tests to
    /// act as a guest without Xen.
    pub fn attach_domain(&mut self, domid: u32) -> ConnId {
        if let Some(d) = self.domains.get(&domid) {
            return d.conn;
        }
        let conn = self.add_connection(ConnKind::Domain(domid));
        self.domains.insert(
            domid,
            DomainEntry {
                conn,
                shutdown: false,
            },
        );
        info!(domid, conn, "domain introduced");
        if domid != 0 {
            self.fire("@introduceDomain", false, None);
        }
        conn
    }

    fn do_release(&mut self, p: &[u8]) -> Reply {
        let domid = atoi(wire::one_arg(p).ok_or(Errno::Einval)?) as u32;
        self.connected_domain(domid)?;
        self.destroy_domain(domid);
        Ok(Body::ok())
    }

    /// Forgets a domain: its connection, watches and transactions, the nodes it owns (with
    /// their subtrees) and permission entries naming it; fires `@releaseDomain`.
    pub fn destroy_domain(&mut self, domid: u32) {
        let Some(entry) = self.domains.remove(&domid) else {
            return;
        };
        self.remove_connection(entry.conn);
        self.platform.release(domid);
        let mut owned: Vec<String> = self
            .nodes
            .iter()
            .filter(|(p, n)| n.owner() == domid && p.as_str() != "/")
            .map(|(p, _)| p.clone())
            .collect();
        owned.sort();
        let mut removed = 0usize;
        for path in owned {
            if self.nodes.contains_key(&path) {
                self.remove_subtree(None, &path);
                removed += 1;
            }
        }
        for node in self.nodes.values_mut() {
            if node.perms.len() > 1 && node.perms[1..].iter().any(|p| p.domid == domid) {
                let first = node.perms[0];
                node.perms.retain(|p| p.domid != domid);
                node.perms.insert(0, first);
                node.perms.dedup_by(|a, b| a == b);
            }
        }
        info!(domid, removed_subtrees = removed, "domain released");
        self.fire("@releaseDomain", false, None);
    }

    /// Re-examines introduced domains (on `VIRQ_DOM_EXC`): fires `@releaseDomain` once when a
    /// domain shuts down and destroys the ones that died.
    /// Returns true if any introduced domain had shut down or gone since the last check.
    pub fn check_domains(&mut self) -> bool {
        let mut fire = false;
        let mut changed = false;
        for domid in self.introduced_domains() {
            if domid == 0 {
                continue;
            }
            match self.platform.domain_state(domid) {
                DomainState::Alive => {}
                DomainState::Shutdown => {
                    if let Some(d) = self.domains.get_mut(&domid) {
                        if !d.shutdown {
                            // Rare (once per domain) and what toolstacks wait for: logged so
                            // that a domain nobody cleaned up shows whether we saw it go.
                            info!(domid, "domain shut down; firing @releaseDomain");
                            d.shutdown = true;
                            fire = true;
                        }
                    }
                }
                DomainState::Dead => {
                    self.destroy_domain(domid);
                    changed = true;
                }
            }
        }
        if fire {
            self.fire("@releaseDomain", false, None);
        }
        changed || fire
    }

    fn do_control(&mut self, p: &[u8]) -> Reply {
        let args = wire::split_strings(p);
        match args.first().copied() {
            Some(b"check") => Ok(Body::ok()),
            Some(b"print") => {
                info!(message = %String::from_utf8_lossy(args.get(1).copied().unwrap_or_default()), "control print");
                Ok(Body::ok())
            }
            Some(b"help") => Ok(Body::new(b"check\nprint\nhelp\n\0")),
            _ => Err(Errno::Einval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A hypervisor whose one guest's state the test sets.
    struct Scripted(Rc<Cell<DomainState>>);

    impl Platform for Scripted {
        fn introduce(&mut self, _domid: u32, _gfn: u64, _port: u32) -> Result<(), Errno> {
            Ok(())
        }
        fn reintroduce(&mut self, _domid: u32, _port: u32) -> Result<(), Errno> {
            Ok(())
        }
        fn release(&mut self, _domid: u32) {}
        fn domain_exists(&mut self, _domid: u32) -> bool {
            self.0.get() != DomainState::Dead
        }
        fn domain_state(&mut self, _domid: u32) -> DomainState {
            self.0.get()
        }
    }

    #[test]
    fn check_domains_reports_each_change_once() {
        let state = Rc::new(Cell::new(DomainState::Alive));
        let mut core = Core::new(Quotas::default(), Box::new(Scripted(state.clone())));
        core.attach_domain(5);
        assert!(!core.check_domains(), "nothing happened yet");
        state.set(DomainState::Shutdown);
        assert!(core.check_domains(), "the shutdown is news");
        assert!(!core.check_domains(), "and only once");
        assert_eq!(core.introduced_domains(), vec![5]);
        state.set(DomainState::Dead);
        assert!(core.check_domains(), "the death is news");
        assert!(core.introduced_domains().is_empty());
        assert!(!core.check_domains());
    }
}
