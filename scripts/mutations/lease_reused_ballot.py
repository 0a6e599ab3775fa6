"""Ours (lease attack, finding 1): a leader elected on the others' promises alone
(its own Prepare lost) does not persist its own promise, so after a restart it
campaigns at the same ballot again and messages of its earlier leadership count
for the new one: agreement can break, and a stale HeartbeatAck can extend a lease."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/candidate.rs",
        "        if self.promised < ballot {\n            // Elected",
        "        if false && self.promised < ballot {\n            // Elected")
