//! Is an empty directory a brand-new replica or a lost disk? Ask the peers.
//!
//! A replica that starts with nothing on disk and was not told `--restart` must not
//! simply start fresh: if its group already ran, it may have voted before and
//! forgotten it (see [`crate::core::Membership`]). So before it votes it asks every
//! peer, over the shared port (tag [`mux::PROBE`]), one question answered from the
//! peer's own state: *has this group a history?*
//!
//! - [`Answer::Fresh`]: the peer has nothing either (it is probing too, or it
//!   started but no quorum ever formed: see [`crate::core::Replica::has_history`]).
//! - [`Answer::History`]: the peer votes in a group that has started.
//! - [`Answer::Recovering`]: the peer is itself recovering a lost disk.
//!
//! [`decide`] turns the answers into a [`Verdict`]:
//!
//! 1. any peer with a history (or recovering) → **lost disk**: recover as a new
//!    incarnation, never start empty;
//! 2. enough peers answered `Fresh` that every quorum containing this replica has
//!    one of them *and* no silent candidate can complete a quorum with a lost promise
//!    of this replica later: every other replica (see [`fresh_needed`]) → **fresh**:
//!    no quorum can ever have counted a vote of this replica, so it bootstraps;
//! 3. otherwise → **wait** and ask again, saying so in the log every few seconds.
//!    A group's first start works because all its replicas start at about the same
//!    time and each answers `Fresh` while it probes. A one-replica group has no one
//!    to ask and starts fresh.

use crate::node::PaxosNode;
use crate::transport::mux;
use crate::types::NodeId;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long one peer may take to answer a probe.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two rounds of probes.
const ROUND: Duration = Duration::from_millis(150);
/// How often a waiting replica says so in its log.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// A peer's answer to "has this group a history?" (computed by the core:
/// [`crate::core::Replica::probe_answer`]).
pub use crate::core::ProbeAnswer as Answer;

impl Answer {
    fn to_byte(self) -> u8 {
        match self {
            Answer::Fresh => b'F',
            Answer::History => b'H',
            Answer::Recovering => b'R',
        }
    }

    fn from_byte(b: u8) -> Option<Answer> {
        match b {
            b'F' => Some(Answer::Fresh),
            b'H' => Some(Answer::History),
            b'R' => Some(Answer::Recovering),
            _ => None,
        }
    }
}

/// What a replica with an empty directory must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Start as a brand-new replica.
    Fresh,
    /// Recover as a lost disk; `reason` says which peer showed the group's history.
    Lost {
        /// For the log.
        reason: String,
    },
    /// Not enough peers answered yet.
    Wait {
        /// Peers that answered `Fresh`.
        fresh: usize,
        /// `Fresh` answers needed to start fresh.
        needed: usize,
    },
}

/// `Fresh` answers (from peers other than this replica) needed to start fresh:
/// every other replica's. Fewer (enough that every quorum containing this replica
/// includes one of them, 3 of 4 in a group of 5) covers the past but not the
/// future: a silent candidate may hold this replica's lost promise and complete its
/// quorum later with the promise of a peer that answered `Fresh` (it answers from
/// what it holds now); and a peer that answers `Fresh` because it is probing too
/// may have lost its disk as well, so a quorum of the two lost incarnations and the
/// silent replica may have chosen a value (found in review).
pub fn fresh_needed(peers: usize) -> usize {
    peers.saturating_sub(1)
}

/// The verdict for replica `me`, given each peer's answer (`None`: no answer;
/// `answers[me]` is ignored).
pub fn decide(me: NodeId, answers: &[Option<Answer>]) -> Verdict {
    let mut fresh = 0;
    for (i, a) in answers.iter().enumerate() {
        match a {
            _ if i == me => {}
            Some(Answer::History) => {
                return Verdict::Lost {
                    reason: format!("replica {i} votes in a group that has already started"),
                }
            }
            Some(Answer::Recovering) => {
                return Verdict::Lost {
                    reason: format!("replica {i} is recovering, so the group has a history"),
                }
            }
            Some(Answer::Fresh) => fresh += 1,
            None => {}
        }
    }
    let needed = fresh_needed(answers.len());
    if fresh >= needed {
        Verdict::Fresh
    } else {
        Verdict::Wait { fresh, needed }
    }
}

#[derive(Default)]
enum Stage {
    /// Opening its state: do not answer yet.
    #[default]
    Starting,
    /// Not running yet, but what it will be is known (probing with nothing on
    /// disk: `Fresh`; about to recover: `Recovering`).
    Known(Answer),
    /// Running: answer from the replica's state.
    Running(PaxosNode),
}

/// What this process answers to probes; shared with the task that answers them.
#[derive(Clone, Default)]
pub struct Responder(Arc<Mutex<Stage>>);

impl Responder {
    fn set(&self, stage: Stage) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = stage;
    }

    /// Answer `a` until [`Responder::running`] (`Fresh` while this replica probes
    /// with nothing on disk, `Recovering` once it knows it lost its disk).
    pub fn known(&self, a: Answer) {
        self.set(Stage::Known(a));
    }

    /// Answer from `node`'s state from now on.
    pub fn running(&self, node: PaxosNode) {
        self.set(Stage::Running(node));
    }

    /// The answer now, `None` while starting.
    pub fn answer(&self) -> Option<Answer> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Stage::Starting => None,
            Stage::Known(a) => Some(*a),
            Stage::Running(node) => Some(node.probe_answer()),
        }
    }

    /// Answers every probe connection handed over by [`mux::demux`] (one byte, then
    /// close) until the demux stops.
    pub fn serve(&self, mut probes: mpsc::Receiver<mux::Conn>) {
        let me = self.clone();
        tokio::spawn(async move {
            while let Some(mut stream) = probes.recv().await {
                if let Some(a) = me.answer() {
                    let _ =
                        tokio::time::timeout(ASK_TIMEOUT, stream.write_all(&[a.to_byte()])).await;
                }
            }
        });
    }
}

/// Asks the replica at `addr`; `None` if it does not answer in time.
pub async fn ask(addr: &str) -> Option<Answer> {
    let work = async {
        let mut stream = mux::connect(addr, mux::PROBE).await.ok()?;
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await.ok()?;
        Answer::from_byte(b[0])
    };
    tokio::time::timeout(ASK_TIMEOUT, work).await.ok().flatten()
}

/// Asks every peer but `me` at once; `answers[me]` is `None`.
pub async fn ask_all(me: NodeId, peers: &[String]) -> Vec<Option<Answer>> {
    let asks = peers.iter().enumerate().map(|(i, addr)| async move {
        if i == me {
            None
        } else {
            ask(addr).await
        }
    });
    futures::future::join_all(asks).await
}

/// Probes the peers until the verdict is [`Verdict::Fresh`] or [`Verdict::Lost`],
/// answering `Fresh` to their probes meanwhile (and `Recovering` once lost). While it
/// waits it says so in the log every few seconds. Returns at once with `Fresh` for a
/// one-replica group.
pub async fn until_decided(me: NodeId, peers: &[String], responder: &Responder) -> Verdict {
    responder.known(Answer::Fresh);
    let started = Instant::now();
    let mut warned = Instant::now();
    let verdict = loop {
        let answers = ask_all(me, peers).await;
        match decide(me, &answers) {
            Verdict::Wait { fresh, needed } => {
                if warned.elapsed() >= WARN_EVERY {
                    warned = Instant::now();
                    tracing::warn!(
                        node = me,
                        fresh,
                        needed,
                        waited_s = started.elapsed().as_secs(),
                        "empty directory and no --restart: waiting for the peers to say whether \
                         this group already ran (a replica never starts empty in a group that has \
                         a history); start the other replicas, or pass --restart if this replica \
                         lost its disk"
                    );
                }
                tokio::time::sleep(ROUND).await;
            }
            decided => break decided,
        }
    };
    if let Verdict::Lost { .. } = verdict {
        responder.known(Answer::Recovering);
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use Answer::*;

    #[test]
    fn a_new_group_starts_fresh_once_every_quorum_is_covered() {
        assert_eq!(decide(0, &[None, Some(Fresh), Some(Fresh)]), Verdict::Fresh);
        // Two of three is not enough: replica 2 may hold a quorum {me, 2} with me.
        assert_eq!(
            decide(0, &[None, Some(Fresh), None]),
            Verdict::Wait {
                fresh: 1,
                needed: 2
            }
        );
        // Five replicas: all four others (three would leave a silent one that may
        // hold this replica's lost promise, or a quorum with another wiped one).
        let a = [Some(Fresh), Some(Fresh), None, Some(Fresh), None];
        assert_eq!(
            decide(2, &a),
            Verdict::Wait {
                fresh: 3,
                needed: 4
            }
        );
        let a = [Some(Fresh), Some(Fresh), Some(Fresh), Some(Fresh), None];
        assert_eq!(decide(4, &a), Verdict::Fresh);
        // Alone: nobody to ask.
        assert_eq!(decide(0, &[None]), Verdict::Fresh);
    }

    #[test]
    fn a_peer_with_history_means_a_lost_disk() {
        for a in [History, Recovering] {
            let v = decide(1, &[Some(Fresh), None, Some(a)]);
            assert!(
                matches!(v, Verdict::Lost { ref reason } if reason.contains("replica 2")),
                "{v:?}"
            );
        }
        // Even with every other peer silent.
        assert!(matches!(
            decide(0, &[None, Some(History), None]),
            Verdict::Lost { .. }
        ));
    }

    #[test]
    fn no_answer_waits() {
        assert_eq!(
            decide(0, &[None, None, None]),
            Verdict::Wait {
                fresh: 0,
                needed: 2
            }
        );
    }

    #[test]
    fn answers_survive_the_wire_encoding() {
        for a in [Fresh, History, Recovering] {
            assert_eq!(Answer::from_byte(a.to_byte()), Some(a));
        }
        assert_eq!(Answer::from_byte(b'x'), None);
    }

    #[tokio::test]
    async fn probes_are_answered_over_the_shared_port() {
        let mut addrs = Vec::new();
        let mut responders = Vec::new();
        for _ in 0..3 {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap().to_string());
            let demux = mux::demux(l).unwrap();
            let r = Responder::default();
            r.serve(demux.probes);
            // Keep the demux's other receivers alive for the test.
            std::mem::forget((demux.peers, demux.clients));
            responders.push(r);
        }
        // Starting: no answer.
        assert_eq!(ask(&addrs[1]).await, None);
        // Every replica probing at once: all start fresh.
        let runs = (0..3).map(|i| {
            let (addrs, r) = (addrs.clone(), responders[i].clone());
            async move { until_decided(i, &addrs, &r).await }
        });
        let verdicts =
            tokio::time::timeout(Duration::from_secs(20), futures::future::join_all(runs))
                .await
                .expect("the first start decides");
        assert_eq!(verdicts, vec![Verdict::Fresh; 3]);
    }
}
