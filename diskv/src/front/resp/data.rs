//! The commands on the store over several keys or the whole key space, each
//! one or more Clerk operations through the pool (the single-key commands are
//! in [`super::single`]). Multi-key commands (DEL, EXISTS, MGET, MSET) run one
//! operation per key, in argument order: they are not atomic across keys.

use super::args::{integer, is, key, keys, value};
use super::budget::Charge;
use super::door::Door;
use super::glob;
use super::reply::Reply;
use crate::op::Op;
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
