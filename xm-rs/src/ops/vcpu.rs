//! Virtual cpus and the credit scheduler: `xm vcpu-list`, `vcpu-set`, `vcpu-pin` and
//! `sched-credit`, with xm's output formats.

use std::collections::BTreeSet;

use hypervisor::{CreditParams, Hypervisor, Scheduler, VcpuInfo};
use serde::Serialize;

use super::{dom_path, Domain, OpsError, Result, Store};
use crate::config::devices::CpuSet;

/// One row of `xm vcpu-list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VcpuRow {
    /// The domain's name (`??` when it has none).
    pub name: String,
    /// The domain's id.
    pub domid: u32,
    /// The vcpu number.
    pub vcpu: u32,
    /// Physical cpu it runs (or last ran) on.
    pub cpu: u32,
    /// Brought up by the guest.
    pub online: bool,
    /// Running now.
    pub running: bool,
    /// Waiting for an event.
    pub blocked: bool,
    /// CPU time, seconds.
    pub cpu_time: f64,
    /// Hard affinity, ascending physical cpu numbers.
    pub affinity: Vec<u32>,
}

impl VcpuRow {
    fn new(domain: &Domain, info: VcpuInfo) -> VcpuRow {
        VcpuRow {
            name: domain.display_name().to_string(),
            domid: domain.domid(),
            vcpu: info.vcpu,
            cpu: info.cpu,
            online: info.online,
            running: info.running,
            blocked: info.blocked,
            cpu_time: info.cpu_time_ns as f64 / 1e9,
            affinity: info.hard_affinity,
        }
    }
}

/// Every vcpu (0 to the highest id) of each domain, in order.
pub fn vcpu_rows<H: Hypervisor>(hv: &H, domains: &[Domain]) -> Result<Vec<VcpuRow>> {
    let mut rows = Vec::new();
    for domain in domains {
        for vcpu in 0..=domain.info.max_vcpu_id {
            rows.push(VcpuRow::new(domain, hv.vcpu_info(domain.domid(), vcpu)?));
        }
    }
    Ok(rows)
}

/// `xm vcpu-list`'s header: `'%-32s %5s %5s %5s %5s %9s %s'`.
pub fn vcpu_list_header() -> String {
    format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "CPU Affinity"
    )
}

/// xm's affinity column: `any cpu` when every host cpu is allowed, else ranges (`0-1,3`),
/// `no cpus` when none.
pub fn format_cpumap(cpus: &[u32], host_cpus: u32) -> String {
    let set: BTreeSet<u32> = cpus.iter().copied().filter(|c| *c < host_cpus).collect();
    if host_cpus > 0 && set.len() == host_cpus as usize {
        return "any cpu".into();
    }
    if set.is_empty() {
        return "no cpus".into();
    }
    format_ranges(&set)
}

/// `0-3,5,7-8` from a set of numbers.
pub fn format_ranges(set: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// One line of `xm vcpu-list`:
/// `'%(name)-32s %(domid)5s %(number)5d %(c)5s %(s)5s  %(cpu_time)8.1f %(cpumap)s'`, the
/// state `r`/`-`, `b`/`-`, `-` for an online vcpu and `--p` (cpu `-`) for an offline one.
pub fn vcpu_list_line(row: &VcpuRow, host_cpus: u32) -> String {
    let (cpu, state) = if row.online {
        let state = format!(
            "{}{}-",
            if row.running { 'r' } else { '-' },
            if row.blocked { 'b' } else { '-' }
        );
        (row.cpu.to_string(), state)
    } else {
        ("-".to_string(), "--p".to_string())
    };
    format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5}  {:>8.1} {}",
        row.name,
        row.domid,
        row.vcpu,
        cpu,
        state,
        row.cpu_time,
        format_cpumap(&row.affinity, host_cpus)
    )
}

/// `xm vcpu-set DOMAIN N`: asks the guest to have `count` vcpus online, as xend and libxl do
/// for a PV guest, by writing `cpu/K/availability` (`online`/`offline`) for every vcpu up to
/// the domain's maximum; the guest's kernel hot-plugs them. More than the maximum is refused.
pub fn vcpu_set<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    domain: &Domain,
    count: u32,
) -> Result<()> {
    if count == 0 {
        return Err(OpsError::Usage(
            "Zero or less VCPUs is invalid (vcpu-set needs at least 1).".into(),
        ));
    }
    let info = hv.domain_info(domain.domid())?;
    let max = info.max_vcpu_id + 1;
    if count > max {
        return Err(OpsError::Refused(format!(
            "Cannot set vcpus greater than max vcpus on running domain \
             ({count} asked, domain {} has at most {max}).",
            domain.display_name()
        )));
    }
    let base = dom_path(domain.domid());
    for vcpu in 0..max {
        let availability = if vcpu < count { "online" } else { "offline" };
        store.write(&format!("{base}/cpu/{vcpu}/availability"), availability)?;
    }
    Ok(())
}

/// Parses a cpu list of `vcpu-pin` (`all`, `0-3,^2`, `1,3`) into the cpus it names among
/// `0..count`; `what` names the argument in errors. Naming a cpu at or beyond `count` is an
/// error, and so is a list that selects nothing.
pub fn parse_cpu_list(text: &str, count: u32, what: &str) -> Result<Vec<u32>> {
    let text = text.trim();
    if text == "all" {
        return Ok((0..count).collect());
    }
    let set: CpuSet = text
        .parse()
        .map_err(|e| OpsError::Usage(format!("{what} '{text}': {e}")))?;
    if !set.nodes.is_empty() || !set.excluded_nodes.is_empty() {
        return Err(OpsError::Usage(format!(
            "{what} '{text}': NUMA node lists (node:N) are not supported here; name the cpus"
        )));
    }
    if let Some(beyond) = set
        .cpus
        .iter()
        .chain(set.excluded_cpus.iter())
        .find(|c| **c >= count)
    {
        return Err(OpsError::Usage(format!(
            "{what} '{text}': {beyond} does not exist (there are {count}: {})",
            if count == 0 {
                "none".to_string()
            } else {
                format!("0-{}", count - 1)
            }
        )));
    }
    let chosen: Vec<u32> = set.resolve(count, |_| 0).into_iter().collect();
    if chosen.is_empty() {
        return Err(OpsError::Usage(format!("{what} '{text}' selects none")));
    }
    Ok(chosen)
}

/// `xm vcpu-pin DOMAIN VCPU|all CPUS`: sets the hard affinity of the named vcpus (a number,
/// a list such as `0-1`, or `all`) to the named physical cpus (`all`, `0-3,^2`...). Returns
/// the vcpus pinned.
pub fn vcpu_pin<H: Hypervisor>(
    hv: &H,
    domain: &Domain,
    vcpus: &str,
    cpus: &str,
) -> Result<Vec<u32>> {
    let info = hv.domain_info(domain.domid())?;
    let vcpus = parse_cpu_list(vcpus, info.max_vcpu_id + 1, "VCPU")?;
    let host_cpus = hv.physinfo()?.nr_cpus;
    let cpus = parse_cpu_list(cpus, host_cpus, "CPUS")?;
    for &vcpu in &vcpus {
        hv.set_vcpu_affinity(domain.domid(), vcpu, &cpus)?;
    }
    Ok(vcpus)
}

/// One row of `xm sched-credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreditRow {
    /// The domain's name.
    pub name: String,
    /// Its id.
    pub domid: u32,
    /// Its weight, or `None` when the credit scheduler does not run it.
    pub weight: Option<u16>,
    /// Its cap (0: none), or `None` as for `weight`.
    pub cap: Option<u16>,
}

/// Refuses `xm sched-credit` on a host running another scheduler, as xm did
/// ("Xen is running with the credit2 scheduler").
pub fn check_scheduler<H: Hypervisor>(hv: &H, wanted: Scheduler) -> Result<()> {
    let running = hv.scheduler()?;
    if running != wanted {
        let hint = match running {
            Scheduler::Credit | Scheduler::Credit2 => format!(" (use xm sched-{})", running.name()),
            _ => String::new(),
        };
        return Err(OpsError::Refused(format!(
            "Xen is running with the {} scheduler{hint}",
            running.name()
        )));
    }
    Ok(())
}

/// The weight and cap of each domain under `scheduler`; a domain it does not run gets none
/// (xm printed -1 for both).
pub fn credit_rows<H: Hypervisor>(
    hv: &H,
    domains: &[Domain],
    scheduler: Scheduler,
) -> Vec<CreditRow> {
    domains
        .iter()
        .map(|d| {
            let params: Option<CreditParams> = match hv.sched_params(d.domid(), scheduler) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::debug!(domid = d.domid(), "sched-credit: {e}");
                    None
                }
            };
            CreditRow {
                name: d.display_name().to_string(),
                domid: d.domid(),
                weight: params.map(|p| p.weight),
                cap: params.map(|p| p.cap),
            }
        })
        .collect()
}

/// `xm sched-credit`'s header: `'%-33s %4s %6s %4s'`.
pub fn credit_header() -> String {
    format!("{:<33} {:>4} {:>6} {:>4}", "Name", "ID", "Weight", "Cap")
}

/// One line: `'%(name)-32s %(domid)5s %(weight)6d %(cap)4d'`.
pub fn credit_line(row: &CreditRow) -> String {
    format!(
        "{:<32} {:>5} {:>6} {:>4}",
        row.name,
        row.domid,
        row.weight.map_or(-1, i32::from),
        row.cap.map_or(-1, i32::from)
    )
}

/// `xm sched-credit[2] -d DOMAIN [-w WEIGHT] [-c CAP]`: changes what is given.
pub fn credit_set<H: Hypervisor>(
    hv: &H,
    domain: &Domain,
    scheduler: Scheduler,
    weight: Option<u16>,
    cap: Option<u16>,
) -> Result<()> {
    if weight == Some(0) {
        return Err(OpsError::Usage("weight must be between 1 and 65535".into()));
    }
    hv.set_sched_params(domain.domid(), scheduler, weight, cap)?;
    Ok(())
}
