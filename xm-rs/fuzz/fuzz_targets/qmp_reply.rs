//! Any bytes as what qemu's QMP monitor sends back over its socket, line by line, as
//! `xm create` reads it while confirming a device model started.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xm_rs::create::qmp::{parse_line, vnc_address, Message};

fuzz_target!(|data: &[u8]| {
    // `read_line` refuses a line that is not UTF-8, so only text reaches the parser.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split_inclusive('\n') {
        match parse_line(line) {
            Ok(Message::Reply(reply)) => {
                if let Some(address) = vnc_address(&reply) {
                    assert!(address.contains(':'), "{address}");
                }
            }
            Ok(Message::Event) => {}
            // the operator reads this: it must stay short whatever qemu sent
            Err(e) => assert!(e.to_string().len() <= 1024),
        }
    }
});
