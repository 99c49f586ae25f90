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
use domain_builder::{create_pv_domain, CreatedDomain, KernelImage, PvDomainSpec};
use hypervisor::{DomId, Hypervisor, XenHypervisor};
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

/// Where the decompressed form of `kernel` is cached, if caching is on and the file exists.
fn cache_entry(args: &CreateArgs) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dir = args.kernel_cache.as_ref()?;
    let m = std::fs::metadata(&args.kernel).ok()?;
    let key = format!(
        "{:x}-{:x}-{:x}-{:x}.{:x}-{:x}.{:x}.elf",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    );
    Some(dir.join(key))
}

/// Stores a decompressed kernel; failures only cost the next boot some time.
fn fill_cache(entry: &PathBuf, elf: &[u8]) {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = entry.parent() else { return };
    if let Err(err) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        warn!("kernel cache {}: {err}", dir.display());
        return;
    }
    let temporary = entry.with_extension(format!("tmp{}", std::process::id()));
    let stored = std::fs::write(&temporary, elf).and_then(|()| std::fs::rename(&temporary, entry));
    if let Err(err) = stored {
        warn!("kernel cache {}: {err}", entry.display());
        let _ = std::fs::remove_file(&temporary);
    }
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, PvBootError> {
    std::fs::read(path).map_err(|source| PvBootError::Read {
        path: path.clone(),
        source,
    })
}

fn random_uuid() -> [u8; 16] {
    let mut uuid = [0u8; 16];
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        // "xxxxxxxx-xxxx-...": 32 hex digits.
        let hex: Vec<u8> = bytes.into_iter().filter(u8::is_ascii_hexdigit).collect();
        for (i, pair) in hex.chunks_exact(2).take(16).enumerate() {
            let text = std::str::from_utf8(pair).unwrap_or("00");
            uuid[i] = u8::from_str_radix(text, 16).unwrap_or(0);
        }
    }
    uuid
}

fn uuid_string(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn perm(domid: u32, read: bool, write: bool) -> Perm {
    Perm {
        domid,
        read,
        write,
        ignore: false,
    }
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

/// The entries libxl writes for a PV guest's console and store, minus devices: enough for
/// xenconsoled (console/{ring-ref,port,type}) and for the guest (name, its own directory).
fn write_domain_entries(
    xs: &Client,
    created: &CreatedDomain,
    args: &CreateArgs,
    uuid: &[u8; 16],
) -> Result<(), PvBootError> {
    let domid = created.domid;
    let dom = format!("/local/domain/{domid}");
    let vm = format!("/vm/{}", uuid_string(uuid));
    let backend = format!("/local/domain/0/backend/console/{domid}/0");
    let memory_kib = (args.memory * 1024).to_string();
    xs.transact(|t| {
        // The guest may read its own directory; dom0 owns it.
        t.mkdir(&dom)?;
        t.set_perms(&dom, &[perm(0, false, false), perm(domid, true, false)])?;
        t.write(&format!("{dom}/name"), args.name.as_bytes())?;
        t.write(&format!("{dom}/domid"), domid.to_string().as_bytes())?;
        t.write(&format!("{dom}/vm"), vm.as_bytes())?;
        t.write(&format!("{dom}/memory/static-max"), memory_kib.as_bytes())?;
        t.write(&format!("{dom}/memory/target"), memory_kib.as_bytes())?;
        t.write(&format!("{dom}/cpu/0/availability"), b"online")?;
        for dir in [
            "control", "data", "device", "drivers", "feature", "attr", "error",
        ] {
            let path = format!("{dom}/{dir}");
            t.mkdir(&path)?;
            t.set_perms(&path, &[perm(domid, false, false)])?;
        }
        t.write(&format!("{dom}/control/shutdown"), b"")?;
        t.set_perms(
            &format!("{dom}/control/shutdown"),
            &[perm(domid, false, false)],
        )?;

        let store = format!("{dom}/store");
        t.write(
            &format!("{store}/ring-ref"),
            created.built.store_mfn.0.to_string().as_bytes(),
        )?;
        t.write(
            &format!("{store}/port"),
            created.store_port.to_string().as_bytes(),
        )?;

        let console = format!("{dom}/console");
        t.mkdir(&console)?;
        t.set_perms(&console, &[perm(domid, false, false), perm(0, true, false)])?;
        t.write(
            &format!("{console}/ring-ref"),
            created.built.console_mfn.0.to_string().as_bytes(),
        )?;
        t.write(
            &format!("{console}/port"),
            created.console_port.to_string().as_bytes(),
        )?;
        t.write(&format!("{console}/type"), b"xenconsoled")?;
        t.write(&format!("{console}/output"), b"pty")?;
        t.write(&format!("{console}/limit"), b"1048576")?;
        t.write(&format!("{console}/tty"), b"")?;
        t.write(&format!("{console}/backend"), backend.as_bytes())?;
        t.write(&format!("{console}/backend-id"), b"0")?;

        t.write(&format!("{backend}/frontend"), console.as_bytes())?;
        t.write(
            &format!("{backend}/frontend-id"),
            domid.to_string().as_bytes(),
        )?;
        t.write(&format!("{backend}/online"), b"1")?;
        t.write(&format!("{backend}/state"), b"1")?;
        t.write(&format!("{backend}/protocol"), b"vt100")?;
        t.set_perms(&backend, &[perm(0, false, false), perm(domid, true, false)])?;

        t.write(&format!("{vm}/name"), args.name.as_bytes())?;
        t.write(&format!("{vm}/uuid"), uuid_string(uuid).as_bytes())?;
        t.write(&format!("{vm}/image/ostype"), b"linux")?;
        t.write(
            &format!("{vm}/image/kernel"),
            args.kernel.to_string_lossy().as_bytes(),
        )?;
        t.write(&format!("{vm}/image/cmdline"), args.cmdline.as_bytes())?;
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
    let cache = cache_entry(args);
    let cached = cache.as_ref().and_then(|entry| std::fs::read(entry).ok());
    let cache_hit = cached.is_some();
    let kernel_bytes = match cached {
        Some(elf) => elf,
        None => read_file(&args.kernel)?,
    };
    let ramdisk = args.ramdisk.as_ref().map(read_file).transpose()?;
    let kernel = KernelImage::parse(&kernel_bytes, MAX_KERNEL_BYTES).map_err(|source| {
        PvBootError::Image {
            path: args.kernel.clone(),
            source,
        }
    })?;
    let parsed = started.elapsed();
    debug!(
        parse_ms = parsed.as_millis() as u64,
        elf_bytes = kernel.elf_bytes().len(),
        "kernel read and decompressed"
    );
    info!(compression = ?kernel.compression, entry = format_args!("{:#x}", kernel.params.virt_entry), "kernel parsed");

    let xs = Client::open()?;
    if domid_by_name(&xs, &args.name)?.is_some() {
        return Err(PvBootError::NameTaken(args.name.clone()));
    }
    let hv = XenHypervisor::open()?;
    let uuid = random_uuid();
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
        write_domain_entries(&xs, &created, args, &uuid)?;
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
        if cache_hit {
            "hit"
        } else if cache.is_some() {
            "miss"
        } else {
            "off"
        },
        created.built.store_mfn.0,
        created.built.console_mfn.0,
    );
    // After the guest runs, so filling the cache never delays a boot.
    if let (Some(entry), Some(_)) = (&cache, kernel.compression) {
        fill_cache(entry, kernel.elf_bytes());
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
