//! The membership as logs written before membership changes stored it
//! (`Record::LegacyMembership`): read and converted, never written.

use super::{Member, Membership};
use crate::types::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A membership as logs written before membership changes stored it: every seat
/// a voter at the address it was started with. Read, never written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMembership {
    epochs: BTreeMap<Slot, Vec<LegacyMember>>,
}

/// One seat of a [`LegacyMembership`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyMember {
    incarnation: u64,
    nonce: u64,
}

impl From<LegacyMembership> for Membership {
    fn from(old: LegacyMembership) -> Self {
        let epochs = old
            .epochs
            .into_iter()
            .map(|(from, ms)| {
                let ms = ms
                    .into_iter()
                    .map(|m| Member {
                        incarnation: m.incarnation,
                        nonce: m.nonce,
                        ..Member::founder()
                    })
                    .collect();
                (from, ms)
            })
            .collect();
        Membership { epochs }
    }
}
