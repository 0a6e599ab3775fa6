//! Tests of the state machine and its checkpoints, including recovery from a crash
//! in the middle of a checkpoint.

use super::{KvCommand, KvState};
use crate::op::{CounterError, KvError, Op, Reply, Request};
use crate::state::checkpoint::{CheckpointRecord, DiskStore};
use paxos::rsm::StateMachine;
use shardmaster::Config;
use std::collections::BTreeMap;

const NSHARDS: usize = 4;

fn owning_config(gid: u64, num: u64) -> Config {
    let mut c = Config::initial(NSHARDS);
    c.num = num;
    c.shards = vec![gid; NSHARDS];
    c.groups.insert(gid, vec!["127.0.0.1:1".into()]);
    c
}

fn req(client: u64, seq: u64, key: &str, op: Op) -> KvCommand {
    KvCommand::Op {
        req: Request {
            client,
            seq,
            shard: shardmaster::shard_of(key.as_bytes(), NSHARDS),
            op,
        },
        at_ms: 1,
    }
}

fn append(client: u64, seq: u64, key: &str, v: &str) -> KvCommand {
    req(
        client,
        seq,
        key,
        Op::Append {
            key: key.into(),
            value: v.into(),
        },
    )
}

fn get(st: &KvState, key: &str) -> Option<String> {
    let r = Request {
        client: 0,
        seq: 0,
        shard: shardmaster::shard_of(key.as_bytes(), NSHARDS),
        op: Op::Get { key: key.into() },
    };
    match st.read(&r) {
        Ok(Reply::Value(v)) => v,
        other => panic!("get {key}: {other:?}"),
    }
}

#[test]
fn requests_for_unowned_shards_are_refused_until_the_config_arrives() {
    let mut st = KvState::in_memory(1, NSHARDS);
    let out = st.apply(0, append(9, 1, "k", "x"));
    assert!(matches!(out, Err(KvError::WrongGroup { .. })), "{out:?}");
    st.apply(
        1,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(
        st.apply(2, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
}

fn incr(client: u64, seq: u64, key: &str, by: i64) -> KvCommand {
    req(
        client,
        seq,
        key,
        Op::Incr {
            key: key.into(),
            by,
        },
    )
}

/// Redis INCR as one replicated step: a retry gets the first answer from the
/// duplicate table (not a second increment), a refusal changes nothing, and an
/// overflow is refused.
#[test]
fn a_retried_incr_is_applied_once_and_answered_the_same() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(st.apply(1, incr(9, 1, "n", 5)), Ok(Reply::Counter(Ok(5))));
    assert_eq!(st.apply(2, incr(9, 1, "n", 5)), Ok(Reply::Counter(Ok(5))));
    assert_eq!(st.apply(3, incr(7, 1, "n", -2)), Ok(Reply::Counter(Ok(3))));
    assert_eq!(get(&st, "n").as_deref(), Some("3"));
    st.apply(4, append(9, 2, "n", "x")).unwrap();
    assert_eq!(
        st.apply(5, incr(9, 3, "n", 1)),
        Ok(Reply::Counter(Err(CounterError::NotAnInteger)))
    );
    assert_eq!(
        get(&st, "n").as_deref(),
        Some("3x"),
        "a refusal changes nothing"
    );
    st.apply(
        6,
        req(
            9,
            4,
            "m",
            Op::Put {
                key: "m".into(),
                value: i64::MAX.to_string(),
            },
        ),
    )
    .unwrap();
    assert_eq!(
        st.apply(7, incr(9, 5, "m", 1)),
        Ok(Reply::Counter(Err(CounterError::Overflow)))
    );
}

#[test]
fn a_retried_append_is_applied_once_and_answered_the_same() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(
        st.apply(1, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
    assert_eq!(
        st.apply(2, append(9, 1, "k", "x")),
        Ok(Reply::Existed(false))
    );
    assert_eq!(
        st.apply(3, append(9, 2, "k", "y")),
        Ok(Reply::Existed(true))
    );
    assert_eq!(
        st.apply(4, append(9, 1, "k", "x")),
        Err(KvError::Timeout),
        "a stale retry must not apply"
    );
    assert_eq!(get(&st, "k").as_deref(), Some("xy"));
}

#[test]
fn configs_apply_in_order_only() {
    let mut st = KvState::in_memory(1, NSHARDS);
    assert!(st
        .apply(
            0,
            KvCommand::Reconfigure {
                config: owning_config(1, 2)
            }
        )
        .is_err());
    assert_eq!(st.config().num, 0);
    st.apply(
        1,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    assert_eq!(st.config().num, 1);
}

#[test]
fn state_survives_restart_from_checkpoint_and_replay_is_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let log: Vec<KvCommand> = vec![
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
        append(9, 1, "a", "1"),
        req(
            9,
            2,
            "b",
            Op::Put {
                key: "b".into(),
                value: "v b\t😀".into(),
            },
        ),
        append(9, 3, "a", "2"),
        req(
            9,
            4,
            "c:odd/key",
            Op::Put {
                key: "c:odd/key".into(),
                value: "c".into(),
            },
        ),
        req(9, 5, "b", Op::Delete { key: "b".into() }),
        append(9, 6, "a", "3"),
    ];
    let (mut st, applied) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(applied, 0);
    for (slot, cmd) in log.iter().take(4).enumerate() {
        st.apply(slot as u64, cmd.clone()).unwrap();
    }
    assert_eq!(st.checkpoint(4, true), Ok(Some(4)));
    for (slot, cmd) in log.iter().enumerate().skip(4) {
        st.apply(slot as u64, cmd.clone()).unwrap();
    }
    drop(st); // crash: instances 4.. are only in the (simulated) log

    let (mut st, applied) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(applied, 4);
    assert_eq!(get(&st, "a").as_deref(), Some("12"));
    assert_eq!(get(&st, "b").as_deref(), Some("v b\t😀"));
    for (slot, cmd) in log.iter().enumerate().skip(applied as usize) {
        st.apply(slot as u64, cmd.clone()).unwrap();
    }
    assert_eq!(get(&st, "a").as_deref(), Some("123"));
    assert_eq!(get(&st, "b"), None);
    assert_eq!(get(&st, "c:odd/key").as_deref(), Some("c"));
    // The retried append (client 9, seq 6) is still recognised after the restart.
    assert_eq!(
        st.apply(7, append(9, 6, "a", "3")),
        Ok(Reply::Existed(true))
    );
    assert_eq!(get(&st, "a").as_deref(), Some("123"));
}

#[test]
fn a_crash_after_the_record_and_before_the_renames_is_redone() {
    let dir = tempfile::tempdir().unwrap();
    let mut disk = DiskStore::open(dir.path()).unwrap();
    let mut shards = BTreeMap::new();
    let mut s = crate::state::shard::Shard::new(crate::state::shard::ShardMode::Serving);
    s.data.insert("k".to_string(), "new".to_string());
    shards.insert(0usize, s);
    let record = CheckpointRecord {
        number: 0,
        applied: 10,
        gid: 1,
        config: owning_config(1, 1),
        now_ms: 0,
        shards: BTreeMap::new(),
        writes: Vec::new(),
        deletes: Vec::new(),
        dropped: Vec::new(),
    };
    let mut rec = record.clone();
    rec.shards.insert(
        0,
        crate::state::checkpoint::ShardMeta {
            mode: crate::state::shard::ShardMode::Serving,
            dups: Default::default(),
        },
    );
    disk.checkpoint(rec.clone(), &shards, &[(0, "k".to_string())], Vec::new())
        .unwrap();
    // Undo the rename by hand, as if the process died right after the commit point.
    let shard_dir = dir.path().join("kv/shard-0");
    let name = crate::state::keyfile::file_name("k");
    std::fs::rename(
        shard_dir.join(&name),
        shard_dir.join(format!("{name}.1.tmp")),
    )
    .unwrap();
    // And leave a stray temp file of an unfinished later checkpoint.
    std::fs::write(shard_dir.join("zzz.2.tmp"), b"partial").unwrap();

    let mut disk = DiskStore::open(dir.path()).unwrap();
    let (loaded, shards) = disk.load().unwrap().expect("a checkpoint");
    assert_eq!(loaded.applied, 10);
    assert_eq!(shards[&0].data.get("k").map(String::as_str), Some("new"));
    assert!(
        !shard_dir.join("zzz.2.tmp").exists(),
        "stray temp file kept"
    );
}

#[test]
fn a_corrupt_key_file_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    st.apply(1, append(9, 1, "a", "1")).unwrap();
    st.checkpoint(2, true).unwrap();
    let shard = shardmaster::shard_of(b"a", NSHARDS);
    let path = dir
        .path()
        .join(format!("kv/shard-{shard}"))
        .join(crate::state::keyfile::file_name("a"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = KvState::open(dir.path(), 1, NSHARDS).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[test]
fn a_directory_of_another_group_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    st.checkpoint(1, true).unwrap();
    assert!(KvState::open(dir.path(), 2, NSHARDS).is_err());
    assert!(KvState::open(dir.path(), 1, NSHARDS + 1).is_err());
}

fn config_of(num: u64, owner: u64) -> Config {
    let mut c = owning_config(owner, num);
    c.groups.insert(1, vec!["127.0.0.1:1".into()]);
    c.groups.insert(2, vec!["127.0.0.1:2".into()]);
    c
}

/// Regression: a shard handed over and deleted, then given back and installed, all
/// between two checkpoints, lost its data at the next restart (the checkpoint
/// renamed the new key files into the shard's folder, then deleted the folder as
/// the record of the deletion said).
#[test]
fn a_shard_deleted_and_installed_again_between_checkpoints_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    let mut slot = 0;
    let mut apply = |st: &mut KvState, cmd: KvCommand| {
        let out = st.apply(slot, cmd);
        slot += 1;
        out
    };
    apply(
        &mut st,
        KvCommand::Reconfigure {
            config: config_of(1, 1),
        },
    )
    .unwrap();
    apply(&mut st, append(9, 1, "a", "old")).unwrap();
    apply(&mut st, append(9, 2, "b", "old")).unwrap();
    assert!(st.checkpoint(3, true).unwrap().is_some());
    // Every shard leaves for group 2, which confirms; then every shard comes back.
    apply(
        &mut st,
        KvCommand::Reconfigure {
            config: config_of(2, 2),
        },
    )
    .unwrap();
    for shard in 0..NSHARDS {
        apply(&mut st, KvCommand::DeleteShard { config: 2, shard }).unwrap();
    }
    apply(
        &mut st,
        KvCommand::Reconfigure {
            config: config_of(3, 1),
        },
    )
    .unwrap();
    let shard_a = shardmaster::shard_of(b"a", NSHARDS);
    for shard in 0..NSHARDS {
        let mut data = BTreeMap::new();
        if shard == shard_a {
            data.insert("a".to_string(), "moved".to_string());
        }
        let cmd = KvCommand::InstallShard {
            config: 3,
            shard,
            data,
            dups: Default::default(),
        };
        apply(&mut st, cmd).unwrap();
    }
    assert_eq!(get(&st, "a").as_deref(), Some("moved"));
    assert_eq!(
        get(&st, "b"),
        None,
        "group 2 deleted b before giving it back"
    );
    let applied = 4 + 2 * NSHARDS as u64 + 1;
    assert!(st.checkpoint(applied, true).unwrap().is_some());
    drop(st);

    let (st, at) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(at, applied);
    assert_eq!(get(&st, "a").as_deref(), Some("moved"), "the installed key");
    assert_eq!(get(&st, "b"), None, "a key of the deleted copy came back");
}

/// A checkpoint written off the apply loop holds the state at the instance it was
/// taken at, even though applying went on while its files were written; a failed
/// one leaves its keys to the next checkpoint.
#[test]
fn background_checkpoint_holds_the_state_it_was_taken_at() {
    use paxos::rsm::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    st.apply(1, append(9, 1, "a", "1")).unwrap();
    st.apply(2, append(9, 2, "b", "x")).unwrap();
    let Ok(Some(Checkpoint::Job(job))) = st.checkpoint_job(3, true) else {
        panic!("a checkpoint job was due");
    };
    // Applying goes on while the job has not written anything yet.
    st.apply(3, append(9, 3, "a", "2")).unwrap();
    st.apply(4, append(9, 4, "c", "y")).unwrap();
    let result = job();
    assert_eq!(result, Ok(3));
    st.checkpoint_finished(&result);
    drop(st);
    let (st, applied) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(applied, 3);
    assert_eq!(
        get(&st, "a").as_deref(),
        Some("1"),
        "the checkpoint saw a later write"
    );
    assert_eq!(get(&st, "b").as_deref(), Some("x"));
    assert_eq!(get(&st, "c"), None, "the checkpoint saw a later key");

    // A job that failed: its keys go to the next checkpoint.
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    st.apply(3, append(9, 3, "a", "2")).unwrap();
    let Ok(Some(Checkpoint::Job(_lost))) = st.checkpoint_job(4, true) else {
        panic!("a checkpoint job was due");
    };
    st.checkpoint_finished(&Err(paxos::rsm::MachineError::state(
        std::io::Error::other("disk full"),
    )));
    drop(_lost);
    assert_eq!(st.checkpoint(4, true), Ok(Some(4)));
    drop(st);
    let (st, applied) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(applied, 4);
    assert_eq!(
        get(&st, "a").as_deref(),
        Some("12"),
        "the failed job's key was forgotten"
    );
}

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

/// Found by the simulator: installing a peer's snapshot on a full disk failed
/// after the state was replaced in memory, so the replica went on applying the
/// log on top of the snapshot's data while claiming its old applied instance.
/// A failed install changes nothing.
#[test]
fn a_snapshot_install_that_cannot_be_written_changes_nothing() {
    use paxos::fs::{SimFs, SimOptions};
    use std::sync::Arc;
    let sim = SimFs::with_options(SimOptions::default());
    let dir = std::path::Path::new("/r");
    let (mut st, _) = KvState::open_on(Arc::new(sim.clone()), dir, 1, NSHARDS).unwrap();
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    st.apply(1, append(7, 1, "k", "mine")).unwrap();
    let before = st.digest();
    // A peer's state, with more in it.
    let mut peer = KvState::in_memory(1, NSHARDS);
    peer.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    peer.apply(1, append(8, 1, "j", "theirs")).unwrap();
    let snap = peer.snapshot(5, paxos::core::Membership::initial(3));
    sim.set_capacity(Some(sim.used()));
    assert!(st.replace_with(&snap).is_err(), "the disk is full");
    assert_eq!(st.digest(), before, "a failed install changed the state");
    assert_eq!(get(&st, "k").as_deref(), Some("mine"));
    // With room again, it installs.
    sim.set_capacity(None);
    st.replace_with(&snap).unwrap();
    assert_eq!(st.digest(), peer.digest());
}

/// Review: a background checkpoint job is prepared (it holds the deletion of key
/// `k`, taken out of the dirty set), then a peer's snapshot is installed before
/// the job writes anything. The install's checkpoint rewrites only the keys of
/// the old and new states (`k` is in neither), and the job, older than the
/// install's record, is skipped: `k`'s file stays on disk and comes back at the
/// next start, so this replica's state differs from every other replica's at the
/// same applied instance.
#[test]
fn review_a_snapshot_installed_while_a_checkpoint_job_waits_keeps_its_deletions() {
    use paxos::rsm::Checkpoint;
    let dir = tempfile::tempdir().unwrap();
    let (mut st, _) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    let log = [
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
        req(
            9,
            1,
            "k",
            Op::Put {
                key: "k".into(),
                value: "old".into(),
            },
        ),
        req(9, 2, "k", Op::Delete { key: "k".into() }),
        append(8, 1, "j", "y"),
    ];
    let mut peer = KvState::in_memory(1, NSHARDS);
    for (slot, cmd) in log.iter().enumerate() {
        peer.apply(slot as u64, cmd.clone()).unwrap();
    }
    st.apply(0, log[0].clone()).unwrap();
    st.apply(1, log[1].clone()).unwrap();
    assert_eq!(st.checkpoint(2, true), Ok(Some(2)), "k is on disk");
    st.apply(2, log[2].clone()).unwrap();
    let Ok(Some(Checkpoint::Job(job))) = st.checkpoint_job(3, true) else {
        panic!("a checkpoint job was due");
    };
    // The group forgot past this replica: it installs a peer's snapshot before
    // the job (still queued on its blocking thread) runs.
    let snap = peer.snapshot(4, paxos::core::Membership::initial(3));
    st.replace_with(&snap).unwrap();
    assert_eq!(st.digest(), peer.digest());
    let result = job();
    st.checkpoint_finished(&result);
    drop(st);
    let (st, applied) = KvState::open(dir.path(), 1, NSHARDS).unwrap();
    assert_eq!(applied, 4);
    assert_eq!(get(&st, "k"), None, "a deleted key came back from the disk");
    assert_eq!(st.digest(), peer.digest());
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
                data: s.data.clone(),
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

/// SETNX / SET NX|XX, GETDEL and APPEND's length are single replicated steps: a
/// retry (same client and seq) is answered from the duplicate table with the
/// first application's reply, and the second application changes nothing.
#[test]
fn conditional_puts_takes_and_counted_appends_apply_once() {
    let mut st = KvState::in_memory(1, NSHARDS);
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    let put_if = |seq, value: &str, when| {
        req(
            9,
            seq,
            "k",
            Op::PutIf {
                key: "k".into(),
                value: value.into(),
                when,
            },
        )
    };
    use crate::op::Presence::{Absent, Present};
    assert_eq!(st.apply(1, put_if(1, "a", Present)), Ok(Reply::Value(None)));
    assert_eq!(get(&st, "k"), None, "XX on a missing key writes nothing");
    assert_eq!(st.apply(2, put_if(2, "a", Absent)), Ok(Reply::Value(None)));
    assert_eq!(
        st.apply(3, put_if(2, "a", Absent)),
        Ok(Reply::Value(None)),
        "retry"
    );
    assert_eq!(
        st.apply(4, put_if(3, "b", Absent)),
        Ok(Reply::Value(Some("a".into())))
    );
    assert_eq!(
        get(&st, "k").as_deref(),
        Some("a"),
        "NX on an existing key writes nothing"
    );
    let append = |seq| {
        req(
            9,
            seq,
            "k",
            Op::AppendLen {
                key: "k".into(),
                value: "xy".into(),
            },
        )
    };
    assert_eq!(st.apply(5, append(4)), Ok(Reply::Length(3)));
    assert_eq!(st.apply(6, append(4)), Ok(Reply::Length(3)), "retry");
    assert_eq!(get(&st, "k").as_deref(), Some("axy"));
    let take = |seq| req(9, seq, "k", Op::Take { key: "k".into() });
    assert_eq!(st.apply(7, take(5)), Ok(Reply::Value(Some("axy".into()))));
    assert_eq!(
        st.apply(8, take(5)),
        Ok(Reply::Value(Some("axy".into()))),
        "retry"
    );
    assert_eq!(get(&st, "k"), None);
    assert_eq!(st.apply(9, take(6)), Ok(Reply::Value(None)));
}
