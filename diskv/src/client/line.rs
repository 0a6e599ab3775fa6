//! The request side of the line protocol of docs/REFERENCE.md §4, which `diskv client`
//! speaks over stdin/stdout: one request per line, words separated by whitespace.
//!
//! A line becomes the store's own [`Op`] here, at the edge, so the client runs it
//! as any front door does ([`Clerk::execute`](crate::Clerk::execute)). Kept apart
//! from the client that executes the requests, so that the parser can be tested
//! and fuzzed on its own (`diskv-fuzz --target line`).

use crate::op::Op;

/// One parsed request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A store operation: `PUT key value` ([`Op::Put`]), `APPEND key value`
    /// ([`Op::Append`]), `SWAP key value` ([`Op::Swap`]), `GET key`
    /// ([`Op::Get`]), `DELETE key` ([`Op::Delete`]) or `SCAN from to`
    /// ([`Op::Scan`]).
    Op(Op),
    /// `STOP`: the client exits.
    Stop,
}

/// Parses a request line, or says what is wrong with it.
pub fn parse(line: &str) -> Result<Line, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, rest)) = words.split_first() else {
        return Err("empty line".into());
    };
    let want = |n: usize| -> Result<(), String> {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{verb} takes {n} argument{}, got {}",
                if n == 1 { "" } else { "s" },
                rest.len()
            ))
        }
    };
    let s = |i: usize| rest[i].to_string();
    let op = match verb {
        "PUT" => want(2).map(|_| Op::Put {
            key: s(0),
            value: s(1),
        }),
        "APPEND" => want(2).map(|_| Op::Append {
            key: s(0),
            value: s(1),
        }),
        "SWAP" => want(2).map(|_| Op::Swap {
            key: s(0),
            value: s(1),
        }),
        "GET" => want(1).map(|_| Op::Get { key: s(0) }),
        "DELETE" => want(1).map(|_| Op::Delete { key: s(0) }),
        "SCAN" => want(2).map(|_| Op::Scan {
            start: s(0),
            end: s(1),
        }),
        "STOP" => return want(0).map(|_| Line::Stop),
        other => Err(format!(
            "unknown request {other:?}; expected PUT, APPEND, SWAP, GET, DELETE, SCAN or STOP"
        )),
    };
    op.map(Line::Op)
}

/// True if `s` prints as one token of the line protocol: non-empty, without
/// whitespace (the characters [`parse`] splits on, newlines among them).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// One request line as read (from stdin by `diskv client`), without its line
/// ending; an error if it is not UTF-8 (the client answers `ERROR` and reads on).
pub fn decode_line(raw: &[u8]) -> Result<&str, String> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    std::str::from_utf8(raw).map_err(|e| {
        format!(
            "the line is not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_request_form() {
        let op = |o: Op| Ok(Line::Op(o));
        let (k, v) = (String::from("k"), String::from("v"));
        assert_eq!(
            parse("PUT k v"),
            op(Op::Put {
                key: k.clone(),
                value: v.clone()
            })
        );
        assert_eq!(
            parse("  APPEND k v  "),
            op(Op::Append {
                key: k.clone(),
                value: v.clone()
            })
        );
        assert_eq!(
            parse("SWAP k v"),
            op(Op::Swap {
                key: k.clone(),
                value: v
            })
        );
        assert_eq!(parse("GET k"), op(Op::Get { key: k.clone() }));
        assert_eq!(parse("DELETE k"), op(Op::Delete { key: k }));
        assert_eq!(
            parse("SCAN a b"),
            op(Op::Scan {
                start: "a".into(),
                end: "b".into()
            })
        );
        assert_eq!(parse("STOP"), Ok(Line::Stop));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        assert!(parse("PUT k")
            .unwrap_err()
            .contains("PUT takes 2 arguments, got 1"));
        assert!(parse("GET")
            .unwrap_err()
            .contains("GET takes 1 argument, got 0"));
        assert!(parse("put k v").unwrap_err().contains("unknown request"));
        assert!(parse("STOP now").is_err());
    }

    /// Issue #18: a line that is not UTF-8 made the client exit.
    #[test]
    fn a_line_that_is_not_utf8_is_an_error_and_the_next_line_is_read() {
        assert_eq!(decode_line(b"GET k\n"), Ok("GET k"));
        assert_eq!(decode_line(b"GET k\r\n"), Ok("GET k"));
        assert_eq!(decode_line(b"GET k"), Ok("GET k"));
        let reason = decode_line(b"GET \xff\xfe\n").unwrap_err();
        assert!(reason.contains("not valid UTF-8"), "{reason}");
    }
}
