//! From one parsed command to its reply: look the name up, check the arity, run it.

use super::commands::{find, unknown, wrong_arity, Spec};
use super::door::{Door, Session};
use super::parse::Args;
use super::reply::Reply;
use super::single::{self, Planned};
use super::{admin, auth, data};

/// What to do with one command, decided before anything runs.
#[derive(Debug)]
pub enum Step {
    /// Answered already: a refusal (unknown command, wrong arity, bad
    /// arguments, no permission).
    Ready(Reply),
    /// One store operation on one key: may join its neighbours in a batch.
    Op(Planned),
    /// Anything else: run it alone, in order ([`run`]).
    Run(&'static Spec),
}

/// Looks the command up, checks its arity and the session's permission, and
/// plans it if it is a single-key command.
pub fn plan(door: &Door, session: &mut Session, args: &Args) -> Step {
    let Some(spec) = args.first().and_then(|name| find(name)) else {
        return Step::Ready(unknown(args));
    };
    if !spec.arity_ok(args.len()) {
        return Step::Ready(wrong_arity(spec.name));
    }
    if let Some(refusal) = auth::gate(door, session, spec) {
        return Step::Ready(refusal);
    }
    match single::plan(spec.name, args) {
        Some(Ok(planned)) => Step::Op(planned),
        Some(Err(refusal)) => Step::Ready(refusal),
        None => Step::Run(spec),
    }
}

/// Runs one command of `session` and answers it.
pub async fn execute(door: &Door, session: &mut Session, args: Args) -> Reply {
    match plan(door, session, &args) {
        Step::Ready(reply) => reply,
        Step::Op(planned) => planned.run(door).await,
        Step::Run(spec) => run(door, session, spec, args).await,
    }
}

/// Runs a command [`plan`] did not plan (it checked arity and permission).
pub async fn run(door: &Door, session: &mut Session, spec: &Spec, args: Args) -> Reply {
    let a = args.as_slice();
    match spec.name {
        "auth" => auth::auth(door, session, a),
        "ping" => admin::ping(a),
        "echo" => Reply::bulk(args[1].clone()),
        "quit" => admin::quit(session),
        "hello" => admin::hello(door, session, a),
        "select" => admin::select(a),
        "client" => admin::client(session, a),
        "command" => admin::command(a),
        "info" => info(door, a).await,
        "dbsize" => match data::dbsize(door).await {
            Ok(n) => Reply::Int(n as i64),
            Err(e) => e,
        },
        "del" | "unlink" => data::del(door, a).await,
        "exists" => data::exists(door, a).await,
        "mget" => data::mget(door, a, &mut session.charge).await,
        "mset" => data::mset(door, a).await,
        "keys" => data::keys_matching(door, a).await,
        "scan" => data::scan(door, a, session.id).await,
        "flushdb" | "flushall" => data::flush(door, a).await,
        // Every other name of the table is planned above.
        _ => unknown(&args),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::front::http::pool::ClerkPool;
    use crate::front::resp::door::RespOptions;
    use crate::front::resp::reply::Protocol;

    /// A door whose pool is never used: these commands do not touch the store
    /// (the pool makes no Clerk until an operation runs).
    fn door() -> Door {
        Door::new(
            ClerkPool::new(vec!["127.0.0.1:1".into()], 1),
            RespOptions::default(),
        )
    }

    async fn run(door: &Door, session: &mut Session, words: &[&str]) -> Reply {
        let args = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        execute(door, session, args).await
    }

    fn error(r: Reply) -> String {
        match r {
            Reply::Error(e) => e,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn connection_commands_answer_as_redis() {
        let d = door();
        let mut s = d.session();
        assert_eq!(
            run(&d, &mut s, &["ping"]).await,
            Reply::Simple("PONG".into())
        );
        assert_eq!(run(&d, &mut s, &["PING", "x"]).await, Reply::bulk("x"));
        assert_eq!(run(&d, &mut s, &["ECHO", "e"]).await, Reply::bulk("e"));
        assert_eq!(run(&d, &mut s, &["SELECT", "0"]).await, Reply::ok());
        assert_eq!(
            error(run(&d, &mut s, &["SELECT", "3"]).await),
            "ERR DB index is out of range"
        );
        assert_eq!(
            run(&d, &mut s, &["CLIENT", "SETNAME", "me"]).await,
            Reply::ok()
        );
        assert_eq!(
            run(&d, &mut s, &["client", "getname"]).await,
            Reply::bulk("me")
        );
        assert_eq!(
            run(&d, &mut s, &["CLIENT", "ID"]).await,
            Reply::Int(s.id as i64)
        );
        assert!(error(run(&d, &mut s, &["CLIENT", "KILL"]).await).contains("unknown subcommand"));
        assert_eq!(
            run(&d, &mut s, &["COMMAND", "COUNT"]).await,
            Reply::Int(super::super::commands::COMMANDS.len() as i64)
        );

        let Reply::Map(docs) = run(&d, &mut s, &["COMMAND", "DOCS", "mset", "nope"]).await else {
            panic!("COMMAND DOCS answers a map");
        };
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].0, Reply::bulk("mset"));
        let Reply::Map(fields) = &docs[0].1 else {
            panic!("a command's docs are a map");
        };
        let summary = &fields[0];
        assert_eq!(summary.0, Reply::bulk("summary"));
        assert!(
            matches!(&summary.1, Reply::Bulk(b) if String::from_utf8_lossy(b).contains("NOT atomic")),
            "{summary:?}"
        );
        let Reply::Map(all) = run(&d, &mut s, &["COMMAND", "DOCS"]).await else {
            panic!("COMMAND DOCS answers a map");
        };
        assert_eq!(all.len(), super::super::commands::COMMANDS.len());

        let Reply::Map(hello) = run(&d, &mut s, &["HELLO", "3"]).await else {
            panic!("HELLO answers a map");
        };
        assert!(hello.contains(&(Reply::bulk("proto"), Reply::Int(3))));
        assert_eq!(s.proto, Protocol::Resp3);
        assert!(
            error(run(&d, &mut s, &["HELLO", "3", "AUTH", "u", "p"]).await)
                .contains("without any token file configured")
        );
        assert!(error(run(&d, &mut s, &["AUTH", "p"]).await).contains("--tokens FILE"));
        assert!(error(run(&d, &mut s, &["HELLO", "4"]).await).starts_with("NOPROTO"));

        assert_eq!(run(&d, &mut s, &["QUIT"]).await, Reply::ok());
        assert!(s.quit);
    }

    #[tokio::test]
    async fn refusals_come_before_any_store_operation() {
        let d = door();
        let mut s = d.session();
        assert!(
            error(run(&d, &mut s, &["GET"]).await).contains("wrong number of arguments for 'get'")
        );
        assert!(error(run(&d, &mut s, &["MSET", "a", "1", "b"]).await).contains("for 'mset'"));
        assert!(error(run(&d, &mut s, &["GET", "no/slash"]).await).contains("invalid key"));
        assert!(error(run(&d, &mut s, &["SET", "k", "v", "EX", "10"]).await)
            .contains("SET EX is not supported: diskv keys never expire"));
        assert_eq!(
            error(run(&d, &mut s, &["SET", "k", "v", "NX", "XX"]).await),
            "ERR syntax error"
        );
        assert_eq!(
            error(run(&d, &mut s, &["SET", "k", "v", "BOGUS"]).await),
            "ERR syntax error"
        );
        assert!(error(run(&d, &mut s, &["INCRBY", "k", "x"]).await).contains("not an integer"));
        assert!(
            error(run(&d, &mut s, &["DECRBY", "k", &i64::MIN.to_string()]).await)
                .contains("overflow")
        );
        assert!(error(run(&d, &mut s, &["SETNX", "k", "v", "w"]).await).contains("'setnx'"));
        assert!(error(run(&d, &mut s, &["APPEND", "k\n", "v"]).await).contains("invalid key"));
        assert!(error(run(&d, &mut s, &["SCAN", "12345"]).await).contains("invalid cursor"));
        assert!(error(run(&d, &mut s, &["SCAN", "x"]).await).contains("invalid cursor"));
        assert_eq!(d.pool.made(), 0, "no Clerk was made");
    }

    #[tokio::test]
    async fn with_tokens_nothing_runs_before_auth_and_read_tokens_only_read() {
        use crate::front::access::{add, revoke, Role, Tokens};
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let writer = add(&file, "app", Role::Write).unwrap();
        let reader = add(&file, "dash", Role::Read).unwrap();
        let d = Door::new(
            ClerkPool::new(vec!["127.0.0.1:1".into()], 1),
            RespOptions {
                tokens: Some(std::sync::Arc::new(Tokens::open(&file).unwrap())),
                ..RespOptions::default()
            },
        );
        let mut s = d.session();
        assert_eq!(
            error(run(&d, &mut s, &["PING"]).await),
            "NOAUTH Authentication required."
        );
        assert_eq!(
            error(run(&d, &mut s, &["GET", "k"]).await),
            "NOAUTH Authentication required."
        );
        assert!(error(run(&d, &mut s, &["HELLO", "3"]).await).starts_with("NOAUTH"));
        assert!(error(run(&d, &mut s, &["AUTH", "dkv_wrong"]).await).starts_with("WRONGPASS"));
        assert!(error(run(&d, &mut s, &["AUTH", "app", &reader]).await).starts_with("WRONGPASS"));
        assert_eq!(run(&d, &mut s, &["AUTH", &reader]).await, Reply::ok());
        assert_eq!(
            run(&d, &mut s, &["PING"]).await,
            Reply::Simple("PONG".into())
        );
        assert!(error(run(&d, &mut s, &["SET", "k", "v"]).await)
            .starts_with("NOPERM token 'dash' is read-only"));
        assert!(error(run(&d, &mut s, &["FLUSHALL"]).await).starts_with("NOPERM"));

        let mut w = d.session();
        let Reply::Map(_) = run(&d, &mut w, &["HELLO", "3", "AUTH", "default", &writer]).await
        else {
            panic!("HELLO with AUTH answers a map");
        };
        assert_eq!(w.proto, Protocol::Resp3);
        assert_eq!(
            run(&d, &mut w, &["PING"]).await,
            Reply::Simple("PONG".into())
        );
        revoke(&file, "app").unwrap();
        assert!(error(run(&d, &mut w, &["PING"]).await).contains("unknown or revoked token"));
        assert_eq!(
            error(run(&d, &mut w, &["PING"]).await),
            "NOAUTH Authentication required."
        );
        assert_eq!(run(&d, &mut w, &["QUIT"]).await, Reply::ok());
        assert_eq!(d.pool.made(), 0, "no Clerk was made");
    }
}
