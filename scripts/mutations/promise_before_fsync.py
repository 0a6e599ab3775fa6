"""Ours: a Promise leaves before the record of the promise is durable."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/core/durability.rs",
        "            Message::HeartbeatAck { .. } => env.from == me,",
        "            Message::HeartbeatAck { .. } | Message::Promise { .. } => env.from == me,")
