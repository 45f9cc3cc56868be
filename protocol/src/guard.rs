//! Guarded decoding: no allocation sized by a length the frame cannot back.
//!
//! `kafka-protocol` 0.18 sizes `Vec::with_capacity(n)` straight from array lengths read off
//! the wire, so a 20-byte frame can claim two billion elements and abort the process when
//! the allocation fails. The generated decoders cannot be changed, but they read every
//! primitive through the [`bytes::Buf`] trait, so this module wraps the frame in
//! [`GuardedBuf`], which watches every length-like read:
//!
//! - an `int32` larger than the bytes left in the frame (and above a small harmless bound),
//! - an unsigned varint (compact lengths, tagged-field counts) larger than the bytes left.
//!
//! Such a value is either a plain field (a timeout, `max_bytes`) or a length that cannot be
//! genuine: every array element, string byte and tagged field takes at least one byte. To
//! tell the two apart without ever allocating for it, [`decode_guarded`] decodes twice with
//! the suspicious values replaced, and compares where every read happened: once by the
//! smallest value (an empty array), once by the largest the remaining bytes could back
//! (capped, at least one element). A plain field does not change the shape of the decode; a
//! length does, because the second pass reads at least one more element for it and so
//! makes more reads before the message ends (a single extra element whose one-byte reads
//! line up with the fields after it can look like no change at all: the fuzzer found
//! that). Only when the shape is unchanged is the frame decoded for real.
//!
//! Invariant: the real decode runs only when every suspicious value has been shown to be a
//! plain field, so every allocation it makes is bounded by the frame size.
//! In the common case (no suspicious value) the guarded decode is the only decode.

use bytes::{Buf, Bytes, TryGetError};
use kafka_protocol::protocol::buf::ByteBuf;
use kafka_protocol::protocol::Decodable;

/// An `int32` at or below this is accepted even when the frame cannot back it as a length:
/// at most this many elements are pre-allocated, which costs little.
const HARMLESS_INT32: i32 = 4096;
/// The same bound for an unsigned varint (a compact length is stored as length + 1).
const HARMLESS_VARINT: u32 = 64;

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GuardError {
    #[error("a length in the request claims more bytes than the frame holds")]
    LengthExceedsFrame,
    #[error("the request body is malformed: {0}")]
    Malformed(String),
}

/// The most elements a substituted length may claim (so a pass allocates little).
const SUBSTITUTE_CAP: usize = 4096;

/// What one guarded pass puts in place of a suspicious `int32` or varint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Substitute {
    /// Zero (`int32`) and one, an empty compact array (varint).
    Smallest,
    /// As many as the bytes left could back (at least one element more than `Smallest`),
    /// capped at [`SUBSTITUTE_CAP`].
    Largest,
}

impl Substitute {
    fn int32(self, backing: usize) -> i32 {
        match self {
            Substitute::Smallest => 0,
            Substitute::Largest => backing.clamp(1, SUBSTITUTE_CAP) as i32,
        }
    }

    /// A compact length is stored as length + 1. Always below the value it replaces (which
    /// exceeded `backing + 1` and 64), so it fits in the same number of varint bytes.
    fn varint(self, backing: usize) -> u32 {
        match self {
            Substitute::Smallest => 1,
            Substitute::Largest => (backing + 1).clamp(2, SUBSTITUTE_CAP) as u32,
        }
    }
}

/// A [`ByteBuf`] over the frame that flags (and optionally substitutes) length-like values
/// the remaining bytes cannot back, and hashes the position of every read.
pub struct GuardedBuf {
    inner: Bytes,
    start_len: usize,
    substitute: Substitute,
    suspicious: bool,
    shape_hash: u64,
    /// Bytes still to hand out for a varint whose encoding was replaced.
    pending: [u8; 5],
    pending_len: usize,
    pending_at: usize,
    /// Position up to which bytes belong to a varint already inspected.
    varint_until: usize,
}

impl GuardedBuf {
    fn new(inner: Bytes, substitute: Substitute) -> Self {
        let start_len = inner.len();
        GuardedBuf {
            inner,
            start_len,
            substitute,
            suspicious: false,
            shape_hash: 0xcbf2_9ce4_8422_2325,
            pending: [0; 5],
            pending_len: 0,
            pending_at: 0,
            varint_until: 0,
        }
    }

    fn position(&self) -> usize {
        self.start_len - self.inner.len()
    }

    fn record(&mut self, kind: u64, len: usize) {
        // FNV-1a over (position, kind, len): the shape of the decode.
        for v in [self.position() as u64, kind, len as u64] {
            self.shape_hash ^= v;
            self.shape_hash = self.shape_hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Reads the unsigned varint starting at the cursor without consuming it.
    fn peek_varint(&self) -> Option<(u32, usize)> {
        let mut value: u32 = 0;
        for (i, b) in self.inner.iter().take(5).enumerate() {
            value |= ((b & 0x7f) as u32) << (i * 7);
            // kafka-protocol stops after the fifth byte whatever its continuation bit.
            if b & 0x80 == 0 || i == 4 {
                return Some((value, i + 1));
            }
        }
        None
    }
}

/// Encodes `value` (which fits in `7 * len` bits) as an unsigned varint of exactly `len`
/// bytes: seven bits per byte, the continuation bit on all but the last.
fn padded_varint(value: u32, len: usize) -> [u8; 5] {
    let mut out = [0u8; 5];
    for (i, byte) in out.iter_mut().enumerate().take(len) {
        *byte = ((value >> (7 * i)) & 0x7f) as u8;
        if i + 1 < len {
            *byte |= 0x80;
        }
    }
    out
}

impl Buf for GuardedBuf {
    fn remaining(&self) -> usize {
        self.inner.remaining()
    }

    fn chunk(&self) -> &[u8] {
        self.inner.chunk()
    }

    fn advance(&mut self, cnt: usize) {
        self.record(1, cnt);
        self.inner.advance(cnt);
    }

    fn try_get_u8(&mut self) -> Result<u8, TryGetError> {
        let pos = self.position();
        if self.pending_len > 0 {
            if pos == self.pending_at && self.inner.has_remaining() {
                let byte = self.pending[self.pending.len() - self.pending_len];
                self.pending_len -= 1;
                self.pending_at += 1;
                self.record(2, 1);
                self.inner.advance(1);
                return Ok(byte);
            }
            self.pending_len = 0;
        }
        let Some(&byte) = self.inner.first() else {
            return Err(TryGetError {
                requested: 1,
                available: 0,
            });
        };
        if byte & 0x80 != 0 && pos >= self.varint_until {
            if let Some((value, len)) = self.peek_varint() {
                self.varint_until = pos + len;
                let backing = self.inner.len() - len;
                if value > HARMLESS_VARINT && value as usize > backing + 1 {
                    self.suspicious = true;
                    {
                        let varint = self.substitute.varint(backing);
                        let encoded = padded_varint(varint, len);
                        // Hand out encoded[1..len] on the next reads, right-aligned.
                        let mut pending = [0u8; 5];
                        pending[5 - (len - 1)..].copy_from_slice(&encoded[1..len]);
                        self.pending = pending;
                        self.pending_len = len - 1;
                        self.pending_at = pos + 1;
                        self.record(2, 1);
                        self.inner.advance(1);
                        return Ok(encoded[0]);
                    }
                }
            }
        }
        self.record(2, 1);
        self.inner.advance(1);
        Ok(byte)
    }

    fn try_get_i32(&mut self) -> Result<i32, TryGetError> {
        if self.inner.len() < 4 {
            return Err(TryGetError {
                requested: 4,
                available: self.inner.len(),
            });
        }
        let value =
            i32::from_be_bytes([self.inner[0], self.inner[1], self.inner[2], self.inner[3]]);
        self.record(3, 4);
        self.inner.advance(4);
        if value > HARMLESS_INT32 && value as usize > self.inner.len() {
            self.suspicious = true;
            return Ok(self.substitute.int32(self.inner.len()));
        }
        Ok(value)
    }
}

impl ByteBuf for GuardedBuf {
    fn peek_bytes(&mut self, r: std::ops::Range<usize>) -> Bytes {
        self.inner.slice(r)
    }

    fn get_bytes(&mut self, size: usize) -> Bytes {
        self.record(4, size);
        self.inner.split_to(size)
    }
}

fn decode_pass<T: Decodable>(
    body: &Bytes,
    version: i16,
    substitute: Substitute,
) -> (Result<T, String>, bool, u64, usize) {
    let mut buf = GuardedBuf::new(body.clone(), substitute);
    let result = T::decode(&mut buf, version).map_err(|e| e.to_string());
    (result, buf.suspicious, buf.shape_hash, buf.remaining())
}

/// Decodes `T` at `version` from `body`, refusing any frame in which a length claims more
/// bytes than the frame holds. Returns the message and the number of bytes left over.
pub fn decode_guarded<T: Decodable>(body: &Bytes, version: i16) -> Result<(T, usize), GuardError> {
    const PASS_A: Substitute = Substitute::Smallest;
    const PASS_B: Substitute = Substitute::Largest;
    let (a, suspicious, shape_a, left) = decode_pass::<T>(body, version, PASS_A);
    if !suspicious {
        // Nothing was substituted: this is the real decode.
        return a.map(|m| (m, left)).map_err(GuardError::Malformed);
    }
    let (b, _, shape_b, _) = decode_pass::<T>(body, version, PASS_B);
    match (a, b) {
        // Both substitutes fail the same way: the frame is broken regardless of them.
        (Err(e), Err(_)) if shape_a == shape_b => return Err(GuardError::Malformed(e)),
        // The substitute changed the shape (or the outcome): it was a length, and the real
        // one exceeds the frame.
        _ if shape_a != shape_b => return Err(GuardError::LengthExceedsFrame),
        (Ok(_), Err(_)) | (Err(_), Ok(_)) => return Err(GuardError::LengthExceedsFrame),
        _ => {}
    }
    // Every suspicious value was a plain field: the real decode has the same shape.
    let mut buf = body.clone();
    let message = T::decode(&mut buf, version).map_err(|e| GuardError::Malformed(e.to_string()))?;
    Ok((message, buf.remaining()))
}
