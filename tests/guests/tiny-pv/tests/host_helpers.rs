//! The guest's pure C helpers (guest/tinypv.c), compiled for the host and
//! called through FFI: formatting, command-line flags, start_info checks,
//! ring index arithmetic and xenstore message encoding.

use std::ffi::{c_char, c_int, CStr, CString};

const TP_ACTION_POWEROFF: c_int = 0;
const TP_ACTION_REBOOT: c_int = 1;
const TP_ACTION_CRASH: c_int = 2;
const TP_ACTION_BLOCK: c_int = 3;

const TP_SI_BAD_MAGIC: u32 = 1 << 0;
const TP_SI_NO_CONSOLE: u32 = 1 << 2;
const TP_SI_NO_STORE: u32 = 1 << 3;
const TP_SI_BAD_PT_BASE: u32 = 1 << 4;
const TP_SI_BAD_MFN_LIST: u32 = 1 << 6;
const TP_SI_CMDLINE_UNTERMINATED: u32 = 1 << 7;

const XS_READ: u32 = 2;
const XENSTORE_PAYLOAD_MAX: u32 = 4096;

/// Mirror of guest/xen_abi.h `struct start_info` (the C side pins its offsets).
#[repr(C)]
#[derive(Clone)]
struct StartInfo {
    magic: [u8; 32],
    nr_pages: u64,
    shared_info: u64,
    flags: u32,
    store_mfn: u64,
    store_evtchn: u32,
    console_mfn: u64,
    console_evtchn: u32,
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmd_line: [u8; 1024],
    first_p2m_pfn: u64,
    nr_p2m_frames: u64,
}
const _: () = assert!(std::mem::size_of::<StartInfo>() == 1168);

#[repr(C)]
#[derive(Default)]
struct XsHeader {
    kind: u32,
    req_id: u32,
    tx_id: u32,
    len: u32,
}

extern "C" {
    fn tp_snprintf(buf: *mut c_char, cap: usize, fmt: *const c_char, ...) -> usize;
    fn tp_cmdline_action(cmdline: *const c_char) -> c_int;
    fn tp_check_start_info(si: *const StartInfo, virt_base: u64, image_end: u64) -> u32;
    fn tp_describe_start_info_problems(mask: u32, buf: *mut c_char, cap: usize) -> usize;
    fn tp_ring_write(
        ring: *mut u8,
        size: u32,
        prod: u32,
        cons: u32,
        src: *const u8,
        len: u32,
    ) -> u32;
    fn tp_ring_read(
        ring: *const u8,
        size: u32,
        prod: u32,
        cons: u32,
        dst: *mut u8,
        len: u32,
    ) -> u32;
    fn tp_xs_encode(
        out: *mut u8,
        cap: usize,
        kind: u32,
        req_id: u32,
        payload: *const u8,
        len: u32,
    ) -> usize;
    fn tp_xs_payload(
        out: *mut c_char,
        cap: usize,
        first: *const c_char,
        second: *const c_char,
        terminate_last: c_int,
    ) -> usize;
    fn tp_xs_parse_header(bytes: *const u8, header: *mut XsHeader) -> c_int;
    fn tp_xs_split_watch_event(
        payload: *const c_char,
        len: u32,
        path: *mut *const c_char,
        token: *mut *const c_char,
    ) -> c_int;
}

fn c(s: &str) -> CString {
    CString::new(s).expect("test strings have no NUL")
}

/// Formats one u64 and one string with `fmt` into a buffer of `cap` bytes.
fn format_with(cap: usize, fmt: &str, number: u64, text: &str) -> (String, usize) {
    let mut buf = vec![0x55 as c_char; cap.max(1)];
    let (fmt, text) = (c(fmt), c(text));
    // SAFETY: buf has at least `cap` bytes; fmt and text are NUL-terminated and
    // fmt's conversions consume exactly a u64 then a string (callers' formats).
    let written =
        unsafe { tp_snprintf(buf.as_mut_ptr(), cap, fmt.as_ptr(), number, text.as_ptr()) };
    // SAFETY: tp_snprintf NUL-terminates within cap when cap > 0.
    let out = unsafe { CStr::from_ptr(buf.as_ptr()) };
    (out.to_string_lossy().into_owned(), written)
}

fn action(cmdline: &str) -> c_int {
    let cmdline = c(cmdline);
    // SAFETY: cmdline is a NUL-terminated string that outlives the call.
    unsafe { tp_cmdline_action(cmdline.as_ptr()) }
}

fn check(si: &StartInfo, virt_base: u64, image_end: u64) -> u32 {
    // SAFETY: si is a live, correctly laid out start_info.
    unsafe { tp_check_start_info(si, virt_base, image_end) }
}

fn describe(mask: u32) -> String {
    let mut buf = [0 as c_char; 256];
    // SAFETY: buf has the capacity passed.
    unsafe { tp_describe_start_info_problems(mask, buf.as_mut_ptr(), buf.len()) };
    // SAFETY: the function NUL-terminates within the buffer.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

fn ring_write(ring: &mut [u8], prod: u32, cons: u32, data: &[u8]) -> u32 {
    let size = u32::try_from(ring.len()).expect("small ring");
    let len = u32::try_from(data.len()).expect("small data");
    // SAFETY: the ring slice has `size` bytes and the source `len` bytes.
    unsafe { tp_ring_write(ring.as_mut_ptr(), size, prod, cons, data.as_ptr(), len) }
}

fn ring_read(ring: &[u8], prod: u32, cons: u32, out: &mut [u8]) -> u32 {
    let size = u32::try_from(ring.len()).expect("small ring");
    let len = u32::try_from(out.len()).expect("small buffer");
    // SAFETY: the ring slice has `size` bytes and the destination `len` bytes.
    unsafe { tp_ring_read(ring.as_ptr(), size, prod, cons, out.as_mut_ptr(), len) }
}

fn xs_encode(cap: usize, kind: u32, req_id: u32, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; cap];
    let len = u32::try_from(payload.len()).expect("payload length");
    // SAFETY: out has `cap` bytes and payload `len` bytes.
    let total = unsafe { tp_xs_encode(out.as_mut_ptr(), cap, kind, req_id, payload.as_ptr(), len) };
    (total != 0).then(|| out[..total].to_vec())
}

fn xs_payload(first: &str, second: Option<&str>, terminate_last: bool) -> Vec<u8> {
    let mut out = vec![0 as c_char; 256];
    let first = c(first);
    let second = second.map(c);
    let second_ptr = second.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: out has the capacity passed; the strings are NUL-terminated or null.
    let len = unsafe {
        tp_xs_payload(
            out.as_mut_ptr(),
            out.len(),
            first.as_ptr(),
            second_ptr,
            c_int::from(terminate_last),
        )
    };
    out[..len].iter().map(|&b| b as u8).collect()
}

fn parse_header(bytes: &[u8; 16]) -> Option<XsHeader> {
    let mut header = XsHeader::default();
    // SAFETY: bytes holds the 16 header bytes read and header is writable.
    let rc = unsafe { tp_xs_parse_header(bytes.as_ptr(), &mut header) };
    (rc == 0).then_some(header)
}

fn split_watch_event(payload: &[u8]) -> Option<(String, String)> {
    let mut path = std::ptr::null();
    let mut token = std::ptr::null();
    let len = u32::try_from(payload.len()).expect("payload length");
    // SAFETY: the function reads at most `len` bytes of payload and writes the two pointers.
    let rc =
        unsafe { tp_xs_split_watch_event(payload.as_ptr().cast(), len, &mut path, &mut token) };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success both point at NUL-terminated strings inside payload.
    let path = unsafe { CStr::from_ptr(path) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    let token = unsafe { CStr::from_ptr(token) }
        .to_string_lossy()
        .into_owned();
    Some((path, token))
}

const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
const IMAGE_END: u64 = VIRT_BASE + 0x8000;

/// A start_info as libxenguest lays it out for a 32 MiB domain.
fn sane_start_info() -> StartInfo {
    let mut si = StartInfo {
        magic: [0; 32],
        nr_pages: 8192,
        shared_info: 0x12_3456_7000,
        flags: 0,
        store_mfn: 0x4242,
        store_evtchn: 1,
        console_mfn: 0x4243,
        console_evtchn: 2,
        pt_base: VIRT_BASE + 0x20000,
        nr_pt_frames: 4,
        mfn_list: VIRT_BASE + 0x9000,
        mod_start: 0,
        mod_len: 0,
        cmd_line: [0; 1024],
        first_p2m_pfn: 0,
        nr_p2m_frames: 0,
    };
    si.magic[..18].copy_from_slice(b"xen-3.0-x86_64\0\0\0\0");
    si.cmd_line[..18].copy_from_slice(b"hello-from-cmdline");
    si
}

#[test]
fn formatting_handles_numbers_strings_and_percent() {
    let (out, n) = format_with(64, "nr=%lu name=%s 100%%", 8192, "tinypv");
    assert_eq!(out, "nr=8192 name=tinypv 100%");
    assert_eq!(n, out.len());
    let (out, _) = format_with(64, "%lu/%s", u64::MAX, "tinypv");
    assert_eq!(out, "18446744073709551615/tinypv");
    let (out, _) = format_with(64, "0x%lx %s", 0xffff_ffff_8000_0000, "");
    assert_eq!(out, "0xffffffff80000000 ");
}

#[test]
fn formatting_truncates_to_capacity_and_stays_terminated() {
    let (out, n) = format_with(8, "%lu %s", 1234, "abcdefgh");
    assert_eq!(out, "1234 ab");
    assert_eq!(n, 7);
}

#[test]
fn command_line_flags_match_whole_words_only() {
    assert_eq!(action("hello-from-cmdline"), TP_ACTION_POWEROFF);
    assert_eq!(action(""), TP_ACTION_POWEROFF);
    assert_eq!(action("x tinypv.block"), TP_ACTION_BLOCK);
    assert_eq!(action("tinypv.blocker tinypv.blockx"), TP_ACTION_POWEROFF);
    assert_eq!(action("tinypv.crash"), TP_ACTION_CRASH);
    assert_eq!(action("a\ttinypv.reboot b"), TP_ACTION_REBOOT);
}

#[test]
fn block_wins_over_crash_which_wins_over_reboot() {
    assert_eq!(
        action("tinypv.reboot tinypv.crash tinypv.block"),
        TP_ACTION_BLOCK
    );
    assert_eq!(action("tinypv.reboot tinypv.crash"), TP_ACTION_CRASH);
}

#[test]
fn sane_start_info_passes() {
    assert_eq!(check(&sane_start_info(), VIRT_BASE, IMAGE_END), 0);
}

#[test]
fn start_info_problems_are_each_detected_and_named() {
    let mut si = sane_start_info();
    si.magic[4] = b'4';
    assert_eq!(check(&si, VIRT_BASE, IMAGE_END), TP_SI_BAD_MAGIC);

    let mut si = sane_start_info();
    si.console_evtchn = 0;
    si.store_mfn = 0;
    assert_eq!(
        check(&si, VIRT_BASE, IMAGE_END),
        TP_SI_NO_CONSOLE | TP_SI_NO_STORE
    );
    assert_eq!(
        describe(TP_SI_NO_CONSOLE | TP_SI_NO_STORE),
        "no-console no-store"
    );

    let mut si = sane_start_info();
    si.pt_base = VIRT_BASE + 0x1000; // inside the kernel image
    assert_eq!(check(&si, VIRT_BASE, IMAGE_END), TP_SI_BAD_PT_BASE);
    si.pt_base = VIRT_BASE + 8192 * 4096; // just past the last page
    assert_eq!(check(&si, VIRT_BASE, IMAGE_END), TP_SI_BAD_PT_BASE);

    let mut si = sane_start_info();
    si.mfn_list = VIRT_BASE + 0x9004;
    assert_eq!(check(&si, VIRT_BASE, IMAGE_END), TP_SI_BAD_MFN_LIST);

    let mut si = sane_start_info();
    si.cmd_line = [b'a'; 1024];
    assert_eq!(check(&si, VIRT_BASE, IMAGE_END), TP_SI_CMDLINE_UNTERMINATED);
}

#[test]
fn ring_write_wraps_around_the_end_of_the_ring() {
    let mut ring = [0u8; 8];
    // 6 bytes already produced and consumed: the write starts at index 6.
    assert_eq!(ring_write(&mut ring, 6, 6, b"abcd"), 4);
    assert_eq!(&ring, b"cd\0\0\0\0ab");
    let mut out = [0u8; 4];
    assert_eq!(ring_read(&ring, 10, 6, &mut out), 4);
    assert_eq!(&out, b"abcd");
}

#[test]
fn ring_write_stops_when_full_and_works_across_index_overflow() {
    let mut ring = [0u8; 8];
    let prod = u32::MAX - 1; // indices are free-running and wrap at 2^32
    let cons = prod.wrapping_sub(5);
    assert_eq!(
        ring_write(&mut ring, prod, cons, b"xyzw"),
        3,
        "only 3 bytes free"
    );
    assert_eq!(
        ring_write(&mut ring, prod.wrapping_add(3), cons, b"q"),
        0,
        "ring full"
    );
}

#[test]
fn ring_with_corrupt_indices_moves_no_data() {
    let mut ring = [0u8; 8];
    assert_eq!(ring_write(&mut ring, 100, 0, b"a"), 0);
    let mut out = [0u8; 1];
    assert_eq!(ring_read(&ring, 100, 0, &mut out), 0);
}

#[test]
fn xs_read_request_encodes_header_then_nul_terminated_path() {
    let payload = xs_payload("name", None, true);
    assert_eq!(payload, b"name\0");
    let message = xs_encode(64, XS_READ, 7, &payload).expect("fits");
    let mut expected = Vec::new();
    for word in [XS_READ, 7, 0, 5] {
        expected.extend_from_slice(&word.to_le_bytes());
    }
    expected.extend_from_slice(b"name\0");
    assert_eq!(message, expected);
}

#[test]
fn xs_payloads_for_watch_and_write_follow_the_wire_format() {
    assert_eq!(
        xs_payload("control/shutdown", Some("tok"), true),
        b"control/shutdown\0tok\0"
    );
    assert_eq!(
        xs_payload("control/shutdown", Some(""), false),
        b"control/shutdown\0"
    );
}

#[test]
fn xs_encode_refuses_messages_that_do_not_fit() {
    assert!(xs_encode(20, XS_READ, 1, b"name\0").is_none());
    assert!(xs_encode(21, XS_READ, 1, b"name\0").is_some());
}

#[test]
fn xs_header_parses_little_endian_and_bounds_the_length() {
    let mut bytes = [0u8; 16];
    for (i, word) in [16u32, 3, 0, 6].iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    let header = parse_header(&bytes).expect("valid header");
    assert_eq!(
        (header.kind, header.req_id, header.tx_id, header.len),
        (16, 3, 0, 6)
    );
    bytes[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX + 1).to_le_bytes());
    assert!(
        parse_header(&bytes).is_none(),
        "oversized length must be rejected"
    );
}

#[test]
fn watch_event_splits_into_path_and_token_and_rejects_missing_terminators() {
    let event = split_watch_event(b"control/shutdown\0tinypv-control\0");
    assert_eq!(
        event,
        Some(("control/shutdown".to_owned(), "tinypv-control".to_owned()))
    );
    assert_eq!(split_watch_event(b"control/shutdown\0tinypv-control"), None);
    assert_eq!(split_watch_event(b"control/shutdown"), None);
}
