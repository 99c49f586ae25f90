//! The one typed domain config that xm and xl files both become, with validation.

use serde::{Deserialize, Serialize};

use super::devices::{parse_pci, parse_vfb, parse_vif, CpuAffinity, CpuSet, Pci, Vfb, Vif};
use super::disk::{parse_disk, Disk};
use super::eval::Evaluation;
use super::spec::{nearest, parse_bool};
use super::value::ConfigValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestType {
    Pv,
    Pvh,
    Hvm,
}

impl GuestType {
    pub fn name(self) -> &'static str {
        match self {
            GuestType::Pv => "PV",
            GuestType::Pvh => "PVH",
            GuestType::Hvm => "HVM",
        }
    }
}

/// What to do when the guest powers off, reboots or crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Destroy,
    Restart,
    Preserve,
    RenameRestart,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

const ACTIONS: &[(&str, Action)] = &[
    ("destroy", Action::Destroy),
    ("restart", Action::Restart),
    ("preserve", Action::Preserve),
    ("rename-restart", Action::RenameRestart),
    ("coredump-destroy", Action::CoredumpDestroy),
    ("coredump-restart", Action::CoredumpRestart),
    ("soft-reset", Action::SoftReset),
];

impl Action {
    pub fn name(self) -> &'static str {
        ACTIONS
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("destroy", |(n, _)| n)
    }
}

/// Where the config's text came from syntactically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Syntax {
    /// Only `KEY = value` lines: xl would read it too.
    XlCompatible,
    /// Uses Python (imports, expressions, functions...): xm only.
    XmPython,
}

/// How far xm-rs supports a setting it recognises but does not model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    /// Meaningful for HVM guests only.
    HvmOnly,
    /// A PV setting xm-rs does not implement yet; kept, not applied.
    NotYetSupported,
    /// xend-era setting with no effect in modern Xen; ignored.
    Obsolete,
    /// Not a setting xm or xl knows.
    Unknown,
}

/// A top-level setting kept as written because the typed model does not cover it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherSetting {
    pub key: String,
    pub value: ConfigValue,
    pub support: Support,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainConfig {
    pub name: String,
    /// Canonical dashed lowercase form.
    pub uuid: Option<String>,
    pub guest_type: GuestType,
    pub memory_mb: u64,
    pub maxmem_mb: u64,
    /// vCPUs online at boot.
    pub vcpus: u32,
    pub max_vcpus: u32,
    pub cpus: Option<CpuAffinity>,
    pub kernel: Option<String>,
    pub ramdisk: Option<String>,
    /// The kernel command line actually passed (cmdline, or ip/root/extra combined).
    pub cmdline: Option<String>,
    pub root: Option<String>,
    pub extra: Option<String>,
    pub bootloader: Option<String>,
    pub bootloader_args: Vec<String>,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_crash: Action,
    pub disks: Vec<Disk>,
    pub vifs: Vec<Vif>,
    pub vfbs: Vec<Vfb>,
    pub serial: Vec<String>,
    pub pci: Vec<Pci>,
    pub other_settings: Vec<OtherSetting>,
    pub syntax: Syntax,
}

/// A problem found while building the model, tied to a top-level key where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn at(key: &str, message: impl Into<String>) -> Finding {
        Finding {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

/// Keys the typed model reads.
const MODELLED: &[&str] = &[
    "name",
    "uuid",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "vcpu_avail",
    "cpus",
    "kernel",
    "ramdisk",
    "extra",
    "root",
    "cmdline",
    "bootloader",
    "bootargs",
    "bootloader_args",
    "builder",
    "type",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "disk",
    "vif",
    "vfb",
    "serial",
    "pci",
    "ip",
    "dhcp",
    "netmask",
    "gateway",
    "hostname",
    "interface",
    "nfs_server",
    "nfs_root",
    "cdrom",
];

/// Settings of the PV legacy framebuffer (xm/xl build a vfb from them when `vfb` is absent).
const LEGACY_FB_KEYS: &[&str] = &[
    "vnc",
    "sdl",
    "vnclisten",
    "vncdisplay",
    "vncunused",
    "vncpasswd",
    "display",
    "xauthority",
    "keymap",
    "opengl",
];

const HVM_ONLY: &[&str] = &[
    "boot",
    "hdtype",
    "hap",
    "oos",
    "shadow_memory",
    "bios",
    "bios_path_override",
    "pae",
    "acpi",
    "acpi_s3",
    "acpi_s4",
    "acpi_laptop_slate",
    "apic",
    "nx",
    "hpet",
    "altp2m",
    "altp2mhvm",
    "nestedhvm",
    "cpuid",
    "acpi_firmware",
    "smbios_firmware",
    "ms_vm_genid",
    "timer_mode",
    "vpt_align",
    "mmio_hole",
    "xen_platform_pci",
    "viridian",
    "videoram",
    "stdvga",
    "vga",
    "nographic",
    "spice",
    "spicehost",
    "spiceport",
    "spicetls_port",
    "spicedisable_ticketing",
    "spicepasswd",
    "spiceagent_mouse",
    "spicevdagent",
    "spice_clipboard_sharing",
    "spiceusbredirection",
    "spice_image_compression",
    "spice_streaming_video",
    "soundhw",
    "vkb_device",
    "usb",
    "usbversion",
    "usbdevice",
    "vendor_device",
    "device_model",
    "device_model_version",
    "device_model_override",
    "stubdomain_kernel",
    "stubdomain_cmdline",
    "stubdomain_ramdisk",
    "stubdomain_memory",
    "device_model_stubdomain_override",
    "device_model_stubdomain_seclabel",
    "device_model_args_hvm",
    "parallel",
    "fda",
    "fdb",
    "isa",
    "monitor",
    "guest_os_type",
    "vhpt",
    "s3_integrity",
    "loader",
    "memmap",
    "vncconsole",
    "vncviewer",
    "rtc_timeoffset",
    "localtime",
    "gfx_passthru",
    "rdm",
    "rdm_mem_boundary",
    "firmware",
    "acpi_slic",
    "pci_msitranslate",
    "pci_power_mgmt",
    "hvm",
    "tsc_native",
];

const NOT_YET: &[&str] = &[
    "cpus_soft",
    "cpu_weight",
    "cap",
    "cpu_cap",
    "pool",
    "cpupool",
    "vnuma",
    "on_watchdog",
    "on_soft_reset",
    "pvshim",
    "pvshim_path",
    "pvshim_cmdline",
    "pvshim_extra",
    "seclabel",
    "init_seclabel",
    "max_grant_frames",
    "max_maptrack_frames",
    "max_grant_version",
    "nomigrate",
    "driver_domain",
    "device_tree",
    "passthrough",
    "xend_suspend_evtchn_compat",
    "vmtrace_buf_kb",
    "vpmu",
    "vtpm",
    "p9",
    "pvcalls",
    "channel",
    "usbctrl",
    "usbdev",
    "pci_permissive",
    "pci_seize",
    "dtdev",
    "ioports",
    "iomem",
    "irqs",
    "irq",
    "max_event_channels",
    "vdispl",
    "dm_restrict",
    "device_model_user",
    "vsnd",
    "vkb",
    "tee",
    "e820_host",
    "tsc_mode",
    "device_model_args",
    "device_model_args_pv",
    "gic_version",
    "vuart",
    "mca_caps",
    "msr_relaxed",
    "vscsi",
    "claim_mode",
    "suppress_spurious_page_faults",
    "machine_address_size",
    "superpages",
    "memory_sharing",
    "cpuid_check",
    "sched",
    "blkif",
    "netif",
    "tpmif",
    "on_xend_start",
    "on_xend_stop",
];

const OBSOLETE: &[&str] = &[
    "nics",
    "restart",
    "access_control",
    "security",
    "features",
    "bootentry",
    "target",
    "console_autoconnect",
    "vusb",
];

/// Every top-level key xm-rs recognises, for unknown-key hints.
pub fn known_keys() -> impl Iterator<Item = &'static str> {
    MODELLED
        .iter()
        .chain(LEGACY_FB_KEYS)
        .chain(HVM_ONLY)
        .chain(NOT_YET)
        .chain(OBSOLETE)
        .copied()
}

fn support_of(key: &str) -> Support {
    if HVM_ONLY.contains(&key) || LEGACY_FB_KEYS.contains(&key) {
        Support::HvmOnly
    } else if NOT_YET.contains(&key) {
        Support::NotYetSupported
    } else if OBSOLETE.contains(&key) {
        Support::Obsolete
    } else {
        Support::Unknown
    }
}

/// Reads the typed settings out of an evaluation. Errors and warnings name their key.
#[derive(Debug)]
pub struct Builder<'e> {
    evaluation: &'e Evaluation,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl<'e> Builder<'e> {
    pub fn new(evaluation: &'e Evaluation) -> Self {
        Builder {
            evaluation,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn value(&self, key: &str) -> Option<&'e ConfigValue> {
        self.evaluation
            .get(key)
            .map(|v| &v.value)
            .filter(|v| !matches!(v, ConfigValue::None))
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(Finding::at(key, message));
    }

    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Finding::at(key, message));
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.value(key)? {
            ConfigValue::Str(s) => Some(s.clone()),
            ConfigValue::Int(i) => Some(i.to_string()),
            other => {
                self.error(
                    key,
                    format!("{key} must be a string, not {}", other.type_name()),
                );
                None
            }
        }
    }

    /// An integer given as a number or as a string of digits (xm accepted both).
    fn integer(&mut self, key: &str) -> Option<i64> {
        match self.value(key)? {
            ConfigValue::Int(i) => Some(*i),
            ConfigValue::Bool(b) => Some(i64::from(*b)),
            ConfigValue::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.error(key, format!("{key} must be a whole number, not {s:?}"));
                    None
                }
            },
            ConfigValue::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Some(*f as i64),
            other => {
                self.error(
                    key,
                    format!("{key} must be a whole number, not {}", other.type_name()),
                );
                None
            }
        }
    }

    fn positive(&mut self, key: &str, max: i64) -> Option<i64> {
        let value = self.integer(key)?;
        if value <= 0 || value > max {
            self.error(
                key,
                format!("{key} must be between 1 and {max}, not {value}"),
            );
            return None;
        }
        Some(value)
    }

    fn string_list(&mut self, key: &str) -> Vec<String> {
        match self.value(key) {
            None => Vec::new(),
            Some(ConfigValue::List(items)) => {
                let mut out = Vec::new();
                for (index, item) in items.iter().enumerate() {
                    match item {
                        ConfigValue::Str(s) => out.push(s.clone()),
                        other => self.error(
                            key,
                            format!("{key}[{index}] must be a string, not {}", other.type_name()),
                        ),
                    }
                }
                out
            }
            Some(ConfigValue::Str(s)) => {
                self.warn(
                    key,
                    format!(
                        "{key} should be a list: {key} = [ {} ]",
                        super::value::repr_str(s)
                    ),
                );
                vec![s.clone()]
            }
            Some(other) => {
                self.error(
                    key,
                    format!("{key} must be a list of strings, not {}", other.type_name()),
                );
                Vec::new()
            }
        }
    }

    fn action(&mut self, key: &str, default: Action) -> Action {
        let Some(text) = self.string(key) else {
            return default;
        };
        match ACTIONS.iter().find(|(n, _)| *n == text) {
            Some((_, a)) => *a,
            None => {
                let hint = nearest(&text, ACTIONS.iter().map(|(n, _)| *n))
                    .map(|h| format!(" (did you mean {h}?)"))
                    .unwrap_or_default();
                self.error(key, format!("unknown action {text:?} for {key}{hint}; expected one of destroy, restart, preserve, rename-restart, coredump-destroy, coredump-restart, soft-reset"));
                default
            }
        }
    }

    fn truthy(&self, key: &str) -> bool {
        match self.value(key) {
            None => false,
            Some(ConfigValue::Int(i)) => *i != 0,
            Some(ConfigValue::Bool(b)) => *b,
            Some(ConfigValue::Str(s)) => parse_bool(s).unwrap_or(!s.is_empty()),
            Some(_) => true,
        }
    }

    fn guest_type(&mut self) -> GuestType {
        let from_type = self.string("type").and_then(|t| match t.as_str() {
            "pv" => Some(GuestType::Pv),
            "pvh" => Some(GuestType::Pvh),
            "hvm" => Some(GuestType::Hvm),
            other => {
                self.error(
                    "type",
                    format!("unknown type {other:?}; expected pv, pvh or hvm"),
                );
                None
            }
        });
        let from_builder = self.string("builder").and_then(|b| match b.as_str() {
            "linux" | "generic" => Some(GuestType::Pv),
            "hvm" | "vmx" => Some(GuestType::Hvm),
            other => {
                self.error(
                    "builder",
                    format!("unknown builder {other:?}; expected linux (PV) or hvm"),
                );
                None
            }
        });
        match (from_type, from_builder) {
            (Some(t), Some(b)) if t != b => {
                self.error(
                    "builder",
                    format!("builder says {b:?} but type says {t:?}; keep one of them"),
                );
                t
            }
            (Some(t), _) => t,
            (None, Some(b)) => b,
            (None, None) => GuestType::Pv,
        }
    }

    fn uuid(&mut self) -> Option<String> {
        let text = self.string("uuid")?;
        let hex: String = text.chars().filter(|c| *c != '-').collect();
        let dashes_ok = !text.contains('-')
            || text.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12];
        if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) || !dashes_ok {
            self.error(
                "uuid",
                format!(
                    "uuid {text:?} is not 32 hex digits (with or without dashes as 8-4-4-4-12)"
                ),
            );
            return None;
        }
        let h = hex.to_ascii_lowercase();
        Some(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    fn cpus(&mut self) -> Option<CpuAffinity> {
        let parse = |this: &mut Self, text: &str| match text.parse::<CpuSet>() {
            Ok(set) => Some(set),
            Err(e) => {
                this.error("cpus", format!("cpus {text:?}: {e}"));
                None
            }
        };
        match self.value("cpus")? {
            ConfigValue::Str(s) => parse(self, s).map(CpuAffinity::AllVcpus),
            ConfigValue::Int(i) => parse(self, &i.to_string()).map(CpuAffinity::AllVcpus),
            ConfigValue::List(items) => {
                let mut sets = Vec::new();
                for item in items {
                    let text = match item {
                        ConfigValue::Str(s) => s.clone(),
                        ConfigValue::Int(i) => i.to_string(),
                        other => {
                            self.error(
                                "cpus",
                                format!(
                                    "cpus list items must be strings or numbers, not {}",
                                    other.type_name()
                                ),
                            );
                            return None;
                        }
                    };
                    sets.push(parse(self, &text)?);
                }
                Some(CpuAffinity::PerVcpu(sets))
            }
            other => {
                self.error(
                    "cpus",
                    format!(
                        "cpus must be a string like \"0-3,^1\" or a list, not {}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }

    /// xm built `ip=` kernel arguments from these keys.
    fn xm_ip_argument(&mut self) -> Option<String> {
        let ip = self.string("ip").unwrap_or_default();
        let dhcp = self.string("dhcp").unwrap_or_else(|| "off".to_string());
        if ip.is_empty() && dhcp == "off" {
            return None;
        }
        let nfs_server = self
            .string("nfs_server")
            .unwrap_or_else(|| "127.0.255.255".to_string());
        let gateway = self.string("gateway").unwrap_or_default();
        let netmask = self.string("netmask").unwrap_or_default();
        let hostname = self.string("hostname").unwrap_or_default();
        let interface = self
            .string("interface")
            .unwrap_or_else(|| "eth0".to_string());
        Some(format!(
            "ip={ip}:{nfs_server}:{gateway}:{netmask}:{hostname}:{interface}:{dhcp}"
        ))
    }

    /// `cmdline` wins (xl); otherwise xm's order: ip=…, root=…, extra.
    fn command_line(&mut self, root: &Option<String>, extra: &Option<String>) -> Option<String> {
        if let Some(cmdline) = self.string("cmdline") {
            for key in ["root", "extra"] {
                if self.value(key).is_some() {
                    self.warn(key, format!("{key} is ignored because cmdline is set (cmdline replaces root and extra)"));
                }
            }
            return Some(cmdline);
        }
        let mut parts = Vec::new();
        if let Some(ip) = self.xm_ip_argument() {
            parts.push(ip);
        }
        let mut extra = extra.clone();
        if let Some(nfs_root) = self.string("nfs_root") {
            match self.string("nfs_server") {
                Some(server) => {
                    let nfs = format!("nfsroot={server}:{nfs_root}");
                    extra = Some(match extra {
                        Some(e) => format!("{nfs} {e}"),
                        None => nfs,
                    });
                    if root.is_none() {
                        parts.push("root=/dev/nfs".to_string());
                    }
                }
                None => self.error("nfs_root", "nfs_root needs nfs_server too"),
            }
        }
        if let Some(root) = root {
            // xm strips a `root=` the admin already wrote.
            parts.push(format!(
                "root={}",
                root.strip_prefix("root=").unwrap_or(root)
            ));
        }
        if let Some(extra) = extra {
            parts.push(extra);
        }
        let line = parts.join(" ").trim().to_string();
        (!line.is_empty()).then_some(line)
    }

    fn legacy_vfb(&mut self) -> Option<Vfb> {
        if !self.truthy("vnc") && !self.truthy("sdl") {
            return None;
        }
        let display = self
            .integer("vncdisplay")
            .and_then(|d| u32::try_from(d).ok());
        Some(Vfb {
            spec: "(from the top-level vnc/sdl settings)".to_string(),
            vnc: self.truthy("vnc"),
            sdl: self.truthy("sdl"),
            vnclisten: self.string("vnclisten"),
            vncdisplay: display,
            vncunused: self.value("vncunused").map(|_| self.truthy("vncunused")),
            vncpasswd: self.string("vncpasswd"),
            display: self.string("display"),
            xauthority: self.string("xauthority"),
            opengl: self.value("opengl").map(|_| self.truthy("opengl")),
            keymap: self.string("keymap"),
        })
    }

    /// Builds the config; `None` when there were errors (see `errors`).
    pub fn build(mut self) -> (Option<DomainConfig>, Vec<Finding>, Vec<Finding>) {
        let name = self.string("name");
        match &name {
            None if self.value("name").is_none() => self.errors.push(Finding { key: None, message: "no name set: add name = \"...\"".into() }),
            Some(n) if n.trim().is_empty() => self.error("name", "name must not be empty"),
            Some(n) if n.chars().any(|c| c == '/' || c.is_control()) => {
                self.error("name", format!("name {n:?} contains '/' or control characters, which xenstore paths cannot hold"))
            }
            _ => {}
        }
        let uuid = self.uuid();
        let guest_type = self.guest_type();
        let memory = self.positive("memory", 1 << 30).unwrap_or(128) as u64;
        let mut maxmem = self
            .positive("maxmem", 1 << 30)
            .map_or(memory, |m| m as u64);
        if maxmem < memory {
            self.warn(
                "maxmem",
                format!(
                    "maxmem ({maxmem} MB) is below memory ({memory} MB); using maxmem = {memory}"
                ),
            );
            maxmem = memory;
        }
        let vcpus_given = self.positive("vcpus", 4096).unwrap_or(1) as u32;
        let maxvcpus = self.positive("maxvcpus", 4096).map(|m| m as u32);
        let (vcpus, max_vcpus) = match (maxvcpus, self.integer("vcpu_avail")) {
            (max, Some(avail)) => {
                let max = max.unwrap_or(vcpus_given);
                let online = (avail as u64 & mask(max)).count_ones();
                if avail <= 0 || online == 0 {
                    self.error(
                        "vcpu_avail",
                        format!("vcpu_avail {avail} leaves no vCPU online"),
                    );
                } else if (avail as u64) & !mask(max) != 0 {
                    self.warn("vcpu_avail", format!("vcpu_avail {avail:#b} names vCPUs beyond the {max} configured; they are ignored"));
                }
                (online.max(1), max)
            }
            (Some(max), None) => {
                if max < vcpus_given {
                    self.error(
                        "maxvcpus",
                        format!("maxvcpus ({max}) is below vcpus ({vcpus_given})"),
                    );
                }
                (vcpus_given, max.max(vcpus_given))
            }
            (None, None) => (vcpus_given, vcpus_given),
        };
        let cpus = self.cpus();
        if let Some(CpuAffinity::PerVcpu(sets)) = &cpus {
            if sets.len() > max_vcpus as usize {
                self.warn(
                    "cpus",
                    format!(
                        "cpus lists {} vCPUs but the guest has {max_vcpus}; the rest are ignored",
                        sets.len()
                    ),
                );
            }
        }
        let kernel = self.string("kernel");
        let ramdisk = self.string("ramdisk");
        let root = self.string("root");
        let extra = self.string("extra");
        let cmdline = self.command_line(&root, &extra);
        let bootloader = self.string("bootloader");
        let mut bootloader_args = match self.value("bootloader_args") {
            Some(ConfigValue::List(_)) => self.string_list("bootloader_args"),
            Some(_) => self
                .string("bootloader_args")
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        if let Some(bootargs) = self.string("bootargs") {
            bootloader_args.extend(bootargs.split_whitespace().map(str::to_string));
        }
        if guest_type != GuestType::Hvm && kernel.is_none() && bootloader.is_none() {
            self.errors.push(Finding {
                key: None,
                message: "a PV guest needs kernel = \"...\" or bootloader = \"...\"".into(),
            });
        }
        let on_poweroff = self.action("on_poweroff", Action::Destroy);
        let on_reboot = self.action("on_reboot", Action::Restart);
        let on_crash = self.action("on_crash", Action::Restart);

        let mut disks = Vec::new();
        for (index, spec) in self.string_list("disk").into_iter().enumerate() {
            match parse_disk(&spec) {
                Ok(d) => disks.push(d),
                Err(e) => self.error("disk", format!("disk[{index}] {spec:?}: {e}")),
            }
        }
        if let Some(cdrom) = self.string("cdrom") {
            // xm's HVM `cdrom=` is an hdc cdrom drive.
            if !disks.iter().any(|d| d.vdev == "hdc") {
                match parse_disk(&format!("file:{cdrom},hdc:cdrom,r")) {
                    Ok(d) => disks.push(d),
                    Err(e) => self.error("cdrom", format!("cdrom {cdrom:?}: {e}")),
                }
            }
        }
        for (i, a) in disks.iter().enumerate() {
            if let Some(b) = disks[..i]
                .iter()
                .find(|b| b.device_number == a.device_number)
            {
                let message = format!(
                    "disks {:?} and {:?} both use guest device {} ({})",
                    b.spec, a.spec, a.vdev, a.device_number
                );
                self.error("disk", message);
            }
        }
        let mut vifs = Vec::new();
        for (index, spec) in self.string_list("vif").into_iter().enumerate() {
            match parse_vif(&spec) {
                Ok(v) => vifs.push(v),
                Err(e) => self.error("vif", format!("vif[{index}] {spec:?}: {e}")),
            }
        }
        let mut vfbs = Vec::new();
        for (index, spec) in self.string_list("vfb").into_iter().enumerate() {
            match parse_vfb(&spec) {
                Ok(v) => vfbs.push(v),
                Err(e) => self.error("vfb", format!("vfb[{index}] {spec:?}: {e}")),
            }
        }
        let legacy_fb_used = vfbs.is_empty() && guest_type != GuestType::Hvm;
        if legacy_fb_used {
            vfbs.extend(self.legacy_vfb());
        }
        let serial = match self.value("serial") {
            Some(ConfigValue::Str(s)) => vec![s.clone()],
            Some(_) => self.string_list("serial"),
            None => Vec::new(),
        };
        let mut pci = Vec::new();
        for (index, spec) in self.string_list("pci").into_iter().enumerate() {
            match parse_pci(&spec) {
                Ok(p) => pci.push(p),
                Err(e) => self.error("pci", format!("pci[{index}] {spec:?}: {e}")),
            }
        }

        let mut other_settings = Vec::new();
        for variable in &self.evaluation.variables {
            let key = variable.name.as_str();
            if MODELLED.contains(&key) || (legacy_fb_used && LEGACY_FB_KEYS.contains(&key)) {
                continue;
            }
            let support = support_of(key);
            if support == Support::Unknown
                && (variable.read_by_config || variable.from_command_line)
            {
                // A helper variable (krn_vers, arch_libdir) or an xm_vars-style variable.
                continue;
            }
            other_settings.push(OtherSetting {
                key: key.to_string(),
                value: variable.value.clone(),
                support,
            });
        }
        let syntax = if self.evaluation.uses_python {
            Syntax::XmPython
        } else {
            Syntax::XlCompatible
        };
        let errors = std::mem::take(&mut self.errors);
        let warnings = std::mem::take(&mut self.warnings);
        if !errors.is_empty() {
            return (None, errors, warnings);
        }
        let config = DomainConfig {
            name: name.unwrap_or_default(),
            uuid,
            guest_type,
            memory_mb: memory,
            maxmem_mb: maxmem,
            vcpus,
            max_vcpus,
            cpus,
            kernel,
            ramdisk,
            cmdline,
            root,
            extra,
            bootloader,
            bootloader_args,
            on_poweroff,
            on_reboot,
            on_crash,
            disks,
            vifs,
            vfbs,
            serial,
            pci,
            other_settings,
            syntax,
        };
        (Some(config), errors, warnings)
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}
