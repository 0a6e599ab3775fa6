//! Checksum repairs: the same bytes with every checksum made to match, so that a
//! mutant reaches the decoder behind the checksum instead of stopping at it.
//!
//! Each function writes the format's checksum fields (and length fields where the
//! format checks one) the way its encoder would; the targets feed both the input
//! as it is and, when it differs, the repaired copy.

/// A segment (or one frame) with the checksum of every frame whose length field
/// fits in the bytes repaired, walking frame by frame (`len: u32 LE | crc32c: u32
/// LE | payload`) until one does not fit.
pub fn frames(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while let Some(header) = out.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = at + 8;
        let Some(payload) = out.get(start..start.saturating_add(len)) else {
            break;
        };
        if len == 0 {
            break;
        }
        let crc = crc32c::crc32c(payload);
        out[at + 4..start].copy_from_slice(&crc.to_le_bytes());
        at = start + len;
    }
    out
}

/// A `MAGIC | crc32c(rest): u32 LE | rest` file (key files, KV checkpoint records)
/// with its checksum repaired, whatever its magic.
pub fn magic_crc(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() >= 8 {
        let crc = crc32c::crc32c(&out[8..]);
        out[4..8].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

/// A `MAGIC | crc32c(payload): u32 LE | len(payload): u64 LE | payload` file (the
/// shardmaster checkpoint) with its checksum and length repaired.
pub fn magic_crc_len(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.len() >= 16 {
        let crc = crc32c::crc32c(&out[16..]);
        let len = (out.len() - 16) as u64;
        out[4..8].copy_from_slice(&crc.to_le_bytes());
        out[8..16].copy_from_slice(&len.to_le_bytes());
    }
    out
}

/// A record sealed by [`paxos::fs::durable::seal`], sealed again over the text
/// before its (possibly damaged) seal line, or over all of it if it has none.
pub fn seal(bytes: &[u8]) -> Vec<u8> {
    const SEAL: &[u8] = b"\n# crc32c ";
    let text = match bytes.windows(SEAL.len()).rposition(|w| w == SEAL) {
        Some(at) => &bytes[..at],
        None => bytes,
    };
    paxos::fs::durable::seal(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repaired_frames_parse() {
        let record = paxos::Record::Committed { upto: 9 };
        let mut seg = Vec::new();
        paxos::fuzzing::encode_frame(&record, &mut seg).unwrap();
        paxos::fuzzing::encode_frame(&record, &mut seg).unwrap();
        let mut damaged = seg.clone();
        damaged[5] ^= 1;
        let last = damaged.len() - 1;
        damaged[last] ^= 0x10;
        assert!(paxos::fuzzing::parse_frame(&damaged).is_err());
        let repaired = frames(&damaged);
        assert!(paxos::fuzzing::parse_frame(&repaired).is_ok());
        assert_eq!(frames(&seg), seg);
    }

    #[test]
    fn sealing_again_restores_a_sealed_record() {
        let sealed = paxos::fs::durable::seal(b"{\"a\":1}");
        let mut damaged = sealed.clone();
        damaged[3] ^= 1;
        assert!(paxos::fs::durable::unseal(&damaged).is_err());
        assert!(paxos::fs::durable::unseal(&seal(&damaged)).is_ok());
        assert_eq!(seal(&sealed), sealed);
    }
}
