//! `xm vcpu-list`, `vcpu-set`, `vcpu-pin` and `sched-credit`: arguments and printing. The work
//! is in [`crate::ops::vcpu`]; these run inside [`super::domain::execute`].

use std::io::Write;

use clap::Args;
use hypervisor::{Hypervisor, Scheduler};

use super::domain::{io_error, print_json, Context};
use super::Exit;
use crate::ops::vcpu::{self, CreditRow};
use crate::ops::{find_domain, select_domains, OpsError, Store};

/// `xm vcpu-list [--json] [DOMAIN...]`.
#[derive(Debug, Args)]
pub struct VcpuListArgs {
    /// Output a JSON array, one record per vcpu.
    #[arg(long)]
    pub json: bool,
    /// Domains (name, id or UUID); all when none.
    #[arg(value_name = "DOMAIN")]
    pub domains: Vec<String>,
}

/// `xm vcpu-set DOMAIN N`.
#[derive(Debug, Args)]
pub struct VcpuSetArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// How many vcpus the guest should have online (1 to its maximum).
    #[arg(value_name = "VCPUS")]
    pub count: u32,
}

/// `xm vcpu-pin DOMAIN VCPU|all CPUS`.
#[derive(Debug, Args)]
pub struct VcpuPinArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// The vcpu (a number, a list such as 0-1, or `all`).
    #[arg(value_name = "VCPU")]
    pub vcpu: String,
    /// Physical cpus it may run on: `all`, or a list such as `0-3,^2` or `1,3`.
    #[arg(value_name = "CPUS")]
    pub cpus: String,
}

/// `xm sched-credit|sched-credit2 [-d DOMAIN [-w WEIGHT] [-c CAP]]`.
#[derive(Debug, Args)]
pub struct SchedCreditArgs {
    /// The domain to show or change; all are shown when none.
    #[arg(short = 'd', long = "domain", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Set the weight (1 to 65535; Xen's default is 256).
    #[arg(short = 'w', long, value_name = "WEIGHT",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub weight: Option<u16>,
    /// Set the cap in percent of one cpu (0: no cap).
    #[arg(short = 'c', long, value_name = "CAP")]
    pub cap: Option<u16>,
    /// Output JSON (when showing).
    #[arg(long, conflicts_with_all = ["weight", "cap"])]
    pub json: bool,
}

/// `xm vcpu-list`.
pub fn vcpu_list<H: Hypervisor, S: Store + ?Sized>(
    ctx: &Context<'_, H, S>,
    args: &VcpuListArgs,
    out: &mut dyn Write,
) -> Result<Exit, OpsError> {
    let domains = select_domains(ctx.hv, ctx.store, &args.domains)?;
    let rows = vcpu::vcpu_rows(ctx.hv, &domains)?;
    if args.json {
        print_json(out, &rows)?;
        return Ok(Exit::Ok);
    }
    let host_cpus = ctx.hv.physinfo()?.nr_cpus;
    writeln!(out, "{}", vcpu::vcpu_list_header()).map_err(io_error)?;
    for row in &rows {
        writeln!(out, "{}", vcpu::vcpu_list_line(row, host_cpus)).map_err(io_error)?;
    }
    Ok(Exit::Ok)
}

/// `xm vcpu-set`.
pub fn vcpu_set<H: Hypervisor, S: Store + ?Sized>(
    ctx: &Context<'_, H, S>,
    args: &VcpuSetArgs,
) -> Result<Exit, OpsError> {
    let domain = find_domain(ctx.hv, ctx.store, &args.domain)?;
    vcpu::vcpu_set(ctx.hv, ctx.store, &domain, args.count)?;
    Ok(Exit::Ok)
}

/// `xm vcpu-pin`.
pub fn vcpu_pin<H: Hypervisor, S: Store + ?Sized>(
    ctx: &Context<'_, H, S>,
    args: &VcpuPinArgs,
) -> Result<Exit, OpsError> {
    let domain = find_domain(ctx.hv, ctx.store, &args.domain)?;
    vcpu::vcpu_pin(ctx.hv, &domain, &args.vcpu, &args.cpus)?;
    Ok(Exit::Ok)
}

/// `xm sched-credit` (`scheduler` credit) and `xm sched-credit2` (credit2): shows every domain
/// (or the one of `-d`), or changes one with `-w`/`-c`. Refused, as xm did, when Xen runs
/// another scheduler.
pub fn sched_credit<H: Hypervisor, S: Store + ?Sized>(
    ctx: &Context<'_, H, S>,
    args: &SchedCreditArgs,
    scheduler: Scheduler,
    out: &mut dyn Write,
) -> Result<Exit, OpsError> {
    if args.weight.is_some() || args.cap.is_some() {
        let name = args.domain.as_deref().ok_or_else(|| {
            OpsError::Usage(format!(
                "sched-{}: -w/-c need a domain (-d DOMAIN)",
                scheduler.name()
            ))
        })?;
        let domain = find_domain(ctx.hv, ctx.store, name)?;
        vcpu::check_scheduler(ctx.hv, scheduler)?;
        vcpu::credit_set(ctx.hv, &domain, scheduler, args.weight, args.cap)?;
        return Ok(Exit::Ok);
    }
    let names: Vec<String> = args.domain.iter().cloned().collect();
    let domains = select_domains(ctx.hv, ctx.store, &names)?;
    vcpu::check_scheduler(ctx.hv, scheduler)?;
    let rows: Vec<CreditRow> = vcpu::credit_rows(ctx.hv, &domains, scheduler);
    if args.json {
        print_json(out, &rows)?;
        return Ok(Exit::Ok);
    }
    writeln!(out, "{}", vcpu::credit_header()).map_err(io_error)?;
    for row in &rows {
        writeln!(out, "{}", vcpu::credit_line(row)).map_err(io_error)?;
    }
    Ok(Exit::Ok)
}
