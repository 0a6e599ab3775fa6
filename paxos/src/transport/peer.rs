//! The replica-to-replica network: [`PeerService`] over tarpc with the postcard codec.
//!
//! - Sending side, [`PeerNet`]: one bounded queue and one task per peer; the task
//!   connects lazily, batches whatever is queued into one `deliver` call, keeps a few
//!   calls in flight, and reconnects with exponential back-off when the peer is away.
//! - Receiving side, [`PeerServer`] / [`serve_peers`]: accepts connections and pushes the
//!   envelopes of every `deliver` into the driver's inbox, in arrival order, never
//!   blocking for long on a full inbox.
//!
//! Messages are one-way: the reply to a `deliver` is an empty acknowledgement used only
//! for flow control; protocol replies travel as `deliver` calls in the other direction.
//! Everything here is best effort — the protocol retransmits what matters.

mod net;
mod outbox;
mod server;

pub use net::{PeerNet, PeerNetConfig, PeerNetConfigError, PeerStats};
pub use server::{serve_peers, PeerServer, PeerServerStats};

use crate::message::Envelope;

/// The one RPC between replicas.
#[tarpc::service]
pub trait PeerService {
    /// Hands a batch of envelopes, in send order, to the receiving replica. The reply
    /// only acknowledges receipt by the transport; it says nothing about processing.
    async fn deliver(batch: Vec<Envelope>);
}
