//! Parse + evaluate + validate time per config: `cargo bench -p xm-rs --bench config_eval`
//! prints a table in microseconds. Under `cargo test` (no `--bench`) it runs each config once
//! as a smoke test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xm_rs::config::eval::{evaluate, EvalOptions, Limits};
use xm_rs::config::host::SandboxHost;
use xm_rs::config::parser::parse;
use xm_rs::config::{load_text, LoadOptions};

fn configs() -> Vec<(String, String)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<PathBuf> = Vec::new();
    for dir in [manifest.join("../configs")] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            paths.extend(
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "cfg")),
            );
        }
    }
    let corpus = std::env::var_os("XM_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../shared/corpus"));
    for name in [
        "xmconfigdata/test-escape-paths.cfg",
        "xlconfigdata/test-fullvirt-vnuma.cfg",
        "xlconfigdata/test-disk-positional-parms-partial.cfg",
        "xen-examples/RELEASE-4.1.6.1/xmexample2",
        "xen-examples/3.3.0-branched/xmexample.hvm",
        "xen-examples/master/xlexample.pvlinux",
    ] {
        let path = corpus.join(name);
        if path.exists() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, text))
        })
        .collect()
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let iterations = if benchmarking { 2000 } else { 1 };
    let host = SandboxHost {
        existing_paths: Vec::new(),
        environment: vec![("HOME".into(), "/root".into())],
        shell_answers: vec![("uname -r".into(), "6.1.0-bench".into())],
    };
    let options = LoadOptions {
        variables: vec![("vmid".into(), "3".into())],
        ..LoadOptions::default()
    };
    let eval_options = EvalOptions {
        limits: Limits::default(),
        allow_shell: true,
        host: &host,
        variables: options.variables.clone(),
        config_path: "bench.cfg".into(),
    };
    println!(
        "{:<44} {:>7} {:>11} {:>11} {:>11}",
        "config (sandboxed shell)", "bytes", "parse µs", "+eval µs", "+model µs"
    );
    for (name, text) in configs() {
        let mut parse_times = Vec::with_capacity(iterations);
        let mut eval_times = Vec::with_capacity(iterations);
        let mut load_times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let parsed = parse(&text);
            parse_times.push(start.elapsed());
            assert!(parsed.is_ok(), "{name} does not parse");
            let start = Instant::now();
            let evaluated = evaluate(&text, &eval_options);
            eval_times.push(start.elapsed());
            assert!(evaluated.is_ok(), "{name} does not evaluate");
            let start = Instant::now();
            let loaded = load_text(Path::new(&name), &text, &options, &host);
            load_times.push(start.elapsed());
            assert!(loaded.is_ok(), "{name} does not load");
        }
        println!(
            "{:<44} {:>7} {:>11.1} {:>11.1} {:>11.1}",
            name,
            text.len(),
            median(parse_times),
            median(eval_times),
            median(load_times)
        );
    }
    if !benchmarking {
        println!("(smoke run; use `cargo bench` for timings)");
    }
}
