//! `xs-conformance [--socket PATH] [FILTER]`: runs the conformance cases against the xenstored
//! listening on PATH (default `$XENSTORED_PATH` or /run/xenstored/socket) and prints
//! `PASS name` / `FAIL name: why` per case and a summary line. Exit status 1 if any case failed.

use std::path::PathBuf;

fn main() {
    let mut socket = xenstore::client::default_socket_path();
    let mut filter = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" | "-s" => match args.next() {
                Some(p) => socket = PathBuf::from(p),
                None => {
                    eprintln!("xs-conformance: --socket needs a path");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: xs-conformance [--socket PATH] [FILTER]");
                return;
            }
            _ => filter = Some(a),
        }
    }
    let results = xenstore::conformance::run_all(&socket, filter.as_deref());
    let mut failed = 0;
    for (name, r) in &results {
        match r {
            Ok(()) => println!("PASS {name}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!(
        "SUMMARY cases={} passed={} failed={failed} socket={}",
        results.len(),
        results.len() - failed,
        socket.display()
    );
    std::process::exit(i32::from(failed > 0));
}
