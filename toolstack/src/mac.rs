//! MAC addresses for vifs that the config gives none: Xen's OUI 00:16:3e, and three bytes
//! derived from the domain's UUID and the device number, so a domain keeps its MACs across
//! restarts (a DHCP lease or a switch's table survive a reboot) and two devices never share one.

/// Xen's organisationally unique identifier, used by xm and xl alike.
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

/// The stable MAC of device `devid` of the domain with this UUID.
pub fn stable_mac(uuid: &str, devid: u32) -> String {
    // FNV-1a over the UUID's hex digits (dashes and case do not matter) and the devid
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = uuid
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .map(|b| b.to_ascii_lowercase());
    for b in bytes.chain(devid.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let [a, b, c, ..] = h.to_be_bytes();
    // the top bit of the fourth byte is kept clear, as xend and libxl do for random MACs
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        XEN_OUI[0],
        XEN_OUI[1],
        XEN_OUI[2],
        a & 0x7f,
        b,
        c
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_domain_and_device_give_the_same_mac() {
        let u = "ecab3870-e90f-11f1-96cf-fe0eb3fe9647";
        assert_eq!(stable_mac(u, 0), stable_mac(u, 0));
        assert_eq!(
            stable_mac(u, 0),
            stable_mac(&u.replace('-', "").to_uppercase(), 0)
        );
    }

    #[test]
    fn devices_and_domains_get_different_macs() {
        let u = "ecab3870-e90f-11f1-96cf-fe0eb3fe9647";
        let v = "ecab3870-e90f-11f1-96cf-fe0eb3fe9648";
        assert_ne!(stable_mac(u, 0), stable_mac(u, 1));
        assert_ne!(stable_mac(u, 0), stable_mac(v, 0));
    }

    #[test]
    fn macs_are_in_xens_prefix_and_unicast() {
        for devid in 0..64 {
            let m = stable_mac("0b1c9a5e-2f42-4e7d-9a57-3c3c1f1e0c11", devid);
            assert!(m.starts_with("00:16:3e:"), "{m}");
            let fourth = u8::from_str_radix(&m[9..11], 16).unwrap_or(0xff);
            assert!(fourth < 0x80, "{m}");
            assert_eq!(m.len(), 17);
        }
    }
}
