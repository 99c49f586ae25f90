//! Xen's domain handle (`xen_domain_handle_t`) is a UUID: its text form, parsing and a fresh
//! random one. The one home for these, so the builder, `xm` and `pv-boot` agree.

/// The canonical text form: `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
pub fn format(handle: &[u8; 16]) -> String {
    let hex: String = handle.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Parses 32 hex digits, with or without dashes (as configs write `uuid`).
pub fn parse(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut handle = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        handle[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(handle)
}

/// A fresh random UUID from the kernel (all zero if /proc is unreadable, which Xen accepts).
pub fn random() -> [u8; 16] {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .ok()
        .and_then(|text| parse(text.trim()))
        .unwrap_or([0u8; 16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_bytes_round_trip() {
        let handle = [
            0xec, 0xab, 0x38, 0x70, 0xe9, 0x0f, 0x11, 0xf1, 0x96, 0xcf, 0xfe, 0x0e, 0xb3, 0xfe,
            0x96, 0x47,
        ];
        let text = format(&handle);
        assert_eq!(text, "ecab3870-e90f-11f1-96cf-fe0eb3fe9647");
        assert_eq!(parse(&text), Some(handle));
        assert_eq!(parse("ecab3870e90f11f196cffe0eb3fe9647"), Some(handle));
    }

    #[test]
    fn malformed_text_is_refused() {
        assert_eq!(parse("ecab3870-e90f"), None);
        assert_eq!(parse("zzab3870-e90f-11f1-96cf-fe0eb3fe9647"), None);
    }

    #[test]
    fn random_handles_differ() {
        assert_ne!(random(), random());
    }
}
