//! Postcard over length-delimited TCP frames for any tarpc service of the workspace.
//!
//! tarpc's `serde_transport` is generic over a `tokio_serde` codec; this module plugs
//! [postcard](https://docs.rs/postcard) into it, frames each message with a 4-byte length
//! prefix (at most [`MAX_FRAME_LEN`] bytes) and sets `TCP_NODELAY` on every socket.
//!
//! A service author serves and connects like this (`World` is any `#[tarpc::service]`):
//!
//! ```
//! use futures::{future, StreamExt};
//! use paxos::transport::codec;
//! use tarpc::server::{incoming::Incoming as _, BaseChannel};
//! use tarpc::{client, context};
//!
//! #[tarpc::service]
//! trait World {
//!     async fn hello(name: String) -> String;
//! }
//!
//! #[derive(Clone)]
//! struct Hello;
//!
//! impl World for Hello {
//!     async fn hello(self, _: context::Context, name: String) -> String {
//!         format!("hello {name}")
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Serve: bind (port 0 in tests), then run until the shutdown future completes.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let incoming = codec::incoming::<WorldRequest, WorldResponse>(listener)?;
//! let addr = incoming.local_addr();
//! let channels = incoming.map(BaseChannel::with_defaults).execute(Hello.serve());
//! tokio::spawn(codec::serve_until(channels, future::pending()));
//!
//! // Connect.
//! let transport = codec::connect::<WorldRequest, WorldResponse>(addr).await?;
//! let client = WorldClient::new(client::Config::default(), transport).spawn();
//! assert_eq!(client.hello(context::current(), "you".into()).await?, "hello you");
//! # Ok(())
//! # }
//! ```
//!
//! To make a server lossy like 6.824's, wrap its `Serve`:
//! `.execute(unreliable.wrap(Hello.serve()))` (see [`super::unreliable`]).

use super::guard::{Admission, FrameBudget, Guarded, Limits};
use super::tls;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tarpc::{ClientMessage, Response};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_util::codec::LengthDelimitedCodec;

/// The largest frame either side accepts; a longer length prefix closes the connection.
pub const MAX_FRAME_LEN: usize = 256 << 20;

/// How long [`Incoming`] pauses after an accept error that is not about one connection
/// (for example too many open files), so it does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The postcard serializer and deserializer, usable for any serde type.
///
/// Errors become [`io::Error`]s of kind `InvalidData`. Deserialization rejects trailing
/// bytes after the value, so a frame holds exactly one message.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postcard;

impl<T: Serialize> tokio_serde::Serializer<T> for Postcard {
    type Error = io::Error;

    fn serialize(self: Pin<&mut Self>, item: &T) -> io::Result<Bytes> {
        postcard::to_stdvec(item)
            .map(Bytes::from)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl<T: DeserializeOwned> tokio_serde::Deserializer<T> for Postcard {
    type Error = io::Error;

    fn deserialize(self: Pin<&mut Self>, src: &BytesMut) -> io::Result<T> {
        // A third-party `Deserialize` may panic on hostile bytes: tarpc adds a
        // request's deadline (sent as time left) to `Instant::now()`, which panics
        // when it overflows (found by `diskv-fuzz --target transport`). Such a
        // message is invalid data like any other, not a panic of the reading task.
        let decoded =
            std::panic::catch_unwind(|| postcard::take_from_bytes::<T>(src)).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a message whose decoding panicked (a request deadline out of range?)",
                )
            })?;
        let (value, rest) = decoded.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if !rest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} trailing bytes after a postcard message", rest.len()),
            ));
        }
        Ok(value)
    }
}

/// A connection (TCP unless `S` says otherwise) that reads `In` and writes `Out`,
/// postcard-encoded and framed.
pub type PostcardTransport<In, Out, S = TcpStream> =
    tarpc::serde_transport::Transport<S, In, Out, Postcard>;

/// The server side of a connection of a service with request `Req` and response `Resp`
/// (the generated `FooRequest` / `FooResponse` enums): an accepted connection held
/// to its listener's limits ([`super::guard`]).
pub type ServerTransport<Req, Resp> =
    PostcardTransport<ClientMessage<Req>, Response<Resp>, Guarded<tls::Stream>>;

/// The client side of a connection of a service with request `Req` and response `Resp`.
pub type ClientTransport<Req, Resp> = PostcardTransport<Response<Resp>, ClientMessage<Req>>;

/// Wraps an established stream (`TCP_NODELAY` already set or not wanted).
pub fn framed<In, Out, S>(stream: S) -> PostcardTransport<In, Out, S>
where
    In: DeserializeOwned,
    Out: Serialize,
    S: AsyncRead + AsyncWrite,
{
    let frames = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME_LEN)
        .new_framed(stream);
    tarpc::serde_transport::new(frames, Postcard)
}

/// Connects to a service at `addr` and returns the transport to hand to the generated
/// `FooClient::new(config, transport)`.
pub async fn connect<Req, Resp>(addr: impl ToSocketAddrs) -> io::Result<ClientTransport<Req, Resp>>
where
    Req: Serialize,
    Resp: DeserializeOwned,
{
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(framed(stream))
}

/// Binds `addr` and returns the stream of accepted connections.
pub async fn listen<Req, Resp>(addr: impl ToSocketAddrs) -> io::Result<Incoming<Req, Resp>>
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    incoming(TcpListener::bind(addr).await?)
}

/// Turns an already-bound listener (tests bind port 0) into a stream of connections.
pub fn incoming<Req, Resp>(listener: TcpListener) -> io::Result<Incoming<Req, Resp>>
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    let local_addr = listener.local_addr()?;
    Ok(Incoming {
        listener,
        local_addr,
        admission: Admission::new(Limits::default(), FrameBudget::process()),
        pause: None,
        ghost: PhantomData,
    })
}

/// Accepted connections of a service, each wrapped in a [`ServerTransport`].
///
/// The stream never ends and never yields errors: a failed accept is logged and retried
/// (after a short pause when the failure is not about a single connection).
pub struct Incoming<Req, Resp> {
    listener: TcpListener,
    local_addr: SocketAddr,
    admission: Admission,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    ghost: PhantomData<fn() -> (Req, Resp)>,
}

impl<Req, Resp> Incoming<Req, Resp> {
    /// The address the listener is bound to (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl<Req, Resp> Stream for Incoming<Req, Resp>
where
    Req: DeserializeOwned,
    Resp: Serialize,
{
    type Item = ServerTransport<Req, Resp>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = this.pause.as_mut() {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            match ready!(this.listener.poll_accept(cx)) {
                Ok((stream, remote)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(addr = %remote, %error, "cannot set TCP_NODELAY");
                    }
                    match this.admission.admit(tls::Stream::Plain(stream), remote) {
                        Ok(mut conn) => {
                            conn.set_idle(super::mux::CLIENT_IDLE);
                            conn.expect_frames(MAX_FRAME_LEN);
                            return Poll::Ready(Some(framed(conn)));
                        }
                        Err(refused) => {
                            tracing::warn!(addr = %remote, reason = %refused.0, "connection refused");
                        }
                    }
                }
                Err(error) if is_per_connection(&error) => {
                    tracing::debug!(addr = %this.local_addr, %error, "accept failed");
                }
                Err(error) => {
                    tracing::warn!(addr = %this.local_addr, %error, "accept failed; pausing");
                    this.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_ERROR_PAUSE)));
                }
            }
        }
    }
}

/// Accept errors that concern one connection only; the next accept may well succeed.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Runs channels in execution (tarpc's `incoming.execute(serve)`) until `shutdown`
/// completes: one task per connection, one task per request.
///
/// On shutdown it stops accepting and aborts every connection and every request still
/// running (their callers see the connection close). The futures are spawned on the
/// current Tokio runtime.
pub async fn serve_until<Channels, Channel, Request>(
    channels: Channels,
    shutdown: impl Future<Output = ()>,
) where
    Channels: Stream<Item = Channel>,
    Channel: Stream<Item = Request> + Send + 'static,
    Request: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let channels = std::pin::pin!(channels);
    let mut channels = channels.fuse();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            next = channels.next() => match next {
                Some(channel) => {
                    connections.spawn(run_channel(channel));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Dropping the set aborts every connection task, which drops (aborts) its requests.
}

/// Drives one connection: spawns each request and waits for them when it closes.
async fn run_channel<Channel, Request>(channel: Channel)
where
    Channel: Stream<Item = Request>,
    Request: Future<Output = ()> + Send + 'static,
{
    let mut requests = JoinSet::new();
    let mut channel = std::pin::pin!(channel);
    loop {
        tokio::select! {
            next = channel.next() => match next {
                Some(request) => {
                    requests.spawn(request);
                }
                None => break,
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
        }
    }
    while requests.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Envelope, Message};
    use crate::types::{Ballot, Entry};
    use tokio_serde::{Deserializer as _, Serializer as _};

    #[test]
    fn postcard_round_trips_an_envelope() -> io::Result<()> {
        let env = Envelope {
            from: 1,
            to: 2,
            msg: Message::Accept {
                ballot: Ballot::new(3, 1),
                slot: 7,
                entry: Entry::single(b"put k v".to_vec()),
                commit: 6,
            },
        };
        let bytes = Pin::new(&mut Postcard).serialize(&env)?;
        let back: Envelope = Pin::new(&mut Postcard).deserialize(&BytesMut::from(&bytes[..]))?;
        assert_eq!(back, env);
        Ok(())
    }

    /// Found by `diskv-fuzz --target transport` (corpus file
    /// `fuzz/corpus/transport/crash-deadline-overflow`): a request whose deadline,
    /// sent as time left, is 2^63 s made tarpc's `Instant::now() + left` panic in
    /// the task reading the connection.
    #[test]
    fn a_request_deadline_past_any_instant_is_invalid_data_not_a_panic() {
        let mut bytes = vec![0]; // ClientMessage::Request
        bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
        bytes.extend_from_slice(&[0; 40]);
        let res: io::Result<tarpc::ClientMessage<u8>> =
            Pin::new(&mut Postcard).deserialize(&BytesMut::from(&bytes[..]));
        assert_eq!(
            res.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
    }

    #[test]
    fn postcard_rejects_garbage_and_trailing_bytes() -> io::Result<()> {
        let garbage = BytesMut::from(&[0xff_u8; 3][..]);
        let res: io::Result<Envelope> = Pin::new(&mut Postcard).deserialize(&garbage);
        assert_eq!(
            res.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );

        let mut bytes = BytesMut::from(&Pin::new(&mut Postcard).serialize(&42_u64)?[..]);
        bytes.extend_from_slice(&[0]);
        let res: io::Result<u64> = Pin::new(&mut Postcard).deserialize(&bytes);
        assert_eq!(
            res.err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
        Ok(())
    }
}
