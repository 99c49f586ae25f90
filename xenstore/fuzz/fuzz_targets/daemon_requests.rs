//! The daemon's request handling: arbitrary request sequences from a dom0 tool and two
//! unprivileged domains (one of which may be released mid-way). The core must never panic,
//! must answer every request with exactly one reply, and keep its replies within the
//! protocol limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::daemon::config::Quotas;
use xenstore::daemon::core::{ConnKind, Core, NoXen};
use xenstore::wire::{Decoder, Message, MsgType, PAYLOAD_MAX};

fuzz_target!(|data: &[u8]| {
    let quotas = Quotas { max_nodes: 40, max_transaction_nodes: 30, max_watches: 8, ..Quotas::default() };
    let mut core = Core::new(quotas, Box::new(NoXen));
    let dom0 = core.add_connection(ConnKind::Socket);
    let mut conns = vec![dom0, core.attach_domain(3), core.attach_domain(4)];
    let mut rest = data;
    // Record: [conn selector, type, tx_id, len, payload...]
    while rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        let len = usize::from(head[3]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let selector = usize::from(head[0]);
        if selector == 255 {
            // A domain dies; its connection must vanish cleanly.
            core.destroy_domain(4);
            conns.truncate(2);
            continue;
        }
        if selector == 254 {
            core.check_domains();
            continue;
        }
        let conn = conns[selector % conns.len()];
        let msg_type = match head[1] {
            200..=255 => u32::from(head[1]) * 1000,
            t => u32::from(t % 30),
        };
        let tx_id = u32::from(head[2] % 4);
        let mut payload = payload.to_vec();
        // Give requests a good chance of naming real paths.
        if head[2] & 0x80 != 0 {
            let mut p = b"/local/domain/3/".to_vec();
            p.extend_from_slice(&payload);
            payload = p;
        }
        if core.connection_kind(conn).is_none() {
            // Released by an earlier RELEASE request.
            continue;
        }
        core.handle(conn, Message { msg_type, req_id: 7, tx_id, payload });
        let mut replies = 0;
        for c in core.take_connections_with_output() {
            let mut bytes = Vec::new();
            if let Some(ob) = core.outbox(c) {
                while let Some(f) = ob.front() {
                    let n = f.len();
                    bytes.extend_from_slice(f);
                    ob.consume(n);
                }
            }
            let mut dec = Decoder::new();
            let mut input = bytes.as_slice();
            while !input.is_empty() {
                let m = dec.decode(&mut input).expect("daemon output decodes").unwrap_or_else(|| {
                    panic!("daemon output ends mid-message");
                });
                assert!(m.payload.len() <= PAYLOAD_MAX);
                if c == conn && m.msg_type != MsgType::WatchEvent.code() {
                    replies += 1;
                }
            }
        }
        assert_eq!(replies, 1, "one reply per request");
    }
});
