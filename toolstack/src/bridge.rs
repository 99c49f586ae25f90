//! Putting a vif's netdev on its bridge and bringing it up, over rtnetlink, in-process: the
//! work of Xen's `vif-bridge` hotplug script without forking a shell per interface.

use std::path::Path;

use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 0x2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFF_UP: u32 = 0x1;
const AF_UNSPEC: u8 = 0;

/// A link change: any of rename, enslave, up/down.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub ifindex: i32,
    pub new_name: Option<String>,
    pub master: Option<i32>,
    pub up: Option<bool>,
}

/// Encodes an RTM_NEWLINK request (`ip link set`) for `change`, sequence number `seq`.
pub fn encode_link_change(change: &LinkChange, seq: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    // struct ifinfomsg
    body.push(AF_UNSPEC);
    body.push(0);
    body.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    body.extend_from_slice(&change.ifindex.to_ne_bytes());
    let (flags, mask) = match change.up {
        Some(true) => (IFF_UP, IFF_UP),
        Some(false) => (0, IFF_UP),
        None => (0, 0),
    };
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&mask.to_ne_bytes());
    if let Some(name) = &change.new_name {
        let mut v = name.as_bytes().to_vec();
        v.push(0);
        push_attr(&mut body, IFLA_IFNAME, &v);
    }
    if let Some(master) = change.master {
        push_attr(&mut body, IFLA_MASTER, &master.to_ne_bytes());
    }
    let len = 16 + body.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(&body);
    msg
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0); // attributes are 4-byte aligned
}

/// Reads the kernel's answer to request `seq`: Ok on an ack, the errno otherwise.
pub fn decode_ack(reply: &[u8], seq: u32) -> std::io::Result<()> {
    let mut rest = reply;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let msg_seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if len < 16 || len > rest.len() {
            break;
        }
        if kind == NLMSG_ERROR && msg_seq == seq && len >= 20 {
            let errno = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
            return if errno == 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(-errno))
            };
        }
        rest = &rest[(len + 3) & !3..];
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "no netlink acknowledgement",
    ))
}

/// The ifindex of interface `name`, from sysfs.
pub fn ifindex(name: &str) -> Result<i32> {
    valid_ifname(name)?;
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .map_err(|_| Error::NoSuchInterface(name.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| Error::NoSuchInterface(name.to_string()))
}

/// Fails unless `bridge` exists and is a bridge.
pub fn check_bridge(bridge: &str) -> Result<i32> {
    valid_ifname(bridge)?;
    if !Path::new(&format!("/sys/class/net/{bridge}/bridge")).exists() {
        return Err(Error::NoSuchBridge(bridge.to_string()));
    }
    ifindex(bridge)
}

fn valid_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0);
    if ok {
        Ok(())
    } else {
        Err(Error::BadInterfaceName(name.to_string()))
    }
}

/// Sends one link change and waits for the kernel's ack.
fn apply(change: &LinkChange, op: &'static str, ifname: &str) -> Result<()> {
    let nl = |source| Error::Netlink {
        op,
        ifname: ifname.to_string(),
        source,
    };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(nl)?;
    socket.bind_auto().map_err(nl)?;
    socket.connect(&SocketAddr::new(0, 0)).map_err(nl)?;
    let seq = 1;
    socket
        .send(&encode_link_change(change, seq), 0)
        .map_err(nl)?;
    let mut buf = vec![0u8; 8192];
    let n = socket.recv(&mut &mut buf[..], 0).map_err(nl)?;
    decode_ack(&buf[..n.min(buf.len())], seq).map_err(nl)
}

/// Renames `vif` (netback's `vifD.N`) to `new_name`; the link must be down.
pub fn rename(vif: &str, new_name: &str) -> Result<()> {
    valid_ifname(new_name)?;
    let change = LinkChange {
        ifindex: ifindex(vif)?,
        new_name: Some(new_name.to_string()),
        ..Default::default()
    };
    apply(&change, "rename", vif)
}

/// Enslaves `vif` to `bridge` and brings it up, as `ip link set VIF master BRIDGE up`.
pub fn attach(vif: &str, bridge: &str) -> Result<()> {
    let master = check_bridge(bridge)?;
    let change = LinkChange {
        ifindex: ifindex(vif)?,
        master: Some(master),
        up: Some(true),
        ..Default::default()
    };
    apply(&change, "attach to bridge", vif)
}

/// Takes `vif` off its bridge and brings it down, as `ip link set VIF nomaster down`.
pub fn detach(vif: &str) -> Result<()> {
    let change = LinkChange {
        ifindex: ifindex(vif)?,
        // IFLA_MASTER 0 releases the interface from its master.
        master: Some(0),
        up: Some(false),
        ..Default::default()
    };
    apply(&change, "release from bridge", vif)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enslave_and_up_encodes_like_ip_link_set() {
        let m = encode_link_change(
            &LinkChange {
                ifindex: 7,
                master: Some(3),
                up: Some(true),
                ..Default::default()
            },
            9,
        );
        assert_eq!(m.len(), 16 + 16 + 8);
        assert_eq!(
            u32::from_ne_bytes([m[0], m[1], m[2], m[3]]) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), RTM_NEWLINK);
        assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32::from_ne_bytes([m[8], m[9], m[10], m[11]]), 9);
        assert_eq!(i32::from_ne_bytes([m[20], m[21], m[22], m[23]]), 7); // ifi_index
        assert_eq!(u32::from_ne_bytes([m[24], m[25], m[26], m[27]]), IFF_UP); // ifi_flags
        assert_eq!(u32::from_ne_bytes([m[28], m[29], m[30], m[31]]), IFF_UP); // ifi_change
        assert_eq!(u16::from_ne_bytes([m[32], m[33]]), 8); // rta_len
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFLA_MASTER);
        assert_eq!(i32::from_ne_bytes([m[36], m[37], m[38], m[39]]), 3);
    }

    #[test]
    fn release_encodes_master_zero_and_down() {
        let m = encode_link_change(
            &LinkChange {
                ifindex: 9,
                master: Some(0),
                up: Some(false),
                ..Default::default()
            },
            2,
        );
        assert_eq!(u32::from_ne_bytes([m[24], m[25], m[26], m[27]]), 0); // flags: down
        assert_eq!(u32::from_ne_bytes([m[28], m[29], m[30], m[31]]), IFF_UP); // change: up bit
        assert_eq!(u16::from_ne_bytes([m[34], m[35]]), IFLA_MASTER);
        assert_eq!(i32::from_ne_bytes([m[36], m[37], m[38], m[39]]), 0);
    }

    #[test]
    fn names_are_nul_terminated_and_padded() {
        let m = encode_link_change(
            &LinkChange {
                ifindex: 7,
                new_name: Some("web0".into()),
                ..Default::default()
            },
            1,
        );
        // header 16 + ifinfomsg 16 + attr (4 + "web0\0" = 9, padded to 12)
        assert_eq!(m.len(), 44);
        assert_eq!(&m[36..41], b"web0\0");
        assert_eq!(
            u32::from_ne_bytes([m[28], m[29], m[30], m[31]]),
            0,
            "no flag change asked"
        );
    }

    fn error_reply(seq: u32, errno: i32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&36u32.to_ne_bytes());
        r.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        r.extend_from_slice(&0u16.to_ne_bytes());
        r.extend_from_slice(&seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&errno.to_ne_bytes());
        r.extend_from_slice(&[0u8; 16]); // the echoed request header
        r
    }

    #[test]
    fn ack_and_errno_are_told_apart() {
        assert!(decode_ack(&error_reply(5, 0), 5).is_ok());
        let e = decode_ack(&error_reply(5, -19), 5)
            .err()
            .and_then(|e| e.raw_os_error());
        assert_eq!(e, Some(19)); // ENODEV
        assert!(
            decode_ack(&error_reply(4, 0), 5).is_err(),
            "another request's ack"
        );
        assert!(decode_ack(&[1, 2, 3], 5).is_err(), "truncated");
    }

    #[test]
    fn a_missing_bridge_is_named() {
        let msg = check_bridge("nosuchbr0")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            msg,
            "bridge nosuchbr0 does not exist (is it configured in /etc/network/interfaces?)"
        );
    }

    #[test]
    fn hostile_interface_names_are_refused() {
        for bad in ["", "../../etc", "a b", "sixteen-chars-xx", "eth0:1"] {
            assert!(
                matches!(ifindex(bad), Err(Error::BadInterfaceName(_))),
                "{bad:?}"
            );
        }
    }
}
