//! A byte stream fed to the frame reader in chunks of fuzzer-chosen sizes, as a socket
//! would deliver it. Every frame that comes out is decoded.
//!
//! Input layout: byte 0 gives `n = byte0 % 16` chunk sizes, the next `n` bytes are those
//! sizes (each taken as 1..=256, cycled; none means one byte at a time), the rest is the
//! stream. The frames and the final error must not depend on the chunking: they are
//! compared with a reading of the whole stream at once.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::codec::decode_request;
use protocol::frame::{take_frame, FrameError};

/// Small enough that forged lengths often exceed it, large enough for every seed.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Frames taken from the stream, and the error that ended it (if any).
type Outcome = (Vec<Bytes>, Option<FrameError>);

fn whole(stream: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    loop {
        match take_frame(&mut buf, MAX_REQUEST_BYTES) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

fn chunked(stream: &[u8], sizes: &[u8]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut next = 0;
    while at < stream.len() {
        let size = sizes
            .get(next % sizes.len().max(1))
            .map_or(1, |&s| s as usize + 1);
        next += 1;
        let end = (at + size).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            match take_frame(&mut buf, MAX_REQUEST_BYTES) {
                Ok(Some(frame)) => {
                    let _ = decode_request(&frame);
                    frames.push(frame);
                }
                Ok(None) => break,
                // The connection is closed: nothing more is read.
                Err(e) => return (frames, Some(e)),
            }
        }
        // A partial frame never needs more room than the limit allows.
        assert!(buf.len() <= 4 + MAX_REQUEST_BYTES);
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let n = (head % 16) as usize;
    if rest.len() < n {
        return;
    }
    let (sizes, stream) = rest.split_at(n);
    assert_eq!(chunked(stream, sizes), whole(stream));
});
