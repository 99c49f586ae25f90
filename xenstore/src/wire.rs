//! The xenstore wire protocol (`xen/io/xs_wire.h`, docs/misc/xenstore.txt).
//!
//! Every message is a 16-byte header (`type`, `req_id`, `tx_id`, `len`, native-endian u32)
//! followed by `len` payload bytes. `len` is bounded by [`PAYLOAD_MAX`] and checked *before*
//! anything is allocated: a peer that announces more is a protocol violation, not a request
//! to allocate.

use std::io::{self, Read, Write};

/// Largest payload either side may send (`XENSTORE_PAYLOAD_MAX`).
pub const PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Longest path relative to a domain's home (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;
/// Size of the message header.
pub const HEADER_LEN: usize = 16;

/// Message types of `enum xsd_sockmsg_type` (plus the newer optional ones from xenstore.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MsgType {
    /// `XS_CONTROL` (alias `XS_DEBUG`).
    Control = 0,
    /// `XS_DIRECTORY`.
    Directory = 1,
    /// `XS_READ`.
    Read = 2,
    /// `XS_GET_PERMS`.
    GetPerms = 3,
    /// `XS_WATCH`.
    Watch = 4,
    /// `XS_UNWATCH`.
    Unwatch = 5,
    /// `XS_TRANSACTION_START`.
    TransactionStart = 6,
    /// `XS_TRANSACTION_END`.
    TransactionEnd = 7,
    /// `XS_INTRODUCE`.
    Introduce = 8,
    /// `XS_RELEASE`.
    Release = 9,
    /// `XS_GET_DOMAIN_PATH`.
    GetDomainPath = 10,
    /// `XS_WRITE`.
    Write = 11,
    /// `XS_MKDIR`.
    Mkdir = 12,
    /// `XS_RM`.
    Rm = 13,
    /// `XS_SET_PERMS`.
    SetPerms = 14,
    /// `XS_WATCH_EVENT` (daemon to client only).
    WatchEvent = 15,
    /// `XS_ERROR` (daemon to client only).
    Error = 16,
    /// `XS_IS_DOMAIN_INTRODUCED`.
    IsDomainIntroduced = 17,
    /// `XS_RESUME`.
    Resume = 18,
    /// `XS_SET_TARGET`.
    SetTarget = 19,
    /// `XS_RESET_WATCHES` (20, `XS_RESTRICT`, was removed).
    ResetWatches = 21,
    /// `XS_DIRECTORY_PART`.
    DirectoryPart = 22,
    /// `XS_GET_FEATURE` (optional, newer than Xen 4.17).
    GetFeature = 23,
    /// `XS_SET_FEATURE` (optional, newer than Xen 4.17).
    SetFeature = 24,
    /// `XS_GET_QUOTA` (optional, newer than Xen 4.17).
    GetQuota = 25,
    /// `XS_SET_QUOTA` (optional, newer than Xen 4.17).
    SetQuota = 26,
    /// `XS_INVALID`: guaranteed never to be a valid type.
    Invalid = 0xffff,
}

impl MsgType {
    /// Every defined type, in numeric order.
    pub const ALL: [MsgType; 27] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
        MsgType::GetFeature,
        MsgType::SetFeature,
        MsgType::GetQuota,
        MsgType::SetQuota,
        MsgType::Invalid,
    ];

    /// The wire value.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The type for a wire value, `None` for values no version of the protocol defines.
    pub fn from_code(code: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| t.code() == code)
    }

    /// The upstream name (`XS_` prefix dropped), as used in traces.
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "CONTROL",
            MsgType::Directory => "DIRECTORY",
            MsgType::Read => "READ",
            MsgType::GetPerms => "GET_PERMS",
            MsgType::Watch => "WATCH",
            MsgType::Unwatch => "UNWATCH",
            MsgType::TransactionStart => "TRANSACTION_START",
            MsgType::TransactionEnd => "TRANSACTION_END",
            MsgType::Introduce => "INTRODUCE",
            MsgType::Release => "RELEASE",
            MsgType::GetDomainPath => "GET_DOMAIN_PATH",
            MsgType::Write => "WRITE",
            MsgType::Mkdir => "MKDIR",
            MsgType::Rm => "RM",
            MsgType::SetPerms => "SET_PERMS",
            MsgType::WatchEvent => "WATCH_EVENT",
            MsgType::Error => "ERROR",
            MsgType::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "RESUME",
            MsgType::SetTarget => "SET_TARGET",
            MsgType::ResetWatches => "RESET_WATCHES",
            MsgType::DirectoryPart => "DIRECTORY_PART",
            MsgType::GetFeature => "GET_FEATURE",
            MsgType::SetFeature => "SET_FEATURE",
            MsgType::GetQuota => "GET_QUOTA",
            MsgType::SetQuota => "SET_QUOTA",
            MsgType::Invalid => "INVALID",
        }
    }
}

/// The errors of `xsd_errors[]`: transmitted as their names, e.g. `"ENOENT\0"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Errno {
    /// invalid argument (EINVAL)
    #[error("invalid argument (EINVAL)")]
    Einval,
    /// permission denied (EACCES)
    #[error("permission denied (EACCES)")]
    Eacces,
    /// already exists (EEXIST)
    #[error("already exists (EEXIST)")]
    Eexist,
    /// is a directory (EISDIR)
    #[error("is a directory (EISDIR)")]
    Eisdir,
    /// no such node (ENOENT)
    #[error("no such node (ENOENT)")]
    Enoent,
    /// out of memory (ENOMEM)
    #[error("out of memory (ENOMEM)")]
    Enomem,
    /// quota exceeded (ENOSPC)
    #[error("quota exceeded (ENOSPC)")]
    Enospc,
    /// input/output error (EIO)
    #[error("input/output error (EIO)")]
    Eio,
    /// not empty (ENOTEMPTY)
    #[error("not empty (ENOTEMPTY)")]
    Enotempty,
    /// operation not supported (ENOSYS)
    #[error("operation not supported (ENOSYS)")]
    Enosys,
    /// read-only (EROFS)
    #[error("read-only (EROFS)")]
    Erofs,
    /// busy (EBUSY)
    #[error("busy (EBUSY)")]
    Ebusy,
    /// transaction conflict, try again (EAGAIN)
    #[error("transaction conflict, try again (EAGAIN)")]
    Eagain,
    /// already connected (EISCONN)
    #[error("already connected (EISCONN)")]
    Eisconn,
    /// reply too big (E2BIG)
    #[error("reply too big (E2BIG)")]
    E2big,
    /// operation not permitted (EPERM)
    #[error("operation not permitted (EPERM)")]
    Eperm,
}

impl Errno {
    /// Every error of `xsd_errors[]`, in table order.
    pub const ALL: [Errno; 16] = [
        Errno::Einval,
        Errno::Eacces,
        Errno::Eexist,
        Errno::Eisdir,
        Errno::Enoent,
        Errno::Enomem,
        Errno::Enospc,
        Errno::Eio,
        Errno::Enotempty,
        Errno::Enosys,
        Errno::Erofs,
        Errno::Ebusy,
        Errno::Eagain,
        Errno::Eisconn,
        Errno::E2big,
        Errno::Eperm,
    ];

    /// The string sent on the wire (without the trailing NUL).
    pub fn name(self) -> &'static str {
        match self {
            Errno::Einval => "EINVAL",
            Errno::Eacces => "EACCES",
            Errno::Eexist => "EEXIST",
            Errno::Eisdir => "EISDIR",
            Errno::Enoent => "ENOENT",
            Errno::Enomem => "ENOMEM",
            Errno::Enospc => "ENOSPC",
            Errno::Eio => "EIO",
            Errno::Enotempty => "ENOTEMPTY",
            Errno::Enosys => "ENOSYS",
            Errno::Erofs => "EROFS",
            Errno::Ebusy => "EBUSY",
            Errno::Eagain => "EAGAIN",
            Errno::Eisconn => "EISCONN",
            Errno::E2big => "E2BIG",
            Errno::Eperm => "EPERM",
        }
    }

    /// Parses an ERROR payload (`"ENOENT\0"`, NUL optional).
    pub fn from_name(name: &[u8]) -> Option<Errno> {
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.name().as_bytes() == name)
    }

    /// The Linux errno value (what libxenstore puts in `errno`).
    pub fn raw_os_error(self) -> i32 {
        match self {
            Errno::Einval => libc::EINVAL,
            Errno::Eacces => libc::EACCES,
            Errno::Eexist => libc::EEXIST,
            Errno::Eisdir => libc::EISDIR,
            Errno::Enoent => libc::ENOENT,
            Errno::Enomem => libc::ENOMEM,
            Errno::Enospc => libc::ENOSPC,
            Errno::Eio => libc::EIO,
            Errno::Enotempty => libc::ENOTEMPTY,
            Errno::Enosys => libc::ENOSYS,
            Errno::Erofs => libc::EROFS,
            Errno::Ebusy => libc::EBUSY,
            Errno::Eagain => libc::EAGAIN,
            Errno::Eisconn => libc::EISCONN,
            Errno::E2big => libc::E2BIG,
            Errno::Eperm => libc::EPERM,
        }
    }

    /// The error for a Linux errno value, if the protocol has one.
    pub fn from_raw_os_error(code: i32) -> Option<Errno> {
        Errno::ALL
            .iter()
            .copied()
            .find(|e| e.raw_os_error() == code)
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }
}

/// Why bytes could not be decoded as a message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The header announces more payload than the protocol allows.
    #[error("message payload of {0} bytes exceeds the protocol limit of {PAYLOAD_MAX} bytes")]
    PayloadTooLong(u32),
    /// The stream ended in the middle of a message.
    #[error("connection closed in the middle of a message ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received of the current part.
        got: usize,
        /// Bytes that part needs.
        want: usize,
    },
    /// The transport failed.
    #[error("xenstore transport I/O error: {0}")]
    Io(#[from] io::Error),
}

/// The fixed-size message header (`struct xsd_sockmsg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw message type (kept raw so unknown types can be answered with ENOSYS).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id, 0 outside transactions.
    pub tx_id: u32,
    /// Payload length, already checked to be at most [`PAYLOAD_MAX`].
    pub len: u32,
}

impl Header {
    /// Decodes and validates a header; refuses payload lengths above [`PAYLOAD_MAX`].
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Header, WireError> {
        let word =
            |i: usize| u32::from_ne_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = Header {
            msg_type: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        };
        if header.len as usize > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(header.len));
        }
        Ok(header)
    }

    /// Encodes the header.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.msg_type.to_ne_bytes());
        out[4..8].copy_from_slice(&self.req_id.to_ne_bytes());
        out[8..12].copy_from_slice(&self.tx_id.to_ne_bytes());
        out[12..16].copy_from_slice(&self.len.to_ne_bytes());
        out
    }
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Raw message type.
    pub msg_type: u32,
    /// Request id.
    pub req_id: u32,
    /// Transaction id.
    pub tx_id: u32,
    /// Payload, at most [`PAYLOAD_MAX`] bytes.
    pub payload: Vec<u8>,
}

impl Message {
    /// A message of a known type.
    pub fn new(msg_type: MsgType, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Message {
        Message {
            msg_type: msg_type.code(),
            req_id,
            tx_id,
            payload,
        }
    }

    /// The message type, `None` if no protocol version defines it.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_code(self.msg_type)
    }

    /// Header plus payload as one buffer (one write, as `/dev/xen/xenbus` wants).
    /// Fails if the payload is longer than the protocol allows.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        if self.payload.len() > PAYLOAD_MAX {
            return Err(WireError::PayloadTooLong(
                u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
            ));
        }
        let header = Header {
            msg_type: self.msg_type,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: self.payload.len() as u32,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Writes the message in one `write_all`.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), WireError> {
        w.write_all(&self.encode()?)?;
        Ok(())
    }

    /// Reads exactly one message from a blocking stream. The payload buffer is allocated only
    /// after the length passed the [`PAYLOAD_MAX`] check.
    pub fn read_from(r: &mut impl Read) -> Result<Message, WireError> {
        let mut raw = [0u8; HEADER_LEN];
        read_full(r, &mut raw)?;
        let header = Header::decode(&raw)?;
        let mut payload = vec![0u8; header.len as usize];
        read_full(r, &mut payload)?;
        Ok(Message {
            msg_type: header.msg_type,
            req_id: header.req_id,
            tx_id: header.tx_id,
            payload,
        })
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<(), WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => {
                return Err(WireError::Truncated {
                    got,
                    want: buf.len(),
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(())
}

/// Incremental decoder for non-blocking transports (sockets, rings): feed it whatever bytes
/// arrived; it returns complete messages. Memory held is bounded by one header plus
/// [`PAYLOAD_MAX`].
#[derive(Debug, Default)]
pub struct Decoder {
    header_bytes: [u8; HEADER_LEN],
    header_len: usize,
    header: Option<Header>,
    payload: Vec<u8>,
}

impl Decoder {
    /// A decoder at a message boundary.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// True if no partial message is buffered.
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.header.is_none()
    }

    /// How many bytes the current part (header or payload) still needs; readers use this so
    /// they never pull more than one message off a ring.
    pub fn wanted(&self) -> usize {
        match &self.header {
            None => HEADER_LEN - self.header_len,
            Some(h) => h.len as usize - self.payload.len(),
        }
    }

    /// Consumes bytes from the front of `input` and returns a message once one is complete.
    /// Call repeatedly until `input` is empty. After an error the connection must be dropped.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, WireError> {
        loop {
            match self.header {
                None => {
                    let take = (HEADER_LEN - self.header_len).min(input.len());
                    self.header_bytes[self.header_len..self.header_len + take]
                        .copy_from_slice(&input[..take]);
                    self.header_len += take;
                    *input = &input[take..];
                    if self.header_len < HEADER_LEN {
                        return Ok(None);
                    }
                    let header = Header::decode(&self.header_bytes)?;
                    self.payload = Vec::with_capacity(header.len as usize);
                    self.header = Some(header);
                }
                Some(header) => {
                    let take = (header.len as usize - self.payload.len()).min(input.len());
                    self.payload.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if self.payload.len() < header.len as usize {
                        return Ok(None);
                    }
                    self.header = None;
                    self.header_len = 0;
                    let payload = std::mem::take(&mut self.payload);
                    return Ok(Some(Message {
                        msg_type: header.msg_type,
                        req_id: header.req_id,
                        tx_id: header.tx_id,
                        payload,
                    }));
                }
            }
        }
    }
}

/// The NUL-terminated strings of a payload, as `get_strings()` in the C daemon sees them:
/// bytes after the last NUL are ignored.
pub fn split_strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = payload;
    while let Some(pos) = rest.iter().position(|&b| b == 0) {
        out.push(&rest[..pos]);
        rest = &rest[pos + 1..];
    }
    out
}

/// The single argument of a one-argument request: the payload must hold exactly one NUL, at
/// its end (C xenstored's `onearg()`).
pub fn one_arg(payload: &[u8]) -> Option<&[u8]> {
    let (last, body) = payload.split_last()?;
    if *last != 0 || body.contains(&0) {
        return None;
    }
    Some(body)
}

/// Joins strings into a payload, each followed by a NUL.
pub fn join_strings<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_ref());
        out.push(0);
    }
    out
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty path.
    #[error("empty xenstore path")]
    Empty,
    /// A byte outside `[A-Za-z0-9-/_@]`.
    #[error("xenstore path {0:?} contains a character outside [A-Za-z0-9-/_@]")]
    BadCharacter(String),
    /// `//` or a trailing `/`.
    #[error("xenstore path {0:?} has an empty component (double or trailing slash)")]
    EmptyComponent(String),
    /// Too long.
    #[error("xenstore path of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Path length.
        len: usize,
        /// Applicable limit.
        max: usize,
    },
}

/// Checks the syntax of a path as xenstore.txt defines it (`@` paths are special watch names
/// and allowed when `allow_special`). Relative paths are allowed; the caller resolves them.
pub fn check_path_syntax(path: &[u8], allow_special: bool) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(PathError::Empty);
    }
    // The text for the error is built only on failure: this runs for every request.
    let text = || String::from_utf8_lossy(path).into_owned();
    if !path
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-/_@".contains(&b))
    {
        return Err(PathError::BadCharacter(text()));
    }
    if path[0] == b'@' && !allow_special {
        return Err(PathError::BadCharacter(text()));
    }
    if (path.len() > 1 && path.ends_with(b"/")) || path.windows(2).any(|w| w == b"//") {
        return Err(PathError::EmptyComponent(text()));
    }
    let max = if path[0] == b'/' || path[0] == b'@' {
        ABS_PATH_MAX
    } else {
        REL_PATH_MAX
    };
    if path.len() > max {
        return Err(PathError::TooLong {
            len: path.len(),
            max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_type_round_trips_through_its_code() {
        for t in MsgType::ALL {
            assert_eq!(MsgType::from_code(t.code()), Some(t));
        }
        assert_eq!(MsgType::from_code(20), None, "XS_RESTRICT was removed");
        assert_eq!(MsgType::from_code(27), None);
    }

    #[test]
    fn every_error_round_trips_by_name_and_errno() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_name(e.name().as_bytes()), Some(e));
            assert_eq!(
                Errno::from_name(format!("{}\0", e.name()).as_bytes()),
                Some(e)
            );
            assert_eq!(Errno::from_raw_os_error(e.raw_os_error()), Some(e));
        }
        assert_eq!(Errno::from_name(b"EWHATEVER"), None);
    }

    #[test]
    fn header_announcing_more_than_4096_bytes_is_refused_before_allocation() {
        let h = Header {
            msg_type: 2,
            req_id: 1,
            tx_id: 0,
            len: 4097,
        };
        assert!(matches!(
            Header::decode(&h.encode()),
            Err(WireError::PayloadTooLong(4097))
        ));
        let h = Header { len: u32::MAX, ..h };
        let mut bytes: &[u8] = &h.encode();
        assert!(matches!(
            Message::read_from(&mut bytes),
            Err(WireError::PayloadTooLong(_))
        ));
    }

    #[test]
    fn truncated_message_is_reported_not_padded() {
        let m = Message::new(MsgType::Read, 7, 0, b"/a\0".to_vec())
            .encode()
            .unwrap();
        let mut short: &[u8] = &m[..m.len() - 1];
        assert!(matches!(
            Message::read_from(&mut short),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn decoder_assembles_messages_from_single_bytes() {
        let a = Message::new(MsgType::Write, 1, 3, b"/a\0xyz".to_vec());
        let b = Message::new(MsgType::Read, 2, 0, b"/a\0".to_vec());
        let mut stream = a.encode().unwrap();
        stream.extend(b.encode().unwrap());
        let mut dec = Decoder::new();
        let mut got = Vec::new();
        for byte in &stream {
            let mut input: &[u8] = std::slice::from_ref(byte);
            while !input.is_empty() {
                if let Some(m) = dec.decode(&mut input).unwrap() {
                    got.push(m);
                }
            }
        }
        assert_eq!(got, vec![a, b]);
        assert!(dec.at_boundary());
    }

    #[test]
    fn one_arg_requires_exactly_one_trailing_nul() {
        assert_eq!(one_arg(b"/a\0"), Some(&b"/a"[..]));
        assert_eq!(one_arg(b"/a"), None);
        assert_eq!(one_arg(b"/a\0b\0"), None);
        assert_eq!(one_arg(b""), None);
    }

    #[test]
    fn split_strings_ignores_bytes_after_the_last_nul() {
        assert_eq!(split_strings(b"a\0b\0c"), vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn path_syntax_follows_xenstore_txt() {
        assert!(check_path_syntax(b"/", false).is_ok());
        assert!(check_path_syntax(b"/local/domain/0", false).is_ok());
        assert!(check_path_syntax(b"device/vif", false).is_ok());
        assert!(check_path_syntax(b"@releaseDomain", true).is_ok());
        assert!(check_path_syntax(b"@releaseDomain", false).is_err());
        assert!(check_path_syntax(b"", false).is_err());
        assert!(check_path_syntax(b"/a//b", false).is_err());
        assert!(check_path_syntax(b"/a/", false).is_err());
        assert!(check_path_syntax(b"/a b", false).is_err());
        let long = format!("/{}", "a".repeat(ABS_PATH_MAX));
        assert!(matches!(
            check_path_syntax(long.as_bytes(), false),
            Err(PathError::TooLong { .. })
        ));
    }
}
