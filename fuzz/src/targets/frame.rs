//! One log record frame: `paxos::storage::frame::parse`, the decoder every
//! segment read goes through.

use crate::fixup;
use crate::targets::as_is_and_repaired;
use paxos::core::Membership;
use paxos::fuzzing::{encode_frame, parse_frame, HEADER_LEN};
use paxos::{Ballot, Entry, Record, Reincarnation};

/// Parses `data` as a frame (and the frame with its checksum repaired); a record
/// that parses must frame again to a frame that parses to it.
pub fn target(data: &[u8]) {
    as_is_and_repaired(data, fixup::frames, check);
}

fn check(bytes: &[u8]) {
    match parse_frame(bytes) {
        Ok((record, len)) => {
            assert!(len > HEADER_LEN && len <= bytes.len(), "frame length {len}");
            let mut buf = Vec::new();
            let n = encode_frame(&record, &mut buf).expect("a parsed record frames again");
            let (again, m) = parse_frame(&buf).expect("a re-framed record parses");
            assert_eq!(again, record, "parse(encode(r)) != r");
            assert_eq!(m, n);
        }
        Err(defect) => {
            let _ = defect.to_string();
            let _ = defect.plausible_len();
        }
    }
}

/// A record of every kind, with the entries they carry.
pub(crate) fn records() -> Vec<Record> {
    let mut membership = Membership::initial(3);
    membership.reincarnate(
        40,
        8,
        Reincarnation {
            node: 1,
            nonce: 0x5eed,
            replaces: Some(0),
        },
    );
    vec![
        Record::Promised(Ballot::of(7, 1, 2)),
        Record::Accepted {
            slot: 3,
            ballot: Ballot::new(2, 0),
            entry: Entry::batch([b"put k v".to_vec(), Vec::new(), vec![0xFF; 20]]),
        },
        Record::Accepted {
            slot: 300,
            ballot: Ballot::new(200, 1),
            entry: Entry::Reincarnate {
                node: 2,
                nonce: 77,
                replaces: 1,
            },
        },
        Record::Learned {
            slot: 4,
            entry: Entry::Noop,
        },
        Record::Learned {
            slot: 1 << 40,
            entry: Entry::LegacyReincarnate { node: 1, nonce: 9 },
        },
        Record::Committed { upto: 129 },
        Record::Forgotten { below: 128 },
        Record::Membership(Membership::initial(3)),
        Record::Membership(membership),
    ]
}

/// The frame of `record`.
pub(crate) fn framed(record: &Record) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_frame(record, &mut buf).expect("seed records frame");
    buf
}

/// One frame of each record kind.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    records()
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("record-{i}"), framed(r)))
        .collect()
}
