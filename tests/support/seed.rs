//! Seeded randomness for the randomized process tests: the seed is printed, and
//! `DISKV_TEST_SEED=<seed>` replays a run's choices.

use std::time::{SystemTime, UNIX_EPOCH};

/// The seed of this run: `DISKV_TEST_SEED` if set, else the clock. Printed with
/// `test`'s name so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("DISKV_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!("{test}: seed {seed} (replay with DISKV_TEST_SEED={seed})");
    seed
}

/// A small xorshift generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`, mixed with `stream` so threads draw different numbers
    /// (the multiplications spread small seeds over all 64 bits).
    pub fn new(seed: u64, stream: u64) -> Rng {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        Rng(seed
            .wrapping_add(stream.wrapping_mul(GOLDEN))
            .wrapping_mul(GOLDEN)
            | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// One element of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
