//! Commands that change a domain: destroy, shutdown/reboot (with waiting), pause, unpause,
//! rename, sysrq, mem-set, mem-max.

use std::time::{Duration, Instant};

use hypervisor::{DomId, Hypervisor};

use super::format::vm_path;
use super::{all_domains, dom_path, refresh, Domain, OpsError, Result, Store};

/// The extra KiB libxl adds to a PV domain's hypervisor memory limit over its target
/// (`LIBXL_MAXMEM_CONSTANT`), so xl's and our limits agree.
pub const MAXMEM_SLACK_KIB: u64 = 1024;

/// What `xm shutdown` asks the guest to do (the value written to `control/shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Power off (the default).
    Poweroff,
    /// Reboot (`-R`, `xm reboot`).
    Reboot,
    /// Halt (`-H`).
    Halt,
}

impl ShutdownMode {
    /// The word the guest's PV driver understands.
    pub fn word(self) -> &'static str {
        match self {
            ShutdownMode::Poweroff => "poweroff",
            ShutdownMode::Reboot => "reboot",
            ShutdownMode::Halt => "halt",
        }
    }
}

fn refuse_dom0(domain: &Domain, what: &str) -> Result<()> {
    if domain.domid() == 0 {
        return Err(OpsError::Refused(format!(
            "Cannot {what} privileged domain 0 ({}).",
            domain.display_name()
        )));
    }
    Ok(())
}

/// Asks a guest to shut down: writes `control/shutdown`, as xl and xend do; the guest's PV
/// driver answers by clearing it and shutting down.
pub fn request_shutdown<S: Store + ?Sized>(
    store: &S,
    domain: &Domain,
    mode: ShutdownMode,
) -> Result<()> {
    refuse_dom0(domain, "shut down")?;
    store.write(
        &format!("{}/control/shutdown", dom_path(domain.domid())),
        mode.word(),
    )?;
    Ok(())
}

/// Every domain but dom0 (for `-a`).
pub fn all_guests<H: Hypervisor, S: Store + ?Sized>(hv: &H, store: &S) -> Result<Vec<Domain>> {
    Ok(all_domains(hv, store)?
        .into_iter()
        .filter(|d| d.domid() != 0)
        .collect())
}

/// How long and how often [`wait_for_shutdown`] looks.
#[derive(Debug, Clone, Copy)]
pub struct WaitPolicy {
    /// Longest wait for a `@releaseDomain` event before looking again anyway.
    pub tick: Duration,
    /// Once a domain has shut down, how long to give whatever reaps it (xl's background
    /// process, our daemon) to destroy it before returning anyway.
    pub reap_grace: Duration,
    /// For reboots: how long the restarted domain (same name) may take to appear.
    pub restart_grace: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            tick: Duration::from_secs(1),
            reap_grace: Duration::from_secs(10),
            restart_grace: Duration::from_secs(30),
        }
    }
}

/// What happened to one domain while `-w` waited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Gone from the hypervisor (xm: "Domain NAME terminated").
    Terminated(String),
    /// Shut down but nothing destroyed it within the grace period.
    ShutDownNotReaped(String),
    /// A domain of the same name is running again after a reboot.
    Rebooted(String),
    /// Rebooting: the old domain went away and no new one came (xm: "destroyed for failing to
    /// reboot").
    NotRestarted(String),
}

/// Waits until every domain in `domains` has shut down and gone away (`@releaseDomain`
/// events, re-checking at least every `policy.tick`); there is no overall limit, as with xm.
/// `report` is called once per domain as it finishes, in the order they finish.
pub fn wait_for_shutdown<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domains: &[Domain],
    mode: ShutdownMode,
    policy: WaitPolicy,
    report: &mut dyn FnMut(&WaitOutcome),
) -> Result<()> {
    // (domain, when it was first seen shut down)
    let mut pending: Vec<(Domain, Option<Instant>)> =
        domains.iter().map(|d| (d.clone(), None)).collect();
    let mut gone: Vec<Domain> = Vec::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for (domain, since) in pending {
            let name = domain.display_name().to_string();
            match refresh(hv, domain.domid())? {
                None => {
                    if mode == ShutdownMode::Reboot {
                        gone.push(domain);
                    } else {
                        report(&WaitOutcome::Terminated(name));
                    }
                }
                // A different domain took the id: ours is gone.
                Some(info) if info.handle != domain.info.handle => {
                    if mode == ShutdownMode::Reboot {
                        gone.push(domain);
                    } else {
                        report(&WaitOutcome::Terminated(name));
                    }
                }
                Some(info) if info.shutdown || info.dying => {
                    let since = since.unwrap_or_else(Instant::now);
                    if since.elapsed() >= policy.reap_grace {
                        report(&WaitOutcome::ShutDownNotReaped(name));
                    } else {
                        still.push((domain, Some(since)));
                    }
                }
                Some(_) => still.push((domain, since)),
            }
        }
        pending = still;
        if !pending.is_empty() {
            store.wait_domain_change(policy.tick)?;
        }
    }
    for domain in gone {
        report(&wait_for_restart(hv, store, &domain, policy)?);
    }
    Ok(())
}

fn wait_for_restart<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    old: &Domain,
    policy: WaitPolicy,
) -> Result<WaitOutcome> {
    let name = old.display_name().to_string();
    let started = Instant::now();
    loop {
        let again = all_domains(hv, store)?
            .into_iter()
            .any(|d| d.name.as_deref() == Some(name.as_str()) && d.domid() != old.domid());
        if again {
            return Ok(WaitOutcome::Rebooted(name));
        }
        if started.elapsed() >= policy.restart_grace {
            return Ok(WaitOutcome::NotRestarted(name));
        }
        store.wait_domain_change(policy.tick.min(Duration::from_millis(500)))?;
        std::thread::sleep(Duration::from_millis(50).min(policy.tick));
    }
}

/// A device backend a destroyed domain leaves behind in dom0's xenstore.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BackendDir {
    path: String,
    /// A loop device the hotplug script attached for a `file:` disk, to release.
    loop_node: Option<String>,
}

fn backends_of<S: Store + ?Sized>(store: &S, domid: DomId) -> Result<Vec<BackendDir>> {
    let mut dirs = Vec::new();
    let root = "/local/domain/0/backend";
    for kind in store.list(root)? {
        let kind_path = format!("{root}/{kind}");
        if !store.list(&kind_path)?.contains(&domid.to_string()) {
            continue;
        }
        let path = format!("{kind_path}/{domid}");
        let mut loop_node = None;
        if kind == "vbd" || kind == "qdisk" {
            for dev in store.list(&path)? {
                let node = store.read(&format!("{path}/{dev}/node"))?;
                let params = store.read(&format!("{path}/{dev}/params"))?;
                if let Some(node) = node.filter(|n| n.starts_with("/dev/loop")) {
                    // params naming the loop device itself means the admin gave us the loop
                    // (phy:/dev/loopN): not ours to release.
                    if params.as_deref() != Some(node.as_str()) {
                        loop_node = Some(node);
                    }
                }
            }
        }
        dirs.push(BackendDir { path, loop_node });
    }
    Ok(dirs)
}

/// What [`destroy`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestroyReport {
    /// xenstore directories removed.
    pub removed: Vec<String>,
    /// Loop devices released.
    pub loops_released: Vec<String>,
    /// Cleanup steps that failed (the domain itself is destroyed).
    pub problems: Vec<String>,
}

/// Destroys a domain at once and removes what a toolstack leaves in xenstore for it: its
/// device backends in dom0, `/local/domain/N`, `/libxl/N` and its `/vm/UUID` (unless another
/// domain still points at it); loop devices attached for its `file:` disks are released
/// through `release_loop`. Domain 0 is refused.
pub fn destroy<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    release_loop: &mut dyn FnMut(&str) -> std::result::Result<(), String>,
) -> Result<DestroyReport> {
    destroy_with(
        hv,
        store,
        domain,
        release_loop,
        &mut crate::create::vfb::stop_on_host,
    )
}

/// [`destroy`], with the domain's device model (the qemu a vfb has, its pid recorded at
/// `/local/domain/N/image/device-model-pid` as libxl does) stopped through
/// `stop_device_model(domid, pid)` first, and its `/local/domain/0/device-model/N` removed.
pub fn destroy_with<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    release_loop: &mut dyn FnMut(&str) -> std::result::Result<(), String>,
    stop_device_model: &mut dyn FnMut(DomId, u32) -> std::result::Result<(), String>,
) -> Result<DestroyReport> {
    refuse_dom0(domain, "destroy")?;
    let domid = domain.domid();
    let backends = backends_of(store, domid)?;
    let vm = vm_path(store, domid)?;
    // qemu maps the guest's framebuffer: stop it before the domain goes, as libxl does
    let device_model_problem = crate::create::vfb::recorded_pid(store, domid).and_then(|pid| {
        stop_device_model(domid, pid)
            .err()
            .map(|e| format!("stopping the device model (pid {pid}): {e}"))
    });
    match hv.destroy_domain(domid) {
        Ok(()) => {}
        Err(hypervisor::Error::NoSuchDomain(_)) => {
            return Err(OpsError::NoSuchDomain(domid.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    let mut report = DestroyReport::default();
    report.problems.extend(device_model_problem);
    let remove = |path: &str, report: &mut DestroyReport| match store.remove(path) {
        Ok(()) => report.removed.push(path.to_string()),
        Err(e) => report.problems.push(format!("removing {path}: {e}")),
    };
    for backend in &backends {
        remove(&backend.path, &mut report);
    }
    if store
        .list("/local/domain/0/device-model")?
        .contains(&domid.to_string())
    {
        remove(&crate::create::vfb::device_model_dir(domid), &mut report);
    }
    remove(&dom_path(domid), &mut report);
    remove(&format!("/libxl/{domid}"), &mut report);
    if let Some(vm) = vm {
        let shared = all_domains(hv, store)?.iter().any(|d| {
            d.domid() != domid
                && store
                    .read(&format!("{}/vm", dom_path(d.domid())))
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(vm.as_str())
        });
        if !shared {
            remove(&vm, &mut report);
        }
    }
    for node in backends.iter().filter_map(|b| b.loop_node.as_deref()) {
        match release_loop(node) {
            Ok(()) => report.loops_released.push(node.to_string()),
            Err(e) => report.problems.push(format!("releasing {node}: {e}")),
        }
    }
    Ok(report)
}

/// Pauses a domain.
pub fn pause<H: Hypervisor>(hv: &H, domain: &Domain) -> Result<()> {
    refuse_dom0(domain, "pause")?;
    Ok(hv.pause_domain(domain.domid())?)
}

/// Lets a paused domain run.
pub fn unpause<H: Hypervisor>(hv: &H, domain: &Domain) -> Result<()> {
    Ok(hv.unpause_domain(domain.domid())?)
}

/// Renames a domain: `/local/domain/N/name` and `/vm/UUID/name`. A name another domain has
/// is refused.
pub fn rename<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    new_name: &str,
) -> Result<()> {
    if new_name.is_empty() || new_name.chars().any(|c| c.is_control() || c == '/') {
        return Err(OpsError::Refused(format!(
            "'{new_name}' is not a valid domain name"
        )));
    }
    if let Some(other) = all_domains(hv, store)?
        .iter()
        .find(|d| d.name.as_deref() == Some(new_name) && d.domid() != domain.domid())
    {
        return Err(OpsError::Refused(format!(
            "Domain with name '{new_name}' already exists (domain {}).",
            other.domid()
        )));
    }
    store.write(&format!("{}/name", dom_path(domain.domid())), new_name)?;
    if let Some(vm) = vm_path(store, domain.domid())? {
        store.write(&format!("{vm}/name"), new_name)?;
    }
    Ok(())
}

/// Sends a magic SysRq key to the guest (`control/sysrq`, which its PV driver clears).
pub fn sysrq<S: Store + ?Sized>(store: &S, domain: &Domain, key: &str) -> Result<()> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_graphic() => {}
        _ => {
            return Err(OpsError::Refused(format!(
                "sysrq key must be one printable character, not '{key}'"
            )))
        }
    }
    store.write(&format!("{}/control/sysrq", dom_path(domain.domid())), key)?;
    Ok(())
}

/// Parses xm's memory argument: a number in MiB, or with a unit suffix `b`, `k`, `m`, `g`
/// (`t` as xl also takes); returns KiB.
pub fn parse_mem_kib(text: &str) -> Result<u64> {
    let bad = || OpsError::Refused(format!("Invalid memory size '{text}'."));
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
        Some(_) => (text, 'm'),
        None => return Err(bad()),
    };
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let kib = match unit {
        'b' => value / 1024,
        'k' => value,
        'm' => value.checked_mul(1024).ok_or_else(bad)?,
        'g' => value.checked_mul(1024 * 1024).ok_or_else(bad)?,
        't' => value.checked_mul(1024 * 1024 * 1024).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    Ok(kib)
}

fn read_kib<S: Store + ?Sized>(store: &S, path: &str) -> Result<Option<u64>> {
    match store.read(path)? {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            OpsError::Refused(format!("{path} holds '{v}', which is not a number of KiB"))
        }),
    }
}

/// Sets the memory target (what the guest's balloon driver aims for), as `xl mem-set` does:
/// refused above `memory/static-max`; the hypervisor limit follows the target (plus video RAM
/// and libxl's slack); then `memory/target` is written.
pub fn mem_set<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    target_kib: u64,
) -> Result<()> {
    let path = dom_path(domain.domid());
    let static_max = read_kib(store, &format!("{path}/memory/static-max"))?.ok_or_else(|| {
        OpsError::Refused(format!(
            "{path}/memory/static-max is not set: domain {} has no memory settings in xenstore",
            domain.display_name()
        ))
    })?;
    let videoram = read_kib(store, &format!("{path}/memory/videoram"))?.unwrap_or(0);
    let target = target_kib.saturating_sub(videoram);
    if target > static_max {
        return Err(OpsError::Refused(format!(
            "memory_dynamic_max must be less than or equal to memory_static_max \
             ({} MiB asked, {} MiB maximum)",
            target_kib / 1024,
            static_max / 1024
        )));
    }
    if domain.domid() != 0 {
        hv.set_max_memory_kib(domain.domid(), target + videoram + MAXMEM_SLACK_KIB)?;
    }
    store.write(&format!("{path}/memory/target"), &target.to_string())?;
    Ok(())
}

/// Sets the most memory a domain may have (`xm mem-max`), refused below its current target;
/// records it as `memory/static-max`.
pub fn mem_max<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    max_kib: u64,
) -> Result<()> {
    let path = dom_path(domain.domid());
    if let Some(target) = read_kib(store, &format!("{path}/memory/target"))? {
        if max_kib < target {
            return Err(OpsError::Refused(format!(
                "memory_static_max must be greater than or equal to memory_dynamic_max \
                 ({} MiB asked, target {} MiB)",
                max_kib / 1024,
                target / 1024
            )));
        }
    }
    hv.set_max_memory_kib(domain.domid(), max_kib + MAXMEM_SLACK_KIB)?;
    store.write(&format!("{path}/memory/static-max"), &max_kib.to_string())?;
    Ok(())
}
