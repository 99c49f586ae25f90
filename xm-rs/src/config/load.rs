//! Finding, reading, evaluating and validating a domain config: the entry point the CLI and
//! the daemon share.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, LangError};
use super::eval::{evaluate, EvalOptions, Evaluation, Limits, Variable};
use super::host::Host;
use super::lint::{lint, Lint};
use super::model::{Builder, DomainConfig, Finding};
use super::source::{Diagnostic, Severity, SourceFile, Span};

/// Config files larger than this are refused before reading them whole.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// xm's default search path.
pub const DEFAULT_SEARCH_PATH: &str = ".:/etc/xen";

/// How to load a config.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Directories searched for a config name (xm's `--path`).
    pub search_path: Vec<PathBuf>,
    /// `NAME=VALUE` variables from the command line.
    pub variables: Vec<(String, String)>,
    /// Whether `commands.getoutput` may run shell commands.
    pub allow_shell: bool,
    pub limits: Limits,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            search_path: split_search_path(DEFAULT_SEARCH_PATH),
            variables: Vec::new(),
            allow_shell: true,
            limits: Limits::default(),
        }
    }
}

pub fn split_search_path(path: &str) -> Vec<PathBuf> {
    path.split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Parses `NAME=VALUE` (whitespace around both is dropped, as xm did).
pub fn parse_variable(text: &str) -> Result<(String, String), ConfigError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| ConfigError::BadVariable(text.to_string()))?;
    let name = name.trim();
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
    if !valid {
        return Err(ConfigError::BadVariable(text.to_string()));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// A loaded, valid config.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub path: PathBuf,
    pub source: SourceFile,
    pub config: DomainConfig,
    pub evaluation: Evaluation,
    /// Warnings and notes, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

/// Finds `name` as given, then in each search directory (xm's order).
pub fn find_config(name: &str, search_path: &[PathBuf]) -> Result<PathBuf, ConfigError> {
    let given = PathBuf::from(name);
    let mut candidates = vec![given.clone()];
    if !given.is_absolute() {
        candidates.extend(search_path.iter().map(|dir| dir.join(name)));
    }
    for candidate in &candidates {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(ConfigError::NotFound {
        name: name.to_string(),
        searched: candidates,
    })
}

/// Reads a config file as UTF-8 text, refusing huge files.
pub fn read_config(path: &Path) -> Result<String, ConfigError> {
    let metadata = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })
}

/// Finds, reads and loads a config by name or path.
pub fn load(
    name: &str,
    options: &LoadOptions,
    host: &dyn Host,
) -> Result<LoadedConfig, ConfigError> {
    let path = find_config(name, &options.search_path)?;
    let text = read_config(&path)?;
    tracing::debug!(path = %path.display(), bytes = text.len(), "loading config");
    load_text(&path, &text, options, host)
}

/// Loads config text (named `path` in messages).
pub fn load_text(
    path: &Path,
    text: &str,
    options: &LoadOptions,
    host: &dyn Host,
) -> Result<LoadedConfig, ConfigError> {
    let source = SourceFile::new(path.display().to_string(), text);
    let lang_error = |e: LangError| {
        ConfigError::located(source.diagnostic(Severity::Error, e.span, e.kind.to_string()))
    };
    let eval_options = EvalOptions {
        limits: options.limits,
        allow_shell: options.allow_shell,
        host,
        variables: options.variables.clone(),
        config_path: path.display().to_string(),
    };
    let evaluation = evaluate(text, &eval_options).map_err(lang_error)?;
    let (config, errors, warnings) = Builder::new(&evaluation).build();
    let locate = |severity: Severity, finding: &Finding| {
        locate_finding(&source, &evaluation, severity, finding)
    };
    let mut diagnostics: Vec<Diagnostic> = warnings
        .iter()
        .map(|w| locate(Severity::Warning, w))
        .collect();
    let Some(config) = config else {
        let errors = errors.iter().map(|e| locate(Severity::Error, e)).collect();
        return Err(ConfigError::Invalid {
            errors,
            warnings: diagnostics,
        });
    };
    for item in lint(&config, host) {
        diagnostics.push(match item {
            Lint::Warning(f) => locate(Severity::Warning, &f),
            Lint::Note(f) => locate(Severity::Note, &f),
        });
    }
    for line in &evaluation.printed {
        diagnostics.push(source.diagnostic(
            Severity::Note,
            Span::default(),
            format!("the config printed: {line}"),
        ));
    }
    diagnostics.sort_by_key(|d| (d.file != source.name(), d.line, d.col));
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        source,
        config,
        evaluation,
        diagnostics,
    })
}

/// Places a finding at the key's last top-level assignment, or on the command line.
fn locate_finding(
    source: &SourceFile,
    evaluation: &Evaluation,
    severity: Severity,
    finding: &Finding,
) -> Diagnostic {
    let variable = finding.key.as_deref().and_then(|k| evaluation.get(k));
    match variable {
        Some(v) if v.from_command_line => {
            let shown = match &v.value {
                super::value::ConfigValue::Str(s) => s.clone(),
                other => other.render(),
            };
            Diagnostic {
                severity,
                file: "<command line>".into(),
                line: 1,
                col: 1,
                message: finding.message.clone(),
                source_line: format!("{}={shown}", v.name),
            }
        }
        Some(Variable {
            assigned_at: Some(span),
            ..
        }) => source.diagnostic(severity, *span, finding.message.clone()),
        _ => source.diagnostic(severity, Span::default(), finding.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::host::SandboxHost;

    fn load_ok(text: &str) -> LoadedConfig {
        load_text(
            Path::new("t.cfg"),
            text,
            &LoadOptions::default(),
            &SandboxHost::default(),
        )
        .unwrap_or_else(|e| panic!("load failed: {e}"))
    }

    fn load_err(text: &str) -> ConfigError {
        match load_text(
            Path::new("t.cfg"),
            text,
            &LoadOptions::default(),
            &SandboxHost::default(),
        ) {
            Ok(c) => panic!("expected failure, got {:?}", c.config),
            Err(e) => e,
        }
    }

    #[test]
    fn variables_must_be_name_equals_value() {
        assert_eq!(
            parse_variable(" vmid = 3 ").ok(),
            Some(("vmid".into(), "3".into()))
        );
        assert_eq!(
            parse_variable("extra=a=b").ok(),
            Some(("extra".into(), "a=b".into()))
        );
        assert!(parse_variable("novalue").is_err());
        assert!(parse_variable("1x=2").is_err());
    }

    #[test]
    fn syntax_error_is_located_with_line_and_caret() {
        let err = load_err("name = 'a'\nmemory = 512 +\n");
        let text = err.to_string();
        assert!(
            text.starts_with("t.cfg:2:15: expected an expression"),
            "{text}"
        );
        assert!(text.contains("\n    memory = 512 +\n"), "{text}");
    }

    #[test]
    fn validation_error_points_at_the_assignment() {
        let err = load_err("name = 'a'\nkernel = '/k'\nmemory = 'lots'\n");
        let text = err.to_string();
        assert!(
            text.starts_with("t.cfg:3:1: memory must be a whole number"),
            "{text}"
        );
    }

    #[test]
    fn missing_name_and_kernel_are_errors() {
        let text = load_err("memory = 64\n").to_string();
        assert!(text.contains("no name set"), "{text}");
        assert!(text.contains("needs kernel"), "{text}");
    }

    #[test]
    fn memory_strings_maxmem_and_vcpu_avail() {
        let c =
            load_ok("name='a'\nkernel='/k'\nmemory='512'\nmaxmem=1024\nvcpus=4\nvcpu_avail=3\n")
                .config;
        assert_eq!(
            (c.memory_mb, c.maxmem_mb, c.vcpus, c.max_vcpus),
            (512, 1024, 2, 4)
        );
        let loaded = load_ok("name='a'\nkernel='/k'\nmemory=512\nmaxmem=256\n");
        assert_eq!(loaded.config.maxmem_mb, 512);
        assert!(loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("maxmem (256 MB) is below memory")));
    }

    #[test]
    fn uuid_with_or_without_dashes() {
        let c = load_ok("name='a'\nkernel='/k'\nuuid='C7A5FDB2CDAF9455926AD65C16DB1809'\n").config;
        assert_eq!(
            c.uuid.as_deref(),
            Some("c7a5fdb2-cdaf-9455-926a-d65c16db1809")
        );
        assert!(load_err("name='a'\nkernel='/k'\nuuid='c7a5'\n")
            .to_string()
            .contains("not 32 hex digits"));
    }

    #[test]
    fn cmdline_precedence() {
        let c =
            load_ok("name='a'\nkernel='/k'\nroot='/dev/xvda1 ro'\nextra='console=hvc0'\n").config;
        assert_eq!(
            c.cmdline.as_deref(),
            Some("root=/dev/xvda1 ro console=hvc0")
        );
        let loaded = load_ok("name='a'\nkernel='/k'\ncmdline='quiet'\nroot='/dev/x'\nextra='y'\n");
        assert_eq!(loaded.config.cmdline.as_deref(), Some("quiet"));
        assert!(loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("ignored because cmdline is set")));
        let c = load_ok("name='a'\nkernel='/k'\nroot='root=/dev/x'\n").config;
        assert_eq!(c.cmdline.as_deref(), Some("root=/dev/x"));
        let c = load_ok("name='a'\nkernel='/k'\nip='10.0.0.2'\ngateway='10.0.0.1'\nnetmask='255.0.0.0'\nhostname='h'\n").config;
        assert_eq!(
            c.cmdline.as_deref(),
            Some("ip=10.0.0.2:127.0.255.255:10.0.0.1:255.0.0.0:h:eth0:off")
        );
    }

    #[test]
    fn cpus_in_all_forms() {
        use crate::config::devices::CpuAffinity;
        let c = load_ok("name='a'\nkernel='/k'\ncpus='0-3,5,^1'\n").config;
        assert!(matches!(c.cpus, Some(CpuAffinity::AllVcpus(ref s)) if s.render() == "0-3,5,^1"));
        let c = load_ok("name='a'\nkernel='/k'\nvcpus=2\ncpus=['2', '3-8,^5']\n").config;
        assert!(matches!(c.cpus, Some(CpuAffinity::PerVcpu(ref v)) if v.len() == 2));
        let c = load_ok("name='a'\nkernel='/k'\ncpus=3\n").config;
        assert!(matches!(c.cpus, Some(CpuAffinity::AllVcpus(_))));
        assert!(load_err("name='a'\nkernel='/k'\ncpus='9-1'\n")
            .to_string()
            .contains("backwards"));
    }

    #[test]
    fn actions_and_their_errors() {
        let c = load_ok(
            "name='a'\nkernel='/k'\non_crash='coredump-restart'\non_reboot='rename-restart'\n",
        )
        .config;
        assert_eq!(
            (c.on_poweroff.name(), c.on_reboot.name(), c.on_crash.name()),
            ("destroy", "rename-restart", "coredump-restart")
        );
        assert!(load_err("name='a'\nkernel='/k'\non_crash='restrat'\n")
            .to_string()
            .contains("did you mean restart?"));
    }

    #[test]
    fn type_and_builder() {
        use crate::config::model::GuestType;
        assert_eq!(
            load_ok("name='a'\nbuilder='hvm'\n").config.guest_type,
            GuestType::Hvm
        );
        assert_eq!(
            load_ok("name='a'\ntype='pvh'\nkernel='/k'\n")
                .config
                .guest_type,
            GuestType::Pvh
        );
        assert!(load_err("name='a'\ntype='pv'\nbuilder='hvm'\n")
            .to_string()
            .contains("keep one of them"));
    }

    #[test]
    fn unknown_key_warns_with_nearest_known_key() {
        let loaded = load_ok("name='a'\nkernel='/k'\nmemmory=512\n");
        let warning = loaded
            .diagnostics
            .iter()
            .find(|d| d.message.contains("memmory"))
            .map(|d| d.headline());
        assert_eq!(
            warning.as_deref(),
            Some(
                "t.cfg:3:1: warning: unknown setting `memmory` is ignored (did you mean `memory`?)"
            )
        );
    }

    #[test]
    fn helper_variables_are_not_unknown_keys() {
        let loaded = load_ok("v = '6.1'\nname='a'\nkernel='/boot/vmlinuz-' + v\n");
        assert!(!loaded
            .diagnostics
            .iter()
            .any(|d| d.message.contains("unknown setting")));
    }

    #[test]
    fn duplicate_vdevs_are_refused() {
        let err =
            load_err("name='a'\nkernel='/k'\ndisk=['phy:/dev/a,xvda,w', 'phy:/dev/b,xvda,w']\n")
                .to_string();
        assert!(err.contains("both use guest device xvda"), "{err}");
    }

    #[test]
    fn bad_device_specs_name_the_entry() {
        let err = load_err("name='a'\nkernel='/k'\nvif=['bridge=xenbr0', 'mac=zz']\n").to_string();
        assert!(err.contains("vif[1] \"mac=zz\""), "{err}");
    }

    #[test]
    fn command_line_errors_show_the_variable() {
        let options = LoadOptions {
            variables: vec![("memory".into(), "lots".into())],
            ..LoadOptions::default()
        };
        let err = load_text(
            Path::new("t.cfg"),
            "name='a'\nkernel='/k'\n",
            &options,
            &SandboxHost::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.starts_with("<command line>:1:1: memory must be a whole number"),
            "{err}"
        );
        assert!(err.contains("memory=lots"), "{err}");
    }

    #[test]
    fn config_search_path_is_searched_in_order() {
        let dir = std::env::temp_dir().join(format!("xm-rs-search-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("vm1.cfg"), "name='vm1'\nkernel='/k'\n");
        let found = find_config("vm1.cfg", &[PathBuf::from("/nonexistent"), dir.clone()]);
        assert_eq!(found.ok(), Some(dir.join("vm1.cfg")));
        let missing = find_config("nope.cfg", std::slice::from_ref(&dir));
        assert!(
            matches!(missing, Err(ConfigError::NotFound { ref searched, .. }) if searched.len() == 2)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
