//! Tuning of the protocol core, counted in ticks and bytes.

use crate::types::NodeId;

/// Largest group the core supports (acks are kept in a 64-bit set).
pub const MAX_PEERS: usize = 64;

/// Largest command the core proposes: half the log's 64 MiB frame limit, so that
/// a record holding a batch (at most [`CoreConfig::max_batch_bytes`], itself at
/// most this, or one command this large) always fits in one frame. A larger
/// command is refused by `PaxosNode::propose` and dropped by the core.
pub const MAX_COMMAND_BYTES: usize = 32 << 20;

/// Batching counts each command's bytes plus this much for its length prefix
/// and framing, so the count bounds the encoded size.
pub const COMMAND_OVERHEAD: usize = 10;

/// A message is resent after `retransmit_ticks` more for every this many bytes it
/// carries: 1 MiB per 100 ms (at the daemons' 10 ms tick) assumes a peer takes in
/// at least 10 MiB/s, well below a disk's sequential write rate.
pub const RESEND_UNIT_BYTES: usize = 1 << 20;

/// ρ, the clock assumption behind leader leases (rule 10 of the crate docs), in
/// percent: every replica's ticks come at a rate within this much of nominal
/// (10%: a tick of nominal length `d` lasts between `d / 1.1` and `d / 0.9`).
/// Ticks come from a monotonic clock, and the driver catches up with ticks it
/// missed (a stall, a pause) before it feeds the core anything else, so the
/// count of ticks follows that clock (see `PaxosNode`). A replica whose clock
/// runs outside this bound may serve a stale read from its lease: see
/// docs/REFERENCE.md §6.
pub const MAX_CLOCK_DRIFT_PERCENT: u64 = 10;

/// Settings of one replica's protocol core. Time is in ticks: the driver decides how
/// long a tick is (10 ms in the daemons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// This replica's index in the group.
    pub id: NodeId,
    /// Number of replicas in the group.
    pub peers: usize,
    /// A leader sends a heartbeat at least every this many ticks.
    pub heartbeat_ticks: u32,
    /// A follower that hears no leader for a random number of ticks in
    /// `[election_ticks, 2 * election_ticks)` starts an election. A follower that
    /// acknowledged a leader's heartbeat promises no other candidate for this
    /// many ticks, and a leader's lease is derived from it
    /// ([`CoreConfig::lease_ticks`]): every replica of a group must use the same
    /// value and the same tick length.
    pub election_ticks: u32,
    /// Unanswered Accept and Prepare messages are sent again after this many ticks
    /// (longer for large messages and for repeated Prepares: see
    /// [`CoreConfig::resend_ticks`]).
    pub retransmit_ticks: u32,
    /// α, the in-flight window: a leader never opens instance `j` before every
    /// instance `<= j - window` is decided. Part of the protocol: every replica of
    /// a group must use the same value (disk-loss recovery relies on it).
    pub window: u64,
    /// A batch (one instance) holds at most this many bytes of commands...
    pub max_batch_bytes: usize,
    /// ...and at most this many commands.
    pub max_batch_commands: usize,
    /// One catch-up message carries at most this many bytes of decided values.
    pub catchup_bytes: usize,
    /// Flow control: a leader opens no new instance for client commands while its
    /// undecided proposals hold this many bytes or more (one always may open).
    /// Commands wait in the leader's queue instead of being sent to every follower
    /// at once: a burst of 16 MiB writes (issue #18, B3) no longer puts hundreds of
    /// megabytes in flight per follower. etcd's raft has the same bound
    /// (`MaxInflightBytes`).
    pub max_inflight_bytes: usize,
    /// Commands a follower holds while no leader is known; older ones are dropped.
    pub max_waiting_commands: usize,
    /// Seed of the replica's random number generator (election timeouts).
    pub seed: u64,
    /// `Some(nonce)`: this replica lost its disk and is recovering; it votes only
    /// once its reincarnation with this nonce is decided, and only in later instances.
    pub recovering: Option<u64>,
    /// Serve linearizable reads from a leader lease (no round trip) while the
    /// leader holds one ([`CoreConfig::lease_ticks`]); otherwise, and always if
    /// false, a read waits for a heartbeat round acknowledged by a majority
    /// (read-index). Leases rest on the clock assumption
    /// ([`MAX_CLOCK_DRIFT_PERCENT`]); read-index on none.
    pub lease_reads: bool,
    /// Tests only: count every vote whatever its incarnation (the unsafe
    /// "rejoin as if nothing happened" rule), to show what the real rule prevents.
    pub unsafe_rejoin: bool,
}

impl CoreConfig {
    /// Defaults for replica `id` of a group of `peers`.
    pub fn new(id: NodeId, peers: usize) -> Self {
        CoreConfig {
            id,
            peers,
            heartbeat_ticks: 3,
            election_ticks: 30,
            retransmit_ticks: 10,
            window: 64,
            max_batch_bytes: 1 << 20,
            max_batch_commands: 4096,
            catchup_bytes: 4 << 20,
            max_inflight_bytes: 64 << 20,
            max_waiting_commands: 100_000,
            seed: id as u64,
            recovering: None,
            lease_reads: true,
            unsafe_rejoin: false,
        }
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.peers == 0 || self.peers > MAX_PEERS {
            return Err(format!(
                "group size {} must be between 1 and {MAX_PEERS}",
                self.peers
            ));
        }
        if self.id >= self.peers {
            return Err(format!(
                "replica index {} is not below the group size {}",
                self.id, self.peers
            ));
        }
        if self.heartbeat_ticks == 0 || self.retransmit_ticks == 0 || self.window == 0 {
            return Err("heartbeat_ticks, retransmit_ticks and window must be positive".into());
        }
        if self.election_ticks <= 2 * self.heartbeat_ticks {
            return Err(format!(
                "election_ticks ({}) must exceed twice heartbeat_ticks ({})",
                self.election_ticks, self.heartbeat_ticks
            ));
        }
        if self.max_batch_bytes == 0 || self.max_batch_commands == 0 {
            return Err("batches must allow at least one command".into());
        }
        if self.max_batch_bytes > MAX_COMMAND_BYTES {
            return Err(format!(
                "max_batch_bytes ({}) must be at most {MAX_COMMAND_BYTES}, so that every \
                 batch fits in one log record",
                self.max_batch_bytes
            ));
        }
        Ok(())
    }

    /// Ticks to wait before sending again a message of `bytes` bytes that was not
    /// answered: `retransmit_ticks` for each `RESEND_UNIT_BYTES` (1 MiB) it carries (at
    /// least once). A follower still receiving and syncing a burst of large entries
    /// must not get a second copy of each (issue #18, B3: resending 16 MiB Accepts
    /// every 100 ms multiplied the bytes in flight until elections failed).
    pub fn resend_ticks(&self, bytes: usize) -> u64 {
        u64::from(self.retransmit_ticks) * (1 + (bytes / RESEND_UNIT_BYTES) as u64)
    }

    /// How long a leader's lease lasts, in its own ticks, from the tick it sent a
    /// heartbeat round that a majority (itself included) acknowledged:
    /// `floor((election_ticks - 1) * (1 - ρ) / (1 + ρ))` with ρ =
    /// [`MAX_CLOCK_DRIFT_PERCENT`] (23 ticks for the default 30).
    ///
    /// Why it is safe. A follower that acknowledges the round does so when it
    /// *handles* the heartbeat, after the leader sent it, and from then on
    /// promises no other candidate's ballot until `election_ticks` of its own
    /// ticks have come (the promise guard, `acceptor.rs`; a restart does not cut
    /// it short). The first of those ticks may come at once, so the guard lasts
    /// longer than `election_ticks - 1` tick periods of its clock: in real time
    /// at least `(election_ticks - 1) / (1 + ρ)` nominal ticks after the send. The
    /// leader sent at its tick `t` (after that tick came) and serves from the
    /// lease only while its clock reads below `t + lease_ticks`: for less than
    /// `lease_ticks` periods of its clock after the send, at most
    /// `lease_ticks / (1 - ρ)` nominal ticks. So `lease_ticks / (1 - ρ) <=
    /// (election_ticks - 1) / (1 + ρ)` makes every lease end before any replica
    /// of the acknowledging majority may promise another candidate; and any
    /// other leader's election needs a promise from one of them (two majorities
    /// meet), so no other leader decides anything while the lease holds. The
    /// formula is that inequality, rounded down. It assumes every replica of the
    /// group has the same `election_ticks` and nominal tick length.
    pub fn lease_ticks(&self) -> u64 {
        let drift = MAX_CLOCK_DRIFT_PERCENT;
        u64::from(self.election_ticks.saturating_sub(1)) * (100 - drift) / (100 + drift)
    }

    /// Votes needed for a decision: a strict majority of the group.
    pub fn majority(&self) -> usize {
        self.peers / 2 + 1
    }
}
