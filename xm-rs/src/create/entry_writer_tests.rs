//! Writing a layout with fewer requests must leave xenstore exactly as writing every value
//! and every permission would.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use toolstack::layout::{domain_layout, vbd_layout, DomainRecord, Layout, Perms, VbdRecord};

use super::real::{write_entries_with, EntryWriter};

/// xenstore's node rules in memory: writing a missing node creates it and any missing
/// parents, each inheriting its parent's permissions; rewriting keeps them.
struct ModelStore {
    nodes: RefCell<BTreeMap<String, (String, Perms)>>,
    requests: Cell<usize>,
}

impl ModelStore {
    fn new() -> ModelStore {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), (String::new(), Perms::private(0)));
        ModelStore {
            nodes: RefCell::new(nodes),
            requests: Cell::new(0),
        }
    }

    fn perms(&self, path: &str) -> Option<Perms> {
        self.nodes.borrow().get(path).map(|(_, p)| p.clone())
    }
}

impl EntryWriter for ModelStore {
    type Error = String;

    fn exists(&self, path: &str) -> Result<bool, String> {
        self.requests.set(self.requests.get() + 1);
        Ok(self.nodes.borrow().contains_key(path))
    }

    fn write(&self, path: &str, value: &str) -> Result<(), String> {
        self.requests.set(self.requests.get() + 1);
        let mut nodes = self.nodes.borrow_mut();
        let mut prefix = String::new();
        let mut inherited = nodes["/"].1.clone();
        for part in path.trim_start_matches('/').split('/') {
            prefix = format!("{prefix}/{part}");
            let node = nodes
                .entry(prefix.clone())
                .or_insert_with(|| (String::new(), inherited.clone()));
            inherited = node.1.clone();
        }
        nodes.get_mut(path).ok_or("written")?.0 = value.to_string();
        Ok(())
    }

    fn set_perms(&self, path: &str, perms: &Perms) -> Result<(), String> {
        self.requests.set(self.requests.get() + 1);
        let mut nodes = self.nodes.borrow_mut();
        nodes.get_mut(path).ok_or(format!("{path}: ENOENT"))?.1 = perms.clone();
        Ok(())
    }
}

fn layout(domid: u32) -> Layout {
    let mut layout = domain_layout(&DomainRecord {
        domid,
        name: "guest",
        uuid: "6f0f3b8e-1d2c-4c1a-9b7e-000000000001",
        vcpus: 2,
        max_vcpus: 2,
        max_memory_kib: 131_072,
        target_memory_kib: 131_072,
        kernel: "/boot/vmlinuz",
        ramdisk: None,
        cmdline: "quiet",
        store_port: 1,
        store_mfn: 0x1234,
        start_time: "1.00",
    });
    vbd_layout(
        &mut layout,
        domid,
        &VbdRecord {
            devid: 51712,
            vdev: "xvda",
            params: "/dev/loop0",
            node: "/dev/loop0",
            physical_device: "7:0".to_string(),
            writable: true,
            cdrom: false,
            bootable: true,
        },
    );
    layout
}

fn assert_as_written(store: &ModelStore, layout: &Layout) {
    for entry in &layout.entries {
        assert_eq!(
            store.perms(&entry.path).as_ref(),
            Some(&entry.perms),
            "{}",
            entry.path
        );
        assert_eq!(store.nodes.borrow()[&entry.path].0, entry.value);
    }
}

#[test]
fn a_fresh_layout_gets_every_permission_in_far_fewer_requests() {
    let store = ModelStore::new();
    let layout = layout(7);
    write_entries_with(&store, &layout.entries).expect("written");
    assert_as_written(&store, &layout);
    let naive = 2 * layout.entries.len();
    assert!(
        store.requests.get() * 3 < naive * 2,
        "{} requests for {} entries",
        store.requests.get(),
        layout.entries.len()
    );
}

#[test]
fn nodes_left_over_with_other_permissions_are_corrected() {
    let store = ModelStore::new();
    // A dead domain's leftovers, owned by someone else, below nodes the layout writes.
    for path in [
        "/local/domain/7/name",
        "/local/domain/7/device/vbd/51712/state",
    ] {
        store.write(path, "stale").expect("stale");
        store.set_perms(path, &Perms::private(42)).expect("stale");
    }
    store
        .set_perms("/local/domain/7", &Perms::private(42))
        .expect("stale");
    let layout = layout(7);
    write_entries_with(&store, &layout.entries).expect("written");
    assert_as_written(&store, &layout);
}
