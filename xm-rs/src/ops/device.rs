//! Devices of a running domain: `xm block-attach`, `block-detach`, `block-list`,
//! `network-attach`, `network-detach`, `network-list`.
//!
//! Attaching writes the same entries `xm create` writes for a device (through
//! [`crate::create::devices`]) and waits for the backend to be Connected. Detaching is the
//! xenbus close handshake libxl does: the backend gets `online = 0` and `state = 5`
//! (Closing), the guest's driver lets go, the backend reaches 6 (Closed); then the frontend,
//! backend and `/libxl` entries are removed, a loop device we attached is released and a vif
//! leaves its bridge. `--force` skips the wait.

use std::path::Path;
use std::time::{Duration, Instant};

use hypervisor::{DomId, Hypervisor};
use serde::Serialize;
use toolstack::layout::Layout;

use super::format::{render_sxp, Sxp};
use super::{dom_path, Domain, OpsError, Store, StoreError};
use crate::config::devices::parse_vif;
use crate::config::disk::{parse_disk, vdev_number};
use crate::create::devices::{check_disk_supported, plug_vif, prepare_vbd, prepare_vif};
use crate::create::WireOptions;
use crate::create::{vbds_in_use, wait_connected, CreateError, CreateStore, DeviceHost};

/// xenbus state Closing.
const CLOSING: &str = "5";
/// xenbus state Closed.
const CLOSED: &str = "6";

/// The keys `xm network-attach` takes (xm 3.x's list).
pub const NETWORK_ATTACH_KEYS: &[&str] = &[
    "type", "mac", "bridge", "ip", "script", "backend", "vifname", "rate", "model", "accel",
];

/// What went wrong with a device; each message names the device and domain.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Setting the device up failed (disk source, bridge, backend never connected...).
    #[error("{0}")]
    Create(#[from] CreateError),
    /// Looking the domain up or talking to the hypervisor failed.
    #[error("{0}")]
    Ops(#[from] OpsError),
    /// xenstore failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The device named is not attached (xl's wording).
    #[error("Device {0} not connected.")]
    NotConnected(String),
    /// A device with that id is attached already.
    #[error("Device {what} is already connected to domain {domain}.")]
    AlreadyConnected {
        /// The device as named.
        what: String,
        /// The domain's name.
        domain: String,
    },
    /// The guest did not let go of the device in time; it is left in state Closing.
    #[error(
        "{kind} {devid} of domain {domid} did not close within {waited:?}: frontend state \
         {frontend}, backend state {backend}; is the guest still using it? \
         (--force removes it anyway)"
    )]
    CloseTimeout {
        /// `vbd` or `vif`.
        kind: &'static str,
        /// The device id.
        devid: u32,
        /// The domain.
        domid: DomId,
        /// How long we waited.
        waited: Duration,
        /// The frontend's state seen last.
        frontend: String,
        /// The backend's state seen last.
        backend: String,
    },
    /// A malformed argument (names it); exit code 2.
    #[error("{0}")]
    Usage(String),
    /// A valid request this build cannot carry out; exit code 3.
    #[error("{0}")]
    NotAvailable(String),
}

/// Result of a device operation.
pub type Result<T, E = DeviceError> = std::result::Result<T, E>;

/// The three homes of one device in xenstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePaths {
    /// `/local/domain/D/device/KIND/N` (the guest's).
    pub frontend: String,
    /// `/local/domain/0/backend/KIND/D/N` (dom0's).
    pub backend: String,
    /// `/libxl/D/device/KIND/N` (libxl's copy).
    pub libxl: String,
}

/// Where device `devid` of kind `kind` (`vbd`, `vif`) of `domid` lives. The backend path is
/// computed rather than read from the frontend, which the guest may write.
pub fn device_paths(domid: DomId, kind: &str, devid: u32) -> DevicePaths {
    DevicePaths {
        frontend: format!("{}/device/{kind}/{devid}", dom_path(domid)),
        backend: format!("/local/domain/0/backend/{kind}/{domid}/{devid}"),
        libxl: format!("/libxl/{domid}/device/{kind}/{devid}"),
    }
}

/// How long a detach waits for the backend to close (libxl's `LIBXL_DESTROY_TIMEOUT`).
#[derive(Debug, Clone, Copy)]
pub struct DetachOptions {
    /// Skip the wait (`--force`).
    pub force: bool,
    /// Longest wait for Closed.
    pub close_timeout: Duration,
    /// Poll interval.
    pub poll: Duration,
}

impl Default for DetachOptions {
    fn default() -> Self {
        DetachOptions {
            force: false,
            close_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(20),
        }
    }
}

/// What a detach did besides removing the device, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetachReport {
    /// The device id removed.
    pub devid: u32,
    /// Loop device released.
    pub loop_released: Option<String>,
    /// Interface taken off its bridge.
    pub netdev_released: Option<String>,
    /// Cleanup steps that failed (the device is gone from xenstore regardless).
    pub problems: Vec<String>,
}

fn running_guest(domain: &Domain, what: &str) -> Result<()> {
    if domain.domid() == 0 {
        return Err(DeviceError::NotAvailable(format!(
            "{what} on Domain-0 is not supported (its devices are dom0's own)"
        )));
    }
    if domain.is_finished() {
        return Err(OpsError::Refused(format!(
            "Domain {} is not running (it has shut down or is being destroyed).",
            domain.display_name()
        ))
        .into());
    }
    Ok(())
}

/// Removes a device's entries (frontend, backend, libxl's copy), ignoring ones already gone.
fn remove_entries<S: Store + ?Sized>(store: &S, paths: &DevicePaths) -> Vec<String> {
    let mut problems = Vec::new();
    for path in [&paths.frontend, &paths.backend, &paths.libxl] {
        if let Err(e) = store.remove(path) {
            problems.push(format!("removing {path}: {e}"));
        }
    }
    problems
}

/// Undoes a half-done attach: entries removed, loop devices released. Problems are logged;
/// the attach error is what the operator needs.
fn undo_attach<S, D>(store: &S, devices: &D, paths: &DevicePaths, loops: &[std::path::PathBuf])
where
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    // Tell the backend first so it lets go of the device before it disappears.
    let _ = store.write(&format!("{}/online", paths.backend), "0");
    for problem in remove_entries(store, paths) {
        tracing::warn!("undoing attach: {problem}");
    }
    for node in loops {
        if let Err(e) = devices.loop_detach(node) {
            tracing::warn!("undoing attach: releasing {}: {e}", node.display());
        }
    }
}

/// The disk spec `xm block-attach` was given: xm's `BACKEND-DEV FRONTEND-DEV MODE`
/// (`phy:/dev/vg01/x xvdb w`) or xl's one-argument spec (`phy:/dev/vg01/x,xvdb,w` or
/// `target=...,vdev=xvdb`).
pub fn block_spec(args: &[String]) -> Result<String> {
    match args {
        [spec] => Ok(spec.clone()),
        [backend, frontend, mode] => Ok(format!("{backend},{frontend},{mode}")),
        [_, _, _, backend_domain] => Err(DeviceError::NotAvailable(format!(
            "block-attach: backend domain '{backend_domain}': driver domains are not supported \
             yet (disks are served by Domain-0)"
        ))),
        _ => Err(DeviceError::Usage(format!(
            "block-attach takes BACKEND-DEV FRONTEND-DEV MODE (e.g. phy:/dev/vg01/data xvdb w), \
             or one disk spec; got {} argument(s) after the domain",
            args.len()
        ))),
    }
}

/// `xm block-attach`: sets up the disk named by `spec` (see [`block_spec`]) for a running
/// domain and waits for its backend to be Connected. Returns the device id.
pub fn block_attach<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domain: &Domain,
    spec: &str,
    options: &WireOptions,
) -> Result<u32>
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let disk = parse_disk(spec).map_err(|e| DeviceError::Usage(format!("disk '{spec}': {e}")))?;
    check_disk_supported(&disk).map_err(DeviceError::NotAvailable)?;
    running_guest(domain, "block-attach")?;
    let domid = domain.domid();
    let devid = disk.device_number;
    let paths = device_paths(domid, "vbd", devid);
    if store.read(&paths.frontend)?.is_some() || store.read(&paths.backend)?.is_some() {
        return Err(DeviceError::AlreadyConnected {
            what: format!("{} ({devid})", disk.vdev),
            domain: domain.display_name().to_string(),
        });
    }
    let span = tracing::info_span!("block-attach", domid, devid);
    let _entered = span.enter();
    let in_use = vbds_in_use(store)?;
    let mut layout = Layout::default();
    let mut loops = Vec::new();
    let result = prepare_vbd(
        devices,
        domid,
        &disk,
        &in_use,
        false,
        &mut layout,
        &mut loops,
    )
    .and_then(|()| Ok(store.write_entries(&layout.entries)?))
    .and_then(|()| wait_connected(hv, store, domid, &[("vbd", devid)], options));
    if let Err(e) = result {
        undo_attach(store, devices, &paths, &loops);
        return Err(e.into());
    }
    Ok(devid)
}

/// The device id a `block-detach` argument names: a number, or a vdev (`xvdb`).
pub fn vbd_devid(which: &str) -> Result<u32> {
    if let Ok(n) = which.parse::<u32>() {
        return Ok(n);
    }
    vdev_number(which).map_err(|e| DeviceError::Usage(format!("device '{which}': {e}")))
}

/// One device of a domain, as the command line named it.
#[derive(Debug, Clone, Copy)]
struct Target<'a> {
    /// `vbd` or `vif`.
    kind: &'static str,
    /// Its device id.
    devid: u32,
    /// What the operator typed (for "not connected").
    named: &'a str,
}

/// The xenbus close handshake on one device, then its removal (see the module comment).
fn detach_device<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domain: &Domain,
    target: Target<'_>,
    options: &DetachOptions,
) -> Result<DetachReport>
where
    H: Hypervisor,
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    let Target {
        kind,
        devid,
        named: which,
    } = target;
    let domid = domain.domid();
    let paths = device_paths(domid, kind, devid);
    let backend_state = store.read(&format!("{}/state", paths.backend))?;
    if store.read(&paths.frontend)?.is_none() && backend_state.is_none() {
        return Err(DeviceError::NotConnected(which.to_string()));
    }
    let span = tracing::info_span!("detach", domid, kind, devid);
    let _entered = span.enter();
    let mut report = DetachReport {
        devid,
        ..DetachReport::default()
    };
    // What to release afterwards, read before the backend directory goes.
    let loop_node = if kind == "vbd" {
        let node = store.read(&format!("{}/node", paths.backend))?;
        let params = store.read(&format!("{}/params", paths.backend))?;
        // params naming the loop device itself means the admin gave us the loop: not ours.
        node.filter(|n| n.starts_with("/dev/loop") && params.as_deref() != Some(n.as_str()))
    } else {
        None
    };
    let netdev = if kind == "vif" {
        Some(
            store
                .read(&format!("{}/vifname", paths.backend))?
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("vif{domid}.{devid}")),
        )
    } else {
        None
    };
    if let Some(state) = backend_state {
        // online first: backends watch state, and must see online = 0 when it changes.
        store.write(&format!("{}/online", paths.backend), "0")?;
        if state != CLOSED {
            store.write(&format!("{}/state", paths.backend), CLOSING)?;
        }
        if !options.force {
            wait_closed(hv, store, domid, kind, devid, &paths, options)?;
        }
    }
    if let Some(netdev) = netdev.filter(|n| devices.netdev_exists(n)) {
        match devices.bridge_detach(&netdev) {
            Ok(()) => report.netdev_released = Some(netdev),
            Err(e) => report
                .problems
                .push(format!("taking {netdev} off its bridge: {e}")),
        }
    }
    report.problems.extend(remove_entries(store, &paths));
    if let Some(node) = loop_node {
        match devices.loop_detach(Path::new(&node)) {
            Ok(()) => report.loop_released = Some(node),
            Err(e) => report.problems.push(format!("releasing {node}: {e}")),
        }
    }
    Ok(report)
}

/// Waits for the backend to reach Closed (or vanish, or the domain to go away).
fn wait_closed<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domid: DomId,
    kind: &'static str,
    devid: u32,
    paths: &DevicePaths,
    options: &DetachOptions,
) -> Result<()> {
    let deadline = Instant::now() + options.close_timeout;
    let state_of = |path: String| -> Result<String> {
        Ok(store.read(&path)?.unwrap_or_else(|| "(none)".into()))
    };
    loop {
        let backend = match store.read(&format!("{}/state", paths.backend))? {
            None => return Ok(()),
            Some(state) if state == CLOSED => return Ok(()),
            Some(state) => state,
        };
        match hv.domain_info(domid) {
            Err(hypervisor::Error::NoSuchDomain(_)) => return Ok(()),
            Ok(info) if info.dying || info.shutdown => return Ok(()),
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(DeviceError::CloseTimeout {
                kind,
                devid,
                domid,
                waited: options.close_timeout,
                frontend: state_of(format!("{}/state", paths.frontend))?,
                backend,
            });
        }
        std::thread::sleep(options.poll);
    }
}

/// `xm block-detach DOMAIN DEVID|VDEV [--force]`.
pub fn block_detach<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domain: &Domain,
    which: &str,
    options: &DetachOptions,
) -> Result<DetachReport>
where
    H: Hypervisor,
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    let devid = vbd_devid(which)?;
    let target = Target {
        kind: "vbd",
        devid,
        named: which,
    };
    detach_device(hv, store, devices, domain, target, options)
}

/// Builds the vif spec of `xm network-attach`'s `key=value` arguments, refusing anything
/// but xm's keys and empty values (xm: `Invalid argument`).
pub fn network_spec(args: &[String]) -> Result<String> {
    for arg in args {
        let ok = arg
            .split_once('=')
            .is_some_and(|(k, v)| NETWORK_ATTACH_KEYS.contains(&k) && !v.is_empty());
        if !ok {
            return Err(DeviceError::Usage(format!(
                "Invalid argument: {arg} (network-attach takes KEY=VALUE with KEY one of {})",
                NETWORK_ATTACH_KEYS.join(", ")
            )));
        }
    }
    Ok(args.join(","))
}

/// The vif ids a domain has (frontend or backend side).
fn vif_ids<S: Store + ?Sized>(store: &S, domid: DomId) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = store
        .list(&format!("{}/device/vif", dom_path(domid)))?
        .into_iter()
        .chain(store.list(&format!("/local/domain/0/backend/vif/{domid}"))?)
        .filter_map(|n| n.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// `xm network-attach DOMAIN [mac=..] [bridge=..] [ip=..] [vifname=..] [rate=..]`: adds a
/// vif on the next free device id, enslaves its interface to the bridge (xenbr0 unless
/// given) and waits for Connected. Returns the device id and MAC.
pub fn network_attach<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domain: &Domain,
    args: &[String],
    options: &WireOptions,
) -> Result<(u32, String)>
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let spec = network_spec(args)?;
    let vif = parse_vif(&spec).map_err(|e| DeviceError::Usage(format!("vif '{spec}': {e}")))?;
    if vif.script.is_some() {
        return Err(DeviceError::NotAvailable(
            "network-attach: script= is not supported yet (bridging is done in-process)".into(),
        ));
    }
    if vif
        .backend
        .as_deref()
        .is_some_and(|b| b != "0" && b != "Domain-0")
    {
        return Err(DeviceError::NotAvailable(
            "network-attach: driver domains (backend=) are not supported yet".into(),
        ));
    }
    running_guest(domain, "network-attach")?;
    let domid = domain.domid();
    let existing = vif_ids(store, domid)?;
    let devid = match vif.devid {
        Some(id) if existing.contains(&id) => {
            return Err(DeviceError::AlreadyConnected {
                what: format!("vif {id}"),
                domain: domain.display_name().to_string(),
            })
        }
        Some(id) => id,
        None => existing.last().map_or(0, |last| last + 1),
    };
    let span = tracing::info_span!("network-attach", domid, devid);
    let _entered = span.enter();
    let paths = device_paths(domid, "vif", devid);
    let mut layout = Layout::default();
    let uuid = domain.uuid();
    let result = prepare_vif(devices, domid, devid, &vif, &uuid, &mut layout).and_then(|plug| {
        store.write_entries(&layout.entries)?;
        plug_vif(devices, domid, &plug, options)?;
        wait_connected(hv, store, domid, &[("vif", devid)], options)?;
        Ok(plug.mac)
    });
    match result {
        Ok(mac) => Ok((devid, mac)),
        Err(e) => {
            undo_attach(store, devices, &paths, &[]);
            Err(e.into())
        }
    }
}

/// `xm network-detach DOMAIN DEVID|MAC [--force]`.
pub fn network_detach<H, S, D>(
    hv: &H,
    store: &S,
    devices: &D,
    domain: &Domain,
    which: &str,
    options: &DetachOptions,
) -> Result<DetachReport>
where
    H: Hypervisor,
    S: Store + ?Sized,
    D: DeviceHost + ?Sized,
{
    let domid = domain.domid();
    let devid = if which.split(':').count() == 6 {
        // The backend's copy of the MAC: dom0 owns it, the guest cannot change it.
        let wanted = which.to_ascii_lowercase();
        let mut found = None;
        for id in vif_ids(store, domid)? {
            let mac = store.read(&format!("{}/mac", device_paths(domid, "vif", id).backend))?;
            if mac.is_some_and(|m| m.to_ascii_lowercase() == wanted) {
                found = Some(id);
                break;
            }
        }
        found.ok_or_else(|| DeviceError::NotConnected(which.to_string()))?
    } else {
        which.parse::<u32>().map_err(|_| {
            DeviceError::Usage(format!(
                "device '{which}': give a device id (0, 1, ...) or a MAC address"
            ))
        })?
    };
    let target = Target {
        kind: "vif",
        devid,
        named: which,
    };
    detach_device(hv, store, devices, domain, target, options)
}

/// One device as `xm block-list` / `network-list` show it: the frontend's nodes (what
/// xend's `getDeviceSxprs` read), with xm's defaults for missing or non-numeric ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    /// Device id (the Vdev / Idx column).
    pub devid: u32,
    /// Backend domain, -1 when unknown.
    pub backend_id: i64,
    /// `handle`, 0 when absent (vbds have none).
    pub handle: i64,
    /// Frontend xenbus state, -1 when unknown.
    pub state: i64,
    /// Event channel, -1 when unknown.
    pub event_channel: i64,
    /// Ring reference (vbd), -1 when unknown.
    pub ring_ref: i64,
    /// Transmit ring reference (vif), -1 when unknown.
    pub tx_ring_ref: i64,
    /// Receive ring reference (vif), -1 when unknown.
    pub rx_ring_ref: i64,
    /// MAC (vif), `??` when unknown.
    pub mac: String,
    /// Backend path, `??` when unknown.
    pub backend: String,
    /// Backend state (dom0's side), -1 when unknown.
    pub backend_state: i64,
    /// Every frontend node, for `-l`.
    #[serde(skip)]
    pub nodes: Vec<(String, String)>,
}

fn number(nodes: &[(String, String)], key: &str, default: i64) -> i64 {
    first_number(nodes, &[key], default)
}

/// The first of `keys` present with a numeric value: a multi-queue frontend keeps its rings
/// under `queue-0/`, a multi-page ring numbers its references (`ring-ref0`).
fn first_number(nodes: &[(String, String)], keys: &[&str], default: i64) -> i64 {
    keys.iter()
        .find_map(|key| {
            nodes
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| v.trim().parse().ok())
        })
        .unwrap_or(default)
}

fn text(nodes: &[(String, String)], key: &str) -> String {
    nodes
        .iter()
        .find(|(k, _)| k == key)
        .map_or_else(|| "??".to_string(), |(_, v)| v.clone())
}

/// Every node below `path` as (relative path, value), depth first, bounded in depth.
fn read_tree<S: Store + ?Sized>(store: &S, path: &str) -> Result<Vec<(String, String)>> {
    fn walk<S: Store + ?Sized>(
        store: &S,
        base: &str,
        prefix: &str,
        depth: u32,
        out: &mut Vec<(String, String)>,
    ) -> Result<()> {
        for child in store.list(base)? {
            let path = format!("{base}/{child}");
            let name = if prefix.is_empty() {
                child.clone()
            } else {
                format!("{prefix}/{child}")
            };
            out.push((name.clone(), store.read(&path)?.unwrap_or_default()));
            if depth < 4 {
                walk(store, &path, &name, depth + 1, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(store, path, "", 0, &mut out)?;
    Ok(out)
}

/// The devices of kind `kind` (`vbd`, `vif`) a domain has, by device id.
pub fn device_rows<S: Store + ?Sized>(
    store: &S,
    domid: DomId,
    kind: &str,
) -> Result<Vec<DeviceRow>> {
    let root = format!("{}/device/{kind}", dom_path(domid));
    let mut ids: Vec<u32> = store
        .list(&root)?
        .into_iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    ids.sort_unstable();
    let mut rows = Vec::new();
    for devid in ids {
        let nodes = read_tree(store, &format!("{root}/{devid}"))?;
        let backend_state = store
            .read(&format!(
                "{}/state",
                device_paths(domid, kind, devid).backend
            ))?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(-1);
        rows.push(DeviceRow {
            devid,
            backend_id: number(&nodes, "backend-id", -1),
            handle: number(&nodes, "handle", 0),
            state: number(&nodes, "state", -1),
            event_channel: first_number(
                &nodes,
                &[
                    "event-channel",
                    "queue-0/event-channel",
                    "event-channel-tx",
                    "queue-0/event-channel-tx",
                ],
                -1,
            ),
            ring_ref: first_number(
                &nodes,
                &[
                    "ring-ref",
                    "ring-ref0",
                    "queue-0/ring-ref",
                    "queue-0/ring-ref0",
                ],
                -1,
            ),
            tx_ring_ref: first_number(&nodes, &["tx-ring-ref", "queue-0/tx-ring-ref"], -1),
            rx_ring_ref: first_number(&nodes, &["rx-ring-ref", "queue-0/rx-ring-ref"], -1),
            mac: text(&nodes, "mac"),
            backend: text(&nodes, "backend"),
            backend_state,
            nodes,
        });
    }
    Ok(rows)
}

/// `xm block-list`'s header.
pub const BLOCK_LIST_HEADER: &str = "Vdev  BE handle state evt-ch ring-ref BE-path";

/// One `xm block-list` line: `"%(idx)-5d  %(backend-id)-3d  %(handle)-3d   %(state)-3d    \
/// %(event-ch)-3d    %(ring-ref)-5d %(be-path)-30s  "` (trailing spaces included, as xm).
pub fn block_list_line(row: &DeviceRow) -> String {
    format!(
        "{:<5}  {:<3}  {:<3}   {:<3}    {:<3}    {:<5} {:<30}  ",
        row.devid,
        row.backend_id,
        row.handle,
        row.state,
        row.event_channel,
        row.ring_ref,
        row.backend
    )
}

/// `xm network-list`'s header.
pub const NETWORK_LIST_HEADER: &str =
    "Idx BE     MAC Addr.     handle state evt-ch tx-/rx-ring-ref BE-path";

/// One `xm network-list` line: `"%(idx)-3d %(backend-id)-3d%(mac)-17s    %(handle)-3d   \
/// %(state)-3d    %(event-ch)-3d   %(tx-ring-ref)-5d/%(rx-ring-ref)-5d   %(be-path)-30s  "`.
pub fn network_list_line(row: &DeviceRow) -> String {
    format!(
        "{:<3} {:<3}{:<17}    {:<3}   {:<3}    {:<3}   {:<5}/{:<5}   {:<30}  ",
        row.devid,
        row.backend_id,
        row.mac,
        row.handle,
        row.state,
        row.event_channel,
        row.tx_ring_ref,
        row.rx_ring_ref,
        row.backend
    )
}

/// `-l`: the frontend's nodes as an S-expression, `(DEVID ((key value) ...))`, as xm printed
/// xend's device records.
pub fn device_sxp(row: &DeviceRow) -> String {
    let pairs = row
        .nodes
        .iter()
        .map(|(k, v)| Sxp::List(vec![Sxp::Atom(k.clone()), Sxp::Atom(v.clone())]))
        .collect();
    render_sxp(&Sxp::List(vec![
        Sxp::Atom(row.devid.to_string()),
        Sxp::List(pairs),
    ]))
}
