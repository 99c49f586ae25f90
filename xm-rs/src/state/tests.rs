use super::*;
use crate::test_support::config;

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xm-rs-state-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const UUID: &str = "6a1c2d3e-4f50-4617-8899-aabbccddeeff";

#[test]
fn a_written_record_reads_back_equal_and_leaves_no_temporary_file() {
    let dir = tempdir("rw");
    let state = StateDir::new(&dir);
    let cfg = config("name = 'web'\nmemory = 64\nkernel = '/k'\nvif = ['mac=00:16:3e:00:00:01,bridge=br0']\ncustom = {'a': 1, 2: [3.5, None]}\n");
    let mut record = DomainRecord::new(3, UUID, &cfg, Origin::default());
    record.push_death(Death {
        at: 1.0,
        reason: "reboot".into(),
        domid: 2,
        restarted_as: Some(3),
    });
    state.write(&record).unwrap();
    assert_eq!(state.read(UUID).unwrap(), Some(record.clone()));
    assert_eq!(state.find_by_domid(3), Some(record));
    let names: Vec<String> = std::fs::read_dir(state.domains_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{UUID}.json")]);
    state.remove(UUID).unwrap();
    state.remove(UUID).unwrap();
    assert_eq!(state.read(UUID).unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_records_are_reported_and_skipped() {
    let dir = tempdir("corrupt");
    let state = StateDir::new(&dir);
    let cfg = config("name = 'ok'\nkernel = '/k'\n");
    let good = DomainRecord::new(4, UUID, &cfg, Origin::default());
    state.write(&good).unwrap();
    let domains = state.domains_dir();
    std::fs::write(
        domains.join("11111111-1111-1111-1111-111111111111.json"),
        b"{\"format\": 1, \"domid\": ",
    )
    .unwrap();
    std::fs::write(
        domains.join("22222222-2222-2222-2222-222222222222.json"),
        [0xff, 0xfe, 0x00],
    )
    .unwrap();
    // Well-formed, but named after another domain.
    let mut moved = good.clone();
    moved.uuid = "33333333-3333-3333-3333-333333333333".into();
    std::fs::write(
        domains.join("44444444-4444-4444-4444-444444444444.json"),
        serde_json::to_vec(&moved).unwrap(),
    )
    .unwrap();
    let loaded = state.load_all();
    assert_eq!(loaded.records, vec![good]);
    assert_eq!(loaded.problems.len(), 3, "{:?}", loaded.problems);
    for p in &loaded.problems {
        let text = p.to_string();
        assert!(text.contains("not a domain record"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn record_names_must_be_uuids() {
    let state = StateDir::new(tempdir("uuid"));
    for bad in [
        "../../etc/passwd",
        "",
        "zz",
        "6a1c2d3e-4f50-4617-8899-aabbccddeef/",
    ] {
        assert!(matches!(
            state.record_path(bad),
            Err(StateError::BadUuid(_))
        ));
    }
}

#[test]
fn deaths_are_bounded_and_counted_by_time() {
    let cfg = config("name = 'x'\nkernel = '/k'\n");
    let mut record = DomainRecord::new(1, UUID, &cfg, Origin::default());
    for i in 0..(MAX_DEATHS_KEPT + 10) {
        record.push_death(Death {
            at: i as f64,
            reason: "crash".into(),
            domid: i as u32,
            restarted_as: None,
        });
    }
    assert_eq!(record.deaths.len(), MAX_DEATHS_KEPT);
    assert_eq!(record.deaths[0].at, 10.0);
    assert_eq!(record.deaths_since((MAX_DEATHS_KEPT + 7) as f64), 3);
}

#[test]
fn host_stopping_marker_is_written_seen_and_removed() {
    let scratch = crate::test_support::Scratch::new("host-stopping");
    let state = StateDir::new(scratch.path().join("state"));
    assert!(!state.host_stopping());
    state.mark_host_stopping().unwrap();
    assert!(state.host_stopping());
    assert!(state.host_stopping_path().is_file());
    state.clear_host_stopping().unwrap();
    assert!(!state.host_stopping());
    // clearing twice (a second `xm autostart`) is fine
    state.clear_host_stopping().unwrap();
}

#[test]
fn a_host_stopping_marker_from_another_boot_is_stale() {
    assert!(marker_is_current("b00t-1\n", Some("b00t-1")));
    assert!(!marker_is_current("b00t-1\n", Some("b00t-2")));
    // no boot id when written or now: the marker counts
    assert!(marker_is_current("\n", Some("b00t-2")));
    assert!(marker_is_current("b00t-1\n", None));
}
