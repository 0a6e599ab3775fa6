//! Moving [`Envelope`]s between replicas.
//!
//! The driver only needs [`Transport::send`], which never blocks and may lose the
//! message; incoming envelopes are pushed into the driver's inbox by whatever serves
//! the network side. The real implementation is tarpc over TCP with a postcard codec.

use crate::message::Envelope;

/// Sends messages to other replicas of the group, best effort.
pub trait Transport: Send + Sync + 'static {
    /// Queues `env` for `env.to`. Never blocks; a message may be dropped (full queue,
    /// unreachable peer). The protocol retransmits what matters.
    fn send(&self, env: Envelope);
}
