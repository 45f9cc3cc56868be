//! Arbitrary bytes through the frame reader and the request decoder.
//!
//! Each input is tried three ways:
//! - as a frame body with a correct length prefix built from the input's length,
//! - as a raw byte stream whose first four bytes are the (possibly forged) length prefix,
//!   taking as many frames as the stream holds,
//! - straight into `decode_request` when shorter than a request header (the frame reader
//!   refuses those, so the decoder's own check is exercised here).
//!
//! Decode only: nothing is re-encoded. libFuzzer's `-malloc_limit_mb` / `-rss_limit_mb`
//! turn any allocation sized by a forged wire length into a crash.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode_request, Decoded};
use protocol::frame::{take_frame, FrameError, MIN_REQUEST_BYTES};
use protocol::versions::is_supported;

/// The broker's default `server.max_request_bytes` (100 MiB).
const MAX_REQUEST_BYTES: usize = 100 * 1024 * 1024;

fn check(frame: &Bytes) {
    match decode_request(frame) {
        Ok(Decoded::Request(request)) => {
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            assert_eq!(request.api_key as i16, key);
            assert_eq!(request.version, version);
            assert!(
                is_supported(key, version),
                "decoded an unsupported {key} v{version}"
            );
            assert_eq!(request.header.request_api_key, key);
            assert_eq!(request.header.request_api_version, version);
            assert_eq!(request.header.correlation_id, correlation_id);
        }
        Ok(Decoded::ApiVersionsFallback {
            correlation_id,
            version,
        }) => {
            assert_eq!(i16::from_be_bytes([frame[0], frame[1]]), 18);
            assert_eq!(i16::from_be_bytes([frame[2], frame[3]]), version);
            assert!(version >= 0);
            assert_eq!(
                i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
                correlation_id
            );
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    // 1. A correct length prefix built from the input.
    let mut buf = BytesMut::with_capacity(4 + data.len());
    buf.put_i32(data.len() as i32);
    buf.put_slice(data);
    match take_frame(&mut buf, MAX_REQUEST_BYTES) {
        Ok(Some(frame)) => {
            assert_eq!(&frame[..], data);
            assert!(buf.is_empty());
            check(&frame);
        }
        Ok(None) => unreachable!("a whole frame was there"),
        Err(FrameError::TooShort(n)) => {
            assert!(data.len() < MIN_REQUEST_BYTES && n == data.len() as i64)
        }
        Err(FrameError::TooLarge { .. }) => unreachable!("input is far below the limit"),
    }

    // 2. Raw: the input's own first four bytes are the length prefix.
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = take_frame(&mut buf, MAX_REQUEST_BYTES) {
        check(&frame);
    }

    // 3. Frames shorter than a header, which take_frame never hands out, straight into the
    //    decoder (longer ones were decoded in 1 already).
    if data.len() < MIN_REQUEST_BYTES {
        check(&Bytes::copy_from_slice(data));
    }
});
