//! A pipeline's run of single-key commands, answered together: their
//! operations go to the store as one batch ([`crate::batch`]: one request and
//! one log instance per group instead of one per command), and the replies
//! come back in the order the commands came.
//!
//! A lone operation goes as a plain request (the Clerk sends a batch of one
//! as one). A run ends at a command that is not one operation on one key (it runs
//! alone, after the run: AUTH, QUIT, MSET, SCAN...), at the end of what the
//! client has sent so far, or at [`MAX_RUN_OPS`] operations or
//! [`MAX_RUN_BYTES`] of keys and values.

use super::door::Door;
use super::reply::{Protocol, Reply};
use super::single::{Planned, Render};

/// Most operations of one run.
pub const MAX_RUN_OPS: usize = 128;
/// Most bytes of keys and values written by one run.
pub const MAX_RUN_BYTES: usize = 1 << 20;

/// One command of a run.
#[derive(Debug)]
enum Entry {
    /// Answered already (a refusal).
    Ready(Reply),
    /// One operation, answered when the run is.
    Op(Planned),
}

/// The commands of the run being gathered.
#[derive(Debug, Default)]
pub struct Run {
    entries: Vec<Entry>,
    ops: usize,
    bytes: usize,
}

impl Run {
    /// Adds a command's refusal, answered in its place.
    pub fn ready(&mut self, reply: Reply) {
        self.entries.push(Entry::Ready(reply));
    }

    /// Adds a planned command; true when the run is full and must be answered
    /// before it takes another.
    pub fn op(&mut self, planned: Planned) -> bool {
        self.bytes += planned.op.carried_bytes();
        self.ops += 1;
        self.entries.push(Entry::Op(planned));
        self.ops >= MAX_RUN_OPS || self.bytes >= MAX_RUN_BYTES
    }

    /// Bytes of keys and values the run holds.
    pub fn holds(&self) -> usize {
        self.bytes
    }

    /// Runs the run's operations (a lone one as itself, more as a batch) and
    /// writes every reply to `output` in order; the run is empty after.
    pub async fn answer(&mut self, door: &Door, proto: Protocol, output: &mut Vec<u8>) {
        let entries = std::mem::take(&mut self.entries);
        let (ops, bytes) = (
            std::mem::take(&mut self.ops),
            std::mem::take(&mut self.bytes),
        );
        tracing::trace!(ops, bytes, "RESP: answering a run of commands");
        // The operations go to the store; each command keeps its place: its
        // refusal, or how its operation's answer renders.
        let mut batch = Vec::with_capacity(ops);
        let places: Vec<Result<Render, Reply>> = entries
            .into_iter()
            .map(|entry| match entry {
                Entry::Ready(reply) => Err(reply),
                Entry::Op(Planned { op, render }) => {
                    batch.push(op);
                    Ok(render)
                }
            })
            .collect();
        let mut outcomes = if batch.is_empty() {
            // Refusals only: no Clerk is needed.
            Vec::new().into_iter()
        } else {
            match door.run_batch(batch).await {
                Ok(outcomes) => outcomes.into_iter(),
                Err(failed) => vec![Err(failed); ops].into_iter(),
            }
        };
        for place in places {
            let reply = match place {
                Err(refusal) => refusal,
                Ok(render) => match outcomes.next() {
                    Some(Ok(outcome)) => render.reply(outcome),
                    Some(Err(e)) => e,
                    None => Reply::err("the store gave fewer answers than commands"),
                },
            };
            reply.encode(proto, output);
        }
    }
}
