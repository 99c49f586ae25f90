//! Conformance cases that run against any xenstored over its Unix socket (ours on the host in
//! `cargo test`; Debian's C daemon and ours in the lab, through the `xs-conformance` binary).
//! Each case checks one behaviour of upstream xenstored as seen by a dom0 tool: values, errors,
//! permissions, watch firing, transactions. A case only touches nodes under its own path below
//! the run's base, and removes them.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::{Client, WatchEvent, XsOps};
use crate::daemon::core::Perm;
use crate::wire::{self, Errno, Message, MsgType};

/// What a case runs against.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The daemon's socket.
    pub socket: PathBuf,
    /// Base path of this run (unique per run).
    pub base: String,
}

type CaseResult = Result<(), String>;

/// One conformance case.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Name, printed in PASS/FAIL lines.
    pub name: &'static str,
    run: fn(&Ctx, &str) -> CaseResult,
}

const EVENT_WAIT: Duration = Duration::from_secs(5);

impl Ctx {
    fn client(&self) -> Result<Client, String> {
        let mut c = Client::connect(&self.socket).map_err(|e| e.to_string())?;
        c.set_timeout(Some(Duration::from_secs(20)));
        Ok(c)
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> CaseResult {
    if cond {
        Ok(())
    } else {
        Err(what())
    }
}

fn ok<T>(r: crate::client::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: unexpected error {e}"))
}

fn expect_err<T: std::fmt::Debug>(
    r: crate::client::Result<T>,
    want: Errno,
    what: &str,
) -> CaseResult {
    match r {
        Err(e) if e.errno() == Some(want) => Ok(()),
        Err(e) => Err(format!("{what}: expected {}, got {e}", want.name())),
        Ok(v) => Err(format!(
            "{what}: expected {}, got success {v:?}",
            want.name()
        )),
    }
}

/// Sends one raw request on a fresh socket and returns the reply.
fn raw_request(ctx: &Ctx, msg: &Message) -> Result<Message, String> {
    let mut s = UnixStream::connect(&ctx.socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    msg.write_to(&mut s).map_err(|e| e.to_string())?;
    loop {
        let reply = Message::read_from(&mut s).map_err(|e| e.to_string())?;
        if reply.msg_type != MsgType::WatchEvent.code() {
            return Ok(reply);
        }
    }
}

fn raw_error(
    ctx: &Ctx,
    msg_type: u32,
    tx_id: u32,
    payload: &[u8],
) -> Result<Option<Errno>, String> {
    let reply = raw_request(
        ctx,
        &Message {
            msg_type,
            req_id: 4242,
            tx_id,
            payload: payload.to_vec(),
        },
    )?;
    ensure(reply.req_id == 4242, || {
        format!("reply req_id {} instead of 4242", reply.req_id)
    })?;
    if reply.msg_type == MsgType::Error.code() {
        Ok(Errno::from_name(&reply.payload))
    } else {
        Ok(None)
    }
}

fn expect_raw_error(
    ctx: &Ctx,
    msg_type: u32,
    payload: &[u8],
    want: Errno,
    what: &str,
) -> CaseResult {
    match raw_error(ctx, msg_type, 0, payload)? {
        Some(e) if e == want => Ok(()),
        other => Err(format!("{what}: expected {}, got {other:?}", want.name())),
    }
}

/// Collects events until the sentinel event arrives: everything the daemon sent for earlier
/// operations comes before it on the same connection.
fn events_until_sync(c: &Client, sync_path: &str) -> Result<Vec<WatchEvent>, String> {
    ok(c.watch(sync_path, "sync-token"), "watch sync node")?;
    let mut out = Vec::new();
    loop {
        match ok(c.next_event(Some(EVENT_WAIT)), "waiting for events")? {
            Some(ev) if ev.token == "sync-token" => break,
            Some(ev) => out.push(ev),
            None => {
                return Err(format!(
                    "no sync event for {sync_path} within {EVENT_WAIT:?}"
                ))
            }
        }
    }
    ok(c.unwatch(sync_path, "sync-token"), "unwatch sync node")?;
    Ok(out)
}

/// Registers a watch and consumes its registration event, so later checks do not depend on
/// whether the daemon merges an identical event still queued (C xenstored drops duplicates of
/// pending events).
fn watch_drained(c: &Client, path: &str, token: &str, sync: &str) -> CaseResult {
    ok(c.watch(path, token), "watch")?;
    let evs = events_until_sync(c, sync)?;
    ensure(paths(&evs, token) == [path.to_string()], || {
        format!("registration events {evs:?}")
    })
}

fn paths(evs: &[WatchEvent], token: &str) -> Vec<String> {
    evs.iter()
        .filter(|e| e.token == token)
        .map(|e| e.path.clone())
        .collect()
}

fn perms_wire(p: &[Perm]) -> Vec<String> {
    p.iter().map(Perm::to_wire).collect()
}

fn perm(s: &str) -> Perm {
    Perm::parse(s.as_bytes()).unwrap_or(Perm {
        domid: 0,
        read: false,
        write: false,
        ignore: false,
    })
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        /// Every case, in run order.
        pub const CASES: &[Case] = &[$(Case { name: stringify!($name), run: $name }),*];
    };
}

cases!(
    write_then_read_returns_value,
    read_of_missing_node_is_enoent,
    write_creates_missing_parents_with_empty_values,
    binary_values_round_trip,
    mkdir_keeps_existing_value,
    rm_removes_the_whole_subtree,
    rm_of_missing_node_with_existing_parent_succeeds,
    rm_of_missing_node_without_parent_is_enoent,
    rm_of_root_is_einval,
    directory_lists_children_in_creation_order,
    directory_of_missing_node_is_enoent,
    malformed_paths_are_einval,
    special_paths_are_refused_for_data_operations,
    largest_value_that_fits_one_message_round_trips,
    oversized_message_closes_only_that_connection,
    new_nodes_inherit_parent_permissions,
    set_perms_round_trips,
    set_perms_with_unknown_owner_domain_is_enoent,
    set_perms_keeps_entries_for_unknown_domains,
    set_perms_with_bad_spec_is_einval,
    set_perms_of_missing_node_is_enoent,
    special_watch_nodes_take_permissions_but_are_not_nodes,
    watch_fires_once_when_registered,
    watch_fires_for_writes_below_it_and_not_beside_it,
    rm_fires_exact_events_for_children_and_subtree_event_for_root,
    mkdir_of_existing_node_fires_nothing,
    set_perms_fires_watch,
    duplicate_watch_is_eexist,
    unwatch_of_unknown_watch_is_enoent,
    relative_watch_reports_relative_paths,
    release_domain_watch_fires_once_when_registered,
    reset_watches_removes_watches,
    transaction_commit_makes_writes_visible,
    transaction_abort_discards_writes,
    transaction_sees_its_own_writes_and_rm,
    transaction_conflict_on_read_node_is_eagain,
    transaction_unaffected_by_unrelated_writes,
    transaction_conflict_on_concurrent_create_is_eagain,
    concurrent_transactions_writing_same_node_second_is_eagain,
    transaction_watch_events_fire_only_at_commit,
    transaction_end_errors,
    nested_transaction_start_is_ebusy,
    unknown_transaction_id_is_enoent,
    unknown_and_reply_only_message_types_are_enosys,
    write_without_nul_is_einval,
    watch_needs_path_and_token,
    error_replies_echo_request_id,
    get_domain_path_formats_domid,
    is_domain_introduced_for_dom0_and_unknown,
    release_and_resume_of_unknown_domains_fail,
    directory_part_matches_directory,
    oversized_directory_is_e2big_and_directory_part_lists_it,
    very_deep_paths_write_and_remove,
    paths_longer_than_2048_below_the_domain_home_are_einval,
);

/// Runs every case (or those whose name contains `filter`) and returns (name, result).
pub fn run_all(socket: &Path, filter: Option<&str>) -> Vec<(&'static str, CaseResult)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let ctx = Ctx {
        socket: socket.to_path_buf(),
        base: format!("/xs-conformance/r{}-{stamp}", std::process::id()),
    };
    let mut results = Vec::new();
    for case in CASES {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let dir = format!("{}/{}", ctx.base, case.name.replace('_', "-"));
        let result = (case.run)(&ctx, &dir);
        if let Ok(c) = ctx.client() {
            let _ = c.rm(&dir);
        }
        results.push((case.name, result));
    }
    if let Ok(c) = ctx.client() {
        let _ = c.rm(&ctx.base);
        let _ = c.rm("/xs-conformance");
    }
    results
}

fn write_then_read_returns_value(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.write(&format!("{d}/k"), b"value 1"), "write")?;
    let v = ok(c.read(&format!("{d}/k")), "read")?;
    ensure(v == b"value 1", || format!("read back {v:?}"))
}

fn read_of_missing_node_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    expect_err(
        c.read(&format!("{d}/missing")),
        Errno::Enoent,
        "read missing",
    )?;
    expect_err(
        c.read(&format!("{d}/missing/deeper")),
        Errno::Enoent,
        "read below missing",
    )
}

fn write_creates_missing_parents_with_empty_values(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.write(&format!("{d}/a/b/c"), b"x"), "write")?;
    for p in [format!("{d}/a"), format!("{d}/a/b")] {
        let v = ok(c.read(&p), "read parent")?;
        ensure(v.is_empty(), || format!("{p} has value {v:?}"))?;
    }
    Ok(())
}

fn binary_values_round_trip(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let value: Vec<u8> = (0..=255u8).collect();
    ok(c.write(&format!("{d}/bin"), &value), "write")?;
    ensure(ok(c.read(&format!("{d}/bin")), "read")? == value, || {
        "binary value changed".into()
    })?;
    ok(c.write(&format!("{d}/empty"), b""), "write empty")?;
    ensure(
        ok(c.read(&format!("{d}/empty")), "read empty")?.is_empty(),
        || "empty value changed".into(),
    )
}

fn mkdir_keeps_existing_value(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.write(&format!("{d}/k"), b"keep"), "write")?;
    ok(c.mkdir(&format!("{d}/k")), "mkdir existing")?;
    ensure(ok(c.read(&format!("{d}/k")), "read")? == b"keep", || {
        "mkdir changed the value".into()
    })?;
    ok(c.mkdir(&format!("{d}/new/deep")), "mkdir new")?;
    ensure(
        ok(c.read(&format!("{d}/new/deep")), "read")?.is_empty(),
        || "new dir not empty".into(),
    )
}

fn rm_removes_the_whole_subtree(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.write(&format!("{d}/t/a/b"), b"1"), "write")?;
    ok(c.write(&format!("{d}/t/c"), b"2"), "write")?;
    ok(c.rm(&format!("{d}/t")), "rm")?;
    expect_err(
        c.read(&format!("{d}/t/a/b")),
        Errno::Enoent,
        "read removed grandchild",
    )?;
    expect_err(c.read(&format!("{d}/t")), Errno::Enoent, "read removed")?;
    let list = ok(c.directory(d), "directory")?;
    ensure(list.is_empty(), || format!("parent still lists {list:?}"))
}

fn rm_of_missing_node_with_existing_parent_succeeds(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    ok(c.rm(&format!("{d}/nothing")), "rm missing")
}

fn rm_of_missing_node_without_parent_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    expect_err(
        c.rm(&format!("{d}/no/thing")),
        Errno::Enoent,
        "rm below missing",
    )
}

fn rm_of_root_is_einval(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    expect_err(c.rm("/"), Errno::Einval, "rm /")
}

fn directory_lists_children_in_creation_order(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    for n in ["zeta", "alpha", "mid", "b"] {
        ok(c.write(&format!("{d}/{n}"), n.as_bytes()), "write")?;
    }
    ok(c.rm(&format!("{d}/alpha")), "rm")?;
    ok(c.write(&format!("{d}/alpha"), b"again"), "write")?;
    let list = ok(c.directory(d), "directory")?;
    ensure(list == ["zeta", "mid", "b", "alpha"], || {
        format!("order {list:?}")
    })
}

fn directory_of_missing_node_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    expect_err(
        c.directory(&format!("{d}/none")),
        Errno::Enoent,
        "directory missing",
    )
}

fn malformed_paths_are_einval(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    for bad in [
        format!("{d}//x"),
        format!("{d}/x/"),
        format!("{d}/a b"),
        format!("{d}/a!b"),
        String::new(),
    ] {
        expect_err(
            c.write(&bad, b"v"),
            Errno::Einval,
            &format!("write {bad:?}"),
        )?;
        expect_err(c.read(&bad), Errno::Einval, &format!("read {bad:?}"))?;
    }
    Ok(())
}

fn special_paths_are_refused_for_data_operations(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    expect_err(
        c.read("@releaseDomain"),
        Errno::Einval,
        "read @releaseDomain",
    )?;
    expect_err(
        c.write("@introduceDomain", b"x"),
        Errno::Einval,
        "write @introduceDomain",
    )?;
    expect_err(
        c.directory("@releaseDomain"),
        Errno::Einval,
        "directory @releaseDomain",
    )
}

fn largest_value_that_fits_one_message_round_trips(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let path = format!("{d}/big");
    let value = vec![b'v'; wire::PAYLOAD_MAX - path.len() - 1];
    ok(c.write(&path, &value), "write max-size value")?;
    ensure(ok(c.read(&path), "read")? == value, || {
        "max-size value changed".into()
    })?;
    let mut too_big = path.into_bytes();
    too_big.push(0);
    too_big.extend(vec![b'v'; value.len() + 1]);
    ensure(too_big.len() == wire::PAYLOAD_MAX + 1, || {
        "test bug: payload size".into()
    })?;
    match c.request_raw(MsgType::Write.code(), 0, too_big) {
        Err(crate::client::Error::TooLong { .. }) => Ok(()),
        other => Err(format!("client sent an oversized payload: {other:?}")),
    }
}

fn oversized_message_closes_only_that_connection(ctx: &Ctx, d: &str) -> CaseResult {
    let other = ctx.client()?;
    ok(other.write(&format!("{d}/alive"), b"1"), "write")?;
    let mut s = UnixStream::connect(&ctx.socket).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let header = wire::Header {
        msg_type: MsgType::Write.code(),
        req_id: 1,
        tx_id: 0,
        len: 4097,
    };
    std::io::Write::write_all(&mut s, &header.encode()).map_err(|e| e.to_string())?;
    let _ = std::io::Write::write_all(&mut s, &[b'a'; 200]);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => {
            return Err(format!(
                "daemon answered an oversized message with {n} bytes"
            ))
        }
        Err(e) => return Err(format!("connection not closed: {e}")),
    }
    ensure(
        ok(
            other.read(&format!("{d}/alive")),
            "read on other connection",
        )? == b"1",
        || "other client broken".into(),
    )
}

fn new_nodes_inherit_parent_permissions(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/p")), "mkdir")?;
    ok(
        c.set_perms(&format!("{d}/p"), &[perm("r0"), perm("w0")]),
        "set_perms",
    )?;
    ok(c.write(&format!("{d}/p/child/grandchild"), b"x"), "write")?;
    for p in [format!("{d}/p/child"), format!("{d}/p/child/grandchild")] {
        let got = perms_wire(&ok(c.get_perms(&p), "get_perms")?);
        ensure(got == ["r0", "w0"], || format!("{p} perms {got:?}"))?;
    }
    Ok(())
}

fn set_perms_round_trips(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/n")), "mkdir")?;
    let before = perms_wire(&ok(c.get_perms(&format!("{d}/n")), "get_perms")?);
    ensure(before == ["n0"], || format!("default perms {before:?}"))?;
    for spec in [vec!["b0"], vec!["n0", "r0"], vec!["w0", "n0", "b0"]] {
        let ps: Vec<Perm> = spec.iter().map(|s| perm(s)).collect();
        ok(c.set_perms(&format!("{d}/n"), &ps), "set_perms")?;
        let got = perms_wire(&ok(c.get_perms(&format!("{d}/n")), "get_perms")?);
        ensure(got == spec, || format!("set {spec:?} got {got:?}"))?;
    }
    Ok(())
}

fn set_perms_with_unknown_owner_domain_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/n")), "mkdir")?;
    expect_err(
        c.set_perms(&format!("{d}/n"), &[perm("n4001")]),
        Errno::Enoent,
        "owner dom4001",
    )
}

fn set_perms_keeps_entries_for_unknown_domains(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/n")), "mkdir")?;
    ok(
        c.set_perms(&format!("{d}/n"), &[perm("n0"), perm("r4001")]),
        "set_perms",
    )?;
    let got = perms_wire(&ok(c.get_perms(&format!("{d}/n")), "get_perms")?);
    ensure(got == ["n0", "r4001"], || format!("perms {got:?}"))
}

fn set_perms_with_bad_spec_is_einval(ctx: &Ctx, d: &str) -> CaseResult {
    ok(ctx.client()?.mkdir(&format!("{d}/n")), "mkdir")?;
    let path = format!("{d}/n");
    expect_raw_error(
        ctx,
        MsgType::SetPerms.code(),
        &wire::join_strings(&[path.as_str(), "x0"]),
        Errno::Einval,
        "perm x0",
    )?;
    expect_raw_error(
        ctx,
        MsgType::SetPerms.code(),
        &wire::join_strings(&[path.as_str()]),
        Errno::Einval,
        "no perms",
    )
}

fn set_perms_of_missing_node_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    expect_err(
        c.set_perms(&format!("{d}/none"), &[perm("n0")]),
        Errno::Enoent,
        "set_perms missing",
    )
}

fn special_watch_nodes_take_permissions_but_are_not_nodes(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    for s in ["@introduceDomain", "@releaseDomain"] {
        ok(c.set_perms(s, &[perm("n0")]), "set_perms on special node")?;
        expect_err(c.get_perms(s), Errno::Einval, "get_perms on special node")?;
    }
    expect_err(
        c.set_perms("@noSuchSpecial", &[perm("n0")]),
        Errno::Einval,
        "set_perms @noSuchSpecial",
    )
}

fn watch_fires_once_when_registered(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.watch(&format!("{d}/w"), "tok"), "watch")?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&evs, "tok") == [format!("{d}/w")], || {
        format!("events {evs:?}")
    })
}

fn watch_fires_for_writes_below_it_and_not_beside_it(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let w = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    watch_drained(&w, &format!("{d}/w"), "tok", &format!("{d}/sync"))?;
    ok(c.write(&format!("{d}/w/child"), b"1"), "write child")?;
    ok(c.write(&format!("{d}/w"), b"2"), "write node")?;
    ok(
        c.write(&format!("{d}/wx"), b"3"),
        "write sibling with common prefix",
    )?;
    ok(c.write(d, b"4"), "write parent")?;
    let evs = events_until_sync(&w, &format!("{d}/sync"))?;
    let got = paths(&evs, "tok");
    ensure(got == [format!("{d}/w/child"), format!("{d}/w")], || {
        format!("events {got:?}")
    })
}

fn rm_fires_exact_events_for_children_and_subtree_event_for_root(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let w = ctx.client()?;
    let sync = format!("{d}/sync");
    ok(c.write(&format!("{d}/r/a/b"), b"1"), "write")?;
    watch_drained(&w, d, "parent", &sync)?;
    watch_drained(&w, &format!("{d}/r"), "root", &sync)?;
    watch_drained(&w, &format!("{d}/r/a/b"), "leaf", &sync)?;
    watch_drained(&w, &format!("{d}/r/a/b/none"), "below", &sync)?;
    ok(c.rm(&format!("{d}/r")), "rm")?;
    let evs = events_until_sync(&w, &sync)?;
    let (parent, root, leaf, below) = (
        paths(&evs, "parent"),
        paths(&evs, "root"),
        paths(&evs, "leaf"),
        paths(&evs, "below"),
    );
    ensure(parent == [format!("{d}/r")], || {
        format!("parent watch got {parent:?}")
    })?;
    ensure(root == [format!("{d}/r")], || {
        format!("root watch got {root:?}")
    })?;
    ensure(leaf == [format!("{d}/r/a/b")], || {
        format!("leaf watch got {leaf:?}")
    })?;
    ensure(below.is_empty(), || {
        format!("watch below leaf got {below:?}")
    })
}

fn mkdir_of_existing_node_fires_nothing(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/m")), "mkdir")?;
    watch_drained(&c, &format!("{d}/m"), "tok", &format!("{d}/sync"))?;
    ok(c.mkdir(&format!("{d}/m")), "mkdir again")?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&evs, "tok").is_empty(), || format!("events {evs:?}"))
}

fn set_perms_fires_watch(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(&format!("{d}/p")), "mkdir")?;
    watch_drained(&c, &format!("{d}/p"), "tok", &format!("{d}/sync"))?;
    ok(c.set_perms(&format!("{d}/p"), &[perm("r0")]), "set_perms")?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&evs, "tok") == [format!("{d}/p")], || {
        format!("events {evs:?}")
    })
}

fn duplicate_watch_is_eexist(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.watch(&format!("{d}/w"), "tok"), "watch")?;
    expect_err(
        c.watch(&format!("{d}/w"), "tok"),
        Errno::Eexist,
        "same watch twice",
    )?;
    ok(c.watch(&format!("{d}/w"), "tok2"), "same path, other token")
}

fn unwatch_of_unknown_watch_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    expect_err(
        c.unwatch(&format!("{d}/w"), "tok"),
        Errno::Enoent,
        "unwatch unknown",
    )?;
    ok(c.watch(&format!("{d}/w"), "tok"), "watch")?;
    expect_err(
        c.unwatch(&format!("{d}/w"), "other"),
        Errno::Enoent,
        "unwatch wrong token",
    )?;
    ok(c.unwatch(&format!("{d}/w"), "tok"), "unwatch")
}

fn relative_watch_reports_relative_paths(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let leaf = d.rsplit('/').next().unwrap_or("x");
    let rel = format!("xs-conformance-{}-{leaf}", std::process::id());
    let abs = format!("/local/domain/0/{rel}");
    watch_drained(&c, &rel, "rel", &format!("{d}/sync"))?;
    ok(c.write(&format!("{abs}/k"), b"1"), "write")?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    let _ = c.rm(&abs);
    let got = paths(&evs, "rel");
    ensure(got == [format!("{rel}/k")], || format!("events {got:?}"))
}

fn release_domain_watch_fires_once_when_registered(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.watch("@releaseDomain", "rel"), "watch @releaseDomain")?;
    ok(
        c.watch("@introduceDomain", "intro"),
        "watch @introduceDomain",
    )?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&evs, "rel") == ["@releaseDomain"], || {
        format!("events {evs:?}")
    })?;
    ensure(paths(&evs, "intro") == ["@introduceDomain"], || {
        format!("events {evs:?}")
    })
}

fn reset_watches_removes_watches(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.watch(&format!("{d}/w"), "tok"), "watch")?;
    let first = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&first, "tok").len() == 1, || {
        format!("initial events {first:?}")
    })?;
    ok(c.reset_watches(), "reset_watches")?;
    ok(c.write(&format!("{d}/w"), b"1"), "write")?;
    let evs = events_until_sync(&c, &format!("{d}/sync"))?;
    ensure(paths(&evs, "tok").is_empty(), || {
        format!("events after reset {evs:?}")
    })?;
    expect_err(
        c.unwatch(&format!("{d}/w"), "tok"),
        Errno::Enoent,
        "unwatch after reset",
    )
}

fn transaction_commit_makes_writes_visible(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let other = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    let t = ok(c.transaction(), "start")?;
    ok(t.write(&format!("{d}/k"), b"tx"), "tx write")?;
    expect_err(
        other.read(&format!("{d}/k")),
        Errno::Enoent,
        "read outside before commit",
    )?;
    ok(t.commit(), "commit")?;
    ensure(
        ok(other.read(&format!("{d}/k")), "read after commit")? == b"tx",
        || "value not committed".into(),
    )
}

fn transaction_abort_discards_writes(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    let t = ok(c.transaction(), "start")?;
    ok(t.write(&format!("{d}/k"), b"tx"), "tx write")?;
    ok(t.abort(), "abort")?;
    expect_err(c.read(&format!("{d}/k")), Errno::Enoent, "read after abort")
}

fn transaction_sees_its_own_writes_and_rm(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    ok(c.write(&format!("{d}/old/x"), b"1"), "write")?;
    let t = ok(c.transaction(), "start")?;
    ok(t.write(&format!("{d}/new"), b"n"), "tx write")?;
    ensure(ok(t.read(&format!("{d}/new")), "tx read")? == b"n", || {
        "tx does not see its write".into()
    })?;
    ok(t.rm(&format!("{d}/old")), "tx rm")?;
    expect_err(
        t.read(&format!("{d}/old/x")),
        Errno::Enoent,
        "tx read removed",
    )?;
    ensure(
        ok(c.read(&format!("{d}/old/x")), "read outside")? == b"1",
        || "rm leaked out of tx".into(),
    )?;
    let list = ok(t.directory(d), "tx directory")?;
    ensure(list == ["new"], || format!("tx directory {list:?}"))?;
    ok(t.commit(), "commit")?;
    let list = ok(c.directory(d), "directory")?;
    ensure(list == ["new"], || {
        format!("directory after commit {list:?}")
    })
}

fn transaction_conflict_on_read_node_is_eagain(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let other = ctx.client()?;
    ok(c.write(&format!("{d}/x"), b"0"), "write")?;
    ok(c.write(&format!("{d}/y"), b"0"), "write")?;
    let t = ok(c.transaction(), "start")?;
    ok(t.read(&format!("{d}/x")), "tx read")?;
    ok(t.write(&format!("{d}/y"), b"1"), "tx write")?;
    ok(
        other.write(&format!("{d}/x"), b"changed"),
        "concurrent write",
    )?;
    expect_err(t.commit(), Errno::Eagain, "commit after conflicting write")?;
    ensure(ok(c.read(&format!("{d}/y")), "read")? == b"0", || {
        "failed commit applied writes".into()
    })
}

fn transaction_unaffected_by_unrelated_writes(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let other = ctx.client()?;
    for n in ["x", "y", "z"] {
        ok(c.write(&format!("{d}/{n}"), b"0"), "write")?;
    }
    let t = ok(c.transaction(), "start")?;
    ok(t.read(&format!("{d}/x")), "tx read")?;
    ok(t.write(&format!("{d}/y"), b"1"), "tx write")?;
    ok(
        other.write(&format!("{d}/z"), b"changed"),
        "unrelated write",
    )?;
    ok(t.commit(), "commit")?;
    ensure(ok(c.read(&format!("{d}/y")), "read")? == b"1", || {
        "commit lost".into()
    })
}

fn transaction_conflict_on_concurrent_create_is_eagain(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let other = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    let t = ok(c.transaction(), "start")?;
    expect_err(t.read(&format!("{d}/n")), Errno::Enoent, "tx read missing")?;
    ok(t.write(&format!("{d}/n"), b"tx"), "tx create")?;
    ok(
        other.write(&format!("{d}/n"), b"outside"),
        "concurrent create",
    )?;
    expect_err(t.commit(), Errno::Eagain, "commit")?;
    ensure(ok(c.read(&format!("{d}/n")), "read")? == b"outside", || {
        "outside write lost".into()
    })
}

fn concurrent_transactions_writing_same_node_second_is_eagain(ctx: &Ctx, d: &str) -> CaseResult {
    let a = ctx.client()?;
    let b = ctx.client()?;
    ok(a.write(&format!("{d}/x"), b"0"), "write")?;
    let ta = ok(a.transaction(), "start a")?;
    let tb = ok(b.transaction(), "start b")?;
    ok(ta.write(&format!("{d}/x"), b"a"), "write a")?;
    ok(tb.write(&format!("{d}/x"), b"b"), "write b")?;
    ok(ta.commit(), "commit a")?;
    expect_err(tb.commit(), Errno::Eagain, "commit b")?;
    ensure(ok(a.read(&format!("{d}/x")), "read")? == b"a", || {
        "wrong winner".into()
    })
}

fn transaction_watch_events_fire_only_at_commit(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let w = ctx.client()?;
    ok(c.mkdir(d), "mkdir")?;
    watch_drained(&w, &format!("{d}/k"), "tok", &format!("{d}/sync"))?;
    let t = ok(c.transaction(), "start")?;
    ok(t.write(&format!("{d}/k"), b"1"), "tx write")?;
    let during = events_until_sync(&w, &format!("{d}/sync"))?;
    ensure(paths(&during, "tok").is_empty(), || {
        format!("events before commit {during:?}")
    })?;
    ok(t.commit(), "commit")?;
    let after = events_until_sync(&w, &format!("{d}/sync"))?;
    ensure(paths(&after, "tok") == [format!("{d}/k")], || {
        format!("events after commit {after:?}")
    })
}

fn transaction_end_errors(ctx: &Ctx, _d: &str) -> CaseResult {
    expect_raw_error(
        ctx,
        MsgType::TransactionEnd.code(),
        b"T\0",
        Errno::Enoent,
        "end without transaction",
    )?;
    expect_raw_error(
        ctx,
        MsgType::TransactionEnd.code(),
        b"X\0",
        Errno::Einval,
        "end with bad argument",
    )
}

fn nested_transaction_start_is_ebusy(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    let t = ok(c.transaction(), "start")?;
    let reply = ok(
        c.request_raw(MsgType::TransactionStart.code(), t.id(), vec![0]),
        "nested start",
    )?;
    ensure(
        reply.msg_type == MsgType::Error.code()
            && Errno::from_name(&reply.payload) == Some(Errno::Ebusy),
        || format!("nested start reply {reply:?}"),
    )?;
    ok(t.abort(), "abort")
}

fn unknown_transaction_id_is_enoent(ctx: &Ctx, d: &str) -> CaseResult {
    let path = format!("{d}/k");
    match raw_error(
        ctx,
        MsgType::Read.code(),
        777_777,
        &wire::join_strings(&[path.as_str()]),
    )? {
        Some(Errno::Enoent) => {}
        other => return Err(format!("read in unknown tx: {other:?}")),
    }
    match raw_error(ctx, MsgType::TransactionStart.code(), 777_777, b"\0")? {
        Some(Errno::Enoent) => Ok(()),
        other => Err(format!("start in unknown tx: {other:?}")),
    }
}

fn unknown_and_reply_only_message_types_are_enosys(ctx: &Ctx, _d: &str) -> CaseResult {
    for t in [
        99u32,
        20,
        MsgType::WatchEvent.code(),
        MsgType::Error.code(),
        MsgType::Invalid.code(),
    ] {
        expect_raw_error(ctx, t, b"/\0", Errno::Enosys, &format!("type {t}"))?;
    }
    Ok(())
}

fn write_without_nul_is_einval(ctx: &Ctx, d: &str) -> CaseResult {
    expect_raw_error(
        ctx,
        MsgType::Write.code(),
        d.as_bytes(),
        Errno::Einval,
        "write without NUL",
    )
}

fn watch_needs_path_and_token(ctx: &Ctx, d: &str) -> CaseResult {
    expect_raw_error(
        ctx,
        MsgType::Watch.code(),
        &wire::join_strings(&[d]),
        Errno::Einval,
        "watch without token",
    )?;
    expect_raw_error(
        ctx,
        MsgType::Unwatch.code(),
        &wire::join_strings(&[d]),
        Errno::Einval,
        "unwatch without token",
    )
}

fn error_replies_echo_request_id(ctx: &Ctx, d: &str) -> CaseResult {
    let path = format!("{d}/none");
    let reply = raw_request(
        ctx,
        &Message::new(
            MsgType::Read,
            0xdead_beef,
            0,
            wire::join_strings(&[path.as_str()]),
        ),
    )?;
    ensure(reply.req_id == 0xdead_beef && reply.tx_id == 0, || {
        format!("reply header {reply:?}")
    })?;
    ensure(
        reply.msg_type == MsgType::Error.code() && reply.payload == b"ENOENT\0",
        || format!("reply {reply:?}"),
    )
}

fn get_domain_path_formats_domid(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    ensure(
        ok(c.get_domain_path(5), "get_domain_path")? == "/local/domain/5",
        || "path".into(),
    )?;
    let r = raw_request(
        ctx,
        &Message::new(MsgType::GetDomainPath, 1, 0, b"0\0".to_vec()),
    )?;
    ensure(r.payload == b"/local/domain/0\0", || {
        format!("reply {:?}", String::from_utf8_lossy(&r.payload))
    })
}

fn is_domain_introduced_for_dom0_and_unknown(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    ensure(ok(c.is_introduced(0), "dom0")?, || {
        "dom0 not introduced".into()
    })?;
    ensure(!ok(c.is_introduced(4001), "dom4001")?, || {
        "dom4001 introduced".into()
    })
}

fn release_and_resume_of_unknown_domains_fail(ctx: &Ctx, _d: &str) -> CaseResult {
    let c = ctx.client()?;
    expect_err(c.release(0), Errno::Einval, "release dom0")?;
    expect_err(c.release(4001), Errno::Enoent, "release unknown")?;
    expect_err(c.resume(4001), Errno::Enoent, "resume unknown")
}

fn directory_part_matches_directory(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    for i in 0..20 {
        ok(c.write(&format!("{d}/child{i}"), b""), "write")?;
    }
    let r = raw_request(
        ctx,
        &Message::new(MsgType::DirectoryPart, 1, 0, wire::join_strings(&[d, "0"])),
    )?;
    ensure(r.msg_type == MsgType::DirectoryPart.code(), || {
        format!("reply {r:?}")
    })?;
    let parts = wire::split_strings(&r.payload);
    let names: Vec<String> = parts
        .get(1..)
        .unwrap_or_default()
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("child{i}")).collect();
    ensure(names == want, || format!("directory_part {names:?}"))?;
    ensure(r.payload.ends_with(b"\0\0"), || {
        "list end marker missing".into()
    })?;
    let beyond = raw_request(
        ctx,
        &Message::new(
            MsgType::DirectoryPart,
            1,
            0,
            wire::join_strings(&[d, "100000"]),
        ),
    )?;
    let tail = wire::split_strings(&beyond.payload);
    ensure(tail.len() == 2 && tail[1].is_empty(), || {
        format!("offset beyond end {beyond:?}")
    })
}

fn oversized_directory_is_e2big_and_directory_part_lists_it(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let t = ok(c.transaction(), "start")?;
    let names: Vec<String> = (0..300)
        .map(|i| format!("entry-with-a-long-name-{i:04}"))
        .collect();
    for n in &names {
        ok(t.mkdir(&format!("{d}/{n}")), "mkdir")?;
    }
    ok(t.commit(), "commit")?;
    let r = raw_request(
        ctx,
        &Message::new(MsgType::Directory, 1, 0, wire::join_strings(&[d])),
    )?;
    ensure(r.payload == b"E2BIG\0", || {
        format!("directory reply {} bytes", r.payload.len())
    })?;
    let listed = ok(c.directory(d), "directory via DIRECTORY_PART")?;
    ensure(listed == names, || format!("listed {} names", listed.len()))
}

fn very_deep_paths_write_and_remove(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let mut path = d.to_string();
    while path.len() + 2 < 2040 {
        path.push_str("/a");
    }
    ok(c.write(&path, b"deep"), "deep write")?;
    ensure(ok(c.read(&path), "deep read")? == b"deep", || {
        "deep value".into()
    })?;
    ok(c.rm(&format!("{d}/a")), "rm deep tree")?;
    expect_err(c.read(&path), Errno::Enoent, "deep read after rm")
}

fn paths_longer_than_2048_below_the_domain_home_are_einval(ctx: &Ctx, d: &str) -> CaseResult {
    let c = ctx.client()?;
    let mut path = d.to_string();
    while path.len() < 2060 {
        path.push_str("/b");
    }
    expect_err(
        c.write(&path, b"x"),
        Errno::Einval,
        "write of a 2060-byte path",
    )?;
    expect_err(c.read(&path), Errno::Einval, "read of a 2060-byte path")
}
