//! Moving [`Envelope`]s between replicas.
//!
//! The driver only needs [`Transport::send`], which never blocks and may lose the
//! message; incoming envelopes are pushed into the driver's inbox by whatever serves
//! the network side. The real implementation is tarpc over TCP with a postcard codec:
//!
//! - [`codec`]: postcard framing for *any* tarpc service of the workspace, with
//!   `listen` / `incoming` / `connect` / `serve_until` helpers;
//! - [`mux`] and [`guard`]: one port per process, connections routed by a tag byte
//!   and held to the port's limits (connections, idle time, frame sizes and the
//!   process's budget for half-received frames);
//! - [`tls`] and [`certs`]: mutual TLS between diskv processes (the process's
//!   [`tls::Security`]) and the certificates it needs; [`role`]: what a
//!   certificate lets its holder open (node or client);
//! - [`unreliable`]: the 6.824 lossy-network switch any server can apply;
//! - [`peer`]: the replica-to-replica [`PeerService`], its server and [`PeerNet`].

pub mod certs;
pub mod codec;
pub mod guard;
pub mod mux;
pub mod peer;
pub mod role;
pub mod tls;
pub mod unreliable;

#[cfg(test)]
mod tests;

pub use codec::Postcard;
pub use peer::{
    serve_peers, PeerNet, PeerNetConfig, PeerNetConfigError, PeerServer, PeerServerStats,
    PeerService, PeerStats,
};
pub use unreliable::{Fate, Unreliable, UnreliableServe};

use crate::message::Envelope;

/// Sends messages to other replicas of the group, best effort.
pub trait Transport: Send + Sync + 'static {
    /// Queues `env` for `env.to`. Never blocks; a message may be dropped (full queue,
    /// unreachable peer). The protocol retransmits what matters.
    fn send(&self, env: Envelope);

    /// Replica `peer` listens at `addr` from now on (its seat was added or
    /// moved by a membership change): later envelopes for it go there. The
    /// default ignores it (transports that do not connect by address).
    fn readdress(&self, peer: crate::types::NodeId, addr: &str) {
        let _ = (peer, addr);
    }
}
