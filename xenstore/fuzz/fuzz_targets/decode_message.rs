//! The message decoder on arbitrary bytes: the incremental decoder (split at every chunk size
//! the input suggests) and the blocking reader must agree, never allocate past the limit and
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenstore::wire::{self, Decoder, Message, PAYLOAD_MAX};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);

    let mut dec = Decoder::new();
    let mut incremental = Vec::new();
    let mut failed = false;
    'outer: for piece in stream.chunks(chunk) {
        let mut input = piece;
        while !input.is_empty() {
            match dec.decode(&mut input) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= PAYLOAD_MAX);
                    incremental.push(m);
                }
                Ok(None) => {}
                Err(_) => {
                    failed = true;
                    break 'outer;
                }
            }
        }
    }

    let mut blocking = Vec::new();
    let mut reader = stream;
    while let Ok(m) = Message::read_from(&mut reader) {
        blocking.push(m);
    }
    if !failed {
        assert_eq!(incremental, blocking);
    }
    for m in &incremental {
        let _ = m.kind();
        let _ = wire::split_strings(&m.payload);
        let _ = wire::one_arg(&m.payload);
        let _ = wire::check_path_syntax(&m.payload, true);
        let _ = wire::Errno::from_name(&m.payload);
        let again = m.encode().expect("decoded messages re-encode");
        let mut r = again.as_slice();
        assert_eq!(&Message::read_from(&mut r).expect("round trip"), m);
    }
});
