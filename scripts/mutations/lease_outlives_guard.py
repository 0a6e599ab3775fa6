"""Ours: a leader's lease lasts twice the election timeout, longer than the
promise guard of the followers that acknowledged it (rule 10): another leader
can be elected, and decide writes, while the old one still reads from its lease."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/config.rs",
        "        u64::from(self.election_ticks.saturating_sub(1)) * (100 - drift) / (100 + drift)",
        "        let _ = drift;\n        2 * u64::from(self.election_ticks)")
