//! `xm new`, `xm list --state` and `xm autostart` as an admin runs them, on a host without
//! Xen: usage errors exit 2, config errors 1 naming the file, unsupported guests 3, and
//! nothing panics.

use std::path::PathBuf;
use std::process::{Command, Output};

fn xm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xm"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("XM_STATE_DIR", scratch("state"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run xm: {e}"))
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xm-managed-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_usage_of_the_managed_commands_exits_2() {
    for args in [
        &["list", "--state=sleeping"][..],
        &["autostart", "--stop", "--status"],
        &["autostart", "--auto-only"],
        &["autostart", "--parallel", "0"],
        &["autostart", "--timeout", "0"],
        &["new", "x.cfg", "not-a-variable"],
        &["start"],
        &["delete"],
    ] {
        let out = xm(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn xm_new_of_a_broken_config_exits_1_naming_file_and_line() {
    let dir = scratch("broken");
    let cfg = dir.join("broken.cfg");
    std::fs::write(&cfg, "name = 'b'\nmemory = nope\n").expect("write");
    let out = xm(&["new", cfg.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.cfg:2:"), "{}", stderr(&out));
    assert!(!scratch("state").join("managed/b.json").exists());
}

#[test]
fn xm_new_of_an_hvm_guest_exits_3_before_touching_xen() {
    let dir = scratch("hvm");
    let cfg = dir.join("hvm.cfg");
    std::fs::write(&cfg, "name = 'h'\nbuilder = 'hvm'\nmemory = 256\n").expect("write");
    let out = xm(&["new", cfg.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("PV guests only"), "{}", stderr(&out));
}

#[test]
fn autostart_of_a_missing_directory_starts_nothing_and_is_silent_with_quiet() {
    let out = xm(&["autostart", "--quiet", "--dir", "/nonexistent/xen/auto"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn autostart_names_a_config_that_does_not_load_and_exits_1() {
    let dir = scratch("auto");
    std::fs::write(dir.join("a-broken.cfg"), "name = 'x'\nvcpus = \n").expect("write");
    std::fs::write(dir.join(".hidden"), "ignored").expect("write");
    let out = xm(&[
        "autostart",
        "--quiet",
        "--dir",
        dir.to_str().expect("utf-8"),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a-broken.cfg:2:"), "{err}");
    assert!(err.contains("Error: autostart: 1 of 1 failed"), "{err}");
    assert!(!err.contains(".hidden"), "{err}");
    assert!(out.stdout.is_empty(), "--quiet prints only failures");
}

#[test]
fn autostart_removes_the_host_stopping_mark_of_a_previous_stop() {
    let state = scratch("host-stopping");
    let mark = state.join("host-stopping");
    std::fs::write(&mark, "\n").expect("mark written");
    let out = Command::new(env!("CARGO_BIN_EXE_xm"))
        .args(["autostart", "--quiet", "--dir", "/nonexistent/xen/auto"])
        .env_remove("RUST_LOG")
        .env("XM_STATE_DIR", &state)
        .output()
        .unwrap_or_else(|e| panic!("cannot run xm: {e}"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!mark.exists(), "the daemon would still restart no guest");
}
