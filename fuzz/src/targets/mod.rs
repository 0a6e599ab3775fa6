//! The fuzz targets, one module per decoder, and what they share.
//!
//! Several targets read a leading *mode byte* that picks a variant (which segment
//! of a log the bytes are, which service's messages, how the bytes arrive); their
//! seeds carry it, so mutants keep exploring every variant.

pub mod command;
pub mod frame;
pub mod http_body;
pub mod http_key;
pub mod identity;
pub mod keyfile;
pub mod kv_checkpoint;
pub mod line;
pub mod message;
pub mod resp;
pub mod segment_log;
pub mod sm_checkpoint;
pub mod sm_cluster;
pub mod transport;

use crate::Target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

/// Every target.
pub(crate) const ALL: &[Target] = &[
    Target {
        name: "frame",
        reaches: "paxos::storage::frame::parse (one log record frame: length, crc32c, postcard Record)",
        run: frame::target,
        seeds: frame::seeds,
        alloc_limit: None,
    },
    Target {
        name: "segment_log",
        reaches: "paxos::storage::SegmentLog::open_on + Storage::load (segment scan, torn-tail rule in storage::tail, head restatement)",
        run: segment_log::target,
        seeds: segment_log::seeds,
        alloc_limit: None,
    },
    Target {
        name: "message",
        reaches: "paxos::transport::Postcard as tokio_serde::Deserializer<Envelope> (one peer message)",
        run: message::target,
        seeds: message::seeds,
        alloc_limit: None,
    },
    Target {
        name: "transport",
        reaches: "paxos::transport::codec::framed: length-delimited frames + Postcard into tarpc ClientMessage/Response of the peer, shardmaster and KV services",
        run: transport::target,
        seeds: transport::seeds,
        alloc_limit: Some(transport::ALLOC_LIMIT),
    },
    Target {
        name: "command",
        reaches: "paxos::rsm::decode of a decided entry's command: diskv::KvCommand and shardmaster::OpRequest",
        run: command::target,
        seeds: command::seeds,
        alloc_limit: None,
    },
    Target {
        name: "keyfile",
        reaches: "diskv::keyfile::KeyFile::decode (and keyfile::file_name of the key read)",
        run: keyfile::target,
        seeds: keyfile::seeds,
        alloc_limit: None,
    },
    Target {
        name: "kv_checkpoint",
        reaches: "diskv::checkpoint::DiskStore::load (kv/checkpoint record, then its renames, deletions and key files)",
        run: kv_checkpoint::target,
        seeds: kv_checkpoint::seeds,
        alloc_limit: None,
    },
    Target {
        name: "identity",
        reaches: "diskv::identity::Identity::load (sealed JSON identity record)",
        run: identity::target,
        seeds: identity::seeds,
        alloc_limit: None,
    },
    Target {
        name: "sm_checkpoint",
        reaches: "shardmaster::persist::load_checkpoint / decode_checkpoint (DSM1 state file, ConfigStore invariants)",
        run: sm_checkpoint::target,
        seeds: sm_checkpoint::seeds,
        alloc_limit: None,
    },
    Target {
        name: "sm_cluster",
        reaches: "shardmaster::persist::read_cluster (sealed text cluster record)",
        run: sm_cluster::target,
        seeds: sm_cluster::seeds,
        alloc_limit: None,
    },
    Target {
        name: "line",
        reaches: "diskv::line::decode_line + parse (the line protocol of `diskv client`)",
        run: line::target,
        seeds: line::seeds,
        alloc_limit: None,
    },
    Target {
        name: "resp",
        reaches: "diskv::resp::Decoder (commands of the Redis protocol front door) and resp::glob",
        run: resp::target,
        seeds: resp::seeds,
        alloc_limit: None,
    },
    Target {
        name: "http_key",
        reaches: "diskv::http::key::validate_key (the HTTP key rule) and keyfile::file_name",
        run: http_key::target,
        seeds: http_key::seeds,
        alloc_limit: None,
    },
    Target {
        name: "http_body",
        reaches: "diskv::http::body::read_value (the HTTP body rule: size, UTF-8, Content-Length)",
        run: http_body::target,
        seeds: http_body::seeds,
        alloc_limit: None,
    },
];

/// Panics unless `value` encodes (postcard) and decodes back to itself.
pub(crate) fn round_trips<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = postcard::to_stdvec(value).expect("a decoded value encodes again");
    let back: T = postcard::from_bytes(&bytes).expect("a re-encoded value decodes");
    assert_eq!(&back, value, "decode(encode(x)) != x");
}

/// For types without `PartialEq`: encoding, decoding and encoding again gives the
/// same bytes.
pub(crate) fn reencodes<T: Serialize + DeserializeOwned>(value: &T) {
    let bytes = postcard::to_stdvec(value).expect("a decoded value encodes again");
    let back: T = postcard::from_bytes(&bytes).expect("a re-encoded value decodes");
    let again = postcard::to_stdvec(&back).expect("encodes a third time");
    assert_eq!(again, bytes, "encode(decode(encode(x))) != encode(x)");
}

/// Runs `check` on `data`, then on `fix(data)` if that differs.
pub(crate) fn as_is_and_repaired(data: &[u8], fix: fn(&[u8]) -> Vec<u8>, check: impl Fn(&[u8])) {
    check(data);
    let fixed = fix(data);
    if fixed != data {
        check(&fixed);
    }
}

/// The mode byte and the rest (`0` and nothing for an empty input).
pub(crate) fn mode(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&m, rest)) => (m, rest),
        None => (0, &[]),
    }
}

/// `mode` followed by `bytes`.
pub(crate) fn with_mode(mode: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 1);
    out.push(mode);
    out.extend_from_slice(bytes);
    out
}
