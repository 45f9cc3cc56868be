//! Length-prefixed framing: a frame is a big-endian `int32` size and that many bytes.
//!
//! The size is bounded (`server.max_request_bytes`, Kafka's `socket.request.max.bytes`),
//! and a frame too short to hold a request header is refused before anything decodes it.

use bytes::{Buf, Bytes, BytesMut};

/// The smallest request that can be decoded: api key, api version, correlation id and the
/// client id length (header v1).
pub const MIN_REQUEST_BYTES: usize = 10;

/// Why a frame was refused. Each closes the connection it came from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {size} bytes is larger than server.max_request_bytes ({max})")]
    TooLarge { size: usize, max: usize },
    #[error("frame of {0} bytes is shorter than a request header")]
    TooShort(i64),
}

/// Takes one whole frame off the front of `buf`, if one has fully arrived.
///
/// Returns `Ok(None)` when more bytes are needed. Cancellation-safe: nothing is consumed
/// until a whole frame is there.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as i64;
    if size < MIN_REQUEST_BYTES as i64 {
        return Err(FrameError::TooShort(size));
    }
    let size = size as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    if buf.len() < 4 + size {
        // Grow with the data that arrives, not with the size the client claims.
        buf.reserve((4 + size - buf.len()).min(64 * 1024));
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_a_whole_frame() {
        let mut buf = BytesMut::from(&[0, 0, 0, 12, 1, 2][..]);
        assert_eq!(take_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[0; 10]);
        let frame = take_frame(&mut buf, 100).unwrap().unwrap();
        assert_eq!(frame.len(), 12);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_oversized_and_short_frames() {
        let mut buf = BytesMut::from(&[0, 0, 1, 0][..]);
        assert!(matches!(
            take_frame(&mut buf, 100),
            Err(FrameError::TooLarge { .. })
        ));
        let mut buf = BytesMut::from(&[0, 0, 0, 3][..]);
        assert_eq!(take_frame(&mut buf, 100), Err(FrameError::TooShort(3)));
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(take_frame(&mut buf, 100), Err(FrameError::TooShort(-1)));
    }
}
