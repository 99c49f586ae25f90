//! The vcpu, scheduler and device commands and `xm generate` as an admin runs them, on a
//! host without Xen: usage errors name the argument with exit 2, the rest fail cleanly.

use std::process::{Command, Output};

fn xm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xm"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run xm: {e}"))
}

#[test]
fn malformed_arguments_are_usage_errors_naming_the_argument() {
    for (args, named) in [
        (&["vcpu-set", "x", "two"][..], "VCPUS"),
        (&["vcpu-pin", "x", "0"], "CPUS"),
        (&["sched-credit", "-d", "x", "-w", "0"], "--weight"),
        (&["sched-credit", "-d", "x", "-c", "70000"], "--cap"),
        (&["block-attach", "x"], "DISK"),
        (&["network-detach", "x"], "DEVICE"),
        (&["block-list", "-l", "--json", "x"], "--json"),
        (&["generate", "completion", "powershell"], "powershell"),
    ] {
        let out = xm(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn without_xen_the_new_commands_fail_with_an_error_line_and_exit_1() {
    if std::path::Path::new("/dev/xen/privcmd").exists() {
        eprintln!("skipped: this host runs Xen");
        return;
    }
    for args in [
        &["vcpu-list"][..],
        &["sched-credit"],
        &["block-list", "x"],
        &["network-attach", "x", "bridge=xenbr0"],
    ] {
        let out = xm(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("Error: cannot open the Xen control")),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn generate_writes_man_pages_and_completions() {
    let dir = std::env::temp_dir().join(format!("xm-man-{}", std::process::id()));
    let out = xm(&["generate", "man", dir.to_str().unwrap_or("/nonexistent")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for page in [
        "xm.1",
        "xm-vcpu-list.1",
        "xm-block-attach.1",
        "xm-sched-credit.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    for shell in ["bash", "zsh", "fish"] {
        let out = xm(&["generate", "completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("network-attach"),
            "{shell}"
        );
    }
    // hidden from the help an operator reads
    let help = String::from_utf8_lossy(&xm(&["help"]).stdout).into_owned();
    assert!(
        !help.contains("generate") && help.contains("vcpu-pin"),
        "{help}"
    );
}
