"""Ours: a restarted replica promises at once, forgetting that before its crash it
may have acknowledged a leader that still holds a lease (rule 10)."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/restore.rs",
        "        r.guard = super::acceptor::PromiseGuard::nobody_until(u64::from(r.cfg.election_ticks));",
        "        r.guard = super::acceptor::PromiseGuard::default();")
