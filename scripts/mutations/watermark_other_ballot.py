"""Ours: a follower decides from the leader's commit watermark an instance it
accepted at another ballot."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/learner.rs",
        ".filter(|&(slot, (b, _))| *b == ballot && !self.decided.contains_key(slot))",
        ".filter(|&(slot, (b, _))| (*b == ballot || *b != ballot) && !self.decided.contains_key(slot))")
