//! The daemon's event loop with no timer: every reply must go out without the client doing
//! anything more than reading, whether the replies fill the socket (write interest on demand)
//! or a pipelining client is throttled by the outstanding-reply limit (stall and resume).

mod common;

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use xenstore::client::{Client, XsOps};
use xenstore::wire::{Message, MsgType};

/// Sends `count` copies of `request` from a thread (they do not all fit in the socket
/// buffer while the daemon is throttling us) and returns the replies' payloads, in order.
fn pipeline(socket: &std::path::Path, request: &'static [u8], count: usize) -> Vec<Vec<u8>> {
    let stream = UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut all = Vec::with_capacity(request.len() * count);
        for _ in 0..count {
            all.extend_from_slice(request);
        }
        writer.write_all(&all).expect("send pipelined requests");
    });
    let mut reader = BufReader::new(stream);
    let replies: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            Message::read_from(&mut reader)
                .unwrap_or_else(|e| panic!("reply {i} of {count} never came: {e}"))
                .payload
        })
        .collect();
    sender.join().expect("sender");
    replies
}

#[test]
fn thousands_of_pipelined_requests_are_all_answered() {
    let daemon = common::Daemon::start(&[]);
    let c = Client::connect(&daemon.socket).expect("connect");
    c.write("/pipe/v", b"value").expect("write");
    // Far more than the outstanding-reply limit (20) times the loop's flush rounds (64), and
    // more than the socket buffer holds, so the last requests arrive with no further event.
    let request: &'static [u8] = Message::new(MsgType::Read, 7, 0, b"/pipe/v\0".to_vec())
        .encode()
        .expect("encode")
        .leak();
    let replies = pipeline(&daemon.socket, request, 50000);
    assert!(replies.iter().all(|p| p == b"value"));
}

#[test]
fn replies_larger_than_the_socket_buffer_reach_a_slow_reader() {
    let daemon = common::Daemon::start(&[]);
    let c = Client::connect(&daemon.socket).expect("connect");
    let big = vec![b'x'; 4000];
    c.write("/pipe/big", &big).expect("write");
    let request: &'static [u8] = Message::new(MsgType::Read, 9, 0, b"/pipe/big\0".to_vec())
        .encode()
        .expect("encode")
        .leak();
    // 400 replies of 4 kB: the daemon's writes block many times over; it must resume
    // writing each time we make room, without any other event to wake it.
    let replies = pipeline(&daemon.socket, request, 400);
    assert!(replies.iter().all(|p| *p == big));
}

/// Counts the daemon's open file descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn clients_that_vanish_with_replies_unread_leave_nothing_behind() {
    let daemon = common::Daemon::start(&[]);
    let c = Client::connect(&daemon.socket).expect("connect");
    c.write("/gone/big", &[b'y'; 4000]).expect("write");
    let baseline = open_fds(daemon.pid());
    let request = Message::new(MsgType::Read, 1, 0, b"/gone/big\0".to_vec())
        .encode()
        .expect("encode");
    // Each client asks, in batches under the outstanding-reply limit (20), for more than
    // the socket buffer holds (3 x 19 x 4 kB) and leaves without reading. When it goes,
    // the daemon has a reply stuck in its outbox and is still reading.
    let batch = request.repeat(19);
    for _ in 0..10 {
        let mut s = UnixStream::connect(&daemon.socket).expect("connect");
        for _ in 0..3 {
            s.write_all(&batch).expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while open_fds(daemon.pid()) > baseline {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon still holds {} fds, {baseline} before",
            open_fds(daemon.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.read("/gone/big").expect("still serving").len(), 4000);
}
