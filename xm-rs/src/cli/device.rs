//! `xm block-attach`, `block-detach`, `block-list`, `network-attach`, `network-detach`,
//! `network-list`: arguments and printing. The work is in [`crate::ops::device`]; [`execute`]
//! is generic over the hypervisor, xenstore and dom0's devices so host tests drive it on
//! the simulation.

use std::io::Write;

use clap::{Args, Subcommand};
use hypervisor::Hypervisor;

use super::domain::{io_error, print_json};
use super::Exit;
use crate::create::{CreateStore, DeviceHost, RealDevices, WireOptions, XsCreateStore};
use crate::ops::device::{self, DetachOptions, DetachReport, DeviceError};
use crate::ops::{find_domain, OpsError};

/// Device commands.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a new virtual block device (xm: DOMAIN BACKEND-DEV FRONTEND-DEV MODE).
    #[command(name = "block-attach")]
    BlockAttach(BlockAttachArgs),
    /// Destroy a domain's virtual block device.
    #[command(name = "block-detach")]
    BlockDetach(DetachArgs),
    /// List virtual block devices for a domain.
    #[command(name = "block-list")]
    BlockList(DeviceListArgs),
    /// Create a new virtual network device.
    #[command(name = "network-attach")]
    NetworkAttach(NetworkAttachArgs),
    /// Destroy a domain's virtual network device.
    #[command(name = "network-detach")]
    NetworkDetach(DetachArgs),
    /// List virtual network interfaces for a domain.
    #[command(name = "network-list")]
    NetworkList(DeviceListArgs),
}

/// `xm block-attach DOMAIN BACKEND-DEV FRONTEND-DEV MODE`.
#[derive(Debug, Args)]
pub struct BlockAttachArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// BACKEND-DEV FRONTEND-DEV MODE, e.g. `phy:/dev/vg01/data xvdb w` or
    /// `file:/srv/data.img xvdc r`; or one xl disk spec (`phy:/dev/vg01/data,xvdb,w`).
    #[arg(value_name = "DISK", num_args = 1..=4, required = true)]
    pub disk: Vec<String>,
}

/// `xm block-detach|network-detach DOMAIN DEVICE [--force]`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// The device: its id, or a vdev (xvdb) for disks, or a MAC for network interfaces.
    #[arg(value_name = "DEVICE")]
    pub device: String,
    /// Remove it without waiting for the guest to let go.
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// `xm block-list|network-list [-l] DOMAIN`.
#[derive(Debug, Args)]
pub struct DeviceListArgs {
    /// Every frontend node, as an S-expression per device.
    #[arg(short = 'l', long = "long")]
    pub long: bool,
    /// Output a JSON array.
    #[arg(long, conflicts_with = "long")]
    pub json: bool,
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
}

/// `xm network-attach DOMAIN [KEY=VALUE...]`.
#[derive(Debug, Args)]
pub struct NetworkAttachArgs {
    /// Domain name, id or UUID.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// mac=, bridge= (default xenbr0), ip=, vifname=, rate=, model=, type=, accel=.
    #[arg(value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// What a device command works on.
pub struct DeviceContext<'a, H, S: ?Sized, D: ?Sized> {
    /// The hypervisor.
    pub hv: &'a H,
    /// xenstore, with transactions and permissions.
    pub store: &'a S,
    /// dom0's loop devices, block devices and bridges.
    pub devices: &'a D,
    /// Attach timeouts (as `xm create`'s).
    pub wire: WireOptions,
    /// Detach timeouts (`force` comes from the command line).
    pub detach: DetachOptions,
}

impl<H, S: ?Sized, D: ?Sized> std::fmt::Debug for DeviceContext<'_, H, S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceContext")
            .field("wire", &self.wire)
            .field("detach", &self.detach)
            .finish_non_exhaustive()
    }
}

fn exit_for(e: &DeviceError) -> Exit {
    match e {
        DeviceError::Usage(_) | DeviceError::Ops(OpsError::Usage(_)) => Exit::Usage,
        DeviceError::NotAvailable(_) | DeviceError::Ops(OpsError::NotAvailable(_)) => {
            Exit::NotAvailable
        }
        _ => Exit::ConfigError,
    }
}

/// Runs one device command; returns the exit code. Errors print `Error: ...` on stderr.
pub fn execute<H, S, D>(
    command: &DeviceCommand,
    ctx: &DeviceContext<'_, H, S, D>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Exit
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    match run(command, ctx, out, err) {
        Ok(()) | Err(DeviceError::Ops(OpsError::OutputClosed)) => Exit::Ok,
        Err(e) => {
            let _ = writeln!(err, "Error: {e}");
            exit_for(&e)
        }
    }
}

fn warn(err: &mut dyn Write, report: &DetachReport) {
    for problem in &report.problems {
        let _ = writeln!(err, "Warning: {problem}");
    }
}

fn run<H, S, D>(
    command: &DeviceCommand,
    ctx: &DeviceContext<'_, H, S, D>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), DeviceError>
where
    H: Hypervisor,
    S: CreateStore + ?Sized,
    D: DeviceHost + ?Sized,
{
    let (hv, store, devices) = (ctx.hv, ctx.store, ctx.devices);
    let detach = |force: bool| DetachOptions {
        force,
        ..ctx.detach
    };
    match command {
        DeviceCommand::BlockAttach(a) => {
            let spec = device::block_spec(&a.disk)?;
            let domain = find_domain(hv, store, &a.domain)?;
            device::block_attach(hv, store, devices, &domain, &spec, &ctx.wire)?;
        }
        DeviceCommand::BlockDetach(a) => {
            let domain = find_domain(hv, store, &a.domain)?;
            let report =
                device::block_detach(hv, store, devices, &domain, &a.device, &detach(a.force))?;
            warn(err, &report);
        }
        DeviceCommand::NetworkAttach(a) => {
            let domain = find_domain(hv, store, &a.domain)?;
            device::network_attach(hv, store, devices, &domain, &a.settings, &ctx.wire)?;
        }
        DeviceCommand::NetworkDetach(a) => {
            let domain = find_domain(hv, store, &a.domain)?;
            let report =
                device::network_detach(hv, store, devices, &domain, &a.device, &detach(a.force))?;
            warn(err, &report);
        }
        DeviceCommand::BlockList(a) | DeviceCommand::NetworkList(a) => {
            let block = matches!(command, DeviceCommand::BlockList(_));
            let domain = find_domain(hv, store, &a.domain)?;
            let kind = if block { "vbd" } else { "vif" };
            let rows = device::device_rows(store, domain.domid(), kind)?;
            if a.json {
                print_json(out, &rows)?;
            } else if a.long {
                for row in &rows {
                    writeln!(out, "{}", device::device_sxp(row)).map_err(io_error)?;
                }
            } else if !rows.is_empty() {
                // xm printed the header only above a first device.
                let (header, line): (&str, fn(&device::DeviceRow) -> String) = if block {
                    (device::BLOCK_LIST_HEADER, device::block_list_line)
                } else {
                    (device::NETWORK_LIST_HEADER, device::network_list_line)
                };
                writeln!(out, "{header}").map_err(io_error)?;
                for row in &rows {
                    writeln!(out, "{}", line(row)).map_err(io_error)?;
                }
            }
        }
    }
    Ok(())
}

/// Opens the real hypervisor, xenstore and dom0 and runs a device command on them.
pub fn run_real(command: &DeviceCommand) -> Exit {
    let (hv, store) = match super::open_xen(XsCreateStore::open) {
        Ok(opened) => opened,
        Err(exit) => return exit,
    };
    let ctx = DeviceContext {
        hv: &hv,
        store: &store,
        devices: &RealDevices,
        // XM_CREATE_TIMEOUT bounds the wait for Connected, as for `xm create`.
        wire: WireOptions::for_host(),
        detach: DetachOptions::default(),
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    execute(command, &ctx, &mut stdout.lock(), &mut stderr.lock())
}
