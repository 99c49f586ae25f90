//! Hostile clients, one test per class of xenstored security advisory. Each attack must be
//! refused or contained, and the daemon must keep serving everyone else.
//!
//! Socket-level attacks run against the real daemon binary. Attacks that need an unprivileged
//! *domain* (on Xen they come over a guest's ring, which the host cannot fake) drive
//! [`Core`] directly as that domain: the request handling is the same code either way.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use xenstore::client::{Client, XsOps};
use xenstore::daemon::config::Quotas;
use xenstore::daemon::core::{ConnId, ConnKind, Core, NoXen};
use xenstore::wire::{self, Decoder, Errno, Header, Message, MsgType};

fn client(d: &common::Daemon) -> Client {
    let mut c = Client::connect(&d.socket).expect("connect");
    c.set_timeout(Some(Duration::from_secs(20)));
    c
}

fn daemon_serves(d: &common::Daemon) {
    let c = client(d);
    c.write("/alive/check", b"yes")
        .expect("daemon still serves writes");
    assert_eq!(
        c.read("/alive/check").expect("daemon still serves reads"),
        b"yes"
    );
}

fn daemon_rss_kb(d: &mut common::Daemon) -> u64 {
    assert!(d.is_running(), "daemon died");
    let pid = d.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---- XSA-72 class: unbounded sizes from the client ----

#[test]
fn oversized_length_is_refused_without_allocating_and_others_are_served() {
    let mut d = common::Daemon::start(&[]);
    let before = daemon_rss_kb(&mut d);
    for len in [4097u32, 1 << 20, u32::MAX] {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let h = Header {
            msg_type: MsgType::Write.code(),
            req_id: 1,
            tx_id: 0,
            len,
        };
        s.write_all(&h.encode()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            s.read(&mut buf).unwrap_or(0),
            0,
            "connection announcing {len} bytes must be closed"
        );
    }
    daemon_serves(&d);
    let after = daemon_rss_kb(&mut d);
    assert!(
        after < before + 8 * 1024,
        "daemon RSS grew from {before} kB to {after} kB"
    );
}

#[test]
fn truncated_messages_do_not_stall_the_daemon() {
    let d = common::Daemon::start(&[]);
    // Half a header, left open; half a payload, left open; a message cut by close.
    let mut half_header = UnixStream::connect(&d.socket).unwrap();
    half_header.write_all(&[2, 0, 0]).unwrap();
    let mut half_payload = UnixStream::connect(&d.socket).unwrap();
    let m = Message::new(MsgType::Write, 1, 0, b"/x\0value".to_vec())
        .encode()
        .unwrap();
    half_payload.write_all(&m[..m.len() - 3]).unwrap();
    {
        let mut cut = UnixStream::connect(&d.socket).unwrap();
        cut.write_all(&m[..20]).unwrap();
    }
    daemon_serves(&d);
    // The half-written write must not have been applied.
    assert_eq!(
        client(&d).read("/x").unwrap_err().errno(),
        Some(Errno::Enoent)
    );
    drop((half_header, half_payload));
    daemon_serves(&d);
}

#[test]
fn client_that_never_reads_replies_is_throttled_not_buffered() {
    let mut d = common::Daemon::start(&[]);
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let req = Message::new(MsgType::Read, 1, 0, b"/\0".to_vec())
        .encode()
        .unwrap();
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    // Keep writing until the kernel buffers fill because the daemon stopped reading us.
    while Instant::now() < deadline {
        match s.write(&req) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        Instant::now() < deadline,
        "daemon kept consuming requests whose replies are never read"
    );
    daemon_serves(&d);
    assert!(
        daemon_rss_kb(&mut d) < 64 * 1024,
        "daemon buffered too much for a client that does not read"
    );
    assert!(sent > 0);
}

#[test]
fn client_that_never_reads_watch_events_cannot_exhaust_memory() {
    let mut d = common::Daemon::start(&[]);
    let lazy = client(&d);
    lazy.watch("/", "everything").unwrap();
    let writer = client(&d);
    let value = vec![b'v'; 2000];
    for i in 0..3000 {
        writer
            .write(&format!("/flood/n{}", i % 50), &value)
            .unwrap();
    }
    daemon_serves(&d);
    let rss = daemon_rss_kb(&mut d);
    assert!(
        rss < 64 * 1024,
        "daemon RSS {rss} kB after flooding a non-reading watcher"
    );
    drop(lazy);
}

// ---- Domain-side attacks, driven through Core as an unprivileged domain ----

struct Store {
    core: Core,
    events: std::collections::HashMap<ConnId, Vec<(String, String)>>,
}

impl Store {
    fn new(quotas: Quotas) -> Store {
        Store {
            core: Core::new(quotas, Box::new(NoXen)),
            events: Default::default(),
        }
    }

    fn drain(&mut self, conn: ConnId) -> Vec<Message> {
        let mut bytes = Vec::new();
        if let Some(ob) = self.core.outbox(conn) {
            while let Some(f) = ob.front() {
                let n = f.len();
                bytes.extend_from_slice(f);
                ob.consume(n);
            }
        }
        let mut dec = Decoder::new();
        let mut input = bytes.as_slice();
        let mut out = Vec::new();
        while let Ok(Some(m)) = dec.decode(&mut input) {
            out.push(m);
        }
        out
    }

    fn collect_events(&mut self) {
        let conns: Vec<ConnId> = self.core.take_connections_with_output();
        for c in conns {
            for m in self.drain(c) {
                if m.msg_type == MsgType::WatchEvent.code() {
                    let p = wire::split_strings(&m.payload);
                    let ev = (
                        String::from_utf8_lossy(p[0]).into_owned(),
                        String::from_utf8_lossy(p[1]).into_owned(),
                    );
                    self.events.entry(c).or_default().push(ev);
                }
            }
        }
    }

    fn req_tx(
        &mut self,
        conn: ConnId,
        t: MsgType,
        tx: u32,
        parts: &[&[u8]],
    ) -> Result<Vec<u8>, Errno> {
        let payload = if t == MsgType::Write {
            let mut p = parts[0].to_vec();
            p.push(0);
            p.extend_from_slice(parts[1]);
            p
        } else {
            wire::join_strings(parts)
        };
        self.core.handle(conn, Message::new(t, 9, tx, payload));
        let msgs = self.drain(conn);
        let mut reply = None;
        for m in msgs {
            if m.msg_type == MsgType::WatchEvent.code() {
                let p = wire::split_strings(&m.payload);
                let ev = (
                    String::from_utf8_lossy(p[0]).into_owned(),
                    String::from_utf8_lossy(p[1]).into_owned(),
                );
                self.events.entry(conn).or_default().push(ev);
            } else {
                reply = Some(m);
            }
        }
        self.collect_events();
        let reply = reply.expect("every request gets a reply");
        if reply.msg_type == MsgType::Error.code() {
            Err(Errno::from_name(&reply.payload).expect("known error"))
        } else {
            Ok(reply.payload)
        }
    }

    fn req(&mut self, conn: ConnId, t: MsgType, parts: &[&[u8]]) -> Result<Vec<u8>, Errno> {
        self.req_tx(conn, t, 0, parts)
    }

    fn events_of(&mut self, conn: ConnId, token: &str) -> Vec<String> {
        self.events.get(&conn).map_or(Vec::new(), |v| {
            v.iter()
                .filter(|e| e.1 == token)
                .map(|e| e.0.clone())
                .collect()
        })
    }

    /// dom0 prepares /local/domain/<id> owned by the domain, as the toolstack does.
    fn guest(&mut self, dom0: ConnId, domid: u32) -> ConnId {
        let home = format!("/local/domain/{domid}");
        let conn = self.core.attach_domain(domid);
        self.req(dom0, MsgType::Mkdir, &[home.as_bytes()]).unwrap();
        self.req(
            dom0,
            MsgType::SetPerms,
            &[home.as_bytes(), format!("n{domid}").as_bytes()],
        )
        .unwrap();
        conn
    }
}

#[test]
fn watch_events_for_nodes_the_domain_may_not_read_are_not_delivered() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 5);
    s.req(dom0, MsgType::Mkdir, &[b"/secret"]).unwrap();
    s.req(dom0, MsgType::Mkdir, &[b"/public"]).unwrap();
    s.req(dom0, MsgType::SetPerms, &[b"/public", b"n0", b"r5"])
        .unwrap();
    s.req(guest, MsgType::Watch, &[b"/", b"root"]).unwrap();
    s.req(guest, MsgType::Watch, &[b"/secret", b"secret"])
        .unwrap();
    s.req(dom0, MsgType::Write, &[b"/secret/key", b"hunter2"])
        .unwrap();
    s.req(dom0, MsgType::Write, &[b"/local/domain/0/private", b"x"])
        .unwrap();
    s.req(dom0, MsgType::Write, &[b"/public/news", b"hello"])
        .unwrap();
    let root = s.events_of(guest, "root");
    let secret = s.events_of(guest, "secret");
    assert_eq!(
        secret,
        ["/secret"],
        "only the registration event for an unreadable subtree"
    );
    assert!(
        !root
            .iter()
            .any(|p| p.starts_with("/secret/") || p.contains("private")),
        "leaked: {root:?}"
    );
    assert!(
        root.contains(&"/public/news".to_string()),
        "readable change not delivered: {root:?}"
    );
    // And the data itself is refused.
    assert_eq!(
        s.req(guest, MsgType::Read, &[b"/secret/key"]),
        Err(Errno::Eacces)
    );
    assert_eq!(
        s.req(guest, MsgType::Read, &[b"/secret/none"]),
        Err(Errno::Eacces),
        "existence must not leak"
    );
    // Special watches need permission too.
    s.req(guest, MsgType::Watch, &[b"@releaseDomain", b"rel"])
        .unwrap();
    let other = s.core.attach_domain(6);
    s.req(dom0, MsgType::Release, &[b"6"]).unwrap();
    let _ = other;
    assert_eq!(
        s.events_of(guest, "rel"),
        ["@releaseDomain"],
        "unprivileged domain saw another domain's release"
    );
}

#[test]
fn quotas_stop_a_domain_and_leave_others_working() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 5);
    let mut created = 0;
    let err = loop {
        match s.req(
            guest,
            MsgType::Write,
            &[
                format!("d{}/n{}", created / 100, created % 100).as_bytes(),
                b"v",
            ],
        ) {
            Ok(_) => created += 1,
            Err(e) => break e,
        }
        assert!(created < 5000, "node quota never hit");
    };
    assert_eq!(err, Errno::Enospc);
    // Home + ten directories + leaves stay below the 1000-node quota.
    assert!(
        (980..990).contains(&created),
        "domain created {created} nodes under a 1000-node quota"
    );
    assert_eq!(
        s.req(guest, MsgType::Write, &[b"d0/n0", &vec![b'x'; 2049]]),
        Err(Errno::Enospc),
        "node-size quota"
    );
    for i in 0..128 {
        s.req(guest, MsgType::Watch, &[format!("w{i}").as_bytes(), b"t"])
            .unwrap();
    }
    assert_eq!(
        s.req(guest, MsgType::Watch, &[b"w128", b"t"]),
        Err(Errno::E2big),
        "watch quota"
    );
    let perms: Vec<Vec<u8>> = (0..7).map(|i| format!("r{i}").into_bytes()).collect();
    let mut args: Vec<&[u8]> = vec![b"/local/domain/5/d0/n0"];
    args.extend(perms.iter().map(Vec::as_slice));
    assert_eq!(
        s.req(guest, MsgType::SetPerms, &args),
        Err(Errno::Enospc),
        "permissions quota"
    );
    // Privileged tools are not limited by domain quotas.
    for i in 0..1500 {
        s.req(
            dom0,
            MsgType::Write,
            &[format!("/tool/many/n{i}").as_bytes(), b"v"],
        )
        .unwrap();
    }
}

#[test]
fn transaction_flood_is_refused_per_domain() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 5);
    let mut ids = Vec::new();
    for _ in 0..10 {
        let id = s.req(guest, MsgType::TransactionStart, &[b""]).unwrap();
        ids.push(
            String::from_utf8_lossy(&id)
                .trim_end_matches('\0')
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(
        s.req(guest, MsgType::TransactionStart, &[b""]),
        Err(Errno::Enospc)
    );
    // One transaction touching too many nodes is stopped too.
    let tx = ids[0];
    let mut err = None;
    for i in 0..2000 {
        if let Err(e) = s.req_tx(
            guest,
            MsgType::Read,
            tx,
            &[format!("nothing/n{i}").as_bytes()],
        ) {
            if e != Errno::Enoent {
                err = Some((i, e));
                break;
            }
        }
    }
    let (at, e) = err.expect("transaction node limit never hit");
    assert_eq!(e, Errno::Enospc);
    assert!(at <= 1024, "transaction touched {at} nodes");
    // Ending them frees the slots.
    for id in &ids {
        s.req_tx(guest, MsgType::TransactionEnd, *id, &[b"F"])
            .unwrap();
    }
    s.req(guest, MsgType::TransactionStart, &[b""]).unwrap();
    // Meanwhile dom0 is unaffected.
    s.req(dom0, MsgType::Write, &[b"/tool/x", b"1"]).unwrap();
}

#[test]
fn transaction_flood_on_the_socket_does_not_stop_other_clients() {
    let d = common::Daemon::start(&[]);
    let flood = client(&d);
    let mut txs = Vec::new();
    for i in 0..2000 {
        let t = flood.transaction().unwrap();
        t.write(&format!("/flood/t{i}"), b"x").unwrap();
        txs.push(t);
    }
    daemon_serves(&d);
    std::mem::forget(txs); // left open on purpose; the connection closes with the client
    drop(flood);
    daemon_serves(&d);
}

#[test]
fn released_domain_leaves_no_nodes_watches_or_permissions_behind() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 7);
    s.req(dom0, MsgType::Mkdir, &[b"/shared"]).unwrap();
    s.req(dom0, MsgType::SetPerms, &[b"/shared", b"n0", b"b7"])
        .unwrap();
    s.req(dom0, MsgType::Write, &[b"/local/domain/0/readable", b"x"])
        .unwrap();
    s.req(
        dom0,
        MsgType::SetPerms,
        &[b"/local/domain/0/readable", b"n0", b"r7"],
    )
    .unwrap();
    s.req(
        guest,
        MsgType::Write,
        &[b"/shared/mine/deep", b"guest data"],
    )
    .unwrap();
    s.req(guest, MsgType::Write, &[b"device/vif/0/state", b"4"])
        .unwrap();
    s.req(guest, MsgType::Watch, &[b"/shared", b"w"]).unwrap();
    s.req(dom0, MsgType::Watch, &[b"@releaseDomain", b"rel"])
        .unwrap();
    let nodes_before = s.core.node_count();

    s.req(dom0, MsgType::Release, &[b"7"]).unwrap();

    assert_eq!(
        s.req(dom0, MsgType::Read, &[b"/shared/mine"]),
        Err(Errno::Enoent),
        "guest-owned subtree kept"
    );
    assert_eq!(
        s.req(dom0, MsgType::Read, &[b"/local/domain/7/device"]),
        Err(Errno::Enoent)
    );
    assert!(
        s.req(dom0, MsgType::Read, &[b"/shared"]).is_ok(),
        "dom0-owned node removed"
    );
    assert!(s.core.node_count() < nodes_before);
    let perms = s
        .req(dom0, MsgType::GetPerms, &[b"/local/domain/0/readable"])
        .unwrap();
    assert_eq!(perms, b"n0\0", "permission entry for the dead domain kept");
    assert_eq!(
        s.events_of(dom0, "rel"),
        ["@releaseDomain", "@releaseDomain"]
    );
    assert_eq!(
        s.core.connection_kind(guest),
        None,
        "released domain's connection kept"
    );
    assert_eq!(
        s.req(dom0, MsgType::IsDomainIntroduced, &[b"7"]).unwrap(),
        b"F\0"
    );
    // A new domain reusing the id inherits nothing.
    let reborn = s.core.attach_domain(7);
    assert_eq!(
        s.req(reborn, MsgType::Read, &[b"/local/domain/0/readable"]),
        Err(Errno::Eacces)
    );
}

#[test]
fn very_deep_and_long_paths_are_bounded() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 5);
    let rel_too_long = "a/".repeat(1100) + "end";
    assert_eq!(
        s.req(guest, MsgType::Write, &[rel_too_long.as_bytes(), b"x"]),
        Err(Errno::Einval)
    );
    let abs_too_long = "/x".repeat(1600);
    assert_eq!(
        s.req(dom0, MsgType::Write, &[abs_too_long.as_bytes(), b"x"]),
        Err(Errno::Einval)
    );
    // Upstream limits every path, dom0's too, to 2048 bytes below /local/domain/<id>/.
    let dom0_too_long = "/y".repeat(1025);
    assert_eq!(
        s.req(dom0, MsgType::Write, &[dom0_too_long.as_bytes(), b"x"]),
        Err(Errno::Einval)
    );
    // The deepest allowed tree (1024 levels) is created and removed without recursion.
    let deepest = "/d".repeat(1024);
    s.req(dom0, MsgType::Write, &[deepest.as_bytes(), b"x"])
        .unwrap();
    s.req(dom0, MsgType::Watch, &[b"/d", b"deep"]).unwrap();
    s.req(dom0, MsgType::Rm, &[b"/d"]).unwrap();
    assert_eq!(
        s.req(dom0, MsgType::Read, &[deepest.as_bytes()]),
        Err(Errno::Enoent)
    );
    assert_eq!(s.events_of(dom0, "deep"), ["/d", "/d"]);
}

#[test]
fn updating_an_existing_node_checks_permissions_generation_and_watch_visibility() {
    let mut s = Store::new(Quotas::default());
    let dom0 = s.core.add_connection(ConnKind::Socket);
    let guest = s.guest(dom0, 5);
    s.req(dom0, MsgType::Write, &[b"/shared/v", b"a"]).unwrap();
    s.req(dom0, MsgType::SetPerms, &[b"/shared/v", b"n0", b"r5"])
        .unwrap();
    s.req(guest, MsgType::Watch, &[b"/shared/v", b"w"]).unwrap();
    assert_eq!(
        s.req(guest, MsgType::Write, &[b"/shared/v", b"evil"]),
        Err(Errno::Eacces),
        "read-only node overwritten"
    );
    assert_eq!(
        s.req(guest, MsgType::Read, &[b"/shared/v"]),
        Ok(b"a".to_vec())
    );
    s.req(dom0, MsgType::Write, &[b"/shared/v", b"b"]).unwrap();
    // A transaction that read the node conflicts with the update made outside it.
    let tx = s.req(guest, MsgType::TransactionStart, &[b""]).unwrap();
    let tx: u32 = String::from_utf8_lossy(&tx)
        .trim_end_matches('\0')
        .parse()
        .unwrap();
    assert_eq!(
        s.req_tx(guest, MsgType::Read, tx, &[b"/shared/v"]),
        Ok(b"b".to_vec())
    );
    s.req(dom0, MsgType::Write, &[b"/shared/v", b"c"]).unwrap();
    assert_eq!(
        s.req_tx(guest, MsgType::TransactionEnd, tx, &[b"T"]),
        Err(Errno::Eagain),
        "update did not change the node's generation"
    );
    // Once the node is unreadable for the guest, its updates are no longer shown to it.
    s.req(dom0, MsgType::SetPerms, &[b"/shared/v", b"n0"])
        .unwrap();
    s.req(dom0, MsgType::Write, &[b"/shared/v", b"secret"])
        .unwrap();
    assert_eq!(
        s.events_of(guest, "w"),
        ["/shared/v", "/shared/v", "/shared/v", "/shared/v"],
        "registration, two readable updates and the permission change; not the secret write"
    );
}
