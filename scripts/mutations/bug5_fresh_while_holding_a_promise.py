"""Issue #12 bug 5: a candidate holding another replica's promise answers a probe
with Fresh (and keeps its ballot)."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/history.rs",
        "            || holds_another\n",
        "")
replace(root, "paxos/src/core/history.rs",
        "            self.step_down();\n        }\n        ProbeAnswer::Fresh",
        "        }\n        ProbeAnswer::Fresh")
