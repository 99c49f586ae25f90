//! xm's output formats, byte for byte where scripts parse them (`xm list`, `xm uptime`,
//! `xm info`), plus a JSON form of each.

use serde::Serialize;

use super::{dom_path, state_letters, Domain, Result, Store};

/// The header of `xm list` (xm 3.3–4.x: `'%-40s %5s %5s %5s %10s %9s'`).
pub fn list_header() -> String {
    format!(
        "{:<40} {:>5} {:>5} {:>5} {:>10} {:>9}",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    )
}

/// Memory a domain owns now, in MiB (whole pages, rounded down, as `xl list` computes it).
pub fn current_mem_mib(domain: &Domain) -> u64 {
    domain.info.total_pages * 4 / 1024
}

/// CPU time in seconds.
pub fn cpu_seconds(domain: &Domain) -> f64 {
    domain.info.cpu_time_ns as f64 / 1e9
}

/// One line of `xm list`:
/// `%(name)-40s %(domid)5s %(mem)5d %(vcpus)5d %(state)10s %(cpu_time)8.1f`.
pub fn list_line(domain: &Domain) -> String {
    format!(
        "{:<40} {:>5} {:>5} {:>5} {:>10} {:>8.1}",
        domain.display_name(),
        domain.domid(),
        current_mem_mib(domain),
        domain.info.online_vcpus,
        state_letters(&domain.info),
        cpu_seconds(domain)
    )
}

/// The whole `xm list` table, newline-terminated.
pub fn list_table(domains: &[Domain]) -> String {
    let mut out = list_header();
    out.push('\n');
    for d in domains {
        out.push_str(&list_line(d));
        out.push('\n');
    }
    out
}

/// A domain as `xm list --json` prints it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DomainRecord {
    /// Domain id.
    pub domid: u32,
    /// Name (`??` when xenstore has none).
    pub name: String,
    /// UUID.
    pub uuid: String,
    /// Memory owned now, MiB (the Mem column).
    pub mem: u64,
    /// `memory/target` in KiB, when set.
    pub memory_target_kib: Option<u64>,
    /// `memory/static-max` in KiB, when set.
    pub memory_static_max_kib: Option<u64>,
    /// The hypervisor's memory limit in KiB.
    pub max_memory_kib: u64,
    /// Vcpus online.
    pub vcpus: u32,
    /// The State column (`r b p s c d`).
    pub state: String,
    /// Shutdown reason when shut down (`poweroff`, `reboot`, `suspend`, `crash`, ...).
    pub shutdown_reason: Option<String>,
    /// CPU time, seconds.
    pub cpu_time: f64,
    /// `/vm/UUID/start_time` (seconds since the epoch), when known.
    pub start_time: Option<f64>,
    /// Kernel, ramdisk and command line from `/vm/UUID/image`, when known.
    pub image: Option<ImageRecord>,
}

/// The boot image recorded under `/vm/UUID/image`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImageRecord {
    /// OS type (`linux`).
    pub ostype: Option<String>,
    /// Kernel path.
    pub kernel: Option<String>,
    /// Ramdisk path.
    pub ramdisk: Option<String>,
    /// Kernel command line.
    pub cmdline: Option<String>,
}

/// The name xm gave a shutdown reason.
pub fn reason_name(reason: hypervisor::ShutdownReason) -> String {
    use hypervisor::ShutdownReason as R;
    match reason {
        R::Poweroff => "poweroff".into(),
        R::Reboot => "reboot".into(),
        R::Suspend => "suspend".into(),
        R::Crash => "crash".into(),
        R::Watchdog => "watchdog".into(),
        R::SoftReset => "soft_reset".into(),
        R::Other(code) => format!("unknown ({code})"),
    }
}

fn read_u64<S: Store + ?Sized>(store: &S, path: &str) -> Result<Option<u64>> {
    Ok(store.read(path)?.and_then(|v| v.trim().parse().ok()))
}

/// The `/vm/UUID` path of a domain (from `/local/domain/N/vm`), when it has one.
pub fn vm_path<S: Store + ?Sized>(store: &S, domid: u32) -> Result<Option<String>> {
    Ok(store
        .read(&format!("{}/vm", dom_path(domid)))?
        .filter(|p| p.starts_with("/vm/")))
}

/// `/vm/UUID/start_time`, seconds since the epoch.
pub fn start_time<S: Store + ?Sized>(store: &S, domid: u32) -> Result<Option<f64>> {
    let Some(vm) = vm_path(store, domid)? else {
        return Ok(None);
    };
    Ok(store
        .read(&format!("{vm}/start_time"))?
        .and_then(|v| v.trim().parse().ok()))
}

/// Gathers the JSON/SXP record of a domain.
pub fn record<S: Store + ?Sized>(store: &S, domain: &Domain) -> Result<DomainRecord> {
    let path = dom_path(domain.domid());
    let image = match vm_path(store, domain.domid())? {
        Some(vm) => {
            let image = ImageRecord {
                ostype: store.read(&format!("{vm}/image/ostype"))?,
                kernel: store.read(&format!("{vm}/image/kernel"))?,
                ramdisk: store.read(&format!("{vm}/image/ramdisk"))?,
                cmdline: store.read(&format!("{vm}/image/cmdline"))?,
            };
            (image.kernel.is_some() || image.ostype.is_some()).then_some(image)
        }
        None => None,
    };
    Ok(DomainRecord {
        domid: domain.domid(),
        name: domain.display_name().to_string(),
        uuid: domain.uuid(),
        mem: current_mem_mib(domain),
        memory_target_kib: read_u64(store, &format!("{path}/memory/target"))?,
        memory_static_max_kib: read_u64(store, &format!("{path}/memory/static-max"))?,
        max_memory_kib: domain.info.max_pages * 4,
        vcpus: domain.info.online_vcpus,
        state: state_letters(&domain.info),
        shutdown_reason: domain
            .info
            .shutdown
            .then_some(domain.info.shutdown_reason)
            .flatten()
            .map(reason_name),
        cpu_time: cpu_seconds(domain),
        start_time: start_time(store, domain.domid())?,
        image,
    })
}

/// An S-expression as xend's PrettyPrint laid it out.
#[derive(Debug, Clone, PartialEq)]
pub enum Sxp {
    /// A bare or quoted atom.
    Atom(String),
    /// `(a b c)`.
    List(Vec<Sxp>),
}

impl Sxp {
    fn pair(key: &str, value: impl ToString) -> Sxp {
        Sxp::List(vec![Sxp::Atom(key.into()), Sxp::Atom(value.to_string())])
    }
}

/// An atom as sxp.py wrote it: bare when it is a plain word, else double-quoted with `\\`
/// and `\"` escaped.
fn atom_text(atom: &str) -> String {
    let plain = !atom.is_empty()
        && atom
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '"' | '\'' | '\\' | '[' | ']'));
    if plain {
        atom.to_string()
    } else {
        let escaped = atom.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    }
}

fn write_sxp(out: &mut String, sxp: &Sxp, indent: usize) {
    match sxp {
        Sxp::Atom(a) => out.push_str(&atom_text(a)),
        Sxp::List(items) => {
            let flat = items.iter().all(|i| matches!(i, Sxp::Atom(_)));
            out.push('(');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    if flat {
                        out.push(' ');
                    } else {
                        out.push('\n');
                        out.push_str(&" ".repeat(indent + 4));
                    }
                }
                write_sxp(out, item, indent + 4);
            }
            out.push(')');
        }
    }
}

/// Renders an S-expression: lists of atoms on one line, nested lists one child per line
/// indented by four spaces, like `xm list -l`.
pub fn render_sxp(sxp: &Sxp) -> String {
    let mut out = String::new();
    write_sxp(&mut out, sxp, 0);
    out
}

/// The `(domain ...)` S-expression of `xm list -l` (the subset of xend's fields we can know
/// for a domain whatever toolstack created it).
pub fn domain_sxp(r: &DomainRecord) -> Sxp {
    let mut items = vec![
        Sxp::Atom("domain".into()),
        Sxp::pair("domid", r.domid),
        Sxp::pair("uuid", &r.uuid),
        Sxp::pair("vcpus", r.vcpus),
        Sxp::pair("online_vcpus", r.vcpus),
        Sxp::pair("name", &r.name),
        Sxp::pair(
            "maxmem",
            r.memory_static_max_kib.unwrap_or(r.max_memory_kib) / 1024,
        ),
        Sxp::pair("memory", r.memory_target_kib.map_or(r.mem, |k| k / 1024)),
        Sxp::pair("cpu_time", format!("{:.3}", r.cpu_time)),
        Sxp::pair("state", &r.state),
    ];
    if let Some(reason) = &r.shutdown_reason {
        items.push(Sxp::pair("shutdown_reason", reason));
    }
    if let Some(t) = r.start_time {
        items.push(Sxp::pair("start_time", format!("{t:.2}")));
    }
    if let Some(image) = &r.image {
        let mut linux = vec![Sxp::Atom(
            image.ostype.clone().unwrap_or_else(|| "linux".into()),
        )];
        for (key, value) in [
            ("kernel", &image.kernel),
            ("ramdisk", &image.ramdisk),
            ("args", &image.cmdline),
        ] {
            if let Some(v) = value {
                linux.push(Sxp::pair(key, v));
            }
        }
        items.push(Sxp::List(vec![Sxp::Atom("image".into()), Sxp::List(linux)]));
    }
    Sxp::List(items)
}

/// `xm uptime`'s header: `'%-33s %4s %s '` of Name, ID, Uptime (with its trailing space).
pub fn uptime_header() -> String {
    format!("{:<33} {:>4} {} ", "Name", "ID", "Uptime")
}

/// xm's uptime text: `[D day[s], ]HH:MM` with `:SS` unless short.
pub fn uptime_text(seconds: u64, with_seconds: bool) -> String {
    let days = seconds / 86_400;
    let hours = seconds % 86_400 / 3600;
    let minutes = seconds % 3600 / 60;
    let secs = seconds % 60;
    let mut out = String::new();
    if days > 0 {
        out.push_str(&format!("{days} day{}, ", if days > 1 { "s" } else { "" }));
    }
    out.push_str(&format!("{hours:>2}:{minutes:02}"));
    if with_seconds {
        out.push_str(&format!(":{secs:02}"));
    }
    out
}

/// One `xm uptime` line: `%(name)-32s %(domid)5s ` and the uptime.
pub fn uptime_line(name: &str, domid: u32, seconds: u64) -> String {
    format!("{name:<32} {domid:>5} {}", uptime_text(seconds, true))
}

/// One `xm info` line: `%-23s: value`.
pub fn info_line(key: &str, value: &str) -> String {
    format!("{key:<23}: {value}")
}
