//! A whole log directory: `SegmentLog::open_on` reads every segment, applies the
//! torn-tail rule to the last one (`storage::tail`), cuts or refuses, restates the
//! head; then `Storage::load`.
//!
//! Then, as a replica starts, `core::Replica::restore` rebuilds the protocol
//! state from the records.
//!
//! Mode byte % 3: `0` the bytes are the only segment; `1` they are the first of
//! two segments (the second valid), so any defect is corruption; `2` they are the
//! last segment after a valid one. Mode byte / 3 odd: the bytes are not a segment
//! but postcard payloads separated by [`SEP`], which the target frames itself
//! (length and checksum right), so that mutants of a record's fields reach the
//! log and the core whatever length they end up with.
//!
//! Checks: opening returns a log or a typed error; a log that opened opens again
//! with the same records (recovery is idempotent; the head facts it restated may
//! follow them); a record appended to it is read back last; restoring a replica
//! from the records returns.

use crate::fixup;
use crate::targets::{as_is_and_repaired, frame, mode, with_mode};
use paxos::core::{CoreConfig, Replica};
use paxos::fs::{FileSystem, SharedFs, SimFs};
use paxos::storage::{LogOptions, SegmentLog};
use paxos::{Record, Storage};
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/log";

/// Separates the payloads of the framed mode.
pub const SEP: &[u8] = b"\n--record--\n";

/// Opens a log made of `data` (see the module docs).
pub fn target(data: &[u8]) {
    let (m, rest) = mode(data);
    if (m / 3) % 2 == 1 {
        check(m % 3, &frame_payloads(rest));
    } else {
        as_is_and_repaired(rest, fixup::frames, |bytes| check(m % 3, bytes));
    }
}

/// Every piece of `bytes` between separators, framed: `len | crc32c | payload`.
fn frame_payloads(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut rest = bytes;
    loop {
        let (piece, next) = match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => (&rest[..at], Some(&rest[at + SEP.len()..])),
            None => (rest, None),
        };
        if !piece.is_empty() {
            out.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            out.extend_from_slice(&crc32c::crc32c(piece).to_le_bytes());
            out.extend_from_slice(piece);
        }
        match next {
            Some(next) => rest = next,
            None => return out,
        }
    }
}

fn valid_segment() -> Vec<u8> {
    frame::records()[..3]
        .iter()
        .flat_map(frame::framed)
        .collect()
}

fn segment_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

fn check(variant: u8, bytes: &[u8]) {
    let sim = SimFs::new();
    let dir = Path::new(DIR);
    sim.create_dir_all(dir).expect("sim mkdir");
    let segments: Vec<Vec<u8>> = match variant {
        0 => vec![bytes.to_vec()],
        1 => vec![bytes.to_vec(), valid_segment()],
        _ => vec![valid_segment(), bytes.to_vec()],
    };
    for (seq, seg) in segments.iter().enumerate() {
        sim.write(&dir.join(segment_name(seq as u64)), seg)
            .expect("sim write");
    }
    let fs: SharedFs = Arc::new(sim);
    let opts = LogOptions {
        segment_bytes: 1 << 20,
        sync: true,
    };
    let Ok(mut log) = SegmentLog::open_on(fs.clone(), dir, opts) else {
        return; // a typed error: corrupt, or I/O
    };
    let records = log.load().expect("a log that opened loads");
    drop(log);
    let _ = Replica::restore(CoreConfig::new(1, 3), records.clone());
    let mut again =
        SegmentLog::open_on(fs.clone(), dir, opts).expect("a log that opened opens again");
    let reread = again.load().expect("loads again");
    // Opening may have restated the head at the end of the last segment (facts the
    // records already establish): the same records, then only restatements.
    assert!(
        reread.starts_with(&records) && reread[records.len()..].iter().all(|r| r.slot().is_none()),
        "reopening changed the records: {} then {}",
        records.len(),
        reread.len()
    );
    let extra = Record::Committed { upto: 1 << 50 };
    again.append(std::slice::from_ref(&extra)).expect("append");
    again.sync().expect("sync");
    drop(again);
    let mut third = SegmentLog::open_on(fs, dir, opts).expect("opens after an append");
    let after = third.load().expect("loads after an append");
    assert_eq!(
        after.last(),
        Some(&extra),
        "the appended record is not last"
    );
}

/// Whole segments in each position, a torn tail and a zero-filled tail.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let all: Vec<u8> = frame::records().iter().flat_map(frame::framed).collect();
    let mut torn = all.clone();
    torn.truncate(all.len() - 5);
    let payloads = frame::records()
        .iter()
        .map(|r| postcard::to_stdvec(r).expect("seed records encode"))
        .collect::<Vec<_>>()
        .join(SEP);
    let mut zeros = all.clone();
    zeros.resize(4096, 0);
    vec![
        ("only".into(), with_mode(0, &all)),
        ("first".into(), with_mode(1, &all)),
        ("last".into(), with_mode(2, &all)),
        ("torn".into(), with_mode(0, &torn)),
        ("zero-tail".into(), with_mode(2, &zeros)),
        ("empty".into(), with_mode(0, &[])),
        ("payloads-only".into(), with_mode(3, &payloads)),
        ("payloads-first".into(), with_mode(4, &payloads)),
        ("payloads-last".into(), with_mode(5, &payloads)),
    ]
}
