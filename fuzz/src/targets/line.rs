//! One line of the line protocol as `diskv client` reads it from stdin:
//! `diskv::line::decode_line` then `parse`. A request that parses has only
//! single-token arguments.

use diskv::line::{decode_line, is_token, parse, Line};
use diskv::Op;

/// Decodes and parses `data` as one raw input line.
pub fn target(data: &[u8]) {
    let Ok(text) = decode_line(data) else {
        return;
    };
    let Ok(request) = parse(text) else {
        return;
    };
    let args: Vec<&String> = match &request {
        Line::Op(Op::Put { key, value } | Op::Append { key, value } | Op::Swap { key, value }) => {
            vec![key, value]
        }
        Line::Op(Op::Scan { start, end }) => vec![start, end],
        Line::Op(Op::Get { key } | Op::Delete { key }) => vec![key],
        Line::Op(other) => panic!("{text:?} parsed as {other:?}, which the line protocol has not"),
        Line::Stop => Vec::new(),
    };
    for arg in args {
        assert!(is_token(arg), "argument {arg:?} of {text:?} is not a token");
    }
}

/// Every request form, and a few malformed lines.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("put", "PUT user:1 hello\n"),
        ("append", "APPEND k more\r\n"),
        ("swap", "SWAP k v"),
        ("get", "GET user:1\n"),
        ("delete", "DELETE k\n"),
        ("scan", "  SCAN a z  \n"),
        ("stop", "STOP\n"),
        ("unicode", "PUT é😀 v\u{85}w\n"),
        ("bad-arity", "PUT k\n"),
        ("not-utf8", "GET \u{0}k\n"),
    ]
    .iter()
    .map(|(name, line)| (name.to_string(), line.as_bytes().to_vec()))
    .chain([("invalid-utf8".to_string(), b"GET \xff\xfe\n".to_vec())])
    .collect()
}
