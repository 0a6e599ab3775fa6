//! Request distributions: which record an operation touches.
//!
//! - [`Zipfian`]: Gray et al.'s zipfian generator ("Quickly generating billion-record
//!   synthetic databases", SIGMOD 1994), as YCSB uses it, with constant 0.99: item 0
//!   is the most popular, then 1, and so on. The zeta sum grows incrementally when
//!   the item count grows.
//! - [`Distribution::ScrambledZipfian`]: YCSB's default: zipfian popularity over a
//!   fixed huge item space, spread over the records by a 64-bit FNV-1a hash, so the
//!   popular records are scattered rather than the first few.
//! - [`Distribution::Latest`]: YCSB's skewed-latest (workload D): the most recently
//!   inserted record is the most popular.

use rand::Rng;

/// YCSB's zipfian constant.
pub const ZIPFIAN_CONSTANT: f64 = 0.99;
/// The item space of the scrambled zipfian (YCSB: 10^10).
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
/// zeta(10^10, 0.99), the constant YCSB precomputes for that item space.
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// Sum of 1/i^theta for i in `from+1..=to`.
fn zeta_range(from: u64, to: u64, theta: f64) -> f64 {
    (from + 1..=to).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

/// Zipfian over `0..items`, item 0 the most popular.
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Zipfian over `0..items` (at least one item).
    pub fn new(items: u64) -> Zipfian {
        let items = items.max(1);
        let theta = ZIPFIAN_CONSTANT;
        Zipfian::with_zetan(items, theta, zeta_range(0, items, theta))
    }

    fn with_zetan(items: u64, theta: f64, zetan: f64) -> Zipfian {
        let zeta2 = zeta_range(0, 2, theta);
        let mut z = Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2,
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for(items);
        z
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2 / self.zetan)
    }

    /// Grows the item space to `items` (never shrinks it).
    pub fn grow_to(&mut self, items: u64) {
        if items > self.items {
            self.zetan += zeta_range(self.items, items, self.theta);
            self.items = items;
            self.eta = self.eta_for(items);
        }
    }

    /// The next item.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let n = self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha);
        (n as u64).min(self.items - 1)
    }
}

/// 64-bit FNV-1a of the little-endian bytes of `v`.
pub fn fnv1a(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// How an operation picks its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// YCSB's scrambled zipfian (popular records scattered over the key space).
    ScrambledZipfian,
    /// The newest records the most popular (YCSB's skewed-latest).
    Latest,
}

/// One client's record chooser (each client has its own, with its own state).
#[derive(Clone, Debug)]
pub struct Chooser {
    dist: Distribution,
    zipf: Zipfian,
}

impl Chooser {
    /// A chooser for `dist` over an initial `records` records.
    pub fn new(dist: Distribution, records: u64) -> Chooser {
        let zipf = match dist {
            Distribution::ScrambledZipfian => {
                Zipfian::with_zetan(SCRAMBLED_ITEMS, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN)
            }
            Distribution::Latest => Zipfian::new(records),
        };
        Chooser { dist, zipf }
    }

    /// A record number in `0..records` (`records` is the readable count now).
    pub fn next(&mut self, records: u64, rng: &mut impl Rng) -> u64 {
        let records = records.max(1);
        match self.dist {
            Distribution::ScrambledZipfian => fnv1a(self.zipf.next(rng)) % records,
            Distribution::Latest => {
                self.zipf.grow_to(records);
                let back = self.zipf.next(rng).min(records - 1);
                records - 1 - back
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn counts(chooser: &mut Chooser, records: u64, draws: usize) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut c = vec![0u64; records as usize];
        for _ in 0..draws {
            c[chooser.next(records, &mut rng) as usize] += 1;
        }
        c
    }

    #[test]
    fn zipfian_is_skewed_towards_item_zero() {
        let z = Zipfian::new(1_000);
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = vec![0u64; 1_000];
        for _ in 0..100_000 {
            c[z.next(&mut rng) as usize] += 1;
        }
        // With theta 0.99 over 1,000 items, P(0) = 1/zeta(1000) ~ 13%.
        let p0 = c[0] as f64 / 100_000.0;
        assert!((0.11..0.16).contains(&p0), "P(item 0) = {p0}");
        assert!(c[0] > c[1] && c[1] > c[10] && c[10] > c[500]);
        let top10: u64 = c[..10].iter().sum();
        assert!(
            top10 > 30_000,
            "the 10 hottest of 1,000 items got {top10} of 100,000"
        );
    }

    #[test]
    fn scrambled_zipfian_is_skewed_but_scattered() {
        let mut ch = Chooser::new(Distribution::ScrambledZipfian, 1_000);
        let mut c = counts(&mut ch, 1_000, 100_000);
        let hottest = (0..c.len()).max_by_key(|&i| c[i]).unwrap();
        assert_ne!(
            hottest, 0,
            "the scrambling moves the hottest record away from 0"
        );
        c.sort_unstable_by(|a, b| b.cmp(a));
        // Zipfian over 10^10 items folded onto 1,000 records: the hottest gets
        // 1/zeta(10^10) ~ 3.8% (uniform: 0.1%), the top 10 about 11% (uniform: 1%).
        assert!(c[0] > 3_000, "the hottest record got {} of 100,000", c[0]);
        let top10: u64 = c[..10].iter().sum();
        assert!(top10 > 8_000, "top 10 records got {top10} of 100,000");
        let touched = c.iter().filter(|&&n| n > 0).count();
        assert!(
            touched > 500,
            "only {touched} of 1,000 records were ever chosen"
        );
    }

    #[test]
    fn latest_prefers_the_newest_records_and_follows_inserts() {
        let mut ch = Chooser::new(Distribution::Latest, 1_000);
        let c = counts(&mut ch, 1_000, 50_000);
        assert!(c[999] > c[998] && c[998] > c[900] && c[900] > c[0]);
        let mut rng = StdRng::seed_from_u64(3);
        let newest = (0..1_000)
            .filter(|_| ch.next(1_500, &mut rng) == 1_499)
            .count();
        assert!(
            newest > 80,
            "record 1499 chosen {newest} times of 1,000 after growth"
        );
    }

    #[test]
    fn choices_stay_below_the_record_count() {
        let mut rng = StdRng::seed_from_u64(9);
        for dist in [Distribution::ScrambledZipfian, Distribution::Latest] {
            let mut ch = Chooser::new(dist, 10);
            for records in [1u64, 2, 10, 37] {
                for _ in 0..1_000 {
                    assert!(ch.next(records, &mut rng) < records, "{dist:?}");
                }
            }
        }
    }
}
