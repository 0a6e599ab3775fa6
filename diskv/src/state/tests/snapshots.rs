//! Installing a peer's snapshot: all or nothing, and never losing the deletions
//! of a checkpoint job it overtakes.

use super::*;

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
