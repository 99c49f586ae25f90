//! How `xm create -n` shows a resolved config: a human summary or JSON for scripts.

use std::fmt::Write as _;

use serde::Serialize;

use crate::config::devices::CpuAffinity;
use crate::config::disk::Backend;
use crate::config::model::{Support, Syntax};
use crate::config::source::Diagnostic;
use crate::config::{DomainConfig, LoadedConfig};

#[derive(Serialize)]
struct JsonReport<'a> {
    config_file: String,
    config: &'a DomainConfig,
    shell_commands: Vec<&'a str>,
    diagnostics: &'a [Diagnostic],
}

pub fn render_json(loaded: &LoadedConfig) -> String {
    let report = JsonReport {
        config_file: loaded.path.display().to_string(),
        config: &loaded.config,
        shell_commands: loaded
            .evaluation
            .shell_commands
            .iter()
            .map(|(c, _)| c.as_str())
            .collect(),
        diagnostics: &loaded.diagnostics,
    };
    serde_json::to_string_pretty(&report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn or_none(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("(none)")
}

pub fn render_human(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let mut out = String::new();
    let syntax = match c.syntax {
        Syntax::XlCompatible => "xl-compatible",
        Syntax::XmPython => "xm Python",
    };
    let _ = writeln!(
        out,
        "Using config file \"{}\" (syntax: {syntax}).",
        loaded.path.display()
    );
    for (command, _) in &loaded.evaluation.shell_commands {
        let _ = writeln!(out, "  ran: {command}");
    }
    let _ = writeln!(out, "name:        {}", c.name);
    let _ = writeln!(
        out,
        "uuid:        {}",
        c.uuid.as_deref().unwrap_or("(generated at create)")
    );
    let _ = writeln!(out, "type:        {}", c.guest_type.name());
    let _ = writeln!(
        out,
        "memory:      {} MB (maxmem {} MB)",
        c.memory_mb, c.maxmem_mb
    );
    let _ = writeln!(out, "vcpus:       {} (max {})", c.vcpus, c.max_vcpus);
    match &c.cpus {
        None => {}
        Some(CpuAffinity::AllVcpus(set)) => {
            let _ = writeln!(out, "cpus:        {}", set.render());
        }
        Some(CpuAffinity::PerVcpu(sets)) => {
            let list: Vec<String> = sets
                .iter()
                .enumerate()
                .map(|(i, s)| format!("vcpu{i}={}", s.render()))
                .collect();
            let _ = writeln!(out, "cpus:        {}", list.join(" "));
        }
    }
    if let Some(bootloader) = &c.bootloader {
        let _ = writeln!(
            out,
            "bootloader:  {bootloader} {}",
            c.bootloader_args.join(" ")
        );
    }
    let _ = writeln!(out, "kernel:      {}", or_none(&c.kernel));
    let _ = writeln!(out, "ramdisk:     {}", or_none(&c.ramdisk));
    let _ = writeln!(out, "cmdline:     {}", or_none(&c.cmdline));
    let _ = writeln!(
        out,
        "on_poweroff: {}  on_reboot: {}  on_crash: {}",
        c.on_poweroff.name(),
        c.on_reboot.name(),
        c.on_crash.name()
    );
    for (i, d) in c.disks.iter().enumerate() {
        let backend = match d.backend {
            Backend::Auto => "auto",
            Backend::Phy => "phy",
            Backend::File => "file",
            Backend::Tap => "tap",
            Backend::Qdisk => "qdisk",
            Backend::Standalone => "standalone",
        };
        let source = d.host_path().unwrap_or_else(|| "(empty)".to_string());
        let cdrom = if d.cdrom { " cdrom" } else { "" };
        let _ = writeln!(
            out,
            "disk[{i}]:     {backend}:{source} -> {} (device {}) mode {}{cdrom} format {}",
            d.vdev,
            d.device_number,
            d.access.mode(),
            format!("{:?}", d.format).to_lowercase()
        );
    }
    for (i, v) in c.vifs.iter().enumerate() {
        let mac = v
            .mac
            .map_or_else(|| "(generated)".to_string(), |m| m.to_string());
        let mut line = format!("vif[{i}]:      bridge {} mac {mac}", v.bridge_name());
        for (label, value) in [
            ("script", &v.script),
            ("vifname", &v.vifname),
            ("model", &v.model),
            ("type", &v.kind),
        ] {
            if let Some(value) = value {
                let _ = write!(line, " {label} {value}");
            }
        }
        if !v.ip.is_empty() {
            let _ = write!(line, " ip {}", v.ip.join(" "));
        }
        if let Some(rate) = v.rate {
            let _ = write!(
                line,
                " rate {}B/s@{}us",
                rate.bytes_per_second, rate.interval_us
            );
        }
        let _ = writeln!(out, "{line}");
    }
    for (i, f) in c.vfbs.iter().enumerate() {
        let kind = if f.vnc {
            "vnc"
        } else if f.sdl {
            "sdl"
        } else {
            "none"
        };
        let mut line = format!("vfb[{i}]:      {kind}");
        if let Some(d) = f.vncdisplay {
            let _ = write!(line, " display {d}");
        }
        if let Some(l) = &f.vnclisten {
            let _ = write!(line, " listen {l}");
        }
        if f.vncunused == Some(true) {
            let _ = write!(line, " (first unused display)");
        }
        let _ = writeln!(out, "{line}");
    }
    for s in &c.serial {
        let _ = writeln!(out, "serial:      {s}");
    }
    for p in &c.pci {
        let _ = writeln!(
            out,
            "pci:         {:04x}:{:02x}:{:02x}.{}",
            p.domain, p.bus, p.device, p.function
        );
    }
    for setting in &c.other_settings {
        let status = match setting.support {
            Support::HvmOnly => "HVM only",
            Support::NotYetSupported => "recognised, not supported for PV by xm-rs yet",
            Support::Obsolete => "obsolete, ignored",
            Support::Unknown => "unknown, ignored",
        };
        let _ = writeln!(
            out,
            "{:<12} {} ({status})",
            format!("{}:", setting.key),
            setting.value.render()
        );
    }
    out.trim_end().to_string()
}
