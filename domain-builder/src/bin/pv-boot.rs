//! `pv-boot`: boot a PV guest with our own builder, no libxl involved.
//!
//! `pv-boot create --kernel K [--ramdisk R] [--cmdline C] [--memory MiB] --name N` parses the
//! kernel, creates and builds the domain through libxenctrl, writes the xenstore entries
//! xenconsoled and the guest need, introduces the domain to xenstored and unpauses it.
//! `pv-boot destroy DOMID|NAME` releases it from xenstored, removes its entries and destroys it.
//! Timings go to stdout as `key=value` words so lab scenarios can record them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use domain_builder::{create_pv_domain, CreatedDomain, KernelCache, PvDomainSpec};
use hypervisor::{DomId, Hypervisor, XenHypervisor};
use toolstack::layout::{console_layout, domain_layout, ConsoleRecord, DomainRecord};
use tracing::{debug, info, warn};
use xenstore::{Client, Perm, XsOps};

/// Largest kernel a bzImage may decompress to.
const MAX_KERNEL_BYTES: usize = 512 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "pv-boot",
    about = "Build and boot a Xen PV guest with xm-rs's domain builder"
)]
struct Cli {
    /// Log what happens, step by step, on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, build, introduce and unpause a PV guest.
    Create(CreateArgs),
    /// Release a guest from xenstored, remove its xenstore entries and destroy it.
    Destroy {
        /// Domain id or name.
        domain: String,
        /// Seconds to wait for the hypervisor to finish tearing it down.
        #[arg(long, default_value_t = 20)]
        wait: u64,
    },
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// Kernel: ELF with Xen notes, or a bzImage.
    #[arg(long)]
    kernel: PathBuf,
    /// Initial ramdisk, passed to the kernel as its boot module.
    #[arg(long)]
    ramdisk: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Memory in MiB.
    #[arg(long, default_value_t = 128)]
    memory: u64,
    /// Vcpus.
    #[arg(long, default_value_t = 1)]
    vcpus: u32,
    /// Domain name (xenconsoled names the console log after it).
    #[arg(long)]
    name: String,
    /// Leave the domain paused.
    #[arg(long)]
    paused: bool,
    /// Keep decompressed kernels in this directory (created 0700), so booting the same
    /// bzImage again skips decompressing it. Entries are keyed on the kernel file's device,
    /// inode, size, mtime and ctime; each holds the whole decompressed ELF (tens of MiB).
    #[arg(long)]
    kernel_cache: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
enum PvBootError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Image {
        path: PathBuf,
        source: domain_builder::ImageError,
    },
    #[error(transparent)]
    Build(#[from] domain_builder::BuildError),
    #[error(transparent)]
    Hypervisor(#[from] hypervisor::Error),
    #[error("xenstore: {0}")]
    Xenstore(#[from] xenstore::client::Error),
    #[error("no domain named '{0}' in xenstore")]
    UnknownName(String),
    #[error("domain {domid} is still there {seconds} s after being destroyed")]
    DestroyTimeout { domid: DomId, seconds: u64 },
    #[error("--memory {0} MiB is out of range")]
    BadMemory(u64),
    #[error("a domain named '{0}' already exists")]
    NameTaken(String),
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, PvBootError> {
    std::fs::read(path).map_err(|source| PvBootError::Read {
        path: path.clone(),
        source,
    })
}

/// Finds a domain id by name under /local/domain.
fn domid_by_name(xs: &Client, name: &str) -> Result<Option<DomId>, PvBootError> {
    for entry in xs.directory("/local/domain")? {
        let Ok(domid) = entry.parse::<DomId>() else {
            continue;
        };
        if let Ok(found) = xs.read_string(&format!("/local/domain/{domid}/name")) {
            if found == name {
                return Ok(Some(domid));
            }
        }
    }
    Ok(None)
}

/// The domain's xenstore layout and its console, exactly as `xm create` writes them (one
/// layout, `toolstack::layout`), minus devices: enough for xenconsoled and the guest.
fn write_domain_entries(
    xs: &Client,
    created: &CreatedDomain,
    args: &CreateArgs,
    uuid: &[u8; 16],
    memory_kib: u64,
) -> Result<(), PvBootError> {
    let domid = created.domid;
    let uuid = hypervisor::uuid::format(uuid);
    let kernel = args.kernel.to_string_lossy();
    let ramdisk = args.ramdisk.as_ref().map(|r| r.to_string_lossy());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let start_time = format!("{}.{:02}", now.as_secs(), now.subsec_millis() / 10);
    let mut layout = domain_layout(&DomainRecord {
        domid,
        name: &args.name,
        uuid: &uuid,
        vcpus: args.vcpus,
        max_vcpus: args.vcpus,
        max_memory_kib: memory_kib,
        target_memory_kib: memory_kib,
        kernel: &kernel,
        ramdisk: ramdisk.as_deref(),
        cmdline: &args.cmdline,
        store_port: created.store_port,
        store_mfn: created.built.store_mfn.0,
        start_time: &start_time,
    });
    console_layout(
        &mut layout,
        domid,
        &ConsoleRecord {
            port: created.console_port,
            ring_mfn: created.built.console_mfn.0,
        },
    );
    xs.transact(|t| {
        for entry in &layout.entries {
            let perms: Vec<Perm> = entry
                .perms
                .to_wire()
                .iter()
                .filter_map(|p| Perm::parse(p.as_bytes()))
                .collect();
            t.write(&entry.path, entry.value.as_bytes())?;
            t.set_perms(&entry.path, &perms)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn create(args: &CreateArgs) -> Result<(), PvBootError> {
    let started = Instant::now();
    let memory_kib = args
        .memory
        .checked_mul(1024)
        .filter(|kib| (16 * 1024..=1 << 40).contains(kib))
        .ok_or(PvBootError::BadMemory(args.memory))?;
    let cache = args.kernel_cache.as_ref().map(KernelCache::new);
    let loaded =
        KernelCache::load(cache.as_ref(), &args.kernel).map_err(|source| PvBootError::Read {
            path: args.kernel.clone(),
            source,
        })?;
    let ramdisk = args.ramdisk.as_ref().map(read_file).transpose()?;
    let kernel = loaded
        .parse(MAX_KERNEL_BYTES)
        .map_err(|source| PvBootError::Image {
            path: args.kernel.clone(),
            source,
        })?;
    let parsed = started.elapsed();
    debug!(
        parse_ms = parsed.as_millis() as u64,
        elf_bytes = kernel.elf_bytes().map_or(0, <[u8]>::len),
        "kernel read and decompressed"
    );
    info!(compression = ?kernel.compression, entry = format_args!("{:#x}", kernel.params.virt_entry), "kernel parsed");

    let xs = Client::open()?;
    if domid_by_name(&xs, &args.name)?.is_some() {
        return Err(PvBootError::NameTaken(args.name.clone()));
    }
    let hv = XenHypervisor::open()?;
    let uuid = hypervisor::uuid::random();
    let created = create_pv_domain(
        &hv,
        &PvDomainSpec {
            handle: uuid,
            vcpus: args.vcpus,
            memory_kib,
            kernel: &kernel,
            ramdisk: ramdisk.as_deref(),
            cmdline: &args.cmdline,
            store_domid: 0,
            console_domid: 0,
        },
    )?;
    let domid = created.domid;
    let finish = || -> Result<(), PvBootError> {
        write_domain_entries(&xs, &created, args, &uuid, memory_kib)?;
        xs.introduce(domid, created.built.store_mfn.0, created.store_port)?;
        if !args.paused {
            hv.unpause_domain(domid)?;
        }
        Ok(())
    };
    if let Err(err) = finish() {
        warn!("setting up domain {domid} failed, destroying it: {err}");
        let _ = xs.release(domid);
        let _ = xs.rm(&format!("/local/domain/{domid}"));
        let _ = hv.destroy_domain(domid);
        return Err(err);
    }
    let total = started.elapsed();
    println!(
        "pv-boot: created name={} domid={} parse_ms={} build_ms={} total_ms={} compression={} kernel_cache={} store_mfn={:#x} console_mfn={:#x}",
        args.name,
        domid,
        parsed.as_millis(),
        created.build_time.as_millis(),
        total.as_millis(),
        kernel.compression.map_or("none".to_string(), |c| c.to_string()),
        loaded.outcome.as_str(),
        created.built.store_mfn.0,
        created.built.console_mfn.0,
    );
    // After the guest runs, so filling the cache never delays a boot.
    if let (Some(cache), Some(_), Some(elf)) = (&cache, kernel.compression, kernel.elf_bytes()) {
        cache.store(&loaded, elf);
    }
    Ok(())
}

fn destroy(domain: &str, wait: u64) -> Result<(), PvBootError> {
    let xs = Client::open()?;
    let domid = match domain.parse::<DomId>() {
        Ok(domid) => domid,
        Err(_) => domid_by_name(&xs, domain)?
            .ok_or_else(|| PvBootError::UnknownName(domain.to_string()))?,
    };
    let hv = XenHypervisor::open()?;
    let vm = xs.read_string(&format!("/local/domain/{domid}/vm")).ok();
    // No XS_RELEASE first: xenstored must see the domain die (VIRQ_DOM_EXC) and fire
    // @releaseDomain, or xenconsoled never unmaps the console ring and the domain stays a
    // zombie. xenstored forgets the domain by itself once it is dead.
    hv.destroy_domain(domid)?;
    let deadline = Instant::now() + Duration::from_secs(wait);
    loop {
        match hv.domain_info(domid) {
            Err(hypervisor::Error::NoSuchDomain(_)) => break,
            Err(err) => return Err(err.into()),
            Ok(_) if Instant::now() >= deadline => {
                return Err(PvBootError::DestroyTimeout {
                    domid,
                    seconds: wait,
                })
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    for path in [
        Some(format!("/local/domain/{domid}")),
        Some(format!("/local/domain/0/backend/console/{domid}")),
        Some(format!("/libxl/{domid}")),
        vm,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(err) = xs.rm(&path) {
            warn!("removing {path}: {err}");
        }
    }
    println!("pv-boot: destroyed domid={domid}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .init();
    let result = match &cli.command {
        Command::Create(args) => create(args),
        Command::Destroy { domain, wait } => destroy(domain, *wait),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pv-boot: {err}");
            ExitCode::FAILURE
        }
    }
}
