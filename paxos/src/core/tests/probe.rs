//! Review findings on the probe's fresh start in a group of five.

use super::*;

/// Review: "answering Fresh is a promise about the past *and* the future" holds
/// for a candidate that answers (it drops its ballot), but not for a follower
/// that answers `Fresh` and *later* promises the ballot of a replica that did not
/// answer (3 of the 4 others suffice in a group of five). That silent candidate
/// may hold the prober's lost promise: its quorum {silent, lost promise, follower}
/// then never saw what the prober's new incarnation (same incarnation number 0)
/// accepted, and two values are chosen in one instance.
#[test]
fn review_a_fresh_answer_does_not_stop_a_silent_candidate_holding_the_lost_promise() {
    use crate::probe::{decide, Verdict};
    let (a, b, c, d, e) = (0, 1, 2, 3, 4);
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    // Replica e campaigns a few times (its round grows); its last Prepare reaches
    // only itself and a, and a's promise reaches e.
    for _ in 0..3 {
        rs[e].campaign_now();
        let _ = take(&mut rs[e]);
    }
    rs[e].campaign_now();
    let prepares: Vec<Envelope> = take(&mut rs[e]).messages;
    let prepare_to_b = prepares.iter().find(|m| m.to == b).cloned().unwrap();
    for p in prepares.into_iter().filter(|m| m.to == e || m.to == a) {
        rs[p.to].handle(p);
    }
    deliver_only(&mut rs, &|m| m.to == e && (m.from == a || m.from == e));
    // a loses its disk and probes: b, c and d answer; e is cut off.
    let answers = vec![
        None,
        Some(rs[b].probe_answer()),
        Some(rs[c].probe_answer()),
        Some(rs[d].probe_answer()),
        None,
    ];
    if decide(a, &answers) != Verdict::Fresh {
        return; // a recovers as a lost disk: a new incarnation, safe
    }
    rs[a] = replica(a, 5);
    // d leads with a (new), c and itself, and decides "x" in instance 0; nothing
    // of this reaches b or e.
    rs[d].campaign_now();
    let cut = |m: &Envelope| m.to != b && m.to != e && m.from != e && m.from != b;
    deliver_only(&mut rs, &cut);
    assert!(rs[d].is_leader());
    rs[d].propose(b"x".to_vec());
    deliver_only(&mut rs, &cut);
    assert_eq!(rs[d].decided(0), Some(&val("x")));
    // e's Prepare, retransmitted, reaches b (which answered Fresh): quorum
    // {e, a's lost promise, b}. e proposes "y": e, b and the new a accept.
    rs[b].handle(prepare_to_b);
    let to_e = |m: &Envelope| (m.to == e && m.from != d) || (m.from == e && m.to != d);
    deliver_only(&mut rs, &to_e);
    assert!(rs[e].is_leader(), "e never completed its quorum");
    rs[e].propose(b"y".to_vec());
    deliver_only(&mut rs, &to_e);
    assert_eq!(
        rs[e].decided(0),
        rs[d].decided(0),
        "two values chosen in instance 0"
    );
}

/// Review: in a group of five, two replicas whose directories were emptied
/// (a minority of disks lost) probe at once and each answers `Fresh` to the
/// other while probing. With two more peers that never took part (cut off), each
/// counts three `Fresh` answers and starts fresh, though the lost pair and the
/// silent fifth formed the quorum that chose a value.
#[test]
fn review_two_wiped_replicas_of_five_vouch_for_each_other() {
    use crate::probe::{decide, Verdict};
    let (e, a, x, b, c) = (0, 1, 2, 3, 4);
    let mut rs: Vec<Replica> = (0..5).map(|i| replica(i, 5)).collect();
    let trio = |m: &Envelope| [e, a, x].contains(&m.to) && [e, a, x].contains(&m.from);
    rs[e].campaign_now();
    deliver_only(&mut rs, &trio);
    assert!(rs[e].is_leader());
    rs[e].propose(b"v".to_vec());
    deliver_only(&mut rs, &trio);
    assert_eq!(rs[e].decided(0), Some(&val("v")));
    // a and x lose their disks and probe at once (each answers Fresh while it
    // probes); e is cut off, b and c never heard anything.
    for me in [a, x] {
        let mut answers = vec![None; 5];
        for (i, ans) in answers.iter_mut().enumerate() {
            if i == b || i == c {
                *ans = Some(rs[i].probe_answer());
            } else if (i == a || i == x) && i != me {
                *ans = Some(ProbeAnswer::Fresh); // probing itself
            }
        }
        if decide(me, &answers) != Verdict::Fresh {
            return; // it recovers as a lost disk: a new incarnation, safe
        }
    }
    rs[a] = replica(a, 5);
    rs[x] = replica(x, 5);
    let four = |m: &Envelope| m.to != e && m.from != e;
    rs[b].campaign_now();
    deliver_only(&mut rs, &four);
    assert!(rs[b].is_leader());
    rs[b].propose(b"w".to_vec());
    deliver_only(&mut rs, &four);
    assert_eq!(
        rs[e].decided(0),
        rs[b].decided(0),
        "two values chosen in instance 0"
    );
}
