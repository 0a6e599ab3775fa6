"""Issue #12 bug 4: a recovered replica votes (and clears its recovering mark)
before the membership record naming its new incarnation is durable."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/mod.rs",
        "            && self.membership_durable()\n",
        "")
