"""Issue #12 bug 1: a recovering replica answers Accepted below its floor, as its
lost incarnation (incarnation 0)."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/acceptor.rs",
        "        if !self.can_vote(slot) {",
        "        if slot >= self.floor && !self.can_vote(slot) {")
replace(root, "paxos/src/core/acceptor.rs",
        """        let Some(incarnation) = self.incarnation else {
            return; // unreachable: `can_vote` needs a known incarnation
        };""",
        "        let incarnation = self.incarnation.unwrap_or_default();")
