//! Every config of the reference corpus (../shared/corpus: libvirt's xmconfigdata and
//! xlconfigdata, Xen's xmexample*/xlexample* across versions, the seed) loads, and each
//! libvirt pair agrees with its .xml on name, uuid, memory, vcpus, actions, disks and vifs.
//! Files that are not domain configs are listed with the reason; nothing is skipped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use xm_rs::config::disk::Access;
use xm_rs::config::host::SandboxHost;
use xm_rs::config::model::GuestType;
use xm_rs::config::{load_text, DomainConfig, LoadOptions};

/// Files in the corpus that are not domain configs, and what they are.
const NOT_DOMAIN_CONFIGS: &[(&str, &str)] = &[
    ("RELEASE-3.0.0/bochsrc", "a Bochs emulator config, not Xen"),
    ("RELEASE-4.4.4/README.incompatibilities", "prose"),
    (
        "RELEASE-4.4.4/cpupool",
        "an xl cpupool config (checked to evaluate, not a domain)",
    ),
    (
        "master/cpupool",
        "an xl cpupool config (checked to evaluate, not a domain)",
    ),
    ("RELEASE-4.4.4/xl.conf", "xl's global settings file"),
    ("master/xl.conf", "xl's global settings file"),
    (
        "RELEASE-4.4.4/xend-config.sxp",
        "xend daemon settings (S-expressions)",
    ),
    (
        "RELEASE-4.4.4/xm-config.xml",
        "xm's XML-RPC client settings",
    ),
];

/// Configs that need command-line variables, as their comments say.
const NEEDS_VARIABLES: &[(&str, &str, &str)] =
    &[("xmexample2", "vmid", "3"), ("xmexample3", "vmid", "3")];

/// Configs that are expected to fail, with why and a piece of the expected error.
const EXPECTED_ERRORS: &[(&str, &str, &str)] = &[(
    "3.3.0-branched/xmexample.hvm-dm",
    "the stub-domain half of xmexample.hvm-stubdom: \"Not to be started directly\", so it has no name",
    "no name set",
)];

/// Pairs whose .xml says more than the .cfg holds (libvirt converts only XML → cfg for them).
const XML_SAYS_MORE: &[(&str, &str, &str)] = &[
    (
        "xmconfigdata/test-fullvirt-new-cdrom.cfg",
        "vif[0] bridge",
        "the cfg's vif is only mac=...,type=ioemu",
    ),
    (
        "xmconfigdata/test-fullvirt-new-cdrom.cfg",
        "vif[0] script",
        "the cfg's vif is only mac=...,type=ioemu",
    ),
];

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("XM_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "reference corpus not found at {} (set XM_CORPUS_DIR); the corpus test {}",
        dir.display(),
        if optional() {
            "is skipped because XM_CORPUS_OPTIONAL=1"
        } else {
            "fails"
        }
    );
    None
}

fn optional() -> bool {
    std::env::var("XM_CORPUS_OPTIONAL").as_deref() == Ok("1")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn relative(corpus: &Path, path: &Path) -> String {
    path.strip_prefix(corpus)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn load(
    path: &Path,
    variables: Vec<(String, String)>,
) -> Result<xm_rs::config::LoadedConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let host = SandboxHost {
        environment: vec![("HOME".into(), "/root".into())],
        shell_answers: vec![("uname -r".into(), "6.1.0-corpus".into())],
        ..SandboxHost::default()
    };
    let options = LoadOptions {
        variables,
        ..LoadOptions::default()
    };
    load_text(path, &text, &options, &host).map_err(|e| e.to_string())
}

#[test]
fn every_corpus_config_loads_and_matches_libvirts_reading() {
    let Some(corpus) = corpus_dir() else {
        assert!(
            optional(),
            "the reference corpus is missing; set XM_CORPUS_DIR or XM_CORPUS_OPTIONAL=1"
        );
        return;
    };
    let mut files = Vec::new();
    walk(&corpus, &mut files);
    files.sort();
    let mut loaded = 0;
    let mut compared = 0;
    let mut known_differences = 0;
    let mut failures = Vec::new();
    let mut accounted_not_configs = Vec::new();
    for path in &files {
        let rel = relative(&corpus, path);
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let is_config = file_name.ends_with(".cfg")
            || file_name.starts_with("xmexample")
            || file_name.starts_with("xlexample");
        if !is_config {
            if file_name.ends_with(".xml")
                && path
                    .with_extension("cfg")
                    .parent()
                    .is_some_and(|p| p.ends_with("xmconfigdata") || p.ends_with("xlconfigdata"))
            {
                continue; // libvirt's side of a pair, read below.
            }
            match NOT_DOMAIN_CONFIGS
                .iter()
                .find(|(name, _)| rel.ends_with(name))
            {
                Some((_, why)) => {
                    accounted_not_configs.push(rel.clone());
                    if why.contains("cpupool") {
                        let text = std::fs::read_to_string(path).unwrap_or_default();
                        let host = SandboxHost::default();
                        let options = xm_rs::config::eval::EvalOptions {
                            limits: Default::default(),
                            allow_shell: false,
                            host: &host,
                            variables: Vec::new(),
                            config_path: rel.clone(),
                        };
                        if let Err(e) = xm_rs::config::eval::evaluate(&text, &options) {
                            failures
                                .push(format!("{rel}: cpupool config does not evaluate: {e:?}"));
                        }
                    }
                }
                None => failures.push(format!(
                    "{rel}: neither a config nor listed in NOT_DOMAIN_CONFIGS"
                )),
            }
            continue;
        }
        let variables = NEEDS_VARIABLES
            .iter()
            .filter(|(name, _, _)| file_name == *name)
            .map(|(_, k, v)| (k.to_string(), v.to_string()))
            .collect();
        let expected_error = EXPECTED_ERRORS
            .iter()
            .find(|(name, _, _)| rel.ends_with(name));
        match (load(path, variables), expected_error) {
            (Ok(_), Some((_, why, _))) => {
                failures.push(format!("{rel}: expected to fail ({why}) but loaded"))
            }
            (Err(e), Some((_, _, fragment))) if e.contains(fragment) => {}
            (Err(e), Some(_)) => {
                failures.push(format!("{rel}: failed differently than expected: {e}"))
            }
            (Err(e), None) => failures.push(format!("{rel}: {e}")),
            (Ok(config), None) => {
                loaded += 1;
                let xml = path.with_extension("xml");
                if xml.exists() {
                    compared += 1;
                    if let Err(problems) = compare_with_libvirt(&config.config, &xml) {
                        for p in problems {
                            let known = XML_SAYS_MORE
                                .iter()
                                .any(|(file, what, _)| rel == *file && p.starts_with(what));
                            if known {
                                known_differences += 1;
                            } else {
                                failures.push(format!("{rel}: {p}"));
                            }
                        }
                    }
                }
            }
        }
    }
    for (name, _) in NOT_DOMAIN_CONFIGS {
        if !accounted_not_configs.iter().any(|r| r.ends_with(name)) {
            failures.push(format!(
                "NOT_DOMAIN_CONFIGS lists {name}, which is not in the corpus"
            ));
        }
    }
    println!(
        "corpus: {loaded} configs loaded, {compared} compared with libvirt's XML ({known_differences} known XML-only details), {} non-configs accounted for, {} expected failures",
        accounted_not_configs.len(),
        EXPECTED_ERRORS.len()
    );
    assert_eq!(
        known_differences,
        XML_SAYS_MORE.len(),
        "every listed XML-only difference still occurs"
    );
    assert!(
        failures.is_empty(),
        "{} corpus problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        loaded >= 100,
        "only {loaded} configs found; is the corpus complete?"
    );
    assert!(compared >= 80, "only {compared} libvirt pairs compared");
}

fn attr<'a>(node: roxmltree::Node<'a, 'a>, child: &str, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name(child))
        .and_then(|c| c.attribute(name))
}

fn compare_with_libvirt(config: &DomainConfig, xml_path: &Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(xml_path).map_err(|e| vec![e.to_string()])?;
    let doc = roxmltree::Document::parse(&text).map_err(|e| vec![format!("xml: {e}")])?;
    let domain = doc.root_element();
    let child_text = |name: &str| {
        domain
            .children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(str::trim)
    };
    let mut problems = Vec::new();
    let mut check = |what: &str, ours: String, theirs: String| {
        if ours != theirs {
            problems.push(format!("{what}: ours {ours:?}, libvirt {theirs:?}"));
        }
    };
    check(
        "name",
        config.name.clone(),
        child_text("name").unwrap_or_default().to_string(),
    );
    check(
        "uuid",
        config.uuid.clone().unwrap_or_default(),
        child_text("uuid").unwrap_or_default().to_string(),
    );
    check(
        "maxmem KiB",
        (config.maxmem_mb * 1024).to_string(),
        child_text("memory").unwrap_or_default().to_string(),
    );
    check(
        "memory KiB",
        (config.memory_mb * 1024).to_string(),
        child_text("currentMemory").unwrap_or_default().to_string(),
    );
    let vcpu = domain.children().find(|c| c.has_tag_name("vcpu"));
    let max_vcpus = vcpu
        .and_then(|v| v.text())
        .unwrap_or_default()
        .trim()
        .to_string();
    let current = vcpu
        .and_then(|v| v.attribute("current"))
        .map_or_else(|| max_vcpus.clone(), str::to_string);
    check("max vcpus", config.max_vcpus.to_string(), max_vcpus);
    check("vcpus", config.vcpus.to_string(), current);
    check(
        "on_poweroff",
        config.on_poweroff.name().into(),
        child_text("on_poweroff").unwrap_or("destroy").into(),
    );
    check(
        "on_reboot",
        config.on_reboot.name().into(),
        child_text("on_reboot").unwrap_or("restart").into(),
    );
    check(
        "on_crash",
        config.on_crash.name().into(),
        child_text("on_crash").unwrap_or("restart").into(),
    );
    let os_type = domain
        .descendants()
        .find(|n| n.has_tag_name("type") && n.parent().is_some_and(|p| p.has_tag_name("os")));
    let expected_type = match os_type.and_then(|t| t.text()) {
        Some("hvm") => GuestType::Hvm,
        Some("xenpvh") => GuestType::Pvh,
        _ if os_type.and_then(|t| t.attribute("machine")) == Some("xenpvh") => GuestType::Pvh,
        _ => GuestType::Pv,
    };
    check(
        "guest type",
        format!("{:?}", config.guest_type),
        format!("{expected_type:?}"),
    );

    let Some(devices) = domain.children().find(|c| c.has_tag_name("devices")) else {
        return if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        };
    };
    let xml_disks: Vec<_> = devices
        .children()
        .filter(|c| c.has_tag_name("disk"))
        .collect();
    check(
        "disk count",
        config.disks.len().to_string(),
        xml_disks.len().to_string(),
    );
    let ours_by_vdev: BTreeMap<&str, _> =
        config.disks.iter().map(|d| (d.vdev.as_str(), d)).collect();
    for disk in xml_disks {
        let target = attr(disk, "target", "dev").unwrap_or_default();
        let Some(ours) = ours_by_vdev.get(target) else {
            check("disk", "missing".into(), target.into());
            continue;
        };
        let source = disk.children().find(|c| c.has_tag_name("source"));
        let source_text = source.and_then(|s| s.attribute("dev").or_else(|| s.attribute("file")));
        match (source_text, source.and_then(|s| s.attribute("protocol"))) {
            (Some(path), _) => check(
                &format!("disk {target} source"),
                ours.host_path().unwrap_or_default(),
                path.to_string(),
            ),
            (None, Some(protocol)) => {
                let name = source.and_then(|s| s.attribute("name")).unwrap_or_default();
                let prefix = format!("{protocol}:{name}");
                let ok = ours
                    .target
                    .as_deref()
                    .is_some_and(|t| t.starts_with(&prefix));
                check(
                    &format!("disk {target} network source"),
                    ok.to_string(),
                    "true".into(),
                );
            }
            (None, None) => check(
                &format!("disk {target} source"),
                format!("{:?}", ours.target),
                "None".into(),
            ),
        }
        let readonly = disk.children().any(|c| c.has_tag_name("readonly"));
        check(
            &format!("disk {target} readonly"),
            (ours.access == Access::ReadOnly).to_string(),
            readonly.to_string(),
        );
        let cdrom = disk.attribute("device") == Some("cdrom");
        check(
            &format!("disk {target} cdrom"),
            ours.cdrom.to_string(),
            cdrom.to_string(),
        );
    }
    let interfaces: Vec<_> = devices
        .children()
        .filter(|c| c.has_tag_name("interface"))
        .collect();
    check(
        "vif count",
        config.vifs.len().to_string(),
        interfaces.len().to_string(),
    );
    for (index, (iface, ours)) in interfaces.iter().zip(&config.vifs).enumerate() {
        let mac = attr(*iface, "mac", "address")
            .unwrap_or_default()
            .to_ascii_lowercase();
        check(
            &format!("vif[{index}] mac"),
            ours.mac.map(|m| m.to_string()).unwrap_or_default(),
            mac,
        );
        match attr(*iface, "source", "bridge") {
            Some(bridge) => check(
                &format!("vif[{index}] bridge"),
                ours.bridge_name().to_string(),
                bridge.to_string(),
            ),
            None => check(
                &format!("vif[{index}] bridge"),
                format!("{:?}", ours.bridge),
                "None".into(),
            ),
        }
        check(
            &format!("vif[{index}] script"),
            ours.script.clone().unwrap_or_default(),
            attr(*iface, "script", "path")
                .unwrap_or_default()
                .to_string(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
