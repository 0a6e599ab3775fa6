//! Binary files behind a checksummed header: a magic, the body's CRC-32C, and
//! for some formats the body's length.

/// The header of one binary file format: `MAGIC | crc32c(body): u32 LE | body`,
/// or with [`Header::with_length`] `MAGIC | crc32c(body): u32 LE | len(body):
/// u64 LE | body`. The formats that use it (KV key files `DKV1`, KV checkpoint
/// records `DKC1`, the shardmaster checkpoint `DSM1`) are fixed on disk: these
/// bytes never change.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    magic: &'static [u8; 4],
    what: &'static str,
    length: bool,
}

/// Why bytes are not a file of a [`Header`]'s format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer bytes than a header with a length field.
    #[error("{len} bytes, shorter than the header")]
    Short {
        /// How many bytes there are.
        len: usize,
    },
    /// The magic is not the format's (or, without a length field, the file is
    /// shorter than a header).
    #[error("not a {what} (bad magic)")]
    BadMagic {
        /// What the format is, as the error names it.
        what: &'static str,
    },
    /// The length field disagrees with the bytes that follow the header.
    #[error("payload is {actual} bytes, the header says {recorded}")]
    Length {
        /// Bytes after the header.
        actual: usize,
        /// What the header says.
        recorded: u64,
    },
    /// The body does not match its checksum.
    #[error("checksum mismatch")]
    Checksum,
}

impl Header {
    /// `magic | crc32c(body) | body`; `what` names the format in errors ("diskv
    /// key file").
    pub const fn new(magic: &'static [u8; 4], what: &'static str) -> Header {
        Header {
            magic,
            what,
            length: false,
        }
    }

    /// `magic | crc32c(body) | len(body) | body`.
    pub const fn with_length(magic: &'static [u8; 4], what: &'static str) -> Header {
        Header {
            magic,
            what,
            length: true,
        }
    }

    /// Bytes before the body.
    pub const fn header_len(&self) -> usize {
        if self.length {
            16
        } else {
            8
        }
    }

    /// The file's bytes: the header, then `body`.
    pub fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.header_len() + body.len());
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        if self.length {
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    /// The body of a file written by [`Header::encode`], checked: magic, length
    /// (if the format has one), then checksum.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<&'a [u8], HeaderError> {
        let bad_magic = HeaderError::BadMagic { what: self.what };
        if bytes.len() < self.header_len() {
            return Err(if self.length {
                HeaderError::Short { len: bytes.len() }
            } else {
                bad_magic
            });
        }
        let (header, body) = bytes.split_at(self.header_len());
        if &header[..4] != self.magic {
            return Err(bad_magic);
        }
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if self.length {
            let mut len = [0u8; 8];
            len.copy_from_slice(&header[8..16]);
            let recorded = u64::from_le_bytes(len);
            if recorded != body.len() as u64 {
                return Err(HeaderError::Length {
                    actual: body.len(),
                    recorded,
                });
            }
        }
        if crc32c::crc32c(body) != crc {
            return Err(HeaderError::Checksum);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Header = Header::new(b"TST1", "test file");
    const SIZED: Header = Header::with_length(b"TST2", "sized test file");

    #[test]
    fn the_bytes_are_the_formats() {
        let body = b"hello";
        let crc = crc32c::crc32c(body).to_le_bytes();
        let plain = PLAIN.encode(body);
        assert_eq!(plain, [&b"TST1"[..], &crc, body].concat());
        let sized = SIZED.encode(body);
        assert_eq!(
            sized,
            [&b"TST2"[..], &crc, &5u64.to_le_bytes(), body].concat()
        );
        assert_eq!(PLAIN.decode(&plain), Ok(&body[..]));
        assert_eq!(SIZED.decode(&sized), Ok(&body[..]));
    }

    #[test]
    fn every_torn_or_flipped_file_is_refused_with_its_reason() {
        for header in [PLAIN, SIZED] {
            let good = header.encode(b"some body bytes");
            for cut in 0..good.len() {
                assert!(header.decode(&good[..cut]).is_err(), "cut at {cut}");
            }
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] ^= 0x10;
                assert!(header.decode(&bad).is_err(), "flip at {i}");
            }
        }
        assert_eq!(
            PLAIN.decode(b"TST"),
            Err(HeaderError::BadMagic { what: "test file" })
        );
        assert_eq!(
            PLAIN.decode(b"XXXX0000").unwrap_err().to_string(),
            "not a test file (bad magic)"
        );
        assert_eq!(SIZED.decode(b"TST2"), Err(HeaderError::Short { len: 4 }));
        let mut long = SIZED.encode(b"x");
        long.push(0);
        assert_eq!(
            SIZED.decode(&long).unwrap_err().to_string(),
            "payload is 2 bytes, the header says 1"
        );
        let mut flipped = PLAIN.encode(b"x");
        flipped[8] ^= 1;
        assert_eq!(PLAIN.decode(&flipped), Err(HeaderError::Checksum));
    }
}
