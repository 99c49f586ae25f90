//! Any bytes as a config file: lexer, parser, evaluator, typed model and lints must return
//! a value or an error, never panic, hang or run away with memory.
#![no_main]

use std::path::Path;
use std::time::Duration;

use libfuzzer_sys::{fuzz_target, Corpus};
use xm_rs::config::eval::Limits;
use xm_rs::config::host::SandboxHost;
use xm_rs::config::{load_text, LoadOptions};

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else { return Corpus::Reject };
    let host = SandboxHost {
        existing_paths: vec!["/boot/vmlinuz".into()],
        environment: vec![("HOME".into(), "/root".into())],
        shell_answers: vec![("uname -r".into(), "6.1.0".into())],
    };
    let options = LoadOptions {
        search_path: Vec::new(),
        variables: vec![("vmid".into(), "3".into())],
        allow_shell: true,
        limits: Limits { max_steps: 20_000, max_bytes: 4 << 20, max_call_depth: 20, shell_timeout: Duration::from_secs(1) },
    };
    match load_text(Path::new("fuzz.cfg"), text, &options, &host) {
        Ok(loaded) => {
            // Rendering must not panic either.
            let _ = serde_json::to_string(&loaded.config);
            Corpus::Keep
        }
        Err(e) => {
            let _ = e.to_string();
            Corpus::Keep
        }
    }
});
