"""Shardmaster: installing a peer's snapshot keeps the local duplicate table
instead of the snapshot's."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "shardmaster/src/machine.rs",
        """        self.store = snap.store.clone();
        self.dups = snap.dups.clone();""",
        """        self.store = snap.store.clone();""")
