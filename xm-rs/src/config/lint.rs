//! Lints: mistakes that load fine but cost admins hours.

use super::host::{Host, PathKind};
use super::model::{known_keys, DomainConfig, Finding, GuestType, Support};
use super::spec::nearest;

/// A lint result: warnings are likely mistakes, notes are information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lint {
    Warning(Finding),
    Note(Finding),
}

/// `console = hvc0` → `console=hvc0`; None when there is nothing to fix.
pub fn fix_spaced_equals(cmdline: &str) -> Option<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    if !words.iter().enumerate().any(|(i, w)| {
        *w == "=" || (w.ends_with('=') && i + 1 < words.len()) || (w.starts_with('=') && i > 0)
    }) {
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    let mut glue_next = false;
    for word in words {
        let attach = glue_next || word.starts_with('=');
        glue_next = word.ends_with('=');
        match out.last_mut() {
            Some(last) if attach => last.push_str(word),
            _ => out.push(word.to_string()),
        }
    }
    Some(out.join(" "))
}

pub fn lint(config: &DomainConfig, host: &dyn Host) -> Vec<Lint> {
    let mut out = Vec::new();
    for (key, value) in [("extra", &config.extra), ("root", &config.root)] {
        let Some(text) = value else { continue };
        if let Some(fixed) = fix_spaced_equals(text) {
            out.push(Lint::Warning(Finding::at(
                key,
                format!(
                    "spaces around '=' in the kernel command line: the kernel reads {} as separate words and ignores those settings; write {key} = {}",
                    text.split_whitespace().take(3).map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", "),
                    super::value::repr_str(&fixed)
                ),
            )));
        }
    }
    if let (Some(_), Some(cmd)) = (&config.root, &config.extra) {
        if cmd.split_whitespace().any(|w| w.starts_with("root=")) {
            out.push(Lint::Warning(Finding::at(
                "extra",
                "extra sets root= and so does root; the kernel uses the last one",
            )));
        }
    }
    if let Some(root) = &config.root {
        if root.starts_with("root=") {
            out.push(Lint::Note(Finding::at(
                "root",
                "root already starts with 'root='; xm strips it (write root = '/dev/...')",
            )));
        }
    }
    let mut unknown = Vec::new();
    let mut hvm_only = Vec::new();
    let mut not_yet = Vec::new();
    let mut obsolete = Vec::new();
    for setting in &config.other_settings {
        match setting.support {
            Support::Unknown => unknown.push(setting.key.clone()),
            Support::HvmOnly if config.guest_type != GuestType::Hvm => {
                hvm_only.push(setting.key.clone())
            }
            Support::HvmOnly => {}
            Support::NotYetSupported => not_yet.push(setting.key.clone()),
            Support::Obsolete => obsolete.push(setting.key.clone()),
        }
    }
    for key in unknown {
        let hint = nearest(&key, known_keys())
            .map(|h| format!(" (did you mean `{h}`?)"))
            .unwrap_or_default();
        out.push(Lint::Warning(Finding::at(
            &key,
            format!("unknown setting `{key}` is ignored{hint}"),
        )));
    }
    if !hvm_only.is_empty() {
        out.push(Lint::Note(Finding::at(
            &hvm_only[0],
            format!(
                "settings for HVM guests have no effect on this PV guest: {}",
                hvm_only.join(", ")
            ),
        )));
    }
    for key in not_yet {
        out.push(Lint::Warning(Finding::at(
            &key,
            format!(
                "`{key}` is recognised but not supported by xm-rs yet; it is kept and not applied"
            ),
        )));
    }
    for key in obsolete {
        out.push(Lint::Note(Finding::at(
            &key,
            format!("`{key}` is a xend-era setting with no effect; ignored"),
        )));
    }
    for (index, vif) in config.vifs.iter().enumerate() {
        if let Some(mac) = vif.mac {
            if mac.is_multicast() {
                out.push(Lint::Warning(Finding::at(
                    "vif",
                    format!("vif[{index}] mac {mac} is a multicast address; guests cannot use it"),
                )));
            }
            if config.vifs[..index]
                .iter()
                .any(|other| other.mac == Some(mac))
            {
                out.push(Lint::Warning(Finding::at(
                    "vif",
                    format!("vif[{index}] mac {mac} is used twice"),
                )));
            }
        }
    }
    if config.guest_type != GuestType::Hvm && config.bootloader.is_none() {
        for (key, path) in [("kernel", &config.kernel), ("ramdisk", &config.ramdisk)] {
            if let Some(path) = path {
                if path.starts_with('/') && host.path_kind(path) == PathKind::Missing {
                    out.push(Lint::Warning(Finding::at(
                        key,
                        format!("{key} {path} does not exist on this host"),
                    )));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_equals_is_fixed() {
        assert_eq!(
            fix_spaced_equals("console = hvc0 clocksource = jiffies guestname = beijaflor-vm")
                .as_deref(),
            Some("console=hvc0 clocksource=jiffies guestname=beijaflor-vm")
        );
        assert_eq!(
            fix_spaced_equals("console= hvc0 quiet").as_deref(),
            Some("console=hvc0 quiet")
        );
        assert_eq!(
            fix_spaced_equals("console =hvc0").as_deref(),
            Some("console=hvc0")
        );
        assert_eq!(fix_spaced_equals("console=hvc0 quiet"), None);
        assert_eq!(fix_spaced_equals("4 VMID=3"), None);
    }
}
