//! A connection's bytes as a server or a client reads them:
//! `paxos::transport::codec::framed` (a 4-byte big-endian length, at most 256 MiB,
//! then a postcard message, via `tokio_util`'s length-delimited codec and
//! `tarpc::serde_transport`) into the tarpc messages of the workspace's three
//! services.
//!
//! Mode byte: `% 6` picks the service and side (peer, shardmaster, KV; requests
//! as a server reads them, responses as a client does); `/ 6` picks how many bytes
//! each read returns (1 to 42), so frames split across reads are exercised.
//! The body of every message that decodes must re-encode to the same bytes (not
//! the envelope tarpc adds: see `request_body` and `response_body`).

use crate::targets::{message, mode, reencodes};
use futures::StreamExt;
use paxos::transport::codec::{framed, MAX_FRAME_LEN};
use paxos::transport::peer::{PeerServiceRequest, PeerServiceResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tarpc::{ClientMessage, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one input may allocate: the codec reserves a frame's announced length as
/// soon as its header arrives, up to [`MAX_FRAME_LEN`] (256 MiB). That is the
/// design: the daemons' ports bound the total of such frames per process
/// (`paxos::transport::guard`, 1 GiB), not each one.
pub const ALLOC_LIMIT: usize = MAX_FRAME_LEN + (16 << 20);

/// Reads `data` through the codec of the service and side its mode byte picks.
pub fn target(data: &[u8]) {
    let (m, rest) = mode(data);
    let chunk = 1 + usize::from(m / 6);
    match m % 6 {
        0 => drain::<ClientMessage<PeerServiceRequest>>(rest, chunk, request_body),
        1 => drain::<Response<PeerServiceResponse>>(rest, chunk, response_body),
        2 => drain::<ClientMessage<shardmaster::rpc::ShardmasterRpcRequest>>(
            rest,
            chunk,
            request_body,
        ),
        3 => {
            drain::<Response<shardmaster::rpc::ShardmasterRpcResponse>>(rest, chunk, response_body)
        }
        4 => drain::<ClientMessage<diskv::rpc::KvRpcRequest>>(rest, chunk, request_body),
        _ => drain::<Response<diskv::rpc::KvRpcResponse>>(rest, chunk, response_body),
    }
}

/// An in-memory connection: reads return `data` at most `chunk` bytes at a time,
/// writes are discarded.
struct Wire<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Wire<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads every message of `data`, checking each one that decodes with `check`.
fn drain<In: Serialize + DeserializeOwned>(data: &[u8], chunk: usize, check: fn(&In)) {
    let mut conn = framed::<In, In, _>(Wire { data, chunk });
    futures::executor::block_on(async {
        while let Some(item) = conn.next().await {
            if let Ok(msg) = item {
                check(&msg);
            }
        }
    });
}

/// A request's body re-encodes to the same bytes. (Not its context: tarpc sends
/// the deadline as time left, which moves between two encodings.)
fn request_body<T: Serialize + DeserializeOwned>(msg: &ClientMessage<T>) {
    if let ClientMessage::Request(req) = msg {
        reencodes(&req.message);
    }
}

/// A response's body re-encodes to the same bytes. (Not tarpc's own
/// `ServerError`, whose `io::ErrorKind` does not survive a round trip: tarpc
/// writes `ConnectionRefused` as 4 and reads 4 as `ConnectionAborted`.)
fn response_body<T: Serialize + DeserializeOwned>(msg: &Response<T>) {
    if let Ok(body) = &msg.message {
        reencodes(body);
    }
}

/// `msg` as one frame on the wire.
fn frame_of<T: Serialize>(msg: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(msg).expect("seed messages encode");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn request<T>(id: u64, message: T) -> ClientMessage<T> {
    ClientMessage::Request(tarpc::Request {
        context: tarpc::context::current(),
        id,
        message,
    })
}

/// Requests and responses of each service, in frames, some split in small reads.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    use diskv::rpc::{KvRpcRequest, KvRpcResponse};
    use shardmaster::rpc::{ShardmasterRpcRequest, ShardmasterRpcResponse};
    let batch = message::envelopes();
    let mut peer = frame_of(&request(1, PeerServiceRequest::Deliver { batch }));
    peer.extend(frame_of(&ClientMessage::<PeerServiceRequest>::Cancel {
        trace_context: tarpc::context::current().trace_context,
        request_id: 1,
    }));
    let peer_reply = frame_of(&Response {
        request_id: 1,
        message: Ok(PeerServiceResponse::Deliver(())),
    });
    let query = shardmaster::OpRequest {
        client: 9,
        seq: 0,
        op: shardmaster::Op::query(shardmaster::ConfigNum::Latest),
    };
    let join = shardmaster::OpRequest {
        client: 9,
        seq: 1,
        op: shardmaster::Op::Join {
            gid: 100,
            servers: vec!["127.0.0.1:7001".into(), "127.0.0.1:7002".into()],
        },
    };
    let mut sm = frame_of(&request(2, ShardmasterRpcRequest::Call { req: query }));
    sm.extend(frame_of(&request(
        3,
        ShardmasterRpcRequest::Call { req: join },
    )));
    sm.extend(frame_of(&request(4, ShardmasterRpcRequest::ShardCount {})));
    let sm_reply = frame_of(&Response {
        request_id: 4,
        message: Ok(ShardmasterRpcResponse::ShardCount(10)),
    });
    let put = diskv::Request {
        client: 5,
        seq: 1,
        shard: 3,
        op: diskv::Op::Put {
            key: "user:1".into(),
            value: "v".into(),
        },
    };
    let mut kv = frame_of(&request(5, KvRpcRequest::Execute { req: put }));
    kv.extend(frame_of(&request(
        6,
        KvRpcRequest::FetchShard {
            config: 4,
            shard: 2,
        },
    )));
    let kv_reply = frame_of(&Response {
        request_id: 5,
        message: Ok(KvRpcResponse::Execute(Ok(diskv::Reply::Existed(true)))),
    });
    let mut seeds = Vec::new();
    for (name, m, bytes) in [
        ("peer-requests", 0u8, peer),
        ("peer-response", 1, peer_reply),
        ("sm-requests", 2, sm),
        ("sm-response", 3, sm_reply),
        ("kv-requests", 4, kv),
        ("kv-response", 5, kv_reply),
    ] {
        // Whole reads, and reads of 3 bytes (mode + 2 * 6).
        seeds.push((
            name.to_string(),
            crate::targets::with_mode(m + 6 * 41, &bytes),
        ));
        seeds.push((
            format!("{name}-split"),
            crate::targets::with_mode(m + 12, &bytes),
        ));
    }
    seeds
}
