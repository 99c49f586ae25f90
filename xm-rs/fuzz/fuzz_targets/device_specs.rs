//! Any string as a disk, vif, vfb or pci spec, or as a cpu list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xm_rs::config::devices::{parse_pci, parse_vfb, parse_vif, CpuSet};
use xm_rs::config::disk::{parse_disk, vdev_number};

fuzz_target!(|text: &str| {
    let _ = parse_disk(text).map(|d| d.host_path());
    let _ = vdev_number(text);
    let _ = parse_vif(text);
    let _ = parse_vfb(text);
    let _ = parse_pci(text);
    let _ = text.parse::<CpuSet>().map(|s| s.render());
});
