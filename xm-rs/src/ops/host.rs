//! `xm info`: facts about the host, in xend's order (node, physinfo, xen, xend).
//!
//! The hypervisor crate gives physinfo; the Xen version, capabilities, changeset and compiler
//! come from the dom0 kernel's `/sys/hypervisor` (which asks Xen through `XENVER_*`), and the
//! node facts from `/proc/sys/kernel`. Keys we have no source for yet (`hw_caps`,
//! `virt_caps`, `node_to_*`, `xen_scheduler`, `xen_commandline`, `cc_compile_domain`) are
//! left out rather than guessed.

use hypervisor::{Hypervisor, PhysInfo};

use super::Result;

/// Reads a small text file of the host (a trait so tests can supply their own `/sys`).
pub trait HostFiles {
    /// The trimmed contents of `path`, or `None` if it cannot be read.
    fn read(&self, path: &str) -> Option<String>;
}

/// The real files.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFiles;

impl HostFiles for RealFiles {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim_end_matches(['\n', '\0']).to_string())
    }
}

/// `xm info` as ordered `(key, value)` pairs.
pub fn host_info<H: Hypervisor, F: HostFiles + ?Sized>(
    hv: &H,
    files: &F,
) -> Result<Vec<(String, String)>> {
    let phys = hv.physinfo()?;
    let mut pairs = info_pairs(&phys, files);
    // xend printed the scheduler right after xen_caps.
    if let Ok(scheduler) = hv.scheduler() {
        let at = pairs
            .iter()
            .position(|(k, _)| k == "xen_caps" || k == "xen_pagesize")
            .map_or(pairs.len(), |i| i + 1);
        pairs.insert(at, ("xen_scheduler".into(), scheduler.name()));
    }
    Ok(pairs)
}

fn mib_of_pages(pages: u64) -> u64 {
    pages * 4 / 1024
}

/// Builds the pairs from physinfo and the host's files.
pub fn info_pairs<F: HostFiles + ?Sized>(phys: &PhysInfo, files: &F) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            pairs.push((key.to_string(), v));
        }
    };
    let kernel = |name: &str| files.read(&format!("/proc/sys/kernel/{name}"));
    put("system", kernel("ostype"));
    put("host", kernel("hostname"));
    put("release", kernel("osrelease"));
    put("version", kernel("version"));
    put("machine", Some(std::env::consts::ARCH.to_string()));
    put("nr_cpus", Some(phys.nr_cpus.to_string()));
    put("nr_nodes", Some(phys.nr_nodes.to_string()));
    put("cores_per_socket", Some(phys.cores_per_socket.to_string()));
    put("threads_per_core", Some(phys.threads_per_core.to_string()));
    put("cpu_mhz", Some((phys.cpu_khz / 1000).to_string()));
    put(
        "total_memory",
        Some(mib_of_pages(phys.total_pages).to_string()),
    );
    put(
        "free_memory",
        Some(mib_of_pages(phys.free_pages).to_string()),
    );
    put(
        "max_node_id",
        Some(phys.nr_nodes.saturating_sub(1).to_string()),
    );
    let sys = |p: &str| files.read(&format!("/sys/hypervisor/{p}"));
    put("xen_major", sys("version/major"));
    put("xen_minor", sys("version/minor"));
    put("xen_extra", sys("version/extra"));
    put("xen_caps", sys("properties/capabilities"));
    // sysfs prints the page size in hex ("1000"); xm printed it in decimal.
    put(
        "xen_pagesize",
        sys("properties/pagesize").map(|hex| {
            u64::from_str_radix(hex.trim().trim_start_matches("0x"), 16)
                .map_or(hex, |size| size.to_string())
        }),
    );
    put(
        "platform_params",
        sys("properties/virtual_start").map(|v| format!("virt_start={v}")),
    );
    put("xen_changeset", sys("properties/changeset"));
    put("cc_compiler", sys("compilation/compiler"));
    put("cc_compile_by", sys("compilation/compiled_by"));
    put("cc_compile_date", sys("compilation/compile_date"));
    put("xend_config_format", Some("4".into()));
    pairs
}

/// dom0's uptime in seconds, from `/proc/uptime` (as xm did for domain 0).
pub fn dom0_uptime<F: HostFiles + ?Sized>(files: &F) -> Option<f64> {
    files
        .read("/proc/uptime")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
