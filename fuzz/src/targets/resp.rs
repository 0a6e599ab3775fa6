//! Bytes from a Redis client as the RESP front door reads them:
//! `diskv::resp::Decoder`, fed all at once and fed in small pieces (the piece size
//! taken from the first byte). Both ways must give the same commands and the same
//! error; every command re-encoded as a RESP array decodes to itself; the glob
//! matcher of `KEYS`/`SCAN MATCH` runs on the first two arguments.

use diskv::resp::glob;
use diskv::resp::{Decoder, ParseError};

type Commands = Vec<Vec<Vec<u8>>>;

/// Decodes `data`, giving the decoder at most `piece` new bytes at a time.
fn decode(data: &[u8], piece: usize) -> (Commands, Option<ParseError>) {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut out = Vec::new();
    loop {
        match decoder.decode(&buf) {
            Ok((n, cmd)) => {
                buf.drain(..n);
                if let Some(c) = cmd {
                    out.push(c);
                    continue;
                }
            }
            Err(e) => return (out, Some(e)),
        }
        if fed == data.len() {
            return (out, None);
        }
        let next = (fed + piece).min(data.len());
        buf.extend_from_slice(&data[fed..next]);
        fed = next;
    }
}

/// One command as a client library sends it.
fn encode(cmd: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for arg in cmd {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Decodes `data` whole and in pieces; see the module docs.
pub fn target(data: &[u8]) {
    let piece = usize::from(data.first().copied().unwrap_or(1) % 7) + 1;
    let whole = decode(data, data.len().max(1));
    let pieces = decode(data, piece);
    assert_eq!(whole, pieces, "decoding in pieces of {piece} differs");
    for cmd in &whole.0 {
        assert!(!cmd.is_empty(), "an empty command");
        let again = decode(&encode(cmd), usize::MAX);
        assert_eq!(again, (vec![cmd.clone()], None), "re-encoded {cmd:?}");
        if let [a, b, ..] = cmd.as_slice() {
            let _ = glob::matches(a, b);
        }
    }
}

/// Commands as clients send them, pipelines, inline commands and broken frames.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        (
            "set",
            &b"*3\r\n$3\r\nSET\r\n$7\r\nuser:42\r\n$5\r\nhello\r\n"[..],
        ),
        ("get", b"*2\r\n$3\r\nGET\r\n$7\r\nuser:42\r\n"),
        (
            "pipeline",
            b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*1\r\n$4\r\nQUIT\r\n",
        ),
        ("inline", b"SET k v\r\nGET k\n\r\n"),
        ("keys-glob", b"*2\r\n$4\r\nKEYS\r\n$10\r\nu*[a-z]?\\*\r\n"),
        ("hello3", b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"),
        ("empty-arrays", b"*0\r\n*-1\r\nPING\r\n"),
        ("bad-bulk-length", b"*1\r\n$-5\r\n"),
        ("not-a-bulk", b"*1\r\n:5\r\n"),
        ("huge-array", b"*99999999999\r\n"),
        ("unterminated", b"*1\r\n$1\r\nab"),
    ]
    .iter()
    .map(|(name, bytes)| (name.to_string(), bytes.to_vec()))
    .collect()
}
