//! From one parsed command to its reply: look the name up, check the arity, run it.

use super::commands::{find, unknown, wrong_arity};
use super::door::{Door, Session};
use super::parse::Args;
use super::reply::Reply;
use super::{admin, data};

/// Runs one command of `session` and answers it.
pub async fn execute(door: &Door, session: &mut Session, args: Args) -> Reply {
    let Some(spec) = args.first().and_then(|name| find(name)) else {
        return unknown(&args);
    };
    if !spec.arity_ok(args.len()) {
        return wrong_arity(spec.name);
    }
    let a = args.as_slice();
    match spec.name {
        "ping" => admin::ping(a),
        "echo" => Reply::bulk(args[1].clone()),
        "quit" => admin::quit(session),
        "hello" => admin::hello(session, a),
        "select" => admin::select(a),
        "client" => admin::client(session, a),
        "command" => admin::command(a),
        "info" => info(door, a).await,
        "dbsize" => match data::dbsize(door).await {
            Ok(n) => Reply::Int(n as i64),
            Err(e) => e,
        },
        "get" => data::get(door, a).await,
        "set" => data::set(door, a).await,
        "getset" => data::getset(door, a).await,
        "del" | "unlink" => data::del(door, a).await,
        "exists" => data::exists(door, a).await,
        "strlen" => data::strlen(door, a).await,
        "mget" => data::mget(door, a).await,
        "mset" => data::mset(door, a).await,
        "keys" => data::keys_matching(door, a).await,
        "scan" => data::scan(door, a).await,
        "flushdb" | "flushall" => data::flush(door, a).await,
        "type" => data::type_of(door, a).await,
        "ttl" | "pttl" => data::ttl(door, a).await,
        other => data::not_yet(other),
    }
}

/// `INFO`, with the keyspace section (a full scan) only when asked for.
async fn info(door: &Door, args: &[Vec<u8>]) -> Reply {
    let (mut text, keyspace) = admin::info_sections(door, args);
    if keyspace {
        match data::dbsize(door).await {
            Ok(n) => text.push_str(&format!(
                "# Keyspace\r\ndb0:keys={n},expires=0,avg_ttl=0\r\n\r\n"
            )),
            Err(e) => return e,
        }
    }
    Reply::bulk(text)
}
