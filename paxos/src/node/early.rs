//! The early path: leader messages that may leave before the records of their Ready
//! are durable.
//!
//! Rule 3 of the crate docs holds every message of a Ready back until the Ready's
//! records are durable, because acceptor messages (`Promise`, `Accepted`) reveal
//! them. A leader's phase-2a `Accept` and its `Heartbeat` reveal no acceptor state:
//! the value an `Accept` carries comes from phase 1 (durable at the acceptors that
//! reported it) or is new, and the commit watermark either carries is a decision,
//! already durable on a majority (rule 5). What they do need is that their ballot is
//! never reused: a leader that crashes and restarts must not propose a different
//! value at the same ballot. A restarted replica campaigns with a round above every
//! promise in its log, so these messages go early only once a promise at or above
//! their ballot is durable here ([`DurablePromise`]; in practice the leader's own
//! `Promised` record of its ballot, or an `Accepted` one); until then they wait in
//! the Ready like any other message.
//!
//! Sending them at once means the followers' fdatasync runs in parallel with the
//! leader's own instead of after it: a command costs about one fdatasync and one
//! round trip instead of two fdatasyncs and a round trip.
//!
//! A follower's `HeartbeatAck` goes early too, whatever its Ready holds. It reveals
//! no acceptor state either: handling a heartbeat writes no promise (it only
//! follows a ballot at or above the current promise), the decided watermark it
//! carries is made of decisions (durable on a majority, rule 5), and `done` is the
//! application's own durable checkpoint. What the leader takes from it — "this
//! replica had promised nothing above my ballot when it answered" — holds of the
//! replica's in-memory promise, which is at or above every promise it ever revealed
//! (a `Promise` leaves only once durable), so a crash that loses an unsynced promise
//! cannot make an earlier acknowledgement false. Without this, a linearizable read
//! waited for a follower's fdatasync of unrelated `Accepted` records in the same
//! batch: reads cost as much as writes under load.

use crate::message::{Envelope, Message};
use crate::transport::Transport;
use crate::types::{Ballot, NodeId};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::Sender;

/// The highest ballot this replica's log holds a durable promise of (by a
/// `Promised` or an `Accepted` record that an fdatasync covered). Starts at
/// [`Ballot::ZERO`]: what a log held at start may not have been synced.
#[derive(Debug, Default)]
pub(super) struct DurablePromise(Mutex<Ballot>);

impl DurablePromise {
    /// The highest promise known durable.
    pub(super) fn get(&self) -> Ballot {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that a promise of `ballot` is durable.
    pub(super) fn raise(&self, ballot: Ballot) {
        let mut durable = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *durable = (*durable).max(ballot);
    }
}

/// Sends a replica's early messages straight from the core loop.
pub(super) struct EarlyPath {
    pub(super) me: NodeId,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) loopback: Sender<Envelope>,
    pub(super) durable: Arc<DurablePromise>,
}

impl EarlyPath {
    /// Sends every message of `messages` that may go before the records of its Ready
    /// are durable; returns the others, in order, for the persister.
    pub(super) fn send(&self, messages: Vec<Envelope>) -> Vec<Envelope> {
        let durable = self.durable.get();
        let (early, gated): (Vec<Envelope>, Vec<Envelope>) = messages
            .into_iter()
            .partition(|env| self.may_go_early(env, durable));
        for env in early {
            if env.to == self.me {
                // Never block the core loop on its own inbox: a full inbox loses the
                // message like the network would, and the leader retransmits.
                let _ = self.loopback.try_send(env);
            } else {
                self.transport.send(env);
            }
        }
        gated
    }

    /// A leader message of a ballot whose promise is durable here, or a follower's
    /// heartbeat acknowledgement.
    fn may_go_early(&self, env: &Envelope, durable: Ballot) -> bool {
        let ballot = match &env.msg {
            Message::Accept { ballot, .. } | Message::Heartbeat { ballot, .. } => *ballot,
            Message::HeartbeatAck { .. } => return env.from == self.me,
            _ => return false,
        };
        env.from == self.me && ballot.node == self.me && ballot <= durable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Entry;

    #[derive(Default)]
    struct Sent(Mutex<Vec<Envelope>>);

    impl Transport for Sent {
        fn send(&self, env: Envelope) {
            self.0.lock().unwrap().push(env);
        }
    }

    fn env(to: NodeId, msg: Message) -> Envelope {
        Envelope { from: 0, to, msg }
    }

    fn accept(ballot: Ballot) -> Message {
        Message::Accept {
            ballot,
            slot: 3,
            entry: Entry::Noop,
            commit: 0,
        }
    }

    #[test]
    fn a_followers_heartbeat_ack_goes_early_but_its_accepted_waits() {
        let sent = Arc::new(Sent::default());
        let (loopback, _looped) = tokio::sync::mpsc::channel(8);
        // Replica 1 follows leader 0; nothing is durable on it yet.
        let path = EarlyPath {
            me: 1,
            transport: sent.clone(),
            loopback,
            durable: Arc::new(DurablePromise::default()),
        };
        let b = Ballot::new(4, 0);
        let ack = Envelope {
            from: 1,
            to: 0,
            msg: Message::HeartbeatAck {
                ballot: b,
                round: 7,
                commit: 3,
                done: 0,
                incarnation: Some(0),
            },
        };
        let accepted = Envelope {
            from: 1,
            to: 0,
            msg: Message::Accepted {
                ballot: b,
                slot: 3,
                incarnation: 0,
            },
        };
        let gated = path.send(vec![accepted.clone(), ack.clone()]);
        assert_eq!(
            gated,
            vec![accepted],
            "an Accepted must wait for its record"
        );
        assert_eq!(*sent.0.lock().unwrap(), vec![ack]);
        // Someone else's acknowledgement (never produced here) is not let through.
        let foreign = Envelope {
            from: 2,
            to: 0,
            msg: Message::HeartbeatAck {
                ballot: b,
                round: 7,
                commit: 3,
                done: 0,
                incarnation: Some(0),
            },
        };
        assert_eq!(path.send(vec![foreign.clone()]), vec![foreign]);
    }

    #[test]
    fn only_leader_messages_of_a_durable_ballot_go_early() {
        let sent = Arc::new(Sent::default());
        let (loopback, mut looped) = tokio::sync::mpsc::channel(8);
        let path = EarlyPath {
            me: 0,
            transport: sent.clone(),
            loopback,
            durable: Arc::new(DurablePromise::default()),
        };
        let b = Ballot::new(4, 0);
        let heartbeat = Message::Heartbeat {
            ballot: b,
            commit: 0,
            round: 0,
            done: vec![0; 3],
        };
        // An acceptor's message (rejecting someone's lower ballot): never early.
        let accepted = Message::Reject {
            ballot: Ballot::new(3, 1),
            promised: b,
        };
        let batch = || {
            vec![
                env(1, accept(b)),
                env(0, accept(b)),
                env(1, accepted.clone()),
                env(2, heartbeat.clone()),
            ]
        };
        // Nothing is durable yet: everything waits for the persister.
        assert_eq!(path.send(batch()), batch());
        assert!(sent.0.lock().unwrap().is_empty());

        path.durable.raise(b);
        // The acceptor's message still waits; the leader's messages go at once.
        assert_eq!(path.send(batch()), vec![env(1, accepted)]);
        assert_eq!(
            *sent.0.lock().unwrap(),
            vec![env(1, accept(b)), env(2, heartbeat)]
        );
        assert_eq!(looped.try_recv().ok(), Some(env(0, accept(b))));

        // A higher ballot than the durable promise waits again.
        let higher = Ballot::new(5, 0);
        assert_eq!(path.send(vec![env(1, accept(higher))]).len(), 1);
    }
}
