//! The commands on the store, each one or more Clerk operations through the
//! pool, so each single-key command has the Clerk's guarantees (linearizable,
//! applied exactly once, a write answered only once durable on a majority).
//! Multi-key commands (DEL, EXISTS, MGET, MSET) run one operation per key, in
//! argument order: they are not atomic across keys.
//!
//! Every read-modify-write command is one replicated operation, never a read
//! followed by a write: INCR and friends are `Op::Incr`, SET GET and GETSET
//! `Op::Swap`, SETNX and SET NX/XX `Op::PutIf`, GETDEL `Op::Take`, APPEND
//! `Op::AppendLen`. Expiry (SET EX/PX...) is refused: diskv keys never expire.

use super::args::{integer, is, key, keys, value};
use super::budget::Charge;
use super::door::Door;
use super::glob;
use super::reply::Reply;
use crate::op::{Op, Presence};
// The store's answer, named apart from the RESP reply it becomes.
use crate::op::Reply as Outcome;

/// Most keys of one page (KEYS and DBSIZE read page after page; a SCAN reads
/// one page of at most COUNT keys): two below what one `Op::Keys` may answer,
/// leaving room for the cursor's own key and the one that says more follow.
const PAGE: u32 = crate::op::MAX_KEYS_PER_READ - 2;

/// `SCAN`'s default COUNT, as Redis.
const SCAN_COUNT: usize = 10;

/// Unwraps a `Result<_, Reply>`, answering the error.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply,
        }
    };
}

fn unexpected(outcome: Outcome) -> Reply {
    Reply::err(format!("the store answered {outcome:?} unexpectedly"))
}

/// A Get's value.
async fn read(door: &Door, key: String) -> Result<Option<String>, Reply> {
    match door.run(Op::Get { key }).await? {
        Outcome::Value(v) => Ok(v),
        other => Err(unexpected(other)),
    }
}

/// Up to `limit` (at most [`PAGE`] + 1) keys after `after` (excluded; `None`:
/// from the start), sorted: one `Op::Keys` per shard, keys only, so a page
/// stays small whatever the values weigh.
async fn keys_after(door: &Door, after: Option<&str>, limit: u32) -> Result<Vec<String>, Reply> {
    let start = after.unwrap_or("").to_string();
    // `start` is included: ask for one more and drop it.
    let ask = limit.saturating_add(u32::from(after.is_some()));
    match door.run(Op::Keys { start, limit: ask }).await? {
        Outcome::Keys(mut keys) => {
            if let Some(after) = after {
                keys.retain(|k| k.as_str() > after);
            }
            keys.truncate(limit as usize);
            Ok(keys)
        }
        other => Err(unexpected(other)),
    }
}

/// Calls `each` with every key, page after page (each page one read per shard;
/// the walk is not one snapshot).
async fn every_key(door: &Door, mut each: impl FnMut(String)) -> Result<(), Reply> {
    let mut after: Option<String> = None;
    loop {
        let page = keys_after(door, after.as_deref(), PAGE).await?;
        let full = page.len() >= PAGE as usize;
        after = page.last().cloned();
        page.into_iter().for_each(&mut each);
        if !full {
            return Ok(());
        }
    }
}

/// `GET key`.
pub async fn get(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    Reply::value(tri!(read(door, k).await))
}

/// `SET key value [NX|XX] [GET] [KEEPTTL]`, each form one replicated operation:
/// plain a Put; `GET` a Swap (the old value is the one the write replaced);
/// `NX`/`XX` a PutIf, answering `OK` if it wrote and nil if not (or, with
/// `GET`, the old value). The expiry options are refused: diskv keys never
/// expire.
pub async fn set(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
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
                return Reply::err("syntax error");
            }
            when = Some(this);
        } else if ["EX", "PX", "EXAT", "PXAT"].iter().any(|o| is(opt, o)) {
            return Reply::err(format!(
                "SET {} is not supported: diskv keys never expire",
                String::from_utf8_lossy(opt).to_ascii_uppercase()
            ));
        } else {
            return Reply::err("syntax error");
        }
    }
    let value = tri!(value(args[2].clone()));
    match (when, get) {
        (None, false) => {
            tri!(door.run(Op::Put { key: k, value }).await);
            Reply::ok()
        }
        (None, true) => swap_reply(door, k, value).await,
        (Some(when), get) => {
            let old = tri!(put_if(door, k, value, when).await);
            if get {
                Reply::value(old)
            } else if when.matches(old.as_deref()) {
                Reply::ok()
            } else {
                Reply::Null
            }
        }
    }
}

/// One PutIf: the key's old value (it wrote iff `when` matched it).
async fn put_if(
    door: &Door,
    key: String,
    value: String,
    when: Presence,
) -> Result<Option<String>, Reply> {
    match door.run(Op::PutIf { key, value, when }).await? {
        Outcome::Value(old) => Ok(old),
        other => Err(unexpected(other)),
    }
}

/// `SETNX key value`: one PutIf of a missing key; 1 if it wrote, 0 if not.
pub async fn setnx(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    let v = tri!(value(args[2].clone()));
    let old = tri!(put_if(door, k, v, Presence::Absent).await);
    Reply::Int(i64::from(old.is_none()))
}

/// `GETDEL key`: one Take, answering the value the key had (nil if none).
pub async fn getdel(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    match tri!(door.run(Op::Take { key: k }).await) {
        Outcome::Value(old) => Reply::value(old),
        other => unexpected(other),
    }
}

/// `APPEND key value`: one AppendLen, answering the new length in bytes.
pub async fn append(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    let v = tri!(value(args[2].clone()));
    match tri!(door.run(Op::AppendLen { key: k, value: v }).await) {
        Outcome::Length(n) => Reply::Int(i64::try_from(n).unwrap_or(i64::MAX)),
        other => unexpected(other),
    }
}

async fn swap_reply(door: &Door, k: String, v: String) -> Reply {
    match tri!(door.run(Op::Swap { key: k, value: v }).await) {
        Outcome::Value(old) => Reply::value(old),
        other => unexpected(other),
    }
}

/// `GETSET key value`: one Swap.
pub async fn getset(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    let v = tri!(value(args[2].clone()));
    swap_reply(door, k, v).await
}

/// `DEL key...` / `UNLINK key...`: one Delete per key, in order. The count is
/// exact: each Delete's reply says whether that key existed when it was applied
/// (a retried Delete gets the reply of its first application).
pub async fn del(door: &Door, args: &[Vec<u8>]) -> Reply {
    let ks = tri!(keys(&args[1..]));
    let mut removed = 0;
    for k in ks {
        match tri!(door.run(Op::Delete { key: k }).await) {
            Outcome::Existed(true) => removed += 1,
            Outcome::Existed(false) => {}
            other => return unexpected(other),
        }
    }
    Reply::Int(removed)
}

/// `EXISTS key...`: how many of the keys exist (a key named twice counts twice).
pub async fn exists(door: &Door, args: &[Vec<u8>]) -> Reply {
    let ks = tri!(keys(&args[1..]));
    let mut found = 0;
    for k in ks {
        if tri!(read(door, k).await).is_some() {
            found += 1;
        }
    }
    Reply::Int(found)
}

/// `STRLEN key`: the value's length in bytes, 0 for a missing key.
pub async fn strlen(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    Reply::Int(tri!(read(door, k).await).map_or(0, |v| v.len() as i64))
}

/// `MGET key...`: one Get per key. Each value is charged to the connection's
/// memory budget as it arrives: an MGET naming one big value many times is
/// refused once the door's budget is used up, instead of taking the process's
/// memory.
pub async fn mget(door: &Door, args: &[Vec<u8>], charge: &mut Charge) -> Reply {
    let ks = tri!(keys(&args[1..]));
    let mut out = Vec::with_capacity(ks.len());
    for k in ks {
        let v = tri!(read(door, k).await);
        if !charge.add(v.as_ref().map_or(0, String::len)) {
            return Reply::err(format!(
                "MGET's reply would take the server over its memory budget for replies in \
                 flight after {} of {} keys; ask for fewer keys at a time",
                out.len(),
                args.len() - 1
            ));
        }
        out.push(Reply::value(v));
    }
    Reply::Array(out)
}

/// `MSET key value [key value ...]`: one Put per pair, in order. Not atomic: if
/// one fails, the pairs before it are written and the error says how many.
pub async fn mset(door: &Door, args: &[Vec<u8>]) -> Reply {
    if args.len().is_multiple_of(2) {
        return super::commands::wrong_arity("mset");
    }
    let mut puts = Vec::with_capacity(args.len() / 2);
    for pair in args[1..].chunks(2) {
        puts.push((tri!(key(&pair[0])), tri!(value(pair[1].clone()))));
    }
    let total = puts.len();
    for (done, (k, v)) in puts.into_iter().enumerate() {
        if let Err(Reply::Error(e)) = door.run(Op::Put { key: k, value: v }).await {
            return Reply::Error(format!(
                "{e} (MSET is not atomic: the first {done} of {total} pairs were written)"
            ));
        }
    }
    Reply::ok()
}

/// `KEYS pattern`: every key matching, sorted. Reads every key of the store
/// (not the values), page after page.
pub async fn keys_matching(door: &Door, args: &[Vec<u8>]) -> Reply {
    let mut found = Vec::new();
    tri!(
        every_key(door, |k| if glob::matches(&args[1], k.as_bytes()) {
            found.push(k)
        })
        .await
    );
    Reply::strings(found)
}

/// `DBSIZE`: how many keys there are (every key read, page after page).
pub async fn dbsize(door: &Door) -> Result<usize, Reply> {
    let mut n = 0;
    every_key(door, |_| n += 1).await?;
    Ok(n)
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`: the next `n` keys of the
/// ordered key space after the cursor's key (see [`super::cursor`]), those
/// matching the pattern; cursor `0` when nothing is left. The cursor belongs to
/// connection `session`.
pub async fn scan(door: &Door, args: &[Vec<u8>], session: u64) -> Reply {
    let cursor = tri!(std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor")));
    let mut pattern: Option<&[u8]> = None;
    let mut count = SCAN_COUNT;
    let mut strings = true;
    let mut opts = args[2..].iter();
    while let Some(opt) = opts.next() {
        let Some(arg) = opts.next() else {
            return Reply::err("syntax error");
        };
        if is(opt, "MATCH") {
            pattern = Some(arg);
        } else if is(opt, "COUNT") {
            match integer(arg) {
                Ok(n) if n >= 1 => count = n as usize,
                Ok(_) => return Reply::err("syntax error"),
                Err(e) => return e,
            }
        } else if is(opt, "TYPE") {
            strings = is(arg, "string");
        } else {
            return Reply::err("syntax error");
        }
    }
    let after = match cursor {
        0 => None,
        c => Some(tri!(door
            .cursors
            .resume(c)
            .ok_or_else(|| Reply::err("invalid cursor")))),
    };
    let limit = u32::try_from(count).unwrap_or(u32::MAX).min(PAGE);
    let mut page = tri!(keys_after(door, after.as_deref(), limit.saturating_add(1)).await);
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = match page.last() {
        Some(last) if more => door.cursors.save(session, last.clone()),
        _ => 0,
    };
    let found = page
        .into_iter()
        .filter(|k| strings && pattern.is_none_or(|p| glob::matches(p, k.as_bytes())));
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::strings(found)])
}

/// `FLUSHDB` / `FLUSHALL [ASYNC|SYNC]`: one Clear (every shard, one after another).
pub async fn flush(door: &Door, args: &[Vec<u8>]) -> Reply {
    match &args[1..] {
        [] => {}
        [mode] if is(mode, "ASYNC") || is(mode, "SYNC") => {}
        _ => return Reply::err("syntax error"),
    }
    tri!(door.run(Op::Clear).await);
    Reply::ok()
}

/// `TYPE key`: `string`, or `none` for a missing key.
pub async fn type_of(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    let kind = if tri!(read(door, k).await).is_some() {
        "string"
    } else {
        "none"
    };
    Reply::Simple(kind.into())
}

/// `TTL key` / `PTTL key`: -1 (no expiry: diskv keys never expire), or -2 for a
/// missing key.
pub async fn ttl(door: &Door, args: &[Vec<u8>]) -> Reply {
    let k = tri!(key(&args[1]));
    Reply::Int(if tri!(read(door, k).await).is_some() {
        -1
    } else {
        -2
    })
}

/// `INCR key`, `DECR key`, `INCRBY key n`, `DECRBY key n`: one replicated
/// `Op::Incr`, applied exactly once however often the Clerk retries it. A value
/// that is not an integer, or a sum that overflows, changes nothing and gets
/// Redis's error.
pub async fn incr(door: &Door, args: &[Vec<u8>], name: &str) -> Reply {
    let k = tri!(key(&args[1]));
    let by = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => tri!(integer(&args[2])),
        _ => match tri!(integer(&args[2])).checked_neg() {
            Some(by) => by,
            None => return Reply::err("decrement would overflow"),
        },
    };
    match tri!(door.run(Op::Incr { key: k, by }).await) {
        Outcome::Counter(Ok(n)) => Reply::Int(n),
        Outcome::Counter(Err(e)) => Reply::err(e.to_string()),
        other => unexpected(other),
    }
}
