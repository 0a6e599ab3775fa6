//! The commands that are one store operation on one key: each is planned
//! ([`Planned`]: the operation, and how its answer becomes the reply) before
//! it runs, so the connection can send a pipeline's run of them as one batch
//! (one request and one log instance; [`crate::batch`]), in order.
//!
//! Every read-modify-write command is one replicated operation, never a read
//! followed by a write: INCR and friends are `Op::Incr`, SET GET and GETSET
//! `Op::Swap`, SETNX and SET NX/XX `Op::PutIf`, GETDEL `Op::Take`, APPEND
//! `Op::AppendLen`. Expiry (SET EX/PX...) is refused: diskv keys never expire.

use super::args::{integer, is, key, value};
use super::door::Door;
use super::reply::Reply;
use crate::op::{Op, Presence};
// The store's answer, named apart from the RESP reply it becomes.
use crate::op::Reply as Outcome;

/// One store operation, and how its answer becomes the command's reply.
#[derive(Debug)]
pub struct Planned {
    /// The operation.
    pub op: Op,
    /// How its answer is rendered.
    pub render: Render,
}

/// How a command renders its operation's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Render {
    /// `+OK` (SET).
    Ok,
    /// The (old) value or nil (GET, GETSET, SET GET, GETDEL).
    Value,
    /// SET NX|XX [GET]: `OK` if it wrote and nil if not; with GET the old value.
    SetIf {
        /// The condition.
        when: Presence,
        /// SET ... GET.
        get: bool,
    },
    /// SETNX: 1 if it wrote, 0 if not.
    SetNx,
    /// APPEND: the new length.
    Length,
    /// INCR and friends: the new value, or Redis's error.
    Counter,
    /// STRLEN: the value's length, 0 for a missing key.
    StrLen,
    /// TYPE: `string` or `none`.
    Type,
    /// TTL, PTTL: -1 (no expiry), -2 for a missing key.
    Ttl,
    /// EXISTS of one key: 1 or 0.
    Exists,
    /// DEL/UNLINK of one key: 1 if it existed, 0 if not.
    Deleted,
}

impl Planned {
    fn new(op: Op, render: Render) -> Result<Planned, Reply> {
        Ok(Planned { op, render })
    }

    /// Runs the operation alone and answers the command.
    pub async fn run(self, door: &Door) -> Reply {
        match door.run(self.op).await {
            Ok(outcome) => self.render.reply(outcome),
            Err(e) => e,
        }
    }
}

impl Render {
    /// The command's reply to its operation's answer.
    pub fn reply(self, outcome: Outcome) -> Reply {
        let int = |b: bool| Reply::Int(i64::from(b));
        match (self, outcome) {
            (Render::Ok, Outcome::Existed(_)) => Reply::ok(),
            (Render::Value, Outcome::Value(v)) => Reply::value(v),
            (Render::SetIf { get: true, .. }, Outcome::Value(old)) => Reply::value(old),
            (Render::SetIf { when, .. }, Outcome::Value(old)) => {
                if when.matches(old.as_deref()) {
                    Reply::ok()
                } else {
                    Reply::Null
                }
            }
            (Render::SetNx, Outcome::Value(old)) => int(old.is_none()),
            (Render::Length, Outcome::Length(n)) => {
                Reply::Int(i64::try_from(n).unwrap_or(i64::MAX))
            }
            (Render::Counter, Outcome::Counter(Ok(n))) => Reply::Int(n),
            (Render::Counter, Outcome::Counter(Err(e))) => Reply::err(e.to_string()),
            (Render::StrLen, Outcome::Value(v)) => Reply::Int(v.map_or(0, |v| v.len() as i64)),
            (Render::Type, Outcome::Value(v)) => {
                Reply::Simple(if v.is_some() { "string" } else { "none" }.into())
            }
            (Render::Ttl, Outcome::Value(v)) => Reply::Int(if v.is_some() { -1 } else { -2 }),
            (Render::Exists, Outcome::Value(v)) => int(v.is_some()),
            (Render::Deleted, Outcome::Existed(b)) => int(b),
            (_, other) => Reply::err(format!("the store answered {other:?} unexpectedly")),
        }
    }
}

/// The plan of `name` (a name of the command table, arity checked), if it is
/// a single-key command: `None` for the others; `Some(Err)` for a refusal.
pub fn plan(name: &str, args: &[Vec<u8>]) -> Option<Result<Planned, Reply>> {
    Some(match name {
        "get" => get(args, Render::Value),
        "strlen" => get(args, Render::StrLen),
        "type" => get(args, Render::Type),
        "ttl" | "pttl" => get(args, Render::Ttl),
        "exists" if args.len() == 2 => get(args, Render::Exists),
        "del" | "unlink" if args.len() == 2 => {
            key(&args[1]).and_then(|key| Planned::new(Op::Delete { key }, Render::Deleted))
        }
        "set" => set(args),
        "getset" => written(args, Render::Value, |key, value| Op::Swap { key, value }),
        "setnx" => written(args, Render::SetNx, |key, value| Op::PutIf {
            key,
            value,
            when: Presence::Absent,
        }),
        "append" => written(args, Render::Length, |key, value| Op::AppendLen {
            key,
            value,
        }),
        "getdel" => key(&args[1]).and_then(|key| Planned::new(Op::Take { key }, Render::Value)),
        "incr" | "decr" | "incrby" | "decrby" => incr(args, name),
        _ => return None,
    })
}

/// A Get of `args[1]`, rendered by `render`.
fn get(args: &[Vec<u8>], render: Render) -> Result<Planned, Reply> {
    Planned::new(
        Op::Get {
            key: key(&args[1])?,
        },
        render,
    )
}

/// `NAME key value`: the operation `op` makes of them.
fn written(
    args: &[Vec<u8>],
    render: Render,
    op: impl FnOnce(String, String) -> Op,
) -> Result<Planned, Reply> {
    let k = key(&args[1])?;
    let v = value(args[2].clone())?;
    Planned::new(op(k, v), render)
}

/// `SET key value [NX|XX] [GET] [KEEPTTL]`, each form one replicated operation:
/// plain a Put; `GET` a Swap (the old value is the one the write replaced);
/// `NX`/`XX` a PutIf, answering `OK` if it wrote and nil if not (or, with
/// `GET`, the old value). The expiry options are refused: diskv keys never
/// expire.
fn set(args: &[Vec<u8>]) -> Result<Planned, Reply> {
    let k = key(&args[1])?;
    let mut get = false;
    let mut when = None;
    for opt in &args[3..] {
        if is(opt, "GET") {
            get = true;
        } else if is(opt, "KEEPTTL") {
            // diskv keys never expire: keeping "no expiry" is what SET does anyway.
        } else if is(opt, "NX") || is(opt, "XX") {
            let this = if is(opt, "NX") {
                Presence::Absent
            } else {
                Presence::Present
            };
            if when.is_some_and(|w| w != this) {
                return Err(Reply::err("syntax error"));
            }
            when = Some(this);
        } else if ["EX", "PX", "EXAT", "PXAT"].iter().any(|o| is(opt, o)) {
            return Err(Reply::err(format!(
                "SET {} is not supported: diskv keys never expire",
                String::from_utf8_lossy(opt).to_ascii_uppercase()
            )));
        } else {
            return Err(Reply::err("syntax error"));
        }
    }
    let value = value(args[2].clone())?;
    match (when, get) {
        (None, false) => Planned::new(Op::Put { key: k, value }, Render::Ok),
        (None, true) => Planned::new(Op::Swap { key: k, value }, Render::Value),
        (Some(when), get) => Planned::new(
            Op::PutIf {
                key: k,
                value,
                when,
            },
            Render::SetIf { when, get },
        ),
    }
}

/// `INCR key`, `DECR key`, `INCRBY key n`, `DECRBY key n`: one replicated
/// `Op::Incr`, applied exactly once however often the Clerk retries it. A value
/// that is not an integer, or a sum that overflows, changes nothing and gets
/// Redis's error.
fn incr(args: &[Vec<u8>], name: &str) -> Result<Planned, Reply> {
    let k = key(&args[1])?;
    let by = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => integer(&args[2])?,
        _ => integer(&args[2])?
            .checked_neg()
            .ok_or_else(|| Reply::err("decrement would overflow"))?,
    };
    Planned::new(Op::Incr { key: k, by }, Render::Counter)
}
