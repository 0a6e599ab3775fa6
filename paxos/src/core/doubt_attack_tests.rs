//! Attack on the doubt rule (`Replica::doubt_membership`): a replica restarted
//! with its application state ahead of its log neither votes nor applies until a
//! peer's membership covering its state arrives.
//!
//! The group and its disk model are in `doubt_group.rs`.

use super::doubt_group::{all, cfg, gating, Group};
use super::tests::{take, val};
use super::*;

/// Finding (liveness, question 3): a power loss of two replicas of three, the
/// third lagging. Replicas 1 and 2 decide instances 0..6 while replica 0 is
/// down; both apply them and checkpoint (applied 6). Power goes on 1 and 2
/// before their lazily synced `Committed` records reached the disk: both
/// restart in doubt (applied 6 > log commit). Replica 0 comes back. Everyone is
/// up and the network is healthy, yet:
///
/// - 1 and 2 do not answer each other's `MembershipAsk` (both in doubt);
/// - 0 answers, but with commit 0 < 6, so doubt is not cleared;
/// - 1 and 2 do not campaign (in doubt), 0 does: 1 and 2 *promise* (on_prepare
///   ignores doubt), 0 leads and re-proposes instances 0..6, but 1 and 2 never
///   accept (can_vote is false in doubt), so 0's commit never reaches 6.
///
/// The group is stuck for good. The old restore (`install_snapshot(applied)`)
/// made 1 and 2 voters at once.
#[test]
fn attack_doubt_two_of_three_power_loss_with_a_lagging_third_is_stuck_for_good() {
    let mut g = Group::new(3);
    let pair = [1, 2];
    g.rs[1].campaign_now();
    g.rounds(20, &pair, &all);
    assert!(g.rs[1].is_leader());
    for i in 0..6u32 {
        g.rs[1].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &pair, &all);
    }
    g.rounds(10, &pair, &all);
    let applied = g.rs[1].commit_index();
    assert!(applied >= 6);
    assert_eq!(g.rs[2].commit_index(), applied);
    let l1 = g.power_loss(1, Some(applied));
    let l2 = g.power_loss(2, Some(applied));
    assert!(
        l1 < applied && l2 < applied,
        "both restart in doubt (log commits {l1} and {l2}, applied {applied})"
    );
    assert_eq!(g.rs[0].commit_index(), 0, "replica 0 lagged");
    // Everyone up, every message delivered.
    let everyone = [0, 1, 2];
    g.rounds(300, &everyone, &all);
    g.rs.iter_mut().for_each(|r| r.propose(b"after".to_vec()));
    g.rounds(300, &everyone, &all);
    let state: Vec<_> =
        g.rs.iter()
            .map(|r| (r.commit_index(), r.votes_now(), r.is_leader()))
            .collect();
    // (Replica 0, behind the floor the others forget to, would then need a
    // snapshot from its application: not modelled here.)
    assert!(
        g.rs[1].votes_now()
            && g.rs[2].votes_now()
            && g.rs.iter().any(|r| r.commit_index() > applied),
        "healthy network, every replica up, 600 ticks: the group never moves again \
         (commit, votes_now, is_leader per replica: {state:?})"
    );
}

/// Finding (liveness, question 3): a power loss of the whole group right after
/// every replica checkpointed (applied 6) and before the lazily synced tail of
/// its log reached the disk. Every replica restarts in doubt; a replica in
/// doubt answers no `MembershipAsk`, so no doubt is ever cleared, nobody
/// campaigns, and the group never decides anything again.
#[test]
fn attack_doubt_a_group_wide_power_loss_leaves_every_replica_in_doubt_forever() {
    let mut g = Group::new(3);
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    assert!(g.rs[0].is_leader());
    for i in 0..6u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &all);
    }
    g.rounds(10, &everyone, &all);
    let applied: Vec<Slot> = g.rs.iter().map(|r| r.commit_index()).collect();
    let logs: Vec<Slot> = (0..3).map(|i| g.power_loss(i, Some(applied[i]))).collect();
    assert!(
        logs.iter().zip(&applied).all(|(l, a)| l < a),
        "every replica restarts in doubt (logs {logs:?}, applied {applied:?})"
    );
    g.rounds(300, &everyone, &all);
    g.rs.iter_mut().for_each(|r| r.propose(b"after".to_vec()));
    g.rounds(300, &everyone, &all);
    let state: Vec<_> =
        g.rs.iter()
            .map(|r| (r.commit_index(), r.votes_now(), r.is_leader()))
            .collect();
    assert!(
        g.rs.iter().all(|r| r.votes_now()) && g.rs.iter().any(|r| r.is_leader()),
        "healthy network, every replica up, 600 ticks: nobody votes or leads again \
         (commit, votes_now, is_leader per replica: {state:?})"
    );
}

/// Finding (safety of the probe, question 1): a replica in doubt answers a
/// probe `Fresh` when its log shows nothing, although its application state
/// covers decided instances. Before the doubt rule, restore installed the
/// snapshot at once (commit and floor = applied), so `has_history()` was true.
///
/// Replica 2 never received a Prepare or an Accept (those to it were lost); it
/// followed the leader's heartbeats and learned instances 0..6 by catch-up
/// (`Decided`): only `Learned`/`Committed` records, all lazily synced. Its
/// application applied and checkpointed them. Power goes: its log is empty,
/// its state at 6, it restarts in doubt with commit 0, floor 0, no promise —
/// `has_history()` is false and it answers `Fresh`.
///
/// The quorum that chose (0 and 1) then lost both disks (the double loss the
/// probe exists to detect: with 2 answering `History` both recover, see a
/// majority recovering and halt). Each probes, hears `Fresh` from the other
/// (probing) and from 2: verdict `Fresh` for both. The new 0 and 1 choose
/// "y" in instance 0, where "v" was chosen (and applied by replica 2).
#[test]
fn attack_doubt_a_replica_in_doubt_answers_a_probe_fresh() {
    use crate::probe::{decide, Verdict};
    let mut g = Group::new(3);
    let no_votes_for_2 = |m: &Envelope| {
        !(m.to == 2 && matches!(m.msg, Message::Prepare { .. } | Message::Accept { .. }))
    };
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &no_votes_for_2);
    assert!(g.rs[0].is_leader());
    g.rs[0].propose(b"v".to_vec());
    g.rounds(5, &everyone, &no_votes_for_2);
    for i in 1..6u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &no_votes_for_2);
    }
    g.rounds(10, &everyone, &no_votes_for_2);
    assert_eq!(g.rs[0].decided(0), Some(&val("v")));
    let applied = g.rs[2].commit_index();
    assert!(
        applied >= 6,
        "replica 2 learned by catch-up: commit {applied}"
    );
    assert_eq!(g.rs[2].decided(0), Some(&val("v")));
    assert!(
        !g.disks[2].iter().any(gating),
        "replica 2 never voted: {:?}",
        g.disks[2]
    );
    // The state replica 2's application holds (the old history).
    let old: Vec<Entry> = (0..applied)
        .map(|s| g.rs[2].decided(s).cloned().unwrap())
        .collect();
    g.power_loss(2, Some(applied));
    let answer = g.rs[2].probe_answer();
    // 0 and 1 lose their disks and probe at once; each answers `Fresh` to the
    // other while probing.
    for me in [0, 1] {
        let mut answers = vec![None; 3];
        answers[1 - me] = Some(ProbeAnswer::Fresh);
        answers[2] = Some(answer);
        if decide(me, &answers) != Verdict::Fresh {
            return; // both recover, see a majority recovering, and halt: safe
        }
    }
    g.rs[0] = Replica::new(cfg(0, 3));
    g.rs[1] = Replica::new(cfg(1, 3));
    g.disks[0].clear();
    g.disks[1].clear();
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    g.rs[0].propose(b"y".to_vec());
    g.rounds(20, &everyone, &all);
    let new0 = g.rs[0].decided(0).cloned();
    assert_eq!(
        new0.as_ref(),
        Some(&old[0]),
        "replica 2 (doubting, application state at {applied}, answered {answer:?}) let \
         the wiped quorum start fresh: two values chosen in instance 0"
    );
}

/// Finding (liveness with one tolerated failure, question 4): the doubting
/// replica is the leader's only way to a quorum. Replica 2 leads and decides
/// instances 0..6 with replica 1 while replica 0 is down. Replica 1 applies and
/// checkpoints them (applied 6) and loses power before the lazily synced tail
/// of its log is on disk; replica 2 then dies for good (one failure of three:
/// the group must stay live). Replica 0 comes back. Replica 0 answers 1's
/// `MembershipAsk` with commit 0 < 6; 0 campaigns, 1 promises, 0 leads and
/// re-proposes the recovered instances, 1 never accepts: nothing is decided
/// ever again, though two of three replicas are up on a healthy network.
#[test]
fn attack_doubt_one_failure_and_one_power_loss_stop_the_group() {
    let mut g = Group::new(3);
    let pair = [1, 2];
    g.rs[2].campaign_now();
    g.rounds(20, &pair, &all);
    assert!(g.rs[2].is_leader());
    for i in 0..6u32 {
        g.rs[2].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &pair, &all);
    }
    g.rounds(10, &pair, &all);
    let applied = g.rs[1].commit_index();
    assert!(applied >= 6);
    let log = g.power_loss(1, Some(applied));
    assert!(
        log < applied,
        "1 restarts in doubt (log {log}, applied {applied})"
    );
    // Replica 2 is gone; 0 and 1 are up and connected.
    let up = [0, 1];
    g.rounds(300, &up, &all);
    g.rs[0].propose(b"after".to_vec());
    g.rs[1].propose(b"after".to_vec());
    g.rounds(300, &up, &all);
    let state: Vec<_> =
        g.rs.iter()
            .take(2)
            .map(|r| (r.commit_index(), r.votes_now(), r.is_leader()))
            .collect();
    assert!(
        g.rs[1].votes_now() && g.rs.iter().take(2).any(|r| r.commit_index() > applied),
        "two of three up on a healthy network, 600 ticks: nothing decided again \
         (commit, votes_now, is_leader of 0 and 1: {state:?})"
    );
}

/// Finding (liveness, question 5): doubt cleared after the application
/// installed a snapshot *during* the doubt leaves the replica's decided
/// instances unapplied. `on_membership` clears doubt and calls
/// `install_snapshot(applied)`; with the commit already past `applied` (the
/// snapshot installed meanwhile) that returns at once, before
/// `advance_commit`: the instances learned while in doubt stay decided but
/// unapplied, and nothing but a *new* decision applies them (catch-up of
/// instances already decided here changes nothing). In an idle group the
/// replica stays behind — and as a recovering replica whose epoch starts
/// beyond its commit, a non-voter — for good.
///
/// How the snapshot comes during doubt: replica 2's old incarnation reported
/// `done` 12 before it lost its disk, so the group may forget up to 12. Its
/// new incarnation installs replica 1's snapshot at 8 (all the group had
/// forgotten then was below 4), and power goes before the snapshot's
/// `Membership` record is on disk: restarted in doubt at 8. The group forgets
/// below 12 meanwhile; the leader's catch-up says floor 12, the core asks for
/// a snapshot (12 > 8), the application installs one at 15 while the
/// `Membership` answers are still lost. Then one arrives.
#[test]
fn attack_doubt_cleared_after_a_snapshot_during_doubt_leaves_instances_unapplied() {
    const R: NodeId = 2;
    let mut g = Group::new(3);
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    for i in 0..12u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &all);
    }
    g.rounds(10, &everyone, &all);
    assert!(g.rs[0].commit_index() >= 12);
    // Checkpoints at different moments: 0 at 4, 1 at 8, the old 2 at 12.
    g.rs[0].done(3);
    g.rs[1].done(7);
    g.rs[R].done(11);
    g.rounds(10, &everyone, &all);
    assert_eq!(g.rs[0].floor(), 4);
    // Replica 2 loses its disk and recovers as nonce 11.
    g.rs[R] = Replica::new(CoreConfig {
        recovering: Some(11),
        ..cfg(R, 3)
    });
    g.disks[R].clear();
    g.events[R].clear();
    g.rounds(40, &everyone, &all);
    assert!(
        g.events[R]
            .iter()
            .any(|e| matches!(e, Event::SnapshotNeeded { .. })),
        "the new incarnation is asked to install a snapshot"
    );
    // Its application installs replica 1's checkpoint (at 8) as rsm does:
    // merge the snapshot's membership, then install_snapshot.
    let _ = g.take_all();
    let before_snapshot = g.disks[R].len();
    let snapshot_membership = g.rs[1].membership().clone();
    g.rs[R].merge_membership(&snapshot_membership);
    g.rs[R].install_snapshot(8);
    let _ = g.take_all();
    // Power loss before the snapshot's Membership record was synced: the log
    // keeps what came before it; the application's state is at 8.
    g.disks[R].truncate(before_snapshot);
    let mut r = Replica::restore(g.rs[R].config().clone(), g.disks[R].iter().cloned());
    assert!(r.commit_index() < 8);
    r.doubt_membership(8);
    g.rs[R] = r;
    g.events[R].clear();
    // The group goes on and forgets below 12 (the old incarnation's done).
    g.rs[0].done(19);
    g.rs[1].done(19);
    let no_membership_to_r =
        |m: &Envelope| !(m.to == R && matches!(m.msg, Message::Membership { .. }));
    g.rounds(30, &everyone, &no_membership_to_r);
    assert_eq!(g.rs[0].floor(), 12);
    let wanted = g.events[R].iter().find_map(|e| match e {
        Event::SnapshotNeeded { floor } => Some(*floor),
        _ => None,
    });
    assert_eq!(
        wanted,
        Some(12),
        "in doubt, asked for a snapshot past its state"
    );
    // The application installs replica 1's checkpoint at 15 (20 would do as well).
    let snapshot_membership = g.rs[1].membership().clone();
    g.rs[R].merge_membership(&snapshot_membership);
    g.rs[R].install_snapshot(15);
    g.rounds(30, &everyone, &no_membership_to_r);
    let group_commit = g.rs[0].commit_index();
    assert!(g.rs[R].decided(15).is_some(), "learned while in doubt");
    // Now the answers get through; then the group is idle, the network healthy.
    g.rounds(100, &everyone, &all);
    assert_eq!(
        (g.rs[R].commit_index(), g.rs[R].votes_now()),
        (group_commit, true),
        "doubt cleared, yet the instances decided here from 15 on are never applied \
         (decided(15) = {:?}); the recovering replica never votes",
        g.rs[R].decided(15)
    );
}

// ---- What held (these pass) ----

/// Held (question 1), as the rule now stands: in doubt, a replica votes and
/// answers `MembershipAsk` (its membership covers its log's commit), but hands
/// nothing to the application until every decision below its state is known
/// again; then it applies them in order and ends with the group's membership
/// and values. (Before the attack's findings it neither voted nor answered,
/// which could stall a group for good.) Answers to its own asks are held back
/// here, so only the decisions can end its doubt.
#[test]
fn held_doubt_a_doubting_replica_applies_only_once_the_decisions_are_known_again() {
    let mut g = Group::new(3);
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    for i in 0..6u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &all);
    }
    g.rounds(10, &everyone, &all);
    let applied = g.rs[2].commit_index();
    let log = g.power_loss(2, Some(applied));
    assert!(log < applied);
    let mut sent = Vec::new();
    for _ in 0..60 {
        for r in g.rs.iter_mut() {
            r.tick();
        }
        g.rs[0].propose(b"more".to_vec());
        for _ in 0..20 {
            let msgs = g.take_all();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                if m.from == 2 {
                    sent.push(m.msg.kind());
                }
                if !matches!(m.msg, Message::Membership { .. }) || m.to != 2 {
                    let to = m.to;
                    g.rs[to].handle(m);
                }
            }
        }
        g.rs[2].handle(Envelope {
            from: 1,
            to: 2,
            msg: Message::MembershipAsk,
        });
    }
    assert!(
        sent.contains(&"membership"),
        "never answered a MembershipAsk"
    );
    assert!(sent.contains(&"accepted"), "never voted while in doubt");
    assert!(
        g.rs[2].commit_index() > applied,
        "the decisions below its state were known again, yet it never applied: commit {}",
        g.rs[2].commit_index()
    );
    assert_eq!(g.rs[2].membership(), g.rs[0].membership());
    for slot in log..g.rs[2].commit_index() {
        assert_eq!(
            g.rs[2].decided(slot),
            g.rs[0].decided(slot),
            "instance {slot}"
        );
    }
}

/// Held (question 2): an answer from a peer whose commit is below `applied`
/// (behind, or itself restarted) is merged but does not clear doubt; a stale
/// duplicate of an answer with a commit at or above `applied` does clear it,
/// which is right: an answer states facts about decided instances, true
/// whenever it arrives.
#[test]
fn held_doubt_only_a_membership_covering_the_state_clears_doubt() {
    let mut g = Group::new(3);
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    for i in 0..6u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &all);
    }
    g.rounds(10, &everyone, &all);
    let applied = g.rs[2].commit_index();
    let log = g.power_loss(2, Some(applied));
    let m = g.rs[0].membership().clone();
    g.rs[2].handle(Envelope {
        from: 1,
        to: 2,
        msg: Message::Membership {
            membership: m.clone(),
            commit: applied - 1,
        },
    });
    assert_eq!(
        g.rs[2].commit_index(),
        log,
        "applied on a membership not covering its state"
    );
    g.rs[2].handle(Envelope {
        from: 0,
        to: 2,
        msg: Message::Membership {
            membership: m.clone(),
            commit: applied,
        },
    });
    assert_eq!(g.rs[2].commit_index(), applied);
    // Duplicated later: nothing changes.
    g.rs[2].handle(Envelope {
        from: 0,
        to: 2,
        msg: Message::Membership {
            membership: m,
            commit: applied,
        },
    });
    g.rounds(20, &everyone, &all);
    assert!(g.rs[2].votes_now());
    assert_eq!(g.rs[2].commit_index(), g.rs[0].commit_index());
}

/// Held (question 4): a recovering replica in doubt answers probes
/// `Recovering`, sends no `Reincarnate` while in doubt (only `MembershipAsk`),
/// and once a covering membership arrives it learns its incarnation from it.
#[test]
fn held_doubt_a_recovering_replica_in_doubt_learns_its_incarnation_from_the_answer() {
    let mut g = Group::new(3);
    let everyone = [0, 1, 2];
    g.rs[0].campaign_now();
    g.rounds(20, &everyone, &all);
    g.rs[2] = Replica::new(CoreConfig {
        recovering: Some(11),
        ..cfg(2, 3)
    });
    g.disks[2].clear();
    for i in 0..10u32 {
        g.rs[0].propose(i.to_le_bytes().to_vec());
        g.rounds(5, &everyone, &all);
    }
    let (k, from) = g.rs[0]
        .membership()
        .incarnation_of(2, 11)
        .expect("reincarnated");
    // Its application installs 0's state past the reincarnation; the
    // snapshot's membership record is lost with the log's tail.
    let _ = g.take_all();
    let keep = g.disks[2].len();
    let applied = g.rs[0].commit_index();
    assert!(applied > from);
    let mut r = Replica::restore(g.rs[2].config().clone(), g.disks[2][..keep].iter().cloned());
    let before = r.incarnation();
    r.doubt_membership(applied);
    g.rs[2] = r;
    if before.is_none() {
        assert_eq!(g.rs[2].probe_answer(), ProbeAnswer::Recovering);
    }
    g.rs[2].tick();
    for _ in 0..20 {
        g.rs[2].tick();
    }
    let kinds: Vec<&str> = take(&mut g.rs[2])
        .messages
        .iter()
        .map(|m| m.msg.kind())
        .collect();
    assert!(
        !kinds.contains(&"reincarnate"),
        "asked to be reincarnated in doubt: {kinds:?}"
    );
    g.rounds(40, &everyone, &all);
    assert_eq!(g.rs[2].incarnation(), Some(k));
    assert!(g.rs[2].votes_now());
}

/// Held (question 5): merging true memberships (a prefix of the group's
/// reincarnations and the whole) gives the whole, in either order, and
/// re-applying the reincarnations after the merge changes nothing.
#[test]
fn held_doubt_merging_a_prefix_with_the_whole_gives_the_whole() {
    use crate::types::Reincarnation;
    let re = |node, nonce, replaces| Reincarnation {
        node,
        nonce,
        replaces: Some(replaces),
    };
    let seq = [
        (10, re(1, 5, 0)),
        (12, re(1, 6, 0)), // stale
        (20, re(2, 7, 0)),
        (21, re(1, 8, 1)),
        (30, re(0, 9, 0)),
    ];
    let mut whole = Membership::initial(3);
    for &(s, r) in &seq {
        whole.reincarnate(s, 4, r);
    }
    for cut in 0..=seq.len() {
        let mut prefix = Membership::initial(3);
        for &(s, r) in &seq[..cut] {
            prefix.reincarnate(s, 4, r);
        }
        let mut a = prefix.clone();
        a.merge(&whole);
        let mut b = whole.clone();
        b.merge(&prefix);
        assert_eq!(a, whole, "prefix {cut} merged with the whole");
        assert_eq!(b, whole);
        for &(s, r) in &seq[cut..] {
            assert!(!a.reincarnate(s, 4, r), "re-applied after the merge");
        }
        assert_eq!(a, whole);
    }
}
