//! Blocking xenstore client for the rest of the workspace.
//!
//! One background thread reads everything the daemon sends: replies are routed to the waiting
//! caller by `req_id`, watch events go to an event queue. So requests may be issued from any
//! thread while another waits for events, as the toolstack does when it waits for a device's
//! `state` node.
//!
//! ```no_run
//! use xenstore::client::{Client, XsOps};
//! let xs = Client::open()?;
//! xs.write("/local/domain/0/name", b"Domain-0")?;
//! let v = xs.transact(|t| {
//!     let v = t.read("/counter").unwrap_or_default();
//!     t.write("/counter", b"1")?;
//!     Ok(v)
//! })?;
//! # Ok::<(), xenstore::client::Error>(())
//! ```

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemon::core::Perm;
use crate::wire::{self, Errno, Message, MsgType, WireError};

/// The kernel's xenbus device (used when no daemon socket is reachable, e.g. in a guest).
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered with an error.
    #[error("xenstore {op} {path}: {errno}")]
    Daemon {
        /// Operation.
        op: &'static str,
        /// Path or argument.
        path: String,
        /// Error from the daemon.
        errno: Errno,
    },
    /// No transport could be opened.
    #[error("cannot connect to xenstore through {socket}: {source}")]
    Connect {
        /// Socket tried.
        socket: String,
        /// Last error.
        source: io::Error,
    },
    /// The request does not fit in one message.
    #[error("xenstore {op} request of {len} bytes exceeds the {max}-byte protocol limit", max = wire::PAYLOAD_MAX)]
    TooLong {
        /// Operation.
        op: &'static str,
        /// Payload size.
        len: usize,
    },
    /// The daemon sent something that is not a valid reply.
    #[error("xenstore {op}: unexpected reply: {detail}")]
    BadReply {
        /// Operation.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The connection is gone.
    #[error("xenstore connection closed: {0}")]
    Disconnected(String),
    /// Sending failed.
    #[error("xenstore transport error: {0}")]
    Wire(#[from] WireError),
}

impl Error {
    /// The daemon's error code, if this is a daemon error.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Daemon { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Client result.
pub type Result<T> = std::result::Result<T, Error>;

/// A watch firing: the path that changed and the token given to `watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Path (relative if the watch was registered relative).
    pub path: String,
    /// Token.
    pub token: String,
}

enum Writer {
    Socket(UnixStream),
    Device(File),
}

impl Writer {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        match self {
            Writer::Socket(s) => s.write_all(bytes),
            // The xenbus device wants each message in one write.
            Writer::Device(f) => f.write_all(bytes),
        }
    }
}

type Pending = Arc<Mutex<HashMap<u32, Sender<Message>>>>;

/// A connection to xenstored.
pub struct Client {
    writer: Mutex<Writer>,
    pending: Pending,
    closed: Arc<Mutex<Option<String>>>,
    next_req: AtomicU32,
    events: Mutex<Option<Receiver<WatchEvent>>>,
    socket: Option<UnixStream>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket.is_some())
            .finish()
    }
}

/// Where libxenstore looks for the daemon: `$XENSTORED_PATH`, else `/run/xenstored/socket`.
pub fn default_socket_path() -> PathBuf {
    std::env::var_os("XENSTORED_PATH").map_or_else(
        || PathBuf::from(crate::daemon::DEFAULT_SOCKET),
        PathBuf::from,
    )
}

impl Client {
    /// Connects like libxenstore's `xs_open(0)`: the daemon socket if reachable, else the
    /// xenbus device.
    pub fn open() -> Result<Client> {
        // As libxenstore: $XENSTORED_PATH names the socket *or* the device to use (no
        // fallback); without it, the standard socket, else the xenbus device.
        if let Some(path) = std::env::var_os("XENSTORED_PATH").map(PathBuf::from) {
            let is_socket = std::fs::metadata(&path)
                .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                .unwrap_or(false);
            return if is_socket {
                Client::connect(&path)
            } else {
                Client::open_device(&path)
            };
        }
        let socket = PathBuf::from(crate::daemon::DEFAULT_SOCKET);
        match Client::connect(&socket) {
            Ok(c) => Ok(c),
            Err(_) => Client::open_xenbus().map_err(|e| match e {
                Error::Connect { source, .. } => Error::Connect {
                    socket: socket.display().to_string(),
                    source,
                },
                other => other,
            }),
        }
    }

    /// Connects to a daemon's Unix socket.
    pub fn connect(path: &Path) -> Result<Client> {
        let stream = UnixStream::connect(path).map_err(|source| Error::Connect {
            socket: path.display().to_string(),
            source,
        })?;
        let reader = stream.try_clone().map_err(|source| Error::Connect {
            socket: path.display().to_string(),
            source,
        })?;
        let shutdown = stream.try_clone().map_err(|source| Error::Connect {
            socket: path.display().to_string(),
            source,
        })?;
        Ok(Client::start(
            Writer::Socket(stream),
            Box::new(reader),
            Some(shutdown),
        ))
    }

    /// Opens `/dev/xen/xenbus` (the kernel forwards to xenstored over its ring).
    pub fn open_xenbus() -> Result<Client> {
        Client::open_device(Path::new(XENBUS_DEVICE))
    }

    /// Opens a xenbus character device.
    pub fn open_device(path: &Path) -> Result<Client> {
        let shown = || path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| Error::Connect {
                socket: shown(),
                source,
            })?;
        let reader = file.try_clone().map_err(|source| Error::Connect {
            socket: shown(),
            source,
        })?;
        Ok(Client::start(Writer::Device(file), Box::new(reader), None))
    }

    fn start(
        writer: Writer,
        mut reader: Box<dyn io::Read + Send>,
        socket: Option<UnixStream>,
    ) -> Client {
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(Mutex::new(None));
        let (event_tx, event_rx) = mpsc::channel();
        let (p, c) = (pending.clone(), closed.clone());
        std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || reader_loop(&mut reader, &p, &c, &event_tx))
            .map_or_else(
                |e| {
                    if let Ok(mut g) = closed.lock() {
                        *g = Some(format!("cannot start reader thread: {e}"));
                    }
                },
                |_| {},
            );
        Client {
            writer: Mutex::new(writer),
            pending,
            closed,
            next_req: AtomicU32::new(1),
            events: Mutex::new(Some(event_rx)),
            socket,
            timeout: None,
        }
    }

    /// Fails requests that get no reply within `timeout` (default: wait forever, as
    /// libxenstore does).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sends a raw request and waits for its reply (ERROR replies are returned as messages).
    pub fn request_raw(&self, msg_type: u32, tx_id: u32, payload: Vec<u8>) -> Result<Message> {
        if payload.len() > wire::PAYLOAD_MAX {
            return Err(Error::TooLong {
                op: "request",
                len: payload.len(),
            });
        }
        let req_id = self.next_req.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.pending
            .lock()
            .map_err(|_| Error::Disconnected("client state poisoned".into()))?
            .insert(req_id, tx);
        let msg = Message {
            msg_type,
            req_id,
            tx_id,
            payload,
        };
        let sent = {
            let mut w = self
                .writer
                .lock()
                .map_err(|_| Error::Disconnected("client state poisoned".into()))?;
            msg.encode().map(|b| w.send(&b).map_err(WireError::Io))
        };
        if let Err(e) | Ok(Err(e)) = sent {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&req_id);
            }
            return Err(e.into());
        }
        let reply = match self.timeout {
            None => rx.recv().map_err(|_| ()),
            Some(t) => rx.recv_timeout(t).map_err(|_| ()),
        };
        reply.map_err(|()| {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&req_id);
            }
            let why = self
                .closed
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_else(|| "no reply".into());
            Error::Disconnected(why)
        })
    }

    fn request(&self, op: MsgType, tx_id: u32, payload: Vec<u8>, what: &str) -> Result<Vec<u8>> {
        if payload.len() > wire::PAYLOAD_MAX {
            return Err(Error::TooLong {
                op: op.name(),
                len: payload.len(),
            });
        }
        let reply = self.request_raw(op.code(), tx_id, payload)?;
        if reply.msg_type == MsgType::Error.code() {
            let errno = Errno::from_name(&reply.payload).ok_or_else(|| Error::BadReply {
                op: op.name(),
                detail: format!(
                    "unknown error {:?}",
                    String::from_utf8_lossy(&reply.payload)
                ),
            })?;
            return Err(Error::Daemon {
                op: op.name(),
                path: what.to_string(),
                errno,
            });
        }
        if reply.msg_type != op.code() {
            return Err(Error::BadReply {
                op: op.name(),
                detail: format!("reply type {}", reply.msg_type),
            });
        }
        Ok(reply.payload)
    }

    /// Registers a watch; its first event fires immediately.
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        self.request(MsgType::Watch, 0, wire::join_strings(&[path, token]), path)
            .map(drop)
    }

    /// Removes a watch.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        self.request(
            MsgType::Unwatch,
            0,
            wire::join_strings(&[path, token]),
            path,
        )
        .map(drop)
    }

    /// Waits for the next watch event (`None` on timeout).
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Option<WatchEvent>> {
        let guard = self
            .events
            .lock()
            .map_err(|_| Error::Disconnected("client state poisoned".into()))?;
        let rx = guard
            .as_ref()
            .ok_or_else(|| Error::Disconnected("event stream was taken".into()))?;
        match timeout {
            None => rx
                .recv()
                .map(Some)
                .map_err(|_| Error::Disconnected("connection closed".into())),
            Some(t) => match rx.recv_timeout(t) {
                Ok(e) => Ok(Some(e)),
                Err(RecvTimeoutError::Timeout) => Ok(None),
                Err(RecvTimeoutError::Disconnected) => {
                    Err(Error::Disconnected("connection closed".into()))
                }
            },
        }
    }

    /// Takes the event stream for use on another thread (later `next_event` calls fail).
    pub fn take_event_stream(&self) -> Option<Receiver<WatchEvent>> {
        self.events.lock().ok()?.take()
    }

    /// Starts a transaction.
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        let reply = self.request(MsgType::TransactionStart, 0, vec![0], "")?;
        let id = parse_decimal(&reply).ok_or_else(|| Error::BadReply {
            op: "TRANSACTION_START",
            detail: format!("transaction id {:?}", String::from_utf8_lossy(&reply)),
        })?;
        Ok(Transaction {
            client: self,
            id,
            finished: false,
        })
    }

    /// Runs `body` in a transaction and commits, retrying the whole body when the commit
    /// reports a conflict (EAGAIN). Errors from `body` abort the transaction.
    pub fn transact<T>(&self, mut body: impl FnMut(&Transaction<'_>) -> Result<T>) -> Result<T> {
        const ATTEMPTS: usize = 100;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let t = self.transaction()?;
            let value = body(&t)?;
            match t.commit() {
                Ok(()) => return Ok(value),
                Err(e) if e.errno() == Some(Errno::Eagain) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::Disconnected("transaction retries exhausted".into())))
    }

    /// Tells xenstored about a new domain's ring (`gfn`) and event channel.
    pub fn introduce(&self, domid: u32, gfn: u64, port: u32) -> Result<()> {
        let args = [domid.to_string(), gfn.to_string(), port.to_string()];
        self.request(MsgType::Introduce, 0, wire::join_strings(&args), &args[0])
            .map(drop)
    }

    /// Tells xenstored to forget a domain.
    pub fn release(&self, domid: u32) -> Result<()> {
        let arg = domid.to_string();
        self.request(MsgType::Release, 0, wire::join_strings(&[&arg]), &arg)
            .map(drop)
    }

    /// Re-arms `@releaseDomain` for a resumed domain.
    pub fn resume(&self, domid: u32) -> Result<()> {
        let arg = domid.to_string();
        self.request(MsgType::Resume, 0, wire::join_strings(&[&arg]), &arg)
            .map(drop)
    }

    /// Whether xenstored is talking to the domain.
    pub fn is_introduced(&self, domid: u32) -> Result<bool> {
        let arg = domid.to_string();
        let r = self.request(
            MsgType::IsDomainIntroduced,
            0,
            wire::join_strings(&[&arg]),
            &arg,
        )?;
        Ok(r.first() == Some(&b'T'))
    }

    /// `/local/domain/<domid>` as the daemon spells it.
    pub fn get_domain_path(&self, domid: u32) -> Result<String> {
        let arg = domid.to_string();
        let r = self.request(MsgType::GetDomainPath, 0, wire::join_strings(&[&arg]), &arg)?;
        Ok(String::from_utf8_lossy(r.strip_suffix(b"\0").unwrap_or(&r)).into_owned())
    }

    /// Drops all our watches and transactions.
    pub fn reset_watches(&self) -> Result<()> {
        self.request(MsgType::ResetWatches, 0, vec![0], "")
            .map(drop)
    }

    /// Lets `domid` act with `target`'s rights (device models).
    pub fn set_target(&self, domid: u32, target: u32) -> Result<()> {
        let args = [domid.to_string(), target.to_string()];
        self.request(MsgType::SetTarget, 0, wire::join_strings(&args), &args[0])
            .map(drop)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Wakes the reader thread; with the xenbus device it ends with the process.
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn reader_loop(
    reader: &mut Box<dyn io::Read + Send>,
    pending: &Pending,
    closed: &Arc<Mutex<Option<String>>>,
    events: &Sender<WatchEvent>,
) {
    let why = loop {
        let msg = match Message::read_from(reader) {
            Ok(m) => m,
            Err(e) => break e.to_string(),
        };
        if msg.msg_type == MsgType::WatchEvent.code() {
            let parts = wire::split_strings(&msg.payload);
            if parts.len() >= 2 {
                let ev = WatchEvent {
                    path: String::from_utf8_lossy(parts[0]).into_owned(),
                    token: String::from_utf8_lossy(parts[1]).into_owned(),
                };
                // Nobody listening is fine.
                let _ = events.send(ev);
            }
            continue;
        }
        let waiter = pending.lock().ok().and_then(|mut p| p.remove(&msg.req_id));
        if let Some(w) = waiter {
            let _ = w.send(msg);
        }
    };
    if let Ok(mut c) = closed.lock() {
        *c = Some(why);
    }
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}

fn parse_decimal(bytes: &[u8]) -> Option<u32> {
    std::str::from_utf8(bytes.strip_suffix(b"\0").unwrap_or(bytes))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// An open transaction. Dropping it without `commit` aborts it.
#[derive(Debug)]
pub struct Transaction<'a> {
    client: &'a Client,
    id: u32,
    finished: bool,
}

impl Transaction<'_> {
    /// The transaction id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Commits; `Err` with [`Errno::Eagain`] means a conflicting change: start over.
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.client
            .request(MsgType::TransactionEnd, self.id, b"T\0".to_vec(), "")
            .map(drop)
    }

    /// Discards the transaction.
    pub fn abort(mut self) -> Result<()> {
        self.finished = true;
        self.client
            .request(MsgType::TransactionEnd, self.id, b"F\0".to_vec(), "")
            .map(drop)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self
                .client
                .request(MsgType::TransactionEnd, self.id, b"F\0".to_vec(), "");
        }
    }
}

/// The node operations, inside a transaction or not.
pub trait XsOps {
    /// The client and the transaction id (0: none).
    fn target(&self) -> (&Client, u32);

    /// Reads a value.
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let (c, t) = self.target();
        c.request(MsgType::Read, t, wire::join_strings(&[path]), path)
    }

    /// Reads a value as text (lossy UTF-8).
    fn read_string(&self, path: &str) -> Result<String> {
        self.read(path)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// Writes a value, creating missing parents.
    fn write(&self, path: &str, value: &[u8]) -> Result<()> {
        let (c, t) = self.target();
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(value);
        c.request(MsgType::Write, t, payload, path).map(drop)
    }

    /// Creates a node (and parents) if missing.
    fn mkdir(&self, path: &str) -> Result<()> {
        let (c, t) = self.target();
        c.request(MsgType::Mkdir, t, wire::join_strings(&[path]), path)
            .map(drop)
    }

    /// Removes a subtree.
    fn rm(&self, path: &str) -> Result<()> {
        let (c, t) = self.target();
        c.request(MsgType::Rm, t, wire::join_strings(&[path]), path)
            .map(drop)
    }

    /// Child names. Falls back to DIRECTORY_PART when the list exceeds one message.
    fn directory(&self, path: &str) -> Result<Vec<String>> {
        let (c, t) = self.target();
        match c.request(MsgType::Directory, t, wire::join_strings(&[path]), path) {
            Ok(r) => Ok(wire::split_strings(&r)
                .into_iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()),
            Err(e) if e.errno() == Some(Errno::E2big) => directory_part(c, t, path),
            Err(e) => Err(e),
        }
    }

    /// Permissions, owner first.
    fn get_perms(&self, path: &str) -> Result<Vec<Perm>> {
        let (c, t) = self.target();
        let r = c.request(MsgType::GetPerms, t, wire::join_strings(&[path]), path)?;
        wire::split_strings(&r)
            .into_iter()
            .map(|s| {
                Perm::parse(s).ok_or_else(|| Error::BadReply {
                    op: "GET_PERMS",
                    detail: format!("permission {:?}", String::from_utf8_lossy(s)),
                })
            })
            .collect()
    }

    /// Sets permissions, owner first.
    fn set_perms(&self, path: &str, perms: &[Perm]) -> Result<()> {
        let (c, t) = self.target();
        let mut parts = vec![path.to_string()];
        parts.extend(perms.iter().map(Perm::to_wire));
        c.request(MsgType::SetPerms, t, wire::join_strings(&parts), path)
            .map(drop)
    }

    /// True if the node exists (and is readable).
    fn exists(&self, path: &str) -> Result<bool> {
        match self.read(path) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == Some(Errno::Enoent) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn directory_part(c: &Client, t: u32, path: &str) -> Result<Vec<String>> {
    for _ in 0..16 {
        let mut names = Vec::new();
        let mut offset = 0usize;
        let mut generation: Option<Vec<u8>> = None;
        let mut restart = false;
        loop {
            let r = c.request(
                MsgType::DirectoryPart,
                t,
                wire::join_strings(&[path, &offset.to_string()]),
                path,
            )?;
            let mut parts = r.split(|&b| b == 0);
            let gen = parts.next().unwrap_or_default().to_vec();
            if generation.as_ref().is_some_and(|g| *g != gen) {
                restart = true;
                break;
            }
            generation = Some(gen);
            let body = &r[r.iter().position(|&b| b == 0).map_or(r.len(), |p| p + 1)..];
            // An empty string (double NUL) ends the list.
            let finished = body.ends_with(b"\0\0") || body == b"\0";
            for name in body.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                offset += name.len() + 1;
                names.push(String::from_utf8_lossy(name).into_owned());
            }
            if finished || body.is_empty() {
                break;
            }
        }
        if !restart {
            return Ok(names);
        }
    }
    Err(Error::BadReply {
        op: "DIRECTORY_PART",
        detail: format!("{path} kept changing while listed"),
    })
}

impl XsOps for Client {
    fn target(&self) -> (&Client, u32) {
        (self, 0)
    }
}

impl XsOps for Transaction<'_> {
    fn target(&self) -> (&Client, u32) {
        (self.client, self.id)
    }
}

fn to_io(e: Error) -> io::Error {
    match e {
        Error::Daemon { errno, .. } => errno.into(),
        other => io::Error::other(other),
    }
}

/// The `xenstore-rs` crate's trait, so code written against it can use this client.
impl xenstore_rs::Xs for Client {
    fn directory(&self, path: &str) -> io::Result<Vec<Box<str>>> {
        XsOps::directory(self, path)
            .map(|v| v.into_iter().map(String::into_boxed_str).collect())
            .map_err(to_io)
    }

    fn read(&self, path: &str) -> io::Result<Box<str>> {
        XsOps::read_string(self, path)
            .map(String::into_boxed_str)
            .map_err(to_io)
    }

    fn write(&self, path: &str, data: &str) -> io::Result<()> {
        XsOps::write(self, path, data.as_bytes()).map_err(to_io)
    }

    fn rm(&self, path: &str) -> io::Result<()> {
        XsOps::rm(self, path).map_err(to_io)
    }
}
