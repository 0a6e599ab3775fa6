//! Checkpoints and restarts: the state comes back from its files exactly as it
//! was at the record's instance (a crash between the record and the renames
//! included), damage is reported, and a checkpoint written off the apply loop
//! holds the state it was taken at.

use super::*;

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
    s.data.insert("k".to_string(), "new".into());
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
    assert_eq!(shards[&0].data.get("k").map(Value::as_str), Some("new"));
    assert!(
        !shard_dir.join("zzz.2.tmp").exists(),
        "stray temp file kept"
    );
}

#[test]
fn a_corrupt_key_file_is_reported_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = opened_owning(dir.path());
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
    let mut st = opened_owning(dir.path());
    st.checkpoint(1, true).unwrap();
    assert!(KvState::open(dir.path(), 2, NSHARDS).is_err());
    assert!(KvState::open(dir.path(), 1, NSHARDS + 1).is_err());
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
    let mut st = opened_owning(dir.path());
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

/// Issue #13, item 4: the checkpoint job takes a reference to each changed
/// value, not a copy (heaptrack found the copies as large as the state during a
/// bulk load), and an Append while the job holds a value leaves the job's
/// value as it was taken.
#[test]
fn a_checkpoint_job_shares_the_values_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = opened_owning(dir.path());
    st.apply(1, append(9, 1, "a", &"x".repeat(1000))).unwrap();
    let write = st.prepare_checkpoint(2).expect("a disk");
    let (shard, key, taken) = write.changes.iter().find(|c| c.1 == "a").unwrap().clone();
    let taken = taken.expect("written, not deleted");
    let held = &st.shards[&shard].data[&key];
    assert!(
        std::ptr::eq(taken.as_ptr(), held.as_ptr()),
        "the checkpoint job copied the value"
    );
    st.apply(2, append(9, 2, "a", "y")).unwrap();
    assert_eq!(taken.len(), 1000, "the job's value changed under it");
    assert_eq!(get(&st, "a").map(|v| v.len()), Some(1001));
    write.run().unwrap();
    st.checkpoint_done(Some(2));
}

/// The state kept under `dir`, opened as group 1, which then owns every shard.
fn opened_owning(dir: &std::path::Path) -> KvState {
    let (mut st, _) = KvState::open(dir, 1, NSHARDS).unwrap();
    st.apply(
        0,
        KvCommand::Reconfigure {
            config: owning_config(1, 1),
        },
    )
    .unwrap();
    st
}
