//! The xenstore layout of a PV domain and its devices, as libxl (xl's library) writes it.
//!
//! Writing the same paths, values and permissions as libxl is what lets Debian's `xl list`,
//! `xl console`, `xl shutdown` and `xl destroy` act on domains xm-rs created, and lets the
//! kernel's xenbus drivers (blkfront/blkback, netfront/netback) and xenconsoled find each
//! other. The reference is a capture of a running xl guest
//! (../shared/lab-recipe/xenstore-while-guest-running.txt) and libxl's `libxl_create.c`,
//! `libxl_device.c` and `libxl_console.c`.

use serde::Serialize;

/// Who may do what with a node, in xenstore's model: the owner may do anything; `others`
/// applies to every domain not in `acl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Perms {
    pub owner: u32,
    pub others: Access,
    pub acl: Vec<(u32, Access)>,
}

/// One permission letter of xenstore's wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Access {
    None,
    Read,
    Write,
    Both,
}

impl Access {
    fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
}

impl Perms {
    /// Owned by `owner`, nobody else may read.
    pub fn private(owner: u32) -> Self {
        Perms {
            owner,
            others: Access::None,
            acl: Vec::new(),
        }
    }
    /// Owned by `owner`, readable by `reader`.
    pub fn readable_by(owner: u32, reader: u32) -> Self {
        Perms {
            owner,
            others: Access::None,
            acl: vec![(reader, Access::Read)],
        }
    }
    /// The XS_SET_PERMS argument list: `["n0", "r5"]` — owner first, its letter the access
    /// of everybody else, then the ACL entries.
    pub fn to_wire(&self) -> Vec<String> {
        let mut out = vec![format!("{}{}", self.others.letter(), self.owner)];
        out.extend(self.acl.iter().map(|(d, a)| format!("{}{}", a.letter(), d)));
        out
    }
}

/// One node to create: path, value and permissions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct XsEntry {
    pub path: String,
    pub value: String,
    pub perms: Perms,
}

/// The backend domain of every device we create: dom0.
pub const BACKEND_DOMID: u32 = 0;

/// What the domain-wide part of the layout needs to know.
#[derive(Clone, Debug)]
pub struct DomainRecord<'a> {
    pub domid: u32,
    pub name: &'a str,
    /// Canonical, with dashes.
    pub uuid: &'a str,
    pub vcpus: u32,
    pub max_vcpus: u32,
    /// static-max and target, KiB.
    pub max_memory_kib: u64,
    pub target_memory_kib: u64,
    pub kernel: &'a str,
    pub ramdisk: Option<&'a str>,
    pub cmdline: &'a str,
    pub store_port: u32,
    pub store_mfn: u64,
    /// Seconds since the epoch, with hundredths, as libxl writes it.
    pub start_time: &'a str,
}

/// Collects entries in creation order (parents before children).
#[derive(Debug, Default)]
pub struct Layout {
    pub entries: Vec<XsEntry>,
}

impl Layout {
    fn put(&mut self, path: String, value: impl Into<String>, perms: &Perms) {
        self.entries.push(XsEntry {
            path,
            value: value.into(),
            perms: perms.clone(),
        });
    }

    /// The value written at `path`, if any (for tests and for rollback bookkeeping).
    pub fn get(&self, path: &str) -> Option<&XsEntry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

pub fn dom_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// The domain's own nodes, `/vm/UUID` and `/libxl/N`, like `libxl__domain_make` and
/// `libxl__build_post` write them.
pub fn domain_layout(d: &DomainRecord<'_>) -> Layout {
    let mut l = Layout::default();
    let dp = dom_path(d.domid);
    let vm = format!("/vm/{}", d.uuid);
    // roperm: dom0 owns, the guest may read; rwperm: the guest owns (it writes there)
    let ro = Perms::readable_by(0, d.domid);
    let rw = Perms::private(d.domid);
    let dom0_only = Perms::private(0);

    l.put(dp.clone(), "", &ro);
    l.put(format!("{dp}/vm"), vm.clone(), &ro);
    l.put(format!("{dp}/name"), d.name, &ro);
    l.put(format!("{dp}/domid"), d.domid.to_string(), &ro);
    l.put(format!("{dp}/cpu"), "", &ro);
    for cpu in 0..d.max_vcpus {
        let avail = if cpu < d.vcpus { "online" } else { "offline" };
        l.put(format!("{dp}/cpu/{cpu}"), "", &ro);
        l.put(format!("{dp}/cpu/{cpu}/availability"), avail, &ro);
    }
    l.put(format!("{dp}/memory"), "", &ro);
    l.put(
        format!("{dp}/memory/static-max"),
        d.max_memory_kib.to_string(),
        &ro,
    );
    l.put(
        format!("{dp}/memory/target"),
        d.target_memory_kib.to_string(),
        &ro,
    );
    l.put(format!("{dp}/memory/videoram"), "0", &ro);
    l.put(format!("{dp}/device"), "", &ro);
    l.put(format!("{dp}/device/suspend"), "", &ro);
    l.put(format!("{dp}/device/suspend/event-channel"), "", &rw);
    l.put(format!("{dp}/control"), "", &ro);
    for node in [
        "shutdown",
        "feature-poweroff",
        "feature-reboot",
        "feature-suspend",
        "sysrq",
    ] {
        l.put(format!("{dp}/control/{node}"), "", &rw);
    }
    l.put(
        format!("{dp}/control/platform-feature-multiprocessor-suspend"),
        "1",
        &ro,
    );
    l.put(
        format!("{dp}/control/platform-feature-xs_reset_watches"),
        "1",
        &ro,
    );
    for node in ["data", "drivers", "feature", "attr", "error"] {
        l.put(format!("{dp}/{node}"), "", &rw);
    }
    l.put(format!("{dp}/store"), "", &ro);
    l.put(format!("{dp}/store/port"), d.store_port.to_string(), &ro);
    l.put(format!("{dp}/store/ring-ref"), d.store_mfn.to_string(), &ro);

    l.put(vm.clone(), "", &ro);
    l.put(format!("{vm}/name"), d.name, &ro);
    l.put(format!("{vm}/uuid"), d.uuid, &ro);
    l.put(format!("{vm}/image"), "", &ro);
    l.put(format!("{vm}/image/ostype"), "linux", &ro);
    l.put(format!("{vm}/image/kernel"), d.kernel, &ro);
    if let Some(rd) = d.ramdisk {
        l.put(format!("{vm}/image/ramdisk"), rd, &ro);
    }
    l.put(format!("{vm}/image/cmdline"), d.cmdline, &ro);
    l.put(format!("{vm}/start_time"), d.start_time, &ro);

    let lx = format!("/libxl/{}", d.domid);
    l.put(lx.clone(), "", &dom0_only);
    l.put(format!("{lx}/type"), "pv", &dom0_only);
    l.put(format!("{lx}/dm-version"), "qemu_xen", &dom0_only);
    l
}

/// A device's three homes: the guest's frontend, dom0's backend, and libxl's own copy of the
/// backend settings under `/libxl/N/device` (what `xl block-list` and friends read).
struct DevicePaths {
    frontend: String,
    backend: String,
    libxl: String,
}

fn device_paths(domid: u32, kind: &str, devid: u32, frontend: Option<String>) -> DevicePaths {
    DevicePaths {
        frontend: frontend.unwrap_or_else(|| format!("{}/device/{kind}/{devid}", dom_path(domid))),
        backend: format!("{}/backend/{kind}/{domid}/{devid}", dom_path(BACKEND_DOMID)),
        libxl: format!("/libxl/{domid}/device/{kind}/{devid}"),
    }
}

/// Writes a device like `libxl__device_generic_add`: the frontend directory owned by the
/// guest and readable by the backend, the backend directory owned by dom0 and readable by the
/// guest, both with `state = 1` (Initialising), plus libxl's copy of the backend entries.
fn add_device(
    l: &mut Layout,
    domid: u32,
    paths: &DevicePaths,
    frontend: &[(&str, String)],
    backend: &[(&str, String)],
) {
    let fe_perms = Perms::readable_by(domid, BACKEND_DOMID);
    let be_perms = Perms::readable_by(BACKEND_DOMID, domid);
    let libxl_perms = Perms::private(0);

    l.put(paths.frontend.clone(), "", &fe_perms);
    l.put(
        format!("{}/backend", paths.frontend),
        paths.backend.clone(),
        &fe_perms,
    );
    l.put(
        format!("{}/backend-id", paths.frontend),
        BACKEND_DOMID.to_string(),
        &fe_perms,
    );
    l.put(format!("{}/state", paths.frontend), "1", &fe_perms);
    for (k, v) in frontend {
        l.put(format!("{}/{k}", paths.frontend), v.clone(), &fe_perms);
    }

    let common = [
        ("frontend", paths.frontend.clone()),
        ("frontend-id", domid.to_string()),
        ("online", "1".to_string()),
        ("state", "1".to_string()),
    ];
    l.put(paths.backend.clone(), "", &be_perms);
    l.put(paths.libxl.clone(), "", &libxl_perms);
    l.put(
        format!("{}/backend", paths.libxl),
        paths.backend.clone(),
        &libxl_perms,
    );
    for (k, v) in common.iter().chain(backend.iter()) {
        l.put(format!("{}/{k}", paths.backend), v.clone(), &be_perms);
        l.put(format!("{}/{k}", paths.libxl), v.clone(), &libxl_perms);
    }
}

/// A virtual block device as blkback and blkfront expect it.
#[derive(Clone, Debug)]
pub struct VbdRecord<'a> {
    /// The xenstore device number of the virtual device (xvda = 51712).
    pub devid: u32,
    /// The guest-visible name as written in the config (`xvda1`).
    pub vdev: &'a str,
    /// What the config named (the LV, the image file): `params`.
    pub params: &'a str,
    /// The block device blkback opens (the LV itself, or our loop device).
    pub node: &'a str,
    /// `major:minor` in hex, as blkback reads `physical-device`.
    pub physical_device: String,
    pub writable: bool,
    pub cdrom: bool,
    pub bootable: bool,
}

pub fn vbd_layout(l: &mut Layout, domid: u32, v: &VbdRecord<'_>) {
    let paths = device_paths(domid, "vbd", v.devid, None);
    let device_type = if v.cdrom { "cdrom" } else { "disk" };
    let frontend = [
        ("virtual-device", v.devid.to_string()),
        ("device-type", device_type.to_string()),
        ("trusted", "1".to_string()),
        ("protocol", "x86_64-abi".to_string()),
    ];
    let backend = [
        ("params", v.params.to_string()),
        ("removable", u8::from(v.cdrom).to_string()),
        ("bootable", u8::from(v.bootable).to_string()),
        ("dev", v.vdev.to_string()),
        ("type", "phy".to_string()),
        ("mode", if v.writable { "w" } else { "r" }.to_string()),
        ("device-type", device_type.to_string()),
        ("discard-enable", u8::from(v.writable).to_string()),
        ("specification", "xen".to_string()),
        // what the block hotplug script would have written: we did its work in-process
        ("node", v.node.to_string()),
        ("physical-device", v.physical_device.clone()),
        ("physical-device-path", v.node.to_string()),
        ("hotplug-status", "connected".to_string()),
    ];
    add_device(l, domid, &paths, &frontend, &backend);
}

/// A network interface as netback and netfront expect it.
#[derive(Clone, Debug)]
pub struct VifRecord<'a> {
    pub devid: u32,
    pub mac: &'a str,
    pub bridge: &'a str,
    /// The hotplug script, when the config names one; None when we attach in-process.
    pub script: Option<&'a str>,
    pub ip: Option<&'a str>,
    /// `vifname=`; netback names the netdev `vif<domid>.<devid>` and we rename it.
    pub vifname: Option<&'a str>,
    /// `rate=` as libxl stores it: `"<bytes>,<usecs>"`.
    pub rate: Option<String>,
}

pub fn vif_layout(l: &mut Layout, domid: u32, v: &VifRecord<'_>) {
    let paths = device_paths(domid, "vif", v.devid, None);
    let frontend = [
        ("handle", v.devid.to_string()),
        ("mac", v.mac.to_string()),
        ("trusted", "1".to_string()),
        ("mtu", "1500".to_string()),
    ];
    let mut backend = vec![
        ("mac", v.mac.to_string()),
        ("bridge", v.bridge.to_string()),
        ("handle", v.devid.to_string()),
        ("type", "vif".to_string()),
    ];
    match v.script {
        Some(s) => backend.push(("script", s.to_string())),
        None => {
            // Linux netback refuses a backend without a `script` node ("reading script") and
            // only passes it on in uevents; empty because we do the hotplug work in-process.
            backend.push(("script", String::new()));
            backend.push(("hotplug-status", "connected".to_string()));
        }
    }
    if let Some(ip) = v.ip {
        backend.push(("ip", ip.to_string()));
    }
    if let Some(name) = v.vifname {
        backend.push(("vifname", name.to_string()));
    }
    if let Some(rate) = &v.rate {
        backend.push(("rate", rate.clone()));
    }
    add_device(l, domid, &paths, &frontend, &backend);
}

/// The PV console: xenconsoled reads the frontend (`/local/domain/N/console`), maps the ring
/// through the grant table and writes `tty` when it has a pty for it.
#[derive(Clone, Debug)]
pub struct ConsoleRecord {
    pub port: u32,
    pub ring_mfn: u64,
}

pub fn console_layout(l: &mut Layout, domid: u32, c: &ConsoleRecord) {
    let paths = device_paths(
        domid,
        "console",
        0,
        Some(format!("{}/console", dom_path(domid))),
    );
    let frontend = [
        ("limit", "1048576".to_string()),
        ("type", "xenconsoled".to_string()),
        ("output", "pty".to_string()),
        ("tty", String::new()),
        ("port", c.port.to_string()),
        ("ring-ref", c.ring_mfn.to_string()),
    ];
    let backend = [("protocol", "vt100".to_string())];
    add_device(l, domid, &paths, &frontend, &backend);
}

/// A paravirtual framebuffer as qemu's xenfb backend and the guest's xen-fbfront expect it
/// (libxl's `libxl__set_xenstore_vfb`): the backend holds the display settings qemu reads.
#[derive(Clone, Debug)]
pub struct VfbRecord<'a> {
    pub devid: u32,
    pub vnc: bool,
    /// Address the VNC server listens on (libxl's default: 127.0.0.1).
    pub vnclisten: &'a str,
    /// VNC display number (TCP port 5900 + display).
    pub vncdisplay: u32,
    /// Whether qemu may search for a free display from `vncdisplay` on.
    pub vncunused: bool,
    pub sdl: bool,
    pub opengl: bool,
    pub display: Option<&'a str>,
    pub xauthority: Option<&'a str>,
}

pub fn vfb_layout(l: &mut Layout, domid: u32, v: &VfbRecord<'_>) {
    let paths = device_paths(domid, "vfb", v.devid, None);
    let flag = |b: bool| u8::from(b).to_string();
    let mut backend = vec![
        ("vnc", flag(v.vnc)),
        ("vnclisten", v.vnclisten.to_string()),
        // libxl copies the VNC password here, where the guest can read it; qemu takes it
        // from a private file instead, so the node stays empty.
        ("vncpasswd", String::new()),
        ("vncdisplay", v.vncdisplay.to_string()),
        ("vncunused", flag(v.vncunused)),
        ("sdl", flag(v.sdl)),
        ("opengl", flag(v.opengl)),
    ];
    if let Some(x) = v.xauthority {
        backend.push(("xauthority", x.to_string()));
    }
    if let Some(d) = v.display {
        backend.push(("display", d.to_string()));
    }
    add_device(l, domid, &paths, &[], &backend);
}

/// The virtual keyboard and pointer that goes with a vfb (xl adds one per vfb); served by
/// qemu, so the backend kind is `vkbd` with no settings of its own.
pub fn vkbd_layout(l: &mut Layout, domid: u32, devid: u32) {
    let paths = device_paths(domid, "vkbd", devid, None);
    add_device(l, domid, &paths, &[], &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DomainRecord<'static> {
        DomainRecord {
            domid: 1,
            name: "guest1",
            uuid: "ecab3870-e90f-11f1-96cf-fe0eb3fe9647",
            vcpus: 1,
            max_vcpus: 1,
            max_memory_kib: 131072,
            target_memory_kib: 131072,
            kernel: "/guest/vmlinuz",
            ramdisk: Some("/guest/initrd.gz"),
            cmdline: "console=hvc0",
            store_port: 1,
            store_mfn: 514049,
            start_time: "1795639003.09",
        }
    }

    /// vif 0 on xenbr0 with nothing optional set.
    fn plain_vif() -> VifRecord<'static> {
        VifRecord {
            devid: 0,
            mac: "00:16:3e:00:00:01",
            bridge: "xenbr0",
            script: None,
            ip: None,
            vifname: None,
            rate: None,
        }
    }

    fn value<'a>(l: &'a Layout, path: &str) -> &'a str {
        &l.get(path)
            .unwrap_or_else(|| panic!("{path} missing"))
            .value
    }

    /// Paths and values below were captured with `xenstore-ls -f` while Debian's xl ran a
    /// PV guest in the lab (the recipe's xenstore-while-guest-running.txt).
    #[test]
    fn domain_nodes_match_what_libxl_writes() {
        let l = domain_layout(&record());
        for (path, expected) in [
            (
                "/local/domain/1/vm",
                "/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647",
            ),
            ("/local/domain/1/name", "guest1"),
            ("/local/domain/1/domid", "1"),
            ("/local/domain/1/cpu/0/availability", "online"),
            ("/local/domain/1/memory/static-max", "131072"),
            ("/local/domain/1/memory/target", "131072"),
            ("/local/domain/1/memory/videoram", "0"),
            ("/local/domain/1/control/shutdown", ""),
            (
                "/local/domain/1/control/platform-feature-xs_reset_watches",
                "1",
            ),
            ("/local/domain/1/store/port", "1"),
            ("/local/domain/1/store/ring-ref", "514049"),
            ("/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647/name", "guest1"),
            (
                "/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647/image/ostype",
                "linux",
            ),
            (
                "/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647/image/kernel",
                "/guest/vmlinuz",
            ),
            (
                "/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647/image/ramdisk",
                "/guest/initrd.gz",
            ),
            (
                "/vm/ecab3870-e90f-11f1-96cf-fe0eb3fe9647/start_time",
                "1795639003.09",
            ),
            ("/libxl/1/type", "pv"),
            ("/libxl/1/dm-version", "qemu_xen"),
        ] {
            assert_eq!(value(&l, path), expected, "{path}");
        }
    }

    #[test]
    fn guest_owns_the_nodes_it_writes_and_only_reads_the_rest() {
        let l = domain_layout(&record());
        assert_eq!(
            l.get("/local/domain/1/control/shutdown")
                .map(|e| e.perms.to_wire()),
            Some(vec!["n1".to_string()])
        );
        assert_eq!(
            l.get("/local/domain/1/name").map(|e| e.perms.to_wire()),
            Some(vec!["n0".to_string(), "r1".to_string()])
        );
        assert_eq!(
            l.get("/libxl/1/type").map(|e| e.perms.to_wire()),
            Some(vec!["n0".to_string()])
        );
    }

    #[test]
    fn offline_vcpus_beyond_the_boot_count() {
        let mut r = record();
        r.vcpus = 1;
        r.max_vcpus = 3;
        let l = domain_layout(&r);
        assert_eq!(value(&l, "/local/domain/1/cpu/0/availability"), "online");
        assert_eq!(value(&l, "/local/domain/1/cpu/2/availability"), "offline");
    }

    /// xenstored creates missing parents itself (inheriting the grandparent's permissions),
    /// but a parent we write explicitly must come first or its permissions would be applied
    /// after a child was created under the inherited ones.
    #[test]
    fn parents_we_write_come_before_their_children() {
        let mut l = domain_layout(&record());
        console_layout(
            &mut l,
            1,
            &ConsoleRecord {
                port: 2,
                ring_mfn: 514050,
            },
        );
        vif_layout(&mut l, 1, &plain_vif());
        for (i, e) in l.entries.iter().enumerate() {
            let parent = &e.path[..e.path.rfind('/').unwrap_or(0)];
            let later = l.entries[i + 1..].iter().any(|p| p.path == parent);
            assert!(!later, "{} is written before its parent {parent}", e.path);
        }
    }

    #[test]
    fn vbd_frontend_and_backend_point_at_each_other() {
        let mut l = Layout::default();
        vbd_layout(
            &mut l,
            1,
            &VbdRecord {
                devid: 51712,
                vdev: "xvda",
                params: "/var/lib/xen/disk.img",
                node: "/dev/loop0",
                physical_device: "7:0".into(),
                writable: true,
                cdrom: false,
                bootable: true,
            },
        );
        let fe = "/local/domain/1/device/vbd/51712";
        let be = "/local/domain/0/backend/vbd/1/51712";
        assert_eq!(value(&l, &format!("{fe}/backend")), be);
        assert_eq!(value(&l, &format!("{fe}/backend-id")), "0");
        assert_eq!(value(&l, &format!("{fe}/virtual-device")), "51712");
        assert_eq!(value(&l, &format!("{fe}/protocol")), "x86_64-abi");
        assert_eq!(value(&l, &format!("{be}/frontend")), fe);
        assert_eq!(value(&l, &format!("{be}/frontend-id")), "1");
        assert_eq!(value(&l, &format!("{be}/physical-device")), "7:0");
        assert_eq!(value(&l, &format!("{be}/mode")), "w");
        assert_eq!(value(&l, &format!("{be}/dev")), "xvda");
        assert_eq!(value(&l, &format!("{be}/state")), "1");
        assert_eq!(
            value(&l, "/libxl/1/device/vbd/51712/params"),
            "/var/lib/xen/disk.img"
        );
        assert_eq!(
            l.get(fe).map(|e| e.perms.to_wire()),
            Some(vec!["n1".into(), "r0".into()])
        );
        assert_eq!(
            l.get(be).map(|e| e.perms.to_wire()),
            Some(vec!["n0".into(), "r1".into()])
        );
    }

    #[test]
    fn read_only_cdrom_is_removable_and_not_discardable() {
        let mut l = Layout::default();
        vbd_layout(
            &mut l,
            3,
            &VbdRecord {
                devid: 768,
                vdev: "hda",
                params: "/srv/debian.iso",
                node: "/dev/loop1",
                physical_device: "7:1".into(),
                writable: false,
                cdrom: true,
                bootable: false,
            },
        );
        let be = "/local/domain/0/backend/vbd/3/768";
        assert_eq!(value(&l, &format!("{be}/mode")), "r");
        assert_eq!(value(&l, &format!("{be}/device-type")), "cdrom");
        assert_eq!(value(&l, &format!("{be}/removable")), "1");
        assert_eq!(value(&l, &format!("{be}/discard-enable")), "0");
    }

    #[test]
    fn vif_without_script_is_marked_connected_by_us() {
        let mut l = Layout::default();
        vif_layout(&mut l, 1, &plain_vif());
        let fe = "/local/domain/1/device/vif/0";
        let be = "/local/domain/0/backend/vif/1/0";
        assert_eq!(value(&l, &format!("{fe}/mac")), "00:16:3e:00:00:01");
        assert_eq!(value(&l, &format!("{fe}/handle")), "0");
        assert_eq!(value(&l, &format!("{fe}/mtu")), "1500");
        assert_eq!(value(&l, &format!("{be}/bridge")), "xenbr0");
        assert_eq!(value(&l, &format!("{be}/hotplug-status")), "connected");
        // netback will not attach without a script node; empty means "none to run".
        assert_eq!(value(&l, &format!("{be}/script")), "");
    }

    #[test]
    fn vif_with_a_script_leaves_hotplug_to_it() {
        let mut l = Layout::default();
        vif_layout(
            &mut l,
            2,
            &VifRecord {
                devid: 1,
                mac: "00:16:3e:12:34:56",
                bridge: "xenbr1",
                script: Some("/etc/xen/scripts/vif-bridge"),
                ip: Some("10.0.0.5"),
                vifname: Some("web0"),
                rate: Some("1250000,50000".into()),
            },
        );
        let be = "/local/domain/0/backend/vif/2/1";
        assert_eq!(
            value(&l, &format!("{be}/script")),
            "/etc/xen/scripts/vif-bridge"
        );
        assert!(l.get(&format!("{be}/hotplug-status")).is_none());
        assert_eq!(value(&l, &format!("{be}/ip")), "10.0.0.5");
        assert_eq!(value(&l, &format!("{be}/vifname")), "web0");
        assert_eq!(value(&l, &format!("{be}/rate")), "1250000,50000");
    }

    #[test]
    fn console_is_where_xenconsoled_looks() {
        let mut l = Layout::default();
        console_layout(
            &mut l,
            1,
            &ConsoleRecord {
                port: 2,
                ring_mfn: 514050,
            },
        );
        assert_eq!(value(&l, "/local/domain/1/console/type"), "xenconsoled");
        assert_eq!(value(&l, "/local/domain/1/console/port"), "2");
        assert_eq!(value(&l, "/local/domain/1/console/ring-ref"), "514050");
        assert_eq!(
            value(&l, "/local/domain/1/console/backend"),
            "/local/domain/0/backend/console/1/0"
        );
        assert_eq!(
            value(&l, "/local/domain/0/backend/console/1/0/protocol"),
            "vt100"
        );
        assert_eq!(
            value(&l, "/local/domain/0/backend/console/1/0/frontend"),
            "/local/domain/1/console"
        );
    }
    #[test]
    fn vfb_backend_carries_the_vnc_settings_qemu_reads() {
        let mut l = Layout::default();
        vfb_layout(
            &mut l,
            3,
            &VfbRecord {
                devid: 0,
                vnc: true,
                vnclisten: "127.0.0.1",
                vncdisplay: 1,
                vncunused: true,
                sdl: false,
                opengl: false,
                display: None,
                xauthority: None,
            },
        );
        let be = "/local/domain/0/backend/vfb/3/0";
        assert_eq!(value(&l, "/local/domain/3/device/vfb/0/backend"), be);
        assert_eq!(value(&l, "/local/domain/3/device/vfb/0/state"), "1");
        assert_eq!(value(&l, &format!("{be}/frontend-id")), "3");
        assert_eq!(value(&l, &format!("{be}/vnc")), "1");
        assert_eq!(value(&l, &format!("{be}/vnclisten")), "127.0.0.1");
        assert_eq!(value(&l, &format!("{be}/vncdisplay")), "1");
        assert_eq!(value(&l, &format!("{be}/vncunused")), "1");
        assert_eq!(value(&l, &format!("{be}/sdl")), "0");
        assert_eq!(value(&l, "/libxl/3/device/vfb/0/backend"), be);
        assert!(l.get(&format!("{be}/display")).is_none());
        assert_eq!(value(&l, &format!("{be}/vncpasswd")), "");
        // the backend is dom0's, readable by the guest, like libxl's
        let perms = &l.get(be).map(|e| e.perms.to_wire()).unwrap_or_default();
        assert_eq!(perms, &["n0", "r3"]);
    }

    #[test]
    fn vkbd_is_a_plain_device_pair() {
        let mut l = Layout::default();
        vkbd_layout(&mut l, 3, 0);
        assert_eq!(
            value(&l, "/local/domain/3/device/vkbd/0/backend"),
            "/local/domain/0/backend/vkbd/3/0"
        );
        assert_eq!(value(&l, "/local/domain/0/backend/vkbd/3/0/state"), "1");
        assert_eq!(value(&l, "/local/domain/0/backend/vkbd/3/0/online"), "1");
    }
}
