//! The six YCSB core workloads: their operation mixes and request distributions.

use super::distribution::Distribution;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One kind of operation, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// Read one record.
    Read,
    /// Overwrite one existing record.
    Update,
    /// Write a new record past the end of the key space.
    Insert,
    /// Read a short range of records.
    Scan,
    /// Read a record, then write it back (one operation, both latencies summed).
    ReadModifyWrite,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::ReadModifyWrite,
    ];

    /// Its name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::ReadModifyWrite => "read-modify-write",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A YCSB core workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Workload {
    /// Update heavy: 50% read, 50% update, zipfian.
    A,
    /// Read mostly: 95% read, 5% update, zipfian.
    B,
    /// Read only: 100% read, zipfian.
    C,
    /// Read latest: 95% read, 5% insert, latest.
    D,
    /// Short ranges: 95% scan, 5% insert, zipfian.
    E,
    /// Read-modify-write: 50% read, 50% read-modify-write, zipfian.
    F,
    /// Write only: 100% update, zipfian. Not a YCSB core workload (so not in
    /// [`Workload::ALL`]); `diskv bench compare` uses it for write latency.
    W,
}

impl Workload {
    /// All six, in order.
    pub const ALL: [Workload; 6] = [
        Workload::A,
        Workload::B,
        Workload::C,
        Workload::D,
        Workload::E,
        Workload::F,
    ];

    /// Its operation mix: each kind with its share (the shares sum to 1).
    pub fn mix(self) -> &'static [(OpKind, f64)] {
        use OpKind::*;
        match self {
            Workload::A => &[(Read, 0.5), (Update, 0.5)],
            Workload::B => &[(Read, 0.95), (Update, 0.05)],
            Workload::C => &[(Read, 1.0)],
            Workload::D => &[(Read, 0.95), (Insert, 0.05)],
            Workload::E => &[(Scan, 0.95), (Insert, 0.05)],
            Workload::F => &[(Read, 0.5), (ReadModifyWrite, 0.5)],
            Workload::W => &[(Update, 1.0)],
        }
    }

    /// How reads, updates and scans pick their record.
    pub fn distribution(self) -> Distribution {
        match self {
            Workload::D => Distribution::Latest,
            _ => Distribution::ScrambledZipfian,
        }
    }

    /// A one-line description for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Workload::A => "50% read / 50% update, zipfian",
            Workload::B => "95% read / 5% update, zipfian",
            Workload::C => "100% read, zipfian",
            Workload::D => "95% read latest / 5% insert",
            Workload::E => "95% scan (1-100 records) / 5% insert, zipfian",
            Workload::F => "50% read / 50% read-modify-write, zipfian",
            Workload::W => "100% update, zipfian (write only)",
        }
    }

    /// Picks the next operation's kind.
    pub fn next_op(self, rng: &mut impl Rng) -> OpKind {
        let mix = self.mix();
        let mut u: f64 = rng.gen();
        for &(kind, share) in mix {
            if u < share {
                return kind;
            }
            u -= share;
        }
        mix[mix.len() - 1].0
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::str::FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Workload, String> {
        let s = s.trim().trim_start_matches("workload");
        Workload::ALL
            .into_iter()
            .find(|w| w.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown workload {s:?}: expected one of a, b, c, d, e, f"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn every_mix_sums_to_one() {
        for w in Workload::ALL {
            let total: f64 = w.mix().iter().map(|(_, s)| s).sum();
            assert!((total - 1.0).abs() < 1e-9, "{w}: {total}");
        }
    }

    #[test]
    fn drawn_mixes_match_the_workload_within_one_percent() {
        let draws = 100_000;
        for w in Workload::ALL {
            let mut rng = StdRng::seed_from_u64(42);
            let mut seen: HashMap<OpKind, usize> = HashMap::new();
            for _ in 0..draws {
                *seen.entry(w.next_op(&mut rng)).or_default() += 1;
            }
            for &(kind, share) in w.mix() {
                let got = seen.remove(&kind).unwrap_or(0) as f64 / draws as f64;
                assert!((got - share).abs() < 0.01, "{w} {kind}: {got} vs {share}");
            }
            assert!(seen.is_empty(), "{w} drew kinds outside its mix: {seen:?}");
        }
    }

    #[test]
    fn workloads_parse_from_letters() {
        assert_eq!("a".parse::<Workload>().unwrap(), Workload::A);
        assert_eq!("workloadf".parse::<Workload>().unwrap(), Workload::F);
        assert!("g".parse::<Workload>().is_err());
        assert_eq!(Workload::D.distribution(), Distribution::Latest);
    }
}
