//! One record on disk: `len: u32 LE | crc32c(payload): u32 LE | payload`, where the
//! payload is the postcard encoding of a [`Record`].
//!
//! Encoding appends to a caller's reusable buffer; parsing works on a byte slice,
//! checks the length field against [`MAX_FRAME_PAYLOAD`] and against the bytes that
//! remain before reading the payload, and allocates only what the decoded record holds.

use crate::record::Record;
use std::fmt;

/// Bytes of a frame header: payload length then payload checksum.
pub const HEADER_LEN: usize = 8;

/// Largest payload a frame may carry (64 MiB). A longer length field is garbage.
pub const MAX_FRAME_PAYLOAD: usize = 64 << 20;

/// Why a record could not be framed.
#[derive(Debug)]
pub enum EncodeError {
    /// postcard refused the record.
    Postcard(postcard::Error),
    /// The encoded record is above [`MAX_FRAME_PAYLOAD`]; it could never be read back.
    TooLarge(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Postcard(e) => write!(f, "cannot encode record: {e}"),
            EncodeError::TooLarge(len) => write!(
                f,
                "record encodes to {len} bytes, above the {MAX_FRAME_PAYLOAD}-byte frame limit"
            ),
        }
    }
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameDefect {
    /// Fewer than [`HEADER_LEN`] bytes remain.
    ShortHeader { available: usize },
    /// The length field is zero (no record encodes to nothing): typically a
    /// zero-filled, preallocated region.
    ZeroLength,
    /// The length field is above [`MAX_FRAME_PAYLOAD`].
    HugeLength { len: u32 },
    /// The length field points past the end of the file.
    ShortPayload { len: usize, available: usize },
    /// The payload does not match its checksum.
    Checksum {
        len: usize,
        stored: u32,
        computed: u32,
    },
    /// The checksum matches but the payload is not a record (or has trailing bytes).
    Undecodable { len: usize, error: String },
}

impl FrameDefect {
    /// The payload length if the header is one a real frame could have: complete,
    /// non-zero, within the limit and within the bytes that remain.
    pub fn plausible_len(&self) -> Option<usize> {
        match self {
            FrameDefect::Checksum { len, .. } | FrameDefect::Undecodable { len, .. } => Some(*len),
            _ => None,
        }
    }
}

impl fmt::Display for FrameDefect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameDefect::ShortHeader { available } => {
                write!(f, "short frame header ({available} of {HEADER_LEN} bytes)")
            }
            FrameDefect::ZeroLength => write!(f, "zero frame length"),
            FrameDefect::HugeLength { len } => {
                write!(f, "frame length {len} above the {MAX_FRAME_PAYLOAD}-byte limit")
            }
            FrameDefect::ShortPayload { len, available } => {
                write!(f, "short payload ({available} of {len} bytes)")
            }
            FrameDefect::Checksum { len, stored, computed } => write!(
                f,
                "checksum mismatch in a {len}-byte payload (stored {stored:#010x}, computed {computed:#010x})"
            ),
            FrameDefect::Undecodable { len, error } => {
                write!(f, "{len}-byte payload passes its checksum but is not a record: {error}")
            }
        }
    }
}

/// Appends the frame of `record` to `buf` and returns the frame's length in bytes.
/// On error `buf` is left as it was.
pub fn encode(record: &Record, buf: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    let payload_start = buf.len();
    // `to_extend` takes the buffer by value and hands it back, so its allocation is
    // reused across records and appends.
    *buf = match postcard::to_extend(record, std::mem::take(buf)) {
        Ok(extended) => extended,
        Err(e) => return Err(EncodeError::Postcard(e)),
    };
    let payload_len = buf.len() - payload_start;
    if payload_len > MAX_FRAME_PAYLOAD {
        buf.truncate(start);
        return Err(EncodeError::TooLarge(payload_len));
    }
    let crc = crc32c::crc32c(&buf[payload_start..]);
    // The limit check above makes the cast lossless.
    buf[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    buf[start + 4..payload_start].copy_from_slice(&crc.to_le_bytes());
    Ok(HEADER_LEN + payload_len)
}

/// Parses the frame that starts at `bytes[0]`. Returns the record and the frame's
/// length in bytes.
pub fn parse(bytes: &[u8]) -> Result<(Record, usize), FrameDefect> {
    let (len, stored, rest) = match bytes {
        [l0, l1, l2, l3, c0, c1, c2, c3, rest @ ..] => (
            u32::from_le_bytes([*l0, *l1, *l2, *l3]),
            u32::from_le_bytes([*c0, *c1, *c2, *c3]),
            rest,
        ),
        _ => {
            return Err(FrameDefect::ShortHeader {
                available: bytes.len(),
            })
        }
    };
    if len == 0 {
        return Err(FrameDefect::ZeroLength);
    }
    let len_usize = len as usize;
    if len_usize > MAX_FRAME_PAYLOAD {
        return Err(FrameDefect::HugeLength { len });
    }
    let Some(payload) = rest.get(..len_usize) else {
        return Err(FrameDefect::ShortPayload {
            len: len_usize,
            available: rest.len(),
        });
    };
    let computed = crc32c::crc32c(payload);
    if computed != stored {
        return Err(FrameDefect::Checksum {
            len: len_usize,
            stored,
            computed,
        });
    }
    match postcard::take_from_bytes::<Record>(payload) {
        Ok((record, [])) => Ok((record.upgraded(), HEADER_LEN + len_usize)),
        Ok((_, trailing)) => Err(FrameDefect::Undecodable {
            len: len_usize,
            error: format!("{} trailing bytes", trailing.len()),
        }),
        Err(e) => Err(FrameDefect::Undecodable {
            len: len_usize,
            error: e.to_string(),
        }),
    }
}

/// True if `payload` is exactly the postcard encoding of one [`Record`].
pub(crate) fn is_record(payload: &[u8]) -> bool {
    matches!(postcard::take_from_bytes::<Record>(payload), Ok((_, [])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Ballot, Entry};

    fn accepted() -> Record {
        Record::Accepted {
            slot: 7,
            ballot: Ballot::new(3, 1),
            entry: Entry::single(b"put x".to_vec()),
        }
    }

    #[test]
    fn encode_then_parse_round_trips_and_reports_frame_length() {
        let mut buf = vec![0xAA]; // encode appends after what is there
        let n = encode(&accepted(), &mut buf).unwrap();
        assert_eq!(buf.len(), 1 + n);
        assert_eq!(parse(&buf[1..]), Ok((accepted(), n)));
        let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        assert_eq!(len + HEADER_LEN, n);
    }

    #[test]
    fn every_defect_is_classified() {
        let mut frame = Vec::new();
        let n = encode(&accepted(), &mut frame).unwrap();
        assert_eq!(
            parse(&frame[..5]),
            Err(FrameDefect::ShortHeader { available: 5 })
        );
        assert_eq!(parse(&[0; 16]), Err(FrameDefect::ZeroLength));
        assert!(matches!(
            parse(&frame[..n - 1]),
            Err(FrameDefect::ShortPayload { .. })
        ));
        let mut huge = frame.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&huge), Err(FrameDefect::HugeLength { len: u32::MAX }));
        let mut flipped = frame.clone();
        flipped[n - 1] ^= 0x40;
        let defect = parse(&flipped).unwrap_err();
        assert!(matches!(defect, FrameDefect::Checksum { .. }), "{defect}");
        assert_eq!(defect.plausible_len(), Some(n - HEADER_LEN));
        // A payload with a valid checksum that is not a record.
        let junk = [0xFF_u8; 5];
        let mut bad = (junk.len() as u32).to_le_bytes().to_vec();
        bad.extend_from_slice(&crc32c::crc32c(&junk).to_le_bytes());
        bad.extend_from_slice(&junk);
        assert!(matches!(
            parse(&bad),
            Err(FrameDefect::Undecodable { len: 5, .. })
        ));
    }
}
