//! Rebuilding a replica from its storage: how every driver (the tokio one here
//! and the simulator) starts a replica, and revives one after a storage failure.

use super::Decision;
use crate::core::{CoreConfig, Replica};
use crate::error::PaxosError;
use crate::storage::Storage;
use crate::types::Slot;

/// Rebuilds a replica from `storage` for an application whose state covers every
/// instance below `applied`; returns it with the decided instances from `applied`
/// on, to replay to the application. Every driver starts a replica this way.
pub fn restore(
    cfg: &CoreConfig,
    storage: &mut dyn Storage,
    applied: Slot,
) -> Result<(Replica, Vec<Decision>), PaxosError> {
    cfg.validate().map_err(PaxosError::Config)?;
    let records = storage.load()?;
    let mut replica = Replica::restore(cfg.clone(), records);
    if applied < replica.floor() {
        return Err(PaxosError::Config(format!(
            "the application applied instances below {applied} only, but the log forgot \
             everything below {}: its checkpoint is older than the log allows",
            replica.floor()
        )));
    }
    // The application's durable state may cover more than the log knows decided:
    // a snapshot installed just before a crash, whose `Forgotten` record (synced
    // lazily) was lost, and with it the snapshot's membership. The replica asks
    // its peers for the membership, then forgets below `applied`, or the log
    // would wait forever for instances the group may have forgotten (found in
    // review).
    replica.doubt_membership(applied);
    let replay = (applied..replica.commit_index())
        .filter_map(|slot| {
            replica
                .decided(slot)
                .map(|e| Decision::Entry(slot, e.clone()))
        })
        .collect();
    Ok((replica, replay))
}

/// Rebuilds a replica from `storage` for an application that keeps running
/// after a storage failure: its durable state covers every instance below
/// `durable_applied`, and it holds (in memory) every decision below
/// `handed_out`. The log is restored for the durable state, not for what the
/// application holds in memory: a restore for more would let the log forget
/// instances a later crash needs (found by the simulator, seed 5). Decisions the
/// application already has are not replayed. Both drivers revive this way.
pub fn restore_in_place(
    cfg: &CoreConfig,
    storage: &mut dyn Storage,
    durable_applied: Slot,
    handed_out: Slot,
) -> Result<(Replica, Vec<Decision>), PaxosError> {
    let (replica, mut replay) = restore(cfg, storage, durable_applied)?;
    replay.retain(|d| !matches!(d, Decision::Entry(slot, _) if *slot < handed_out));
    Ok((replica, replay))
}
