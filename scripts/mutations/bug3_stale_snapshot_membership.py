"""Issue #12 bug 3: a snapshot's membership is read when the request arrives,
before the read index is confirmed and the state it describes is read. The
service (`Rsm::snapshot`) and the simulator's request handling both take it
early."""
import sys
from mutate import replace

root = sys.argv[1]
replace(root, "paxos/src/rsm/mod.rs",
        """        let work = async {
            let index = self.node.read_index().await?;
            self.wait_applied(index).await?;
            let applier = lock(&self.inner.applier);
            Ok::<_, RsmError>(applier.snapshot(|| self.node.membership(), copy))""",
        """        let early = self.node.membership();
        let work = async {
            let index = self.node.read_index().await?;
            self.wait_applied(index).await?;
            let applier = lock(&self.inner.applier);
            Ok::<_, RsmError>(applier.snapshot(|| early, copy))""")
replace(root, "sim/src/replica/running/requests.rs",
        """            Waiter::Snapshot {
                peer,
                since: io.now,
            },""",
        """            Waiter::Snapshot {
                peer,
                since: io.now,
                early: self.core.membership().clone(),
            },""")
replace(root, "sim/src/replica/running/mod.rs",
        "    Snapshot { peer: usize, since: Time },",
        "    Snapshot { peer: usize, since: Time, early: paxos::core::Membership },")
replace(root, "sim/src/replica/running/requests.rs",
        "                Waiter::Snapshot { peer, .. } => {\n                    let core = &self.core;",
        "                Waiter::Snapshot { peer, early, .. } => {\n                    let _core = &self.core;")
replace(root, "sim/src/replica/running/requests.rs",
        "                        .snapshot(|| core.membership().clone(), S::snapshot);",
        "                        .snapshot(|| early, S::snapshot);")
