//! Every config of the reference corpus (and configs/) survives the trip through a domain
//! record of the state directory unchanged: what the lifecycle daemon restarts a domain from
//! is exactly what `xm create` resolved.

use std::path::{Path, PathBuf};

use xm_rs::config::host::SandboxHost;
use xm_rs::config::{load_text, LoadOptions};
use xm_rs::state::{DomainRecord, Origin, StateDir};

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("XM_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    dir.is_dir().then_some(dir)
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

#[test]
fn every_loadable_config_round_trips_through_a_domain_record() {
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs"),
        &mut files,
    );
    let corpus = corpus_dir();
    match &corpus {
        Some(dir) => walk(dir, &mut files),
        None => assert!(
            std::env::var("XM_CORPUS_OPTIONAL").as_deref() == Ok("1"),
            "the reference corpus is missing; set XM_CORPUS_DIR or XM_CORPUS_OPTIONAL=1"
        ),
    }
    files.sort();
    let root = std::env::temp_dir().join(format!("xm-rs-state-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let state = StateDir::new(&root);
    let host = SandboxHost {
        environment: vec![("HOME".into(), "/root".into())],
        shell_answers: vec![("uname -r".into(), "6.1.0-corpus".into())],
        ..SandboxHost::default()
    };
    let options = LoadOptions {
        variables: vec![("vmid".into(), "3".into())],
        ..LoadOptions::default()
    };
    let mut round_tripped = 0;
    let mut with_other_settings = 0;
    for (index, path) in files.iter().enumerate() {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        // Files that are not domain configs (or fail) are corpus.rs's business.
        let Ok(loaded) = load_text(path, &text, &options, &host) else {
            continue;
        };
        let uuid = format!("00000000-0000-4000-8000-{index:012x}");
        let record = DomainRecord::new(
            7,
            &uuid,
            &loaded.config,
            Origin {
                by: "test".into(),
                config_path: Some(path.clone()),
            },
        );
        state.write(&record).unwrap();
        let back = state.read(&uuid).unwrap().expect("record just written");
        assert_eq!(back, record, "{} did not round-trip", path.display());
        if !loaded.config.other_settings.is_empty() {
            with_other_settings += 1;
        }
        round_tripped += 1;
    }
    let _ = std::fs::remove_dir_all(&root);
    let least = if corpus.is_some() { 100 } else { 3 };
    assert!(
        round_tripped >= least,
        "only {round_tripped} configs round-tripped"
    );
    if corpus.is_some() {
        assert!(
            with_other_settings > 0,
            "no config exercised other_settings"
        );
    }
    eprintln!("{round_tripped} configs round-tripped ({with_other_settings} with other settings)");
}
