//! Invariant (b): replicas that applied the same log prefix hold the same state.
//!
//! Each time a replica's state machine moves (a run of decisions applied, a
//! snapshot installed, a restart from its checkpoint), its digest at that applied
//! instance is compared with the first digest any replica of the group reported
//! at the same instance.

use paxos::{NodeId, Slot};
use std::collections::HashMap;

/// Digests per applied instance, per group.
#[derive(Default)]
pub struct Digests {
    seen: HashMap<(u64, Slot), (u64, NodeId, &'static str)>,
}

impl Digests {
    /// Replica `node` of `group` holds a state with `digest` after applying every
    /// instance below `applied` (`how`: what moved it, for the report).
    pub fn observe(
        &mut self,
        group: u64,
        node: NodeId,
        applied: Slot,
        digest: u64,
        how: &'static str,
    ) -> Result<(), String> {
        match self.seen.get(&(group, applied)) {
            Some(&(d, first, first_how)) if d != digest => Err(format!(
                "group {group}: replica {node} ({how}) and replica {first} ({first_how}) applied \
                 every instance below {applied} but hold different states ({digest:016x} vs \
                 {d:016x})"
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert((group, applied), (digest, node, how));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_prefix_must_give_the_same_digest() {
        let mut d = Digests::default();
        d.observe(1, 0, 5, 42, "apply").unwrap();
        d.observe(1, 1, 5, 42, "apply").unwrap();
        d.observe(1, 1, 6, 7, "apply").unwrap();
        assert!(d.observe(1, 2, 5, 43, "restart").is_err());
        d.observe(2, 2, 5, 43, "apply").unwrap();
    }
}
