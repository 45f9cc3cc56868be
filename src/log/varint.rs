//! Kafka's zigzag varints (`ByteUtils.readVarint` / `writeVarlong`), as the records of a v2
//! batch use them for lengths, deltas and counts.

/// Reads a zigzag varint of at most `max_bytes` bytes (5 for an int, 10 for a long) at
/// `*pos`, advancing it; `None` when the bytes end first or the varint is longer.
pub fn read_zigzag(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Appends `value` as a zigzag varint.
pub fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_overlong() {
        for v in [0i64, -1, 1, 63, 64, -65, i32::MAX as i64, i64::MIN] {
            let mut out = Vec::new();
            put_zigzag(&mut out, v);
            let mut p = 0;
            assert_eq!(read_zigzag(&out, &mut p, 10), Some(v));
            assert_eq!(p, out.len());
        }
        let mut p = 0;
        assert_eq!(read_zigzag(&[0x80; 6], &mut p, 5), None);
    }
}
