//! Network (vif), framebuffer (vfb) and PCI specs, and CPU lists.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::spec::{KeyValues, SpecError};

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Mac {
    type Error = String;

    fn try_from(text: String) -> Result<Mac, String> {
        text.parse()
    }
}

impl std::str::FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(
                "expected six hex pairs separated by colons, e.g. 00:16:3e:12:34:56".into(),
            );
        }
        let mut bytes = [0u8; 6];
        for (slot, part) in bytes.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(format!("{part:?} is not two hex digits"));
            }
            *slot = u8::from_str_radix(part, 16)
                .map_err(|_| format!("{part:?} is not two hex digits"))?;
        }
        Ok(Mac(bytes))
    }
}

impl Mac {
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 != 0
    }
}

/// `rate=10Mb/s@20ms`: bytes per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rate {
    pub bytes_per_second: u64,
    pub interval_us: u64,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rate, interval) = match s.split_once('@') {
            Some((r, i)) => (r, Some(i)),
            None => (s, None),
        };
        let rate = rate
            .strip_suffix("/s")
            .ok_or("the rate must end in /s, e.g. 10Mb/s")?;
        let split = rate
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rate.len());
        let (digits, unit) = rate.split_at(split);
        let amount: u64 = digits
            .parse()
            .map_err(|_| "the rate needs a number".to_string())?;
        let bytes = match unit {
            "GB" => amount.checked_mul(1_000_000_000),
            "MB" => amount.checked_mul(1_000_000),
            "KB" => amount.checked_mul(1_000),
            "B" | "" => Some(amount),
            "Gb" => amount.checked_mul(1_000_000_000 / 8),
            "Mb" => amount.checked_mul(1_000_000 / 8),
            "Kb" => amount.checked_mul(1_000 / 8),
            "b" => Some(amount / 8),
            other => {
                return Err(format!(
                    "unknown unit {other:?} (GB, MB, KB, B or Gb, Mb, Kb, b)"
                ))
            }
        }
        .ok_or("rate too large")?;
        let interval_us = match interval {
            None => 50_000,
            Some(i) => {
                let split = i.find(|c: char| !c.is_ascii_digit()).unwrap_or(i.len());
                let (digits, unit) = i.split_at(split);
                let n: u64 = digits
                    .parse()
                    .map_err(|_| "the interval needs a number".to_string())?;
                match unit {
                    "s" => n.checked_mul(1_000_000),
                    "ms" => n.checked_mul(1_000),
                    "us" | "" => Some(n),
                    other => return Err(format!("unknown interval unit {other:?} (s, ms, us)")),
                }
                .ok_or("interval too large")?
            }
        };
        Ok(Rate {
            bytes_per_second: bytes,
            interval_us,
        })
    }
}

/// One `vif = [...]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vif {
    pub spec: String,
    pub mac: Option<Mac>,
    /// As written; Open vSwitch VLAN syntax (`br.42`, `br:42:43`) is kept for the script.
    pub bridge: Option<String>,
    /// Space-separated addresses.
    pub ip: Vec<String>,
    pub script: Option<String>,
    pub vifname: Option<String>,
    pub rate: Option<Rate>,
    pub model: Option<String>,
    /// `ioemu`, `vif` (xl) or `netfront` (xend).
    pub kind: Option<String>,
    pub backend: Option<String>,
    pub gatewaydev: Option<String>,
    pub mtu: Option<u32>,
    pub devid: Option<u32>,
    /// Keys xend knew that do nothing for us (accel, policy, label) and xl flags.
    pub other: Vec<(String, String)>,
}

impl Vif {
    /// The bridge to attach to (xl's default is xenbr0); for vif-openvswitch, without VLANs.
    pub fn bridge_name(&self) -> &str {
        let bridge = self.bridge.as_deref().unwrap_or("xenbr0");
        if self
            .script
            .as_deref()
            .is_some_and(|s| s.ends_with("vif-openvswitch"))
        {
            return bridge.split(['.', ':']).next().unwrap_or(bridge);
        }
        bridge
    }
}

const VIF_KEYS: &[&str] = &[
    "mac",
    "bridge",
    "ip",
    "script",
    "vifname",
    "rate",
    "model",
    "type",
    "backend",
    "gatewaydev",
    "netdev",
    "mtu",
    "devid",
    "accel",
    "policy",
    "label",
];

pub fn parse_vif(spec: &str) -> Result<Vif, SpecError> {
    let kv = KeyValues::parse(spec, VIF_KEYS, &["trusted", "untrusted"])?;
    let mut other: Vec<(String, String)> = ["accel", "policy", "label"]
        .iter()
        .filter_map(|k| kv.get(k).map(|v| (k.to_string(), v.to_string())))
        .collect();
    for flag in ["trusted", "untrusted"] {
        if kv.has_flag(flag) {
            other.push((flag.to_string(), String::new()));
        }
    }
    let gatewaydev = kv
        .non_empty("gatewaydev")
        .or_else(|| kv.non_empty("netdev"));
    Ok(Vif {
        spec: spec.to_string(),
        mac: kv.convert("mac")?,
        bridge: kv.non_empty("bridge"),
        ip: kv
            .get("ip")
            .map(|ip| ip.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        script: kv.non_empty("script"),
        vifname: kv.non_empty("vifname"),
        rate: kv.convert("rate")?,
        model: kv.non_empty("model"),
        kind: kv.non_empty("type"),
        backend: kv.non_empty("backend"),
        gatewaydev,
        mtu: kv.convert("mtu")?,
        devid: kv.convert("devid")?,
        other,
    })
}

/// One paravirtual framebuffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vfb {
    pub spec: String,
    pub vnc: bool,
    pub sdl: bool,
    pub vnclisten: Option<String>,
    pub vncdisplay: Option<u32>,
    pub vncunused: Option<bool>,
    pub vncpasswd: Option<String>,
    pub display: Option<String>,
    pub xauthority: Option<String>,
    pub opengl: Option<bool>,
    pub keymap: Option<String>,
}

const VFB_KEYS: &[&str] = &[
    "type",
    "vnc",
    "sdl",
    "vnclisten",
    "vncdisplay",
    "vncunused",
    "vncpasswd",
    "display",
    "xauthority",
    "opengl",
    "keymap",
    "uuid",
    "location",
];

pub fn parse_vfb(spec: &str) -> Result<Vfb, SpecError> {
    let kv = KeyValues::parse(spec, VFB_KEYS, &[])?;
    let kind = kv.get("type");
    let (mut vnc, mut sdl) = match kind {
        None => (
            kv.boolean("vnc")?
                .unwrap_or(!kv.boolean("sdl")?.unwrap_or(false)),
            kv.boolean("sdl")?.unwrap_or(false),
        ),
        Some("vnc") => (true, false),
        Some("sdl") => (false, true),
        Some(other) => {
            return Err(SpecError::InvalidValue {
                key: "type".into(),
                value: other.into(),
                reason: "expected vnc or sdl".into(),
            })
        }
    };
    if kind.is_some() {
        vnc = kv.boolean("vnc")?.unwrap_or(vnc);
        sdl = kv.boolean("sdl")?.unwrap_or(sdl);
    }
    Ok(Vfb {
        spec: spec.to_string(),
        vnc,
        sdl,
        vnclisten: kv.non_empty("vnclisten"),
        vncdisplay: kv.convert("vncdisplay")?,
        vncunused: kv.boolean("vncunused")?,
        vncpasswd: kv.get("vncpasswd").map(str::to_string),
        display: kv.non_empty("display"),
        xauthority: kv.non_empty("xauthority"),
        opengl: kv.boolean("opengl")?,
        keymap: kv.non_empty("keymap"),
    })
}

/// A PCI device to pass through: `[DDDD:]BB:DD.F[@VSLOT][,key=value...]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pci {
    pub spec: String,
    pub domain: u16,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    pub vslot: Option<u8>,
    pub options: Vec<(String, String)>,
}

const PCI_KEYS: &[&str] = &[
    "permissive",
    "msitranslate",
    "seize",
    "power_mgmt",
    "rdm_policy",
    "name",
];

pub fn parse_pci(spec: &str) -> Result<Pci, SpecError> {
    let (address, options) = match spec.split_once(',') {
        Some((a, o)) => (a.trim(), o),
        None => (spec.trim(), ""),
    };
    let invalid = |reason: &str| SpecError::InvalidValue {
        key: "pci".into(),
        value: address.into(),
        reason: reason.into(),
    };
    let (address, vslot) = match address.split_once('@') {
        Some((a, v)) => (
            a,
            Some(u8::from_str_radix(v, 16).map_err(|_| invalid("bad virtual slot after @"))?),
        ),
        None => (address, None),
    };
    let parts: Vec<&str> = address.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [bus, devfn] => ("0", *bus, *devfn),
        [domain, bus, devfn] => (*domain, *bus, *devfn),
        _ => return Err(invalid("expected [DDDD:]BB:DD.F")),
    };
    let (device, function) = devfn
        .split_once('.')
        .ok_or_else(|| invalid("expected [DDDD:]BB:DD.F"))?;
    let hex16 = |s: &str| u16::from_str_radix(s, 16).map_err(|_| invalid("not hexadecimal"));
    let hex8 = |s: &str| u8::from_str_radix(s, 16).map_err(|_| invalid("not hexadecimal"));
    let device = hex8(device)?;
    let function = hex8(function)?;
    if device > 0x1f || function > 7 {
        return Err(invalid("device is 00-1f and function 0-7"));
    }
    let kv = KeyValues::parse(options, PCI_KEYS, &[])?;
    Ok(Pci {
        spec: spec.to_string(),
        domain: hex16(domain)?,
        bus: hex8(bus)?,
        device,
        function,
        vslot,
        options: kv.pairs().to_vec(),
    })
}

/// A host CPU set: `"all"`, `"0-3,5,^1"`, `"nodes:0-1,^node:2"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CpuSet {
    pub all: bool,
    pub cpus: BTreeSet<u32>,
    pub excluded_cpus: BTreeSet<u32>,
    pub nodes: BTreeSet<u32>,
    pub excluded_nodes: BTreeSet<u32>,
}

/// Host CPU numbers above this are refused (keeps `0-4000000000` from allocating).
pub const MAX_CPU: u32 = 4095;

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let a: u32 = a
        .parse()
        .map_err(|_| format!("{text:?} is not a CPU number or range"))?;
    let b: u32 = b
        .parse()
        .map_err(|_| format!("{text:?} is not a CPU number or range"))?;
    if a > b {
        return Err(format!("range {text:?} runs backwards"));
    }
    if b > MAX_CPU {
        return Err(format!("CPU {b} is beyond {MAX_CPU}"));
    }
    Ok((a, b))
}

impl std::str::FromStr for CpuSet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = CpuSet::default();
        if s.trim().is_empty() {
            return Err("empty CPU list".into());
        }
        for item in s.split(',') {
            let item = item.trim();
            let (exclude, item) = match item.strip_prefix('^') {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            if item == "all" && !exclude {
                set.all = true;
                continue;
            }
            let (is_node, range) = match item
                .strip_prefix("nodes:")
                .or_else(|| item.strip_prefix("node:"))
            {
                Some(r) => (true, r),
                None => (false, item),
            };
            let (a, b) = parse_range(range)?;
            let target = match (is_node, exclude) {
                (false, false) => &mut set.cpus,
                (false, true) => &mut set.excluded_cpus,
                (true, false) => &mut set.nodes,
                (true, true) => &mut set.excluded_nodes,
            };
            target.extend(a..=b);
        }
        Ok(set)
    }
}

impl CpuSet {
    /// Host CPUs this set allows, given the host's CPU count and NUMA layout.
    pub fn resolve(&self, host_cpus: u32, node_of_cpu: impl Fn(u32) -> u32) -> BTreeSet<u32> {
        (0..host_cpus)
            .filter(|cpu| {
                let node = node_of_cpu(*cpu);
                let included = self.all || self.cpus.contains(cpu) || self.nodes.contains(&node);
                included
                    && !self.excluded_cpus.contains(cpu)
                    && !self.excluded_nodes.contains(&node)
            })
            .collect()
    }

    /// Canonical text form.
    pub fn render(&self) -> String {
        fn ranges(set: &BTreeSet<u32>, prefix: &str) -> Vec<String> {
            let mut out = Vec::new();
            let mut iter = set.iter().copied().peekable();
            while let Some(start) = iter.next() {
                let mut end = start;
                while iter.peek() == Some(&(end + 1)) {
                    end += 1;
                    iter.next();
                }
                out.push(if start == end {
                    format!("{prefix}{start}")
                } else {
                    format!("{prefix}{start}-{end}")
                });
            }
            out
        }
        let mut parts = Vec::new();
        if self.all {
            parts.push("all".to_string());
        }
        parts.extend(ranges(&self.cpus, ""));
        parts.extend(ranges(&self.nodes, "node:"));
        parts.extend(ranges(&self.excluded_cpus, "^"));
        parts.extend(ranges(&self.excluded_nodes, "^node:"));
        parts.join(",")
    }
}

/// `cpus=`: one set for every vcpu, or one per vcpu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuAffinity {
    AllVcpus(CpuSet),
    PerVcpu(Vec<CpuSet>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vif_with_every_key_and_spaces() {
        let v = parse_vif(" mac = 00:16:3E:66:94:9c , bridge = br0, ip=10.0.0.1 2000::1, script=vif-bridge, vifname=net0, rate=10240KB/s, model=e1000, type=ioemu, backend=0, mtu=9000")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v.mac.map(|m| m.to_string()).as_deref(),
            Some("00:16:3e:66:94:9c")
        );
        assert_eq!(v.bridge.as_deref(), Some("br0"));
        assert_eq!(v.ip, vec!["10.0.0.1".to_string(), "2000::1".to_string()]);
        assert_eq!(
            v.rate,
            Some(Rate {
                bytes_per_second: 10_240_000,
                interval_us: 50_000
            })
        );
        assert_eq!(
            (v.model.as_deref(), v.kind.as_deref(), v.mtu),
            (Some("e1000"), Some("ioemu"), Some(9000))
        );
    }

    #[test]
    fn empty_vif_takes_defaults() {
        let v = parse_vif("").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.mac, v.bridge_name()), (None, "xenbr0"));
    }

    #[test]
    fn openvswitch_vlan_bridges() {
        let v =
            parse_vif("bridge=ovsbr0.42,script=vif-openvswitch").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.bridge_name(), "ovsbr0");
        assert_eq!(v.bridge.as_deref(), Some("ovsbr0.42"));
    }

    #[test]
    fn vif_errors() {
        assert!(matches!(
            parse_vif("mac=00:16:3e:00:00"),
            Err(SpecError::InvalidValue { .. })
        ));
        assert!(
            matches!(parse_vif("bridge=a,mdel=e1000"), Err(SpecError::UnknownKey { hint: Some(h), .. }) if h == "model")
        );
        assert!(matches!(
            parse_vif("rate=10Qb/s"),
            Err(SpecError::InvalidValue { .. })
        ));
        assert_eq!(
            "1MB/s@20ms".parse(),
            Ok(Rate {
                bytes_per_second: 1_000_000,
                interval_us: 20_000
            })
        );
        assert_eq!(
            "10Mb/s".parse(),
            Ok(Rate {
                bytes_per_second: 1_250_000,
                interval_us: 50_000
            })
        );
    }

    #[test]
    fn vfb_forms() {
        let f = parse_vfb("type = vnc, vncdisplay = 1").unwrap_or_else(|e| panic!("{e}"));
        assert!(f.vnc && !f.sdl);
        assert_eq!(f.vncdisplay, Some(1));
        let f = parse_vfb("vnc=1,vnclisten=127.0.0.1,vncunused=1,vncpasswd=x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (f.vnclisten.as_deref(), f.vncunused),
            (Some("127.0.0.1"), Some(true))
        );
        assert!(parse_vfb("type=rdp").is_err());
    }

    #[test]
    fn pci_addresses() {
        let p = parse_pci("0000:02:00.0,permissive=1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.domain, p.bus, p.device, p.function), (0, 2, 0, 0));
        assert_eq!(p.options, vec![("permissive".to_string(), "1".to_string())]);
        let p = parse_pci("01:13.0@1f").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.bus, p.device, p.vslot), (1, 0x13, Some(0x1f)));
        assert!(parse_pci("01:20.0").is_err());
        assert!(parse_pci("zz").is_err());
    }

    #[test]
    fn cpu_lists_in_every_form() {
        let set: CpuSet = "0-3,5,^1".parse().unwrap_or_default();
        assert_eq!(set.resolve(8, |_| 0), [0, 2, 3, 5].into_iter().collect());
        assert_eq!(set.render(), "0-3,5,^1");
        let set: CpuSet = "all,^7".parse().unwrap_or_default();
        assert_eq!(set.resolve(8, |_| 0).len(), 7);
        // xl.cfg(5)'s example: nodes of four CPUs, "1,node:1,^6" is CPUs 1,4,5,7.
        let set: CpuSet = "1,node:1,^6".parse().unwrap_or_default();
        assert_eq!(
            set.resolve(16, |cpu| cpu / 4),
            [1, 4, 5, 7].into_iter().collect()
        );
        let set: CpuSet = "nodes:0-3,^node:2".parse().unwrap_or_default();
        assert_eq!(set.resolve(16, |cpu| cpu / 4).len(), 12);
        assert!("3-1".parse::<CpuSet>().is_err());
        assert!("0-4000000000".parse::<CpuSet>().is_err());
        assert!("x".parse::<CpuSet>().is_err());
    }
}
