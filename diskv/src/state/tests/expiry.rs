//! Duplicate entries expire at points of the log, in log time: replicas that
//! checkpoint at different moments stay identical, a moved duplicate table
//! survives the other group's log time, and log time does not jump.

use super::*;

/// Issue #12, bug 2: duplicate entries used to expire inside each replica's own
/// checkpoint (at a moment of local idleness), so two replicas applying the same
/// log answered a silent client's retry differently. Expiry now happens at a point
/// of the log; whether a replica checkpointed in between changes nothing.
#[test]
fn replicas_that_checkpoint_at_different_moments_stay_identical() {
    use crate::state::dedup::CLIENT_TTL_MS;
    let at = |cmd: KvCommand, at_ms: u64| match cmd {
        KvCommand::Op { req, .. } => KvCommand::Op { req, at_ms },
        other => other,
    };
    let log = vec![
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
        at(append(7, 1, "k", "x"), 1_000),
        // Another client, long after client 7 went silent: log time moves on.
        at(append(8, 1, "j", "y"), 1_000 + CLIENT_TTL_MS + 60_000),
        // Client 7 retries its old append.
        at(append(7, 1, "k", "x"), 1_000 + CLIENT_TTL_MS + 61_000),
    ];
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut replicas: Vec<KvState> = dirs
        .iter()
        .map(|d| KvState::open(d.path(), 1, NSHARDS).unwrap().0)
        .collect();
    let mut replies = [Vec::new(), Vec::new()];
    for (slot, cmd) in log.into_iter().enumerate() {
        let slot = slot as u64;
        for (i, st) in replicas.iter_mut().enumerate() {
            // Replica 0 checkpoints after every instance, replica 1 never.
            replies[i].push(st.apply(slot, cmd.clone()));
            if i == 0 {
                st.checkpoint(slot + 1, true).unwrap();
            }
        }
    }
    assert_eq!(replies[0], replies[1], "the same log answered differently");
    assert_eq!(get(&replicas[0], "k"), get(&replicas[1], "k"));
    assert_eq!(replicas[0].digest(), replicas[1].digest());
}

/// Review: log time is now each group's own (it starts at 0 with the group's
/// first command and runs with its leaders' monotonic clocks), but a shard's
/// duplicate table moves between groups with its entries stamped in the old
/// group's log time. A group whose log time is more than the time to live ahead
/// of the sender's expires every moved entry at its next period (a minute), and
/// a client's retry of a write it never got the answer to is applied twice.
/// (With wall-clock stamps, both groups shared one time line.)
#[test]
fn review_a_moved_duplicate_table_survives_the_other_groups_log_time() {
    use crate::state::dedup::CLIENT_TTL_MS;
    let at = |cmd: KvCommand, at_ms: u64| match cmd {
        KvCommand::Op { req, .. } => KvCommand::Op { req, at_ms },
        other => other,
    };
    let mut young = KvState::in_memory(1, NSHARDS);
    let mut old = KvState::in_memory(2, NSHARDS);
    // Group 1 owns every shard; group 2 (running for hours longer) none yet.
    for st in [&mut young, &mut old] {
        st.apply(
            0,
            KvCommand::Reconfigure {
                config: config_of(1, 1),
            },
        )
        .unwrap();
    }
    let old_now = 20 * CLIENT_TTL_MS;
    let _ = old.apply(1, at(append(8, 1, "j", "z"), old_now));
    // Client 7's append is applied by group 1; the reply is lost.
    assert_eq!(
        young.apply(1, at(append(7, 1, "k", "x"), 60_000)),
        Ok(Reply::Existed(false))
    );
    // Every shard moves to group 2 with its data and duplicate table.
    for st in [&mut young, &mut old] {
        st.apply(
            2,
            KvCommand::Reconfigure {
                config: config_of(2, 2),
            },
        )
        .unwrap();
    }
    for shard in 0..NSHARDS {
        let s = young.shard(shard).unwrap();
        old.apply(
            3,
            KvCommand::InstallShard {
                config: 2,
                shard,
                data: s
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
                dups: s.dups.clone(),
            },
        )
        .unwrap();
    }
    // Client 7 retries at group 2 a little over a minute later (config refresh,
    // back-off): the same request, seq 1.
    let retry = old.apply(4, at(append(7, 1, "k", "x"), old_now + 61_000));
    assert_eq!(
        get(&old, "k").as_deref(),
        Some("x"),
        "applied twice ({retry:?})"
    );
}

/// Review: log time jumps within one group. Leader A stamps commands (its clock
/// anchored at log time 0); the group idles for an hour; leader B takes over and
/// anchors its clock at the applied log time (10 s: the idle hour is not in log
/// time), and client 7's append is applied at 10 s; its reply is lost. A second
/// later A leads again: its anchor is older than the idle hour, so its next stamp
/// is 3611 s — a jump of an hour in one command. Client 7's retry (silent for a
/// second) finds its entry expired and is applied twice.
#[test]
fn review_log_time_does_not_jump_when_an_older_leader_returns() {
    use crate::state::logclock::LogClock;
    let at = |cmd: KvCommand, at_ms: u64| match cmd {
        KvCommand::Op { req, .. } => KvCommand::Op { req, at_ms },
        other => other,
    };
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    let (mut a, mut b) = (LogClock::default(), LogClock::default());
    // Leader A, its monotonic clock at 0 ms, then 10 s.
    let s = a.stamp(st.now_ms(), 0);
    st.apply(1, at(append(8, 1, "j", "1"), s)).unwrap();
    let s = a.stamp(st.now_ms(), 10_000);
    st.apply(2, at(append(8, 2, "j", "2"), s)).unwrap();
    // An hour later, leader B (its own monotonic clock).
    let s = b.stamp(st.now_ms(), 50_000);
    st.apply(3, at(append(7, 1, "k", "x"), s)).unwrap();
    // One second later, leader A again; client 7 retries.
    let s = a.stamp(st.now_ms(), 10_000 + 3_601_000);
    let retry = st.apply(4, at(append(7, 1, "k", "x"), s));
    assert_eq!(
        get(&st, "k").as_deref(),
        Some("x"),
        "applied twice ({retry:?}); log time went from 10 s to {} s in one command",
        s / 1000
    );
}
