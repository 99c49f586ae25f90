//! xm's everyday read and control commands (`list`, `shutdown`, `destroy`, `info`, ...):
//! argument definitions and printing. The work is done by [`crate::ops`]; [`execute`] is
//! generic over the hypervisor and the store so host tests drive it with the simulation.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use hypervisor::Hypervisor;
use serde_json::json;

use super::{vcpu, Exit};
use crate::ops::control::{self, ShutdownMode, WaitOutcome, WaitPolicy};
use crate::ops::format;
use crate::ops::host::{self, HostFiles};
use crate::ops::{self, find_domain, select_domains, OpsError, Store};

/// Domain commands (everything but `create`).
#[derive(Debug, Subcommand)]
pub enum DomCommand {
    /// List information about all/some domains.
    List(ListArgs),
    /// Terminate a domain immediately.
    Destroy(OneDomain),
    /// Shutdown a domain.
    Shutdown(ShutdownArgs),
    /// Reboot a domain.
    Reboot(RebootArgs),
    /// Pause execution of a domain.
    Pause(OneDomain),
    /// Unpause a paused domain.
    Unpause(OneDomain),
    /// Convert a domain name to domain id.
    Domid(OneDomainJson),
    /// Convert a domain id to domain name.
    Domname(OneDomainJson),
    /// Rename a domain.
    Rename(RenameArgs),
    /// Print uptime for all/some domains.
    Uptime(UptimeArgs),
    /// Get information about Xen host.
    Info(JsonOnly),
    /// Read and/or clear Xen's message buffer.
    Dmesg(DmesgArgs),
    /// Send a sysrq to a domain.
    Sysrq(SysrqArgs),
    /// Set the current memory usage for a domain.
    #[command(name = "mem-set", alias = "balloon")]
    MemSet(MemArgs),
    /// Set the maximum amount reservation for a domain.
    #[command(name = "mem-max")]
    MemMax(MemArgs),
    /// List the VCPUs for all/some domains.
    #[command(name = "vcpu-list")]
    VcpuList(vcpu::VcpuListArgs),
    /// Set the number of active VCPUs allowed for the domain.
    #[command(name = "vcpu-set")]
    VcpuSet(vcpu::VcpuSetArgs),
    /// Set which CPUs a VCPU can use.
    #[command(name = "vcpu-pin")]
    VcpuPin(vcpu::VcpuPinArgs),
    /// Get/set credit scheduler parameters.
    #[command(name = "sched-credit")]
    SchedCredit(vcpu::SchedCreditArgs),
    /// Get/set credit2 scheduler parameters.
    #[command(name = "sched-credit2")]
    SchedCredit2(vcpu::SchedCreditArgs),
    /// Attach to a domain's console (Ctrl-] detaches).
    Console(ConsoleArgs),
}

/// `xm list [-l] [--json] [Domain...]`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output all details as an S-expression, as xm did.
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    /// Output a JSON array.
    #[arg(long, conflicts_with = "long")]
    pub json: bool,
    /// Select only VMs with the specified state (halted, running, paused, crashed,
    /// suspended, unknown; halted includes managed domains that are not running).
    #[arg(long, value_name = "STATE", ignore_case = true,
          value_parser = ["all", "halted", "paused", "running", "suspended", "crashed", "unknown"])]
    pub state: Option<String>,
    /// Domains (name, id or UUID); all when none.
    #[arg(value_name = "DOMAIN")]
    pub domains: Vec<String>,
}

/// One domain.
#[derive(Debug, Args)]
pub struct OneDomain {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
}

/// One domain, with `--json`.
#[derive(Debug, Args)]
pub struct OneDomainJson {
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
}

/// `--json` only.
#[derive(Debug, Args)]
pub struct JsonOnly {
    /// Output JSON.
    #[arg(long)]
    pub json: bool,
}

/// `xm shutdown [-w] [-a] [-R|-H] [Domain]`.
#[derive(Debug, Args)]
pub struct ShutdownArgs {
    /// Wait for the domain(s) to shut down and go away.
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// Shut down every domain except Domain-0.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Reboot instead of powering off.
    #[arg(short = 'R', long, conflicts_with = "halt")]
    pub reboot: bool,
    /// Halt instead of powering off.
    #[arg(short = 'H', long)]
    pub halt: bool,
    /// The domain (name, id or UUID), unless -a.
    #[arg(
        value_name = "DOMAIN",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub domain: Option<String>,
}

/// `xm reboot [-w] [-a] [Domain]`.
#[derive(Debug, Args)]
pub struct RebootArgs {
    /// Wait for the domain(s) to come back.
    #[arg(short = 'w', long)]
    pub wait: bool,
    /// Reboot every domain except Domain-0.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The domain (name, id or UUID), unless -a.
    #[arg(
        value_name = "DOMAIN",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub domain: Option<String>,
}

/// `xm rename Domain NewName`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Its new name.
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// `xm uptime [-s] [Domain...]`.
#[derive(Debug, Args)]
pub struct UptimeArgs {
    /// Short form: ` HH:MM:SS up TIME, NAME (ID)` (current time in UTC).
    #[arg(short = 's', long)]
    pub short: bool,
    /// Output JSON.
    #[arg(long, conflicts_with = "short")]
    pub json: bool,
    /// Domains; all when none.
    #[arg(value_name = "DOMAIN")]
    pub domains: Vec<String>,
}

/// `xm dmesg [-c]`.
#[derive(Debug, Args)]
pub struct DmesgArgs {
    /// Clear the buffer after printing it.
    #[arg(short = 'c', long)]
    pub clear: bool,
    /// Output a JSON array of lines.
    #[arg(long)]
    pub json: bool,
}

/// `xm sysrq Domain Key`.
#[derive(Debug, Args)]
pub struct SysrqArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// The SysRq letter.
    #[arg(value_name = "KEY")]
    pub key: String,
}

/// `xm mem-set|mem-max Domain Mem`.
#[derive(Debug, Args)]
pub struct MemArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Memory in MiB, or with a unit suffix (b, k, m, g).
    #[arg(value_name = "MEM")]
    pub memory: String,
}

/// `xm console [-q] Domain`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// Do not print an error message if the domain does not exist.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
}

/// Where a command's output goes, and what it may touch.
pub struct Context<'a, H, S: ?Sized> {
    /// The hypervisor.
    pub hv: &'a H,
    /// xenstore.
    pub store: &'a S,
    /// Host files (`/proc`, `/sys/hypervisor`).
    pub files: &'a dyn HostFiles,
    /// How `shutdown -w` waits.
    pub wait: WaitPolicy,
    /// Releases a loop device (destroy of a domain with a `file:` disk).
    pub release_loop: &'a mut dyn FnMut(&str) -> Result<(), String>,
    /// The managed domains' definitions (`xm list` shows the halted ones).
    pub definitions: &'a crate::managed::DefinitionStore,
}

impl<H, S: ?Sized> std::fmt::Debug for Context<'_, H, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Prints an error as xm did (`Error: ...` on stderr) and picks the exit code.
fn fail(err: &mut dyn Write, e: &OpsError) -> Exit {
    if matches!(e, OpsError::OutputClosed) {
        return Exit::Ok;
    }
    let _ = writeln!(err, "Error: {e}");
    match e {
        OpsError::NotAvailable(_) => Exit::NotAvailable,
        OpsError::Usage(_) => Exit::Usage,
        _ => Exit::ConfigError,
    }
}

pub(crate) fn print_json(
    out: &mut dyn Write,
    value: &impl serde::Serialize,
) -> Result<(), OpsError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| OpsError::Refused(format!("cannot format JSON: {e}")))?;
    writeln!(out, "{text}").map_err(io_error)
}

/// A failed write to stdout: EPIPE means the reader went away (see [`OpsError::OutputClosed`]).
pub(crate) fn io_error(e: std::io::Error) -> OpsError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        OpsError::OutputClosed
    } else {
        OpsError::Refused(format!("writing output: {e}"))
    }
}

/// Runs one command; returns the exit code.
pub fn execute<H: Hypervisor, S: Store + ?Sized>(
    command: &DomCommand,
    ctx: &mut Context<'_, H, S>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit {
    match run(command, ctx, out, err) {
        Ok(exit) => exit,
        Err(e) => fail(err, &e),
    }
}

fn run<H: Hypervisor, S: Store + ?Sized>(
    command: &DomCommand,
    ctx: &mut Context<'_, H, S>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, OpsError> {
    let (hv, store) = (ctx.hv, ctx.store);
    match command {
        DomCommand::List(a) => list(hv, store, ctx.definitions, a, out)?,
        DomCommand::Destroy(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            let report = control::destroy(hv, store, &d, ctx.release_loop)?;
            // The lifecycle daemon's record of it goes too (see crate::state).
            crate::state::StateDir::from_env().forget(&d.uuid());
            for problem in &report.problems {
                let _ = writeln!(err, "Warning: {problem}");
            }
        }
        DomCommand::Shutdown(a) => {
            let mode = if a.reboot {
                ShutdownMode::Reboot
            } else if a.halt {
                ShutdownMode::Halt
            } else {
                ShutdownMode::Poweroff
            };
            shutdown(ctx, a.domain.as_deref(), a.all, mode, a.wait, out)?;
        }
        DomCommand::Reboot(a) => {
            shutdown(
                ctx,
                a.domain.as_deref(),
                a.all,
                ShutdownMode::Reboot,
                a.wait,
                out,
            )?;
        }
        DomCommand::Pause(a) => control::pause(hv, &find_domain(hv, store, &a.domain)?)?,
        DomCommand::Unpause(a) => control::unpause(hv, &find_domain(hv, store, &a.domain)?)?,
        DomCommand::Domid(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            if a.json {
                print_json(out, &json!({"domid": d.domid(), "name": d.name}))?;
            } else {
                writeln!(out, "{}", d.domid()).map_err(io_error)?;
            }
        }
        DomCommand::Domname(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            if a.json {
                print_json(out, &json!({"domid": d.domid(), "name": d.name}))?;
            } else {
                writeln!(out, "{}", d.display_name()).map_err(io_error)?;
            }
        }
        DomCommand::Rename(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            control::rename(hv, store, &d, &a.new_name)?;
        }
        DomCommand::Uptime(a) => uptime(ctx, a, out)?,
        DomCommand::Info(a) => {
            let pairs = host::host_info(hv, ctx.files)?;
            if a.json {
                let map: serde_json::Map<String, serde_json::Value> = pairs
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                print_json(out, &map)?;
            } else {
                for (k, v) in &pairs {
                    writeln!(out, "{}", format::info_line(k, v)).map_err(io_error)?;
                }
            }
        }
        DomCommand::Dmesg(a) => {
            let text = hv.read_console_ring(a.clear)?;
            if a.json {
                let lines: Vec<&str> = text.lines().collect();
                print_json(out, &lines)?;
            } else {
                write!(out, "{text}").map_err(io_error)?;
            }
        }
        DomCommand::Sysrq(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            control::sysrq(store, &d, &a.key)?;
        }
        DomCommand::MemSet(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            control::mem_set(hv, store, &d, control::parse_mem_kib(&a.memory)?)?;
        }
        DomCommand::MemMax(a) => {
            let d = find_domain(hv, store, &a.domain)?;
            control::mem_max(hv, store, &d, control::parse_mem_kib(&a.memory)?)?;
        }
        DomCommand::VcpuList(a) => return vcpu::vcpu_list(ctx, a, out),
        DomCommand::VcpuSet(a) => return vcpu::vcpu_set(ctx, a),
        DomCommand::VcpuPin(a) => return vcpu::vcpu_pin(ctx, a),
        DomCommand::SchedCredit(a) => {
            return vcpu::sched_credit(ctx, a, hypervisor::Scheduler::Credit, out)
        }
        DomCommand::SchedCredit2(a) => {
            return vcpu::sched_credit(ctx, a, hypervisor::Scheduler::Credit2, out)
        }
        DomCommand::Console(a) => return console(ctx, a, err),
    }
    Ok(Exit::Ok)
}

/// `xm list`: the live domains, then the managed domains that are not running (halted).
fn list<H: Hypervisor, S: Store + ?Sized>(
    hv: &H,
    store: &S,
    defs: &crate::managed::DefinitionStore,
    a: &ListArgs,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    use crate::managed::{self, ListEntry, PowerState};
    let state = match a.state.as_deref() {
        None | Some("all") => None,
        Some(text) => Some(PowerState::parse(text).ok_or_else(|| {
            OpsError::Usage(format!(
                "Invalid state '{text}': use one of all, {}",
                PowerState::NAMES.join(", ")
            ))
        })?),
    };
    let entries =
        managed::list_entries(hv, store, defs, &a.domains, state).map_err(|e| match e {
            managed::ManagedError::Ops(e) => e,
            other => OpsError::Refused(other.to_string()),
        })?;
    if a.json {
        let mut records = Vec::new();
        for entry in &entries {
            records.push(match entry {
                ListEntry::Live(d) => {
                    let mut value = serde_json::to_value(format::record(store, d)?)
                        .map_err(|e| OpsError::Refused(format!("cannot format JSON: {e}")))?;
                    let managed = d
                        .name
                        .as_deref()
                        .is_some_and(|n| defs.get(n).ok().flatten().is_some());
                    if let Some(map) = value.as_object_mut() {
                        map.insert("power_state".into(), json!(PowerState::of(&d.info)));
                        map.insert("managed".into(), json!(managed));
                    }
                    value
                }
                ListEntry::Halted(def) => managed::halted_json(def),
            });
        }
        print_json(out, &records)?;
    } else if a.long {
        for entry in &entries {
            let sxp = match entry {
                ListEntry::Live(d) => format::domain_sxp(&format::record(store, d)?),
                ListEntry::Halted(def) => managed::halted_sxp(def),
            };
            writeln!(out, "{}", format::render_sxp(&sxp)).map_err(io_error)?;
        }
    } else {
        writeln!(out, "{}", format::list_header()).map_err(io_error)?;
        for entry in &entries {
            let line = match entry {
                ListEntry::Live(d) => format::list_line(d),
                ListEntry::Halted(def) => managed::halted_line(def),
            };
            writeln!(out, "{line}").map_err(io_error)?;
        }
    }
    Ok(())
}

fn shutdown<H: Hypervisor, S: Store + ?Sized>(
    ctx: &mut Context<'_, H, S>,
    domain: Option<&str>,
    all: bool,
    mode: ShutdownMode,
    wait: bool,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let (hv, store) = (ctx.hv, ctx.store);
    let domains = if all {
        control::all_guests(hv, store)?
    } else {
        let name = domain.ok_or_else(|| OpsError::Refused("No domain parameter given".into()))?;
        vec![find_domain(hv, store, name)?]
    };
    for d in &domains {
        control::request_shutdown(store, d, mode)?;
    }
    if !wait {
        return Ok(());
    }
    let mut lines = Vec::new();
    control::wait_for_shutdown(hv, store, &domains, mode, ctx.wait, &mut |outcome| {
        lines.push(match outcome {
            WaitOutcome::Terminated(n) => format!("Domain {n} terminated"),
            WaitOutcome::ShutDownNotReaped(n) => {
                format!("Domain {n} has shut down but was not destroyed (nothing reaped it)")
            }
            WaitOutcome::Rebooted(n) => format!("Domain {n} rebooted"),
            WaitOutcome::NotRestarted(n) => format!("Domain {n} destroyed for failing to reboot"),
        });
    })?;
    for line in lines {
        writeln!(out, "{line}").map_err(io_error)?;
    }
    let all_line = if mode == ShutdownMode::Reboot {
        "All domains rebooted"
    } else {
        "All domains terminated"
    };
    writeln!(out, "{all_line}").map_err(io_error)?;
    Ok(())
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn uptime<H: Hypervisor, S: Store + ?Sized>(
    ctx: &mut Context<'_, H, S>,
    a: &UptimeArgs,
    out: &mut dyn Write,
) -> Result<(), OpsError> {
    let (hv, store) = (ctx.hv, ctx.store);
    let domains = select_domains(hv, store, &a.domains)?;
    let now = now_seconds();
    let mut rows = Vec::new();
    for d in &domains {
        let seconds = if d.domid() == 0 {
            host::dom0_uptime(ctx.files)
        } else {
            format::start_time(store, d.domid())?.map(|start| now - start)
        };
        // xm rounded to whole seconds; an unknown start counts as 0.
        let secs = seconds.map_or(0, |s| s.max(0.0).round() as u64);
        rows.push((d, secs, seconds));
    }
    if a.json {
        let records: Vec<_> = rows
            .iter()
            .map(|(d, secs, known)| {
                json!({"domid": d.domid(), "name": d.display_name(), "uptime": secs,
                       "known": known.is_some()})
            })
            .collect();
        return print_json(out, &records);
    }
    if !a.short {
        writeln!(out, "{}", format::uptime_header()).map_err(io_error)?;
    }
    for (d, secs, _) in rows {
        let line = if a.short {
            let day = (now as u64) % 86_400;
            format!(
                " {:02}:{:02}:{:02} up {}, {} ({})",
                day / 3600,
                day % 3600 / 60,
                day % 60,
                format::uptime_text(secs, false),
                d.display_name(),
                d.domid()
            )
        } else {
            format::uptime_line(d.display_name(), d.domid(), secs)
        };
        writeln!(out, "{line}").map_err(io_error)?;
    }
    Ok(())
}

fn console<H: Hypervisor, S: Store + ?Sized>(
    ctx: &mut Context<'_, H, S>,
    a: &ConsoleArgs,
    err: &mut dyn Write,
) -> Result<Exit, OpsError> {
    let d = match find_domain(ctx.hv, ctx.store, &a.domain) {
        Ok(d) => d,
        Err(OpsError::NoSuchDomain(_)) if a.quiet => return Ok(Exit::ConfigError),
        Err(e) => return Err(e),
    };
    let tty_path = format!("{}/console/tty", ops::dom_path(d.domid()));
    // xenconsoled writes the tty node shortly after the domain appears.
    let mut tty = ctx.store.read(&tty_path)?.filter(|t| !t.is_empty());
    let mut tries = 0;
    while tty.is_none() && tries < 50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        tty = ctx.store.read(&tty_path)?.filter(|t| !t.is_empty());
        tries += 1;
    }
    let tty = tty.ok_or_else(|| {
        OpsError::Refused(format!(
            "Domain {} has no console pty ({tty_path} is not set; is xenconsoled running?)",
            d.display_name()
        ))
    })?;
    let mut opts = toolstack::console::ConsoleAttach::new(tty);
    opts.wait_for_pty = Some(std::time::Duration::from_secs(5));
    let detached = toolstack::console::attach_stdio(&opts)
        .map_err(|e| OpsError::Refused(format!("console of {}: {e}", d.display_name())))?;
    let _ = err.flush();
    // Detaching by Ctrl-], by the pty closing or by a signal all end the command normally.
    tracing::debug!(?detached, "console detached");
    Ok(Exit::Ok)
}
