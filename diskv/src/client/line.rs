//! The request side of the line protocol of docs/REFERENCE.md §4, which `diskv client`
//! speaks over stdin/stdout: one request per line, words separated by whitespace.
//!
//! Kept here, apart from the client that executes the requests, so that the parser
//! can be tested and fuzzed on its own (`diskv-fuzz --target line`).

/// One parsed request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `PUT key value`.
    Put(String, String),
    /// `APPEND key value`.
    Append(String, String),
    /// `SWAP key value`.
    Swap(String, String),
    /// `GET key`.
    Get(String),
    /// `DELETE key`.
    Delete(String),
    /// `SCAN from to`.
    Scan(String, String),
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
    match verb {
        "PUT" => want(2).map(|_| Line::Put(s(0), s(1))),
        "APPEND" => want(2).map(|_| Line::Append(s(0), s(1))),
        "SWAP" => want(2).map(|_| Line::Swap(s(0), s(1))),
        "GET" => want(1).map(|_| Line::Get(s(0))),
        "DELETE" => want(1).map(|_| Line::Delete(s(0))),
        "SCAN" => want(2).map(|_| Line::Scan(s(0), s(1))),
        "STOP" => want(0).map(|_| Line::Stop),
        other => Err(format!(
            "unknown request {other:?}; expected PUT, APPEND, SWAP, GET, DELETE, SCAN or STOP"
        )),
    }
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
        assert_eq!(parse("PUT k v"), Ok(Line::Put("k".into(), "v".into())));
        assert_eq!(
            parse("  APPEND k v  "),
            Ok(Line::Append("k".into(), "v".into()))
        );
        assert_eq!(parse("SWAP k v"), Ok(Line::Swap("k".into(), "v".into())));
        assert_eq!(parse("GET k"), Ok(Line::Get("k".into())));
        assert_eq!(parse("DELETE k"), Ok(Line::Delete("k".into())));
        assert_eq!(parse("SCAN a b"), Ok(Line::Scan("a".into(), "b".into())));
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
