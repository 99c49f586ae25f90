//! The conformance suite (the same cases `xs-conformance` runs in the lab against Debian's C
//! xenstored) against our daemon on a private socket.

mod common;

#[test]
fn our_daemon_passes_every_conformance_case() {
    let mut daemon = common::Daemon::start(&[]);
    let results = xenstore::conformance::run_all(&daemon.socket, None);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    assert_eq!(results.len(), xenstore::conformance::CASES.len());
    assert!(
        failures.is_empty(),
        "failed cases:\n{}",
        failures.join("\n")
    );
    assert!(daemon.is_running(), "daemon died during the suite");
}

#[test]
fn conformance_binary_prints_pass_lines_and_summary() {
    let daemon = common::Daemon::start(&[]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xs-conformance"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("transaction")
        .output()
        .expect("run xs-conformance");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "PASS transaction_conflict_on_read_node_is_eagain"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("SUMMARY ") && l.contains("failed=0")),
        "{text}"
    );
}

#[test]
fn client_serves_code_written_against_the_xenstore_rs_trait() {
    use xenstore_rs::Xs;
    let daemon = common::Daemon::start(&[]);
    let client = xenstore::Client::connect(&daemon.socket).expect("connect");
    let xs: &dyn Xs = &client;
    xs.write("/trait/a", "1")
        .expect("write through the xenstore-rs trait");
    assert_eq!(&*xs.read("/trait/a").expect("read"), "1");
    assert_eq!(xs.directory("/trait").expect("directory"), vec!["a".into()]);
    xs.rm("/trait").expect("rm");
    let err = xs.read("/trait/a").expect_err("removed");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}
