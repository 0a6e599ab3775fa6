//! Tests of the driver: it carries out the core's durability rules as the tokio
//! driver does.

use super::super::kv::Kv;
use super::*;
use crate::check::{ConfigLog, Digests, Votes};
use crate::packet::Packet;
use crate::trace::Trace;
use diskv::identity::Identity;
use diskv::KvState;
use paxos::core::CoreConfig;
use paxos::fs::{SharedFs, SimFs};
use paxos::storage::LogOptions;
use paxos::{Ballot, Entry, Message, Record};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;
use std::sync::Arc;

fn accept(slot: Slot, commit: Slot) -> Envelope {
    Envelope {
        from: 0,
        to: 1,
        msg: Message::Accept {
            ballot: Ballot::new(1, 0),
            slot,
            entry: Entry::Noop,
            commit,
        },
    }
}

/// Review: the driver takes `compact` for a sync ("compaction syncs the log
/// before it deletes anything") and reports every record appended so far
/// durable. But a compaction with nothing to delete (one segment that still
/// holds live instances) syncs nothing: the `Accepted` waiting for its record
/// leaves, and a power loss then takes the record away — the simulator no
/// longer runs the rules the tokio driver runs (its persister syncs first).
#[test]
fn review_a_compaction_that_deletes_nothing_makes_nothing_durable() {
    let sim = SimFs::new();
    let fs: SharedFs = Arc::new(sim.clone());
    let data = Path::new(DATA_DIR);
    let log = SegmentLog::open_on(fs.clone(), &data.join("log"), LogOptions::default()).unwrap();
    let (state, applied) = KvState::open_on(fs.clone(), data, 1, 4).unwrap();
    let identity = Identity {
        cluster: vec![],
        gid: 1,
        me: 1,
        nshards: 4,
        incarnation: 0,
        recovering: None,
    };
    let mut rng = StdRng::seed_from_u64(1);
    let mut votes = Votes::new(3, 64);
    let mut reads = ReadStats::default();
    let mut digests = Digests::default();
    let mut configs = ConfigLog::default();
    let mut trace = Trace::new(false);
    let mut violations = Vec::new();
    let mut io = Io {
        now: 0,
        rng: &mut rng,
        group: 1,
        node: 1,
        generation: 0,
        sends: Vec::new(),
        timers: Vec::new(),
        votes: &mut votes,
        reads: &mut reads,
        digests: &mut digests,
        configs: &mut configs,
        trace: &mut trace,
        violations: &mut violations,
    };
    let core = Replica::new(CoreConfig::new(1, 3));
    let applier = Applier::new(state, applied, 1, 7);
    let mut r: Running<Kv> = Running::start(&mut io, core, Vec::new(), log, applier, identity);
    // Instance 0 accepted and synced.
    r.core.handle(accept(0, 0));
    r.drive(&mut io);
    io.now += 1_000 * MS;
    r.sync_done(&mut io);
    // Instance 1 accepted (its record appended, not yet synced); the watermark
    // decides 0; every replica is done with 0, this one's application too.
    io.sends.clear();
    r.core.handle(accept(1, 1));
    r.core.handle(Envelope {
        from: 0,
        to: 1,
        msg: Message::Heartbeat {
            ballot: Ballot::new(1, 0),
            commit: 1,
            round: 1,
            done: vec![1, 1, 1],
        },
    });
    r.core.done(0);
    r.drive(&mut io);
    let revealed = io.sends.iter().any(|(_, p)| {
        matches!(
            p,
            Packet::Paxos(Envelope {
                msg: Message::Accepted { slot: 1, .. },
                ..
            })
        )
    });
    sim.crash_losing_unsynced();
    let mut log = SegmentLog::open_on(fs, &data.join("log"), LogOptions::default()).unwrap();
    let kept = log
        .load()
        .unwrap()
        .iter()
        .any(|rec| matches!(rec, Record::Accepted { slot: 1, .. }));
    assert!(
        kept || !revealed,
        "Accepted for instance 1 left before its record was durable"
    );
}

const DATA_DIR: &str = "/data";
