//! The checker's operations ([`Op`]) as line-protocol requests, and replies back as
//! [`Ret`]s, for process tests that record histories.

use super::line_client::Client;
use super::linearizability::{Op, Ret};

/// The request line for `op` (Clear has none in the line protocol).
pub fn op_line(op: &Op) -> String {
    match op {
        Op::Get { key } => format!("GET {key}"),
        Op::Put { key, value } => format!("PUT {key} {value}"),
        Op::Append { key, value } => format!("APPEND {key} {value}"),
        Op::Swap { key, value } => format!("SWAP {key} {value}"),
        Op::Delete { key } => format!("DELETE {key}"),
        Op::Scan { start, end } => format!("SCAN {start} {end}"),
        Op::Clear => panic!("the line protocol has no CLEAR"),
        Op::Incr { .. }
        | Op::PutIf { .. }
        | Op::Take { .. }
        | Op::AppendLen { .. }
        | Op::Keys { .. } => {
            panic!("the line protocol has no {op:?}")
        }
    }
}

/// The reply to `op`, given its first line; a Scan's pairs are read from `c`.
/// Panics on a reply that does not answer `op`.
pub fn parse_reply(c: &mut Client, op: &Op, first: &str) -> Ret {
    let unexpected = || -> ! { panic!("reply {first:?} to {op:?}") };
    if let Op::Scan { start, end } = op {
        if first != format!("SCAN {start} {end} BEGIN") {
            unexpected();
        }
        return Ret::Pairs(c.recv_pairs());
    }
    let line = op_line(op);
    let mut words = line.split(' ');
    let (verb, key) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let Some(rest) = first.strip_prefix(&format!("{verb} {key} ")) else {
        unexpected();
    };
    match op {
        Op::Get { .. } | Op::Swap { .. } if rest == "null" => Ret::missing(),
        Op::Get { .. } | Op::Swap { .. } => Ret::value(rest),
        _ => match rest {
            "found" => Ret::Existed(true),
            "not_found" => Ret::Existed(false),
            _ => unexpected(),
        },
    }
}
