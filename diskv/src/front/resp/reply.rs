//! Replies and their encoding in RESP2 and RESP3. The two differ only in null
//! (`$-1` / `_`) and map (a flat array / `%`); a connection speaks RESP2 until
//! `HELLO 3`.

/// The protocol version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2, every connection's start.
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` reports.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+text`: a status such as `OK`.
    Simple(String),
    /// `-CODE message`: the whole line after `-`, code included.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len` and the bytes.
    Bulk(Vec<u8>),
    /// No value (a missing key).
    Null,
    /// `*n` and the elements.
    Array(Vec<Reply>),
    /// Key-value pairs: `%n` in RESP3, a flat array in RESP2.
    Map(Vec<(Reply, Reply)>),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    /// `-ERR message`.
    pub fn err(message: impl std::fmt::Display) -> Reply {
        Reply::Error(format!("ERR {message}"))
    }

    /// A bulk string.
    pub fn bulk(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply::Bulk(bytes.into())
    }

    /// A bulk string, or null for `None`.
    pub fn value(v: Option<String>) -> Reply {
        v.map_or(Reply::Null, Reply::bulk)
    }

    /// An array of bulk strings.
    pub fn strings<S: Into<Vec<u8>>>(items: impl IntoIterator<Item = S>) -> Reply {
        Reply::Array(items.into_iter().map(Reply::bulk).collect())
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the reply's bytes in `proto` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s),
            Reply::Error(s) => line(out, b'-', s),
            Reply::Int(n) => header(out, b':', *n),
            Reply::Bulk(b) => {
                header(out, b'$', b.len() as i64);
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Null => match proto {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                header(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp2 => header(out, b'*', 2 * pairs.len() as i64),
                    Protocol::Resp3 => header(out, b'%', pairs.len() as i64),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
        }
    }
}

/// A `+` or `-` line; CR and LF (which would end it early) become spaces.
fn line(out: &mut Vec<u8>, kind: u8, text: &str) {
    out.push(kind);
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    out.push(kind);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply, p: Protocol) -> String {
        let mut out = Vec::new();
        r.encode(p, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_every_kind_in_both_protocols() {
        use Protocol::*;
        assert_eq!(wire(&Reply::ok(), Resp2), "+OK\r\n");
        assert_eq!(
            wire(&Reply::err("bad\r\nthing"), Resp3),
            "-ERR bad  thing\r\n"
        );
        assert_eq!(wire(&Reply::Int(-3), Resp2), ":-3\r\n");
        assert_eq!(wire(&Reply::bulk("a\r\nb"), Resp2), "$4\r\na\r\nb\r\n");
        assert_eq!(wire(&Reply::bulk(""), Resp2), "$0\r\n\r\n");
        assert_eq!(wire(&Reply::Null, Resp2), "$-1\r\n");
        assert_eq!(wire(&Reply::Null, Resp3), "_\r\n");
        let arr = Reply::Array(vec![Reply::bulk("x"), Reply::Null]);
        assert_eq!(wire(&arr, Resp2), "*2\r\n$1\r\nx\r\n$-1\r\n");
        let map = Reply::Map(vec![(Reply::bulk("proto"), Reply::Int(3))]);
        assert_eq!(wire(&map, Resp3), "%1\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(wire(&map, Resp2), "*2\r\n$5\r\nproto\r\n:3\r\n");
    }
}
