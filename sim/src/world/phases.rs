//! The end of a run: the calm phase (faults stop, every machine restarts), the
//! audit (client 0 reads every key, a shardmaster client queries the latest
//! configuration), the liveness invariants, and the final checks and report.

use super::{Event, Phase, Report, World, GID, LIVENESS_BOUND, MASTER_GID, NSHARDS};
use crate::check::configs;
use crate::client::KEYS;
use crate::clock::{MS, SECOND};
use crate::faults;
use crate::linearizability::{check, CheckResult, Op as LinOp};
use paxos::core::ReadStats;

impl World {
    /// The faults stop: heal, restart, and watch for progress.
    pub(super) fn calm(&mut self) {
        self.phase = Phase::Calm;
        self.trace
            .note(self.now, "world", || "calm: faults stop".into());
        faults::calm(self);
        self.done_at_calm = self.clients.iter().map(|c| c.done).collect();
        // The audit waits for silent clients to be back, so every run lives
        // through the expiry of their entries.
        let back = self.silent_until.iter().copied().max().unwrap_or(0);
        let audit = (self.now + LIVENESS_BOUND / 2).max(back + SECOND);
        self.agenda.at(audit, Event::Audit);
        self.agenda.at(audit + LIVENESS_BOUND, Event::Deadline);
    }

    /// Clients stop taking new operations; client 0 reads every key.
    pub(super) fn start_audit(&mut self) {
        self.check_liveness();
        if !self.violations.is_empty() {
            return;
        }
        self.phase = Phase::Audit;
        for c in &mut self.clients {
            c.stopping = true;
        }
        self.audit = KEYS.iter().map(|k| LinOp::get(*k)).collect();
        self.audit
            .push_back(LinOp::scan(KEYS[0], KEYS[KEYS.len() - 1]));
        self.agenda.at(self.now, Event::ClientStart { client: 0 });
        self.audit_masters();
    }

    /// Invariant (e): once the faults stopped, every client makes progress —
    /// unless a majority of its group lost their disks, in which case that group
    /// halted (or stalls).
    pub(super) fn check_liveness(&mut self) {
        if self.phase == Phase::Faulty {
            return;
        }
        for g in &self.groups {
            let halted = g.members().filter(|&i| self.machines[i].halted()).count();
            if halted > 0 && !self.faults.majority_lost.contains(&g.gid) {
                self.violations.push(format!(
                    "group {}: {halted} replica(s) halted although no majority of the group lost \
                     its disks",
                    g.gid
                ));
                return;
            }
        }
        if let Some(v) = self.disowned_replica() {
            self.violations.push(v);
            return;
        }
        let bound = LIVENESS_BOUND / 2;
        let stuck_kv = self.clients.iter().find_map(|c| {
            let p = c.pending.as_ref()?;
            (self.now.saturating_sub(p.since) > bound)
                .then(|| (c.id, p.since, format!("{:?}", p.op)))
        });
        let stuck_master = self.masters.iter().find_map(|c| {
            let p = c.pending.as_ref()?;
            (self.now.saturating_sub(p.since) > bound)
                .then(|| (c.id, p.since, format!("{:?}", p.req.op)))
        });
        let stuck = [(GID, stuck_kv), (MASTER_GID, stuck_master)]
            .into_iter()
            .find_map(|(gid, s)| s.filter(|_| !self.faults.majority_lost.contains(&gid)));
        if let Some((id, since, op)) = stuck {
            let states = self.describe_machines();
            self.violations.push(format!(
                "liveness: client {id} has waited {} ms for {op} since the faults stopped; \
                 replicas: {states}",
                (self.now - since) / MS,
            ));
        }
    }

    /// Invariant (e), for replicas: once the faults stopped (and they followed the
    /// operator's rules), every running replica knows its incarnation and it is
    /// its index's newest in the membership it holds. A replica that never learns
    /// its reincarnation (a snapshot whose membership is older than its state), or
    /// whose live incarnation a stale request replaced, leaves its group one
    /// failure from a stall for good, although every client still progresses.
    fn disowned_replica(&self) -> Option<String> {
        if self.faults.reckless() {
            return None;
        }
        self.groups
            .iter()
            .filter(|g| !self.faults.majority_lost.contains(&g.gid))
            .flat_map(|g| g.members())
            .find_map(|i| {
                let m = &self.machines[i];
                let core = m.core()?;
                let newest = core.membership().latest().get(m.node())?.incarnation;
                (core.incarnation() != Some(newest)).then(|| {
                    format!(
                        "liveness: group {} replica {} is no voter long after the faults \
                         stopped: it knows incarnation {:?}, its index's newest is {newest}; \
                         replicas: {}",
                        m.group(),
                        m.node(),
                        core.incarnation(),
                        self.describe_machines()
                    )
                })
            })
    }

    fn describe_machines(&self) -> String {
        self.machines
            .iter()
            .map(|m| m.describe())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks the history and reports.
    pub(super) fn finish(mut self) -> Report {
        if self.violations.is_empty() {
            let verdict = check(&self.history);
            if matches!(
                verdict,
                CheckResult::Violation { .. } | CheckResult::Malformed { .. }
            ) {
                self.violations.push(format!(
                    "the clients' history is not linearizable: {verdict}"
                ));
            }
        }
        if self.violations.is_empty() {
            let found = configs::check(&self.master_history, &self.configs, NSHARDS);
            self.violations
                .extend(found.into_iter().map(|v| format!("shardmaster: {v}")));
        }
        let ops: u64 = self.clients.iter().map(|c| c.done).sum();
        let master_ops: u64 = self.masters.iter().map(|c| c.done).sum();
        let masters = match self.groups.get(1) {
            Some(g) => format!(
                "shardmaster {} replicas, {} clients, {master_ops} ops, {} configs, {} instances",
                g.size,
                self.masters.len(),
                self.configs.latest() + 1,
                g.votes.chosen_count()
            ),
            None => "no shardmaster".into(),
        };
        let mut reads = ReadStats::default();
        for g in &self.groups {
            reads.lease += g.reads.lease;
            reads.read_index += g.reads.read_index;
        }
        let summary = format!(
            "seed {}: {} replicas, {} clients, {} ops, {} instances chosen, reads {} by lease \
             {} by read-index; {masters}; {} events, {:.1} s simulated; faults: {}",
            self.seed,
            self.groups[0].size,
            self.clients.len(),
            ops,
            self.groups[0].votes.chosen_count(),
            self.groups[0].reads.lease,
            self.groups[0].reads.read_index,
            self.events,
            self.now as f64 / SECOND as f64,
            self.faults.summary()
        );
        if !self.violations.is_empty() {
            let states = self.describe_machines();
            self.trace
                .note(self.now, "world", || format!("end; replicas: {states}"));
        }
        Report {
            seed: self.seed,
            violations: self.violations,
            trace: self.trace.lines().to_vec(),
            summary,
            reads,
        }
    }
}
