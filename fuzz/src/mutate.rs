//! A seeded mutator: the same seed and corpus give the same inputs, so any run can
//! be replayed.
//!
//! Each mutant is a corpus entry with one to four stacked edits: bit flips, bytes
//! set to interesting values, small arithmetic, random bytes, inserted, deleted,
//! duplicated or copied ranges, truncation, a splice with another entry, and
//! integers at the edges of their encodings written over or into the bytes: LEB128
//! varints (postcard's lengths and integers; one may replace the varint already
//! there, keeping the fields after it aligned) and little- and big-endian `u32`
//! fields (frame lengths), at values such as 127/128, `u32::MAX` and beyond.

/// A small, fast pseudo-random generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// The generator of `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is `0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` times.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Byte values that often sit at a decoder's edges.
const INTERESTING_BYTES: [u8; 10] = [0, 0xFF, 0x7F, 0x80, 1, 0x81, 0xFE, 0x40, 0x20, b'\n'];

/// Integer values at the edges of varint and fixed-width encodings.
const INTERESTING_INTS: [u64; 20] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0x3FFF,
    0x4000,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0x1_0000_0000,
    64 << 20,
    (64 << 20) + 1,
    256 << 20,
    i64::MAX as u64,
    u64::MAX,
];

/// Makes mutants of corpus entries.
#[derive(Clone, Debug)]
pub struct Mutator {
    rng: Rng,
    max_len: usize,
}

impl Mutator {
    /// A mutator drawing from `seed`, making inputs of at most `max_len` bytes.
    pub fn new(seed: u64, max_len: usize) -> Mutator {
        Mutator {
            rng: Rng::new(seed),
            max_len: max_len.max(1),
        }
    }

    /// The generator, to pick corpus entries with.
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// A mutant of `base`; `other` is another corpus entry, for splices.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut data = base.to_vec();
        let edits = 1 + self.rng.below(4);
        for _ in 0..edits {
            self.edit(&mut data, other);
        }
        data.truncate(self.max_len);
        data
    }

    fn edit(&mut self, data: &mut Vec<u8>, other: &[u8]) {
        let r = &mut self.rng;
        if data.is_empty() {
            let n = 1 + r.below(16);
            data.extend((0..n).map(|_| r.next_u64() as u8));
            return;
        }
        let len = data.len();
        match r.below(14) {
            0 | 1 => {
                let at = r.below(len);
                data[at] ^= 1 << r.below(8);
            }
            2 => {
                let at = r.below(len);
                data[at] = INTERESTING_BYTES[r.below(INTERESTING_BYTES.len())];
            }
            3 => {
                let at = r.below(len);
                let delta = 1 + r.below(16) as u8;
                data[at] = if r.one_in(2) {
                    data[at].wrapping_add(delta)
                } else {
                    data[at].wrapping_sub(delta)
                };
            }
            4 => {
                let at = r.below(len);
                data[at] = r.next_u64() as u8;
            }
            5 => {
                // Insert random or repeated bytes.
                let at = r.below(len + 1);
                let n = 1 + r.below(32);
                let fill = r.next_u64() as u8;
                let bytes: Vec<u8> = if r.one_in(2) {
                    vec![fill; n]
                } else {
                    (0..n).map(|_| r.next_u64() as u8).collect()
                };
                data.splice(at..at, bytes);
            }
            6 => {
                // Delete a range.
                let at = r.below(len);
                let n = 1 + r.below((len - at).min(64));
                data.drain(at..at + n);
            }
            7 => {
                // Duplicate a range somewhere.
                let from = r.below(len);
                let n = 1 + r.below((len - from).min(256));
                let chunk = data[from..from + n].to_vec();
                let at = r.below(len + 1);
                data.splice(at..at, chunk);
            }
            8 => {
                // Copy a range over another place.
                let from = r.below(len);
                let n = 1 + r.below((len - from).min(64));
                let chunk = data[from..from + n].to_vec();
                let at = r.below(len);
                let end = (at + n).min(len);
                data[at..end].copy_from_slice(&chunk[..end - at]);
            }
            9 => {
                data.truncate(r.below(len));
            }
            10 => {
                // Splice with another entry: a prefix of this one, a suffix of it.
                if other.is_empty() {
                    return;
                }
                let cut = r.below(len + 1);
                let from = r.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            11 | 12 => {
                let value = INTERESTING_INTS[r.below(INTERESTING_INTS.len())];
                let value = match r.below(3) {
                    0 => value,
                    1 => value.wrapping_sub(1),
                    _ => value.wrapping_add(1),
                };
                let bytes = varint(value);
                let at = r.below(len + 1);
                match r.below(3) {
                    0 => {
                        data.splice(at..at, bytes);
                    }
                    1 => {
                        let end = (at + bytes.len()).min(len);
                        data.splice(at..end, bytes);
                    }
                    _ => {
                        // Replace the varint that starts at `at`, whatever its
                        // length: one postcard integer or length changed, the
                        // fields after it intact.
                        let end = varint_end(data, at);
                        data.splice(at..end, bytes);
                    }
                }
            }
            _ => {
                let value = INTERESTING_INTS[r.below(INTERESTING_INTS.len())] as u32;
                let bytes = if r.one_in(2) {
                    value.to_le_bytes()
                } else {
                    value.to_be_bytes()
                };
                let at = r.below(len);
                let end = (at + 4).min(len);
                data[at..end].copy_from_slice(&bytes[..end - at]);
            }
        }
    }
}

/// Where the varint starting at `at` ends: after its first byte without the
/// continuation bit (at most 10 bytes), or at the end of `data`.
fn varint_end(data: &[u8], at: usize) -> usize {
    let mut end = at;
    while end < data.len() && end - at < 10 {
        end += 1;
        if data[end - 1] & 0x80 == 0 {
            break;
        }
    }
    end
}

/// The LEB128 varint of `value` (postcard's encoding of integers and lengths).
/// Over-long forms come from the byte edits.
pub fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_mutants() {
        let base = b"some corpus entry of a few bytes".to_vec();
        let other = vec![1, 2, 3, 4, 5];
        let mut a = Mutator::new(7, 4096);
        let mut b = Mutator::new(7, 4096);
        for _ in 0..1000 {
            assert_eq!(a.mutate(&base, &other), b.mutate(&base, &other));
        }
    }

    #[test]
    fn mutants_stay_within_the_length_limit_and_grow_from_nothing() {
        let mut m = Mutator::new(1, 64);
        for _ in 0..1000 {
            assert!(m.mutate(&[0xAB; 60], &[0xCD; 60]).len() <= 64);
        }
        assert!(!m.mutate(&[], &[]).is_empty());
    }

    #[test]
    fn a_varint_ends_at_its_first_byte_without_the_continuation_bit() {
        assert_eq!(varint_end(&[0x80, 0x80, 0x01, 0x05], 0), 3);
        assert_eq!(varint_end(&[0x80, 0x80, 0x01, 0x05], 3), 4);
        assert_eq!(varint_end(&[0xFF; 20], 2), 12);
        assert_eq!(varint_end(&[0x80], 0), 1);
    }

    #[test]
    fn varints_are_leb128() {
        assert_eq!(varint(0), [0]);
        assert_eq!(varint(127), [0x7F]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(u64::MAX).len(), 10);
    }
}
