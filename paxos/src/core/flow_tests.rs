//! Tests of the defences against bursts of large entries (issue #18, B3): the
//! pre-vote, resends paced by size, back-off of Prepares and campaigns, and the
//! leader's in-flight byte budget. Each one failed before its mechanism landed.

use super::tests::{replica, take};
use super::*;

/// A group of `peers` replicas built from `cfg`, replica 0 elected.
fn led(peers: usize, cfg: impl Fn(NodeId) -> CoreConfig) -> Vec<Replica> {
    let mut rs: Vec<Replica> = (0..peers).map(|i| Replica::new(cfg(i))).collect();
    rs[0].campaign_now();
    run(&mut rs, 5, &|_| true);
    assert!(rs[0].is_leader());
    rs
}

/// Ticks every replica `ticks` times, delivering at once every message `pass`
/// lets through; returns every message sent (delivered or not).
fn run(rs: &mut [Replica], ticks: usize, pass: &dyn Fn(&Envelope) -> bool) -> Vec<Envelope> {
    let mut sent = Vec::new();
    for _ in 0..ticks {
        for r in rs.iter_mut() {
            r.tick();
        }
        // Let answers travel within the tick, as on a fast network.
        for _ in 0..10 {
            let msgs: Vec<Envelope> = rs.iter_mut().flat_map(|r| take(r).messages).collect();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                if pass(&m) {
                    let to = m.to;
                    rs[to].handle(m.clone());
                }
                sent.push(m);
            }
        }
    }
    sent
}

/// Replica 2 stops hearing the leader for several election timeouts (its link
/// from the leader is cut, as when heartbeats queue behind large entries), then
/// hears it again. Without the pre-vote it promised itself higher and higher
/// ballots meanwhile, rejected the leader's next message, and the leader stepped
/// down: the whole group lost its leader because one replica was slow.
#[test]
fn a_follower_that_stops_hearing_the_leader_does_not_depose_it() {
    let mut rs = led(3, |i| CoreConfig::new(i, 3));
    let ballot = rs[0].promised();
    let election = rs[0].config().election_ticks as usize;
    let sent = run(&mut rs, 6 * election, &|m| !(m.from == 0 && m.to == 2));
    assert!(
        sent.iter()
            .any(|m| m.from == 2 && matches!(m.msg, Message::PreVote { .. })),
        "replica 2 noticed the silence and asked for a pre-vote"
    );
    assert!(
        !sent
            .iter()
            .any(|m| matches!(m.msg, Message::Prepare { .. })),
        "no peer granted it while the leader was heard, so no election started"
    );
    run(&mut rs, 2 * election, &|_| true);
    assert!(rs[0].is_leader(), "the leader kept its place");
    assert_eq!(rs[0].promised(), ballot);
    assert_eq!(
        rs[2].promised(),
        ballot,
        "replica 2 never raised its promise"
    );
    assert_eq!(rs[2].leader(), Some(0));
}

/// When the leader is gone for good, the pre-vote still lets a follower win.
#[test]
fn followers_elect_a_new_leader_when_the_old_one_is_gone() {
    let mut rs = led(3, |i| CoreConfig::new(i, 3));
    let election = rs[0].config().election_ticks as usize;
    run(&mut rs, 8 * election, &|m| m.from != 0 && m.to != 0);
    assert!(
        rs[1].is_leader() || rs[2].is_leader(),
        "a follower took over"
    );
}

/// Counts the Accepts of `slot` replica 0 sent to replica 1.
fn accepts_of(sent: &[Envelope], slot: Slot) -> usize {
    sent.iter()
        .filter(|m| m.from == 0 && m.to == 1)
        .filter(|m| matches!(m.msg, Message::Accept { slot: s, .. } if s == slot))
        .count()
}

/// An unanswered 4 MiB Accept is sent again only after the time to move 4 MiB
/// (`CoreConfig::resend_ticks`), a small one after `retransmit_ticks`. Resending
/// 16 MiB Accepts every 100 ms to followers still busy with the first copies
/// multiplied the bytes in flight until elections failed.
#[test]
fn a_large_entry_is_resent_only_after_the_time_to_move_it() {
    let mut rs = led(3, |i| CoreConfig {
        max_batch_commands: 1,
        ..CoreConfig::new(i, 3)
    });
    let retransmit = rs[0].config().retransmit_ticks as usize;
    let first = rs[0].commit_index();
    rs[0].propose(b"small".to_vec());
    rs[0].propose(vec![7; 4 << 20]);
    // Follower 1 never answers, so the instances wait on follower 2... which
    // never gets them: nothing is decided and both are resent.
    let sent = run(&mut rs, 10 * retransmit, &|m| {
        !matches!(m.msg, Message::Accept { .. } | Message::Accepted { .. })
    });
    let (small, large) = (accepts_of(&sent, first), accepts_of(&sent, first + 1));
    assert!(
        small >= 8,
        "a small entry is resent every retransmit_ticks: {small}"
    );
    assert!(
        large <= 2,
        "a 4 MiB entry waits 5 x retransmit_ticks: {large}"
    );
    assert!(large >= 2, "but is resent in the end: {large}");
}

/// With a budget of 1,000 bytes and 600-byte commands, the leader keeps two
/// instances in flight and holds the rest in its queue until they are decided.
#[test]
fn a_leader_holds_commands_while_its_undecided_proposals_exceed_the_byte_budget() {
    let mut rs = led(3, |i| CoreConfig {
        max_batch_commands: 1,
        max_inflight_bytes: 1000,
        ..CoreConfig::new(i, 3)
    });
    let first = rs[0].commit_index();
    for i in 0..5u8 {
        rs[0].propose(vec![i; 600]);
    }
    let sent = run(&mut rs, 3, &|m| !matches!(m.msg, Message::Accepted { .. }));
    let opened: std::collections::BTreeSet<Slot> = sent
        .iter()
        .filter_map(|m| match m.msg {
            Message::Accept { slot, .. } if slot >= first => Some(slot),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened.len(),
        2,
        "two instances in flight, not five: {opened:?}"
    );
    run(&mut rs, 20, &|_| true);
    assert_eq!(
        rs[0].commit_index(),
        first + 5,
        "the rest went once decided"
    );
}

/// The ticks at which replica 0 started a campaign (a Prepare of a new ballot).
fn campaign_ticks(r: &mut Replica, ticks: u64) -> (Vec<u64>, usize) {
    let (mut starts, mut prepares, mut last) = (Vec::new(), 0, None);
    for t in 0..ticks {
        r.tick();
        for m in take(r).messages {
            if let Message::Prepare { ballot, .. } = m.msg {
                if m.to == 1 {
                    prepares += 1;
                }
                if last != Some(ballot) {
                    last = Some(ballot);
                    starts.push(t);
                }
            }
        }
    }
    (starts, prepares)
}

/// A candidate nobody answers sends its Prepare again less and less often, and
/// waits longer before each new campaign: each Prepare makes every acceptor send
/// its whole report again, which under large entries took longer to arrive than
/// one election timeout, so campaigns started over and over.
#[test]
fn a_candidate_nobody_answers_backs_off() {
    let mut r = replica(0, 3);
    r.campaign_now();
    let election = u64::from(r.config().election_ticks);
    let (starts, prepares) = campaign_ticks(&mut r, 40 * election);
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 4, "campaigns: {starts:?}");
    // Timeouts are drawn in [E, 2E) and double per lost campaign, up to 8x.
    assert!(gaps[0] < 2 * 2 * election, "{gaps:?}");
    assert!(gaps[3] >= 8 * election, "{gaps:?}");
    assert!(
        gaps.iter().all(|&g| g < 8 * 2 * election),
        "capped: {gaps:?}"
    );
    // Resent at 1, 2, 4, 8, 16 x retransmit_ticks within each campaign, not every
    // retransmit_ticks: far fewer than one per 10 ticks.
    let retransmit = u64::from(r.config().retransmit_ticks);
    let steady = (40 * election / retransmit) as usize;
    assert!(prepares * 3 < steady, "{prepares} Prepares to replica 1");
}
