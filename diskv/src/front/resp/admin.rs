//! The commands about the connection and the server: PING, ECHO, QUIT, HELLO,
//! SELECT, CLIENT, COMMAND, INFO. None of them touches the store.

use super::args::{integer, is};
use super::commands::{find, unknown_subcommand, wrong_arity, Spec, COMMANDS};
use super::door::{Door, Session};
use super::reply::{Protocol, Reply};
use std::sync::atomic::Ordering;

/// The Redis version clients should assume: the commands and replies of Redis 7
/// that diskv implements (`INFO` and `HELLO` report it; `diskv_version` is ours).
pub const REDIS_VERSION: &str = "7.0.0";

/// `PING [message]`.
pub fn ping(args: &[Vec<u8>]) -> Reply {
    match args {
        [_] => Reply::Simple("PONG".into()),
        [_, msg] => Reply::bulk(msg.clone()),
        _ => wrong_arity("ping"),
    }
}

/// `QUIT`: `+OK`, then the connection closes.
pub fn quit(session: &mut Session) -> Reply {
    session.quit = true;
    Reply::ok()
}

/// `HELLO [2|3 [AUTH user pass] [SETNAME name]]`: switches the protocol and
/// describes the server (a map, in the new protocol).
pub fn hello(door: &Door, session: &mut Session, args: &[Vec<u8>]) -> Reply {
    let mut proto = session.proto;
    if let Some(version) = args.get(1) {
        proto = match integer(version) {
            Ok(2) => Protocol::Resp2,
            Ok(3) => Protocol::Resp3,
            Ok(_) => return Reply::Error("NOPROTO unsupported protocol version".into()),
            Err(_) => return Reply::err("Protocol version is not an integer or out of range"),
        };
    }
    let mut name = None;
    let mut rest = args.iter().skip(2);
    while let Some(opt) = rest.next() {
        if is(opt, "AUTH") {
            let (Some(name), Some(token)) = (rest.next(), rest.next()) else {
                return Reply::err("syntax error");
            };
            if let Reply::Error(e) = super::auth::login(door, session, Some(name), token) {
                return Reply::Error(e);
            }
        } else if is(opt, "SETNAME") {
            let Some(n) = rest.next() else {
                return Reply::err("syntax error");
            };
            match client_name(n) {
                Ok(n) => name = Some(n),
                Err(e) => return e,
            }
        } else {
            return Reply::err("syntax error");
        }
    }
    if door.opts.tokens.is_some() && session.token.is_none() {
        return Reply::Error(
            "NOAUTH HELLO must be called with the client already authenticated, or with \
             HELLO <proto> AUTH <name> <token>"
                .into(),
        );
    }
    session.proto = proto;
    if name.is_some() {
        session.name = name;
    }
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("diskv")),
        (Reply::bulk("version"), Reply::bulk(REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(proto.version())),
        (Reply::bulk("id"), Reply::Int(session.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("standalone")),
        (Reply::bulk("role"), Reply::bulk("master")),
        (Reply::bulk("modules"), Reply::Array(Vec::new())),
    ])
}

/// `SELECT 0`: diskv has one database.
pub fn select(args: &[Vec<u8>]) -> Reply {
    match integer(&args[1]) {
        Ok(0) => Reply::ok(),
        Ok(_) => Reply::err("DB index is out of range"),
        Err(e) => e,
    }
}

/// A client name: Redis refuses spaces, newlines and other special characters.
fn client_name(arg: &[u8]) -> Result<String, Reply> {
    if arg.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(String::from_utf8_lossy(arg).into_owned())
}

/// `CLIENT SETNAME name | GETNAME | ID | SETINFO ...`.
pub fn client(session: &mut Session, args: &[Vec<u8>]) -> Reply {
    let sub = &args[1];
    if is(sub, "SETNAME") {
        let [_, _, name] = args else {
            return wrong_arity("client|setname");
        };
        match client_name(name) {
            Ok(n) => {
                session.name = (!n.is_empty()).then_some(n);
                Reply::ok()
            }
            Err(e) => e,
        }
    } else if is(sub, "GETNAME") {
        Reply::value(session.name.clone())
    } else if is(sub, "ID") {
        Reply::Int(session.id as i64)
    } else if is(sub, "SETINFO") {
        // Client libraries announce their name and version on connect.
        Reply::ok()
    } else {
        unknown_subcommand(sub, "client")
    }
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS [name...]` (each command's
/// summary, with what is atomic and what is not), `COMMAND INFO name...`,
/// `COMMAND LIST`.
pub fn command(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(|s| s.info()).collect());
    };
    if is(sub, "COUNT") {
        Reply::Int(COMMANDS.len() as i64)
    } else if is(sub, "DOCS") {
        let wanted: Vec<&Spec> = if args.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            args[2..].iter().filter_map(|n| find(n)).collect()
        };
        Reply::Map(wanted.into_iter().map(Spec::docs).collect())
    } else if is(sub, "INFO") {
        Reply::Array(
            args[2..]
                .iter()
                .map(|n| find(n).map_or(Reply::Null, |s| s.info()))
                .collect(),
        )
    } else if is(sub, "LIST") {
        Reply::strings(COMMANDS.iter().map(|s| s.name))
    } else {
        unknown_subcommand(sub, "command")
    }
}

/// `INFO [section...]`: `server`, `clients`, `replication` and `persistence`
/// (the default), `keyspace` when asked for (it counts every key, a full scan;
/// see `DBSIZE`). Replication and persistence describe the KV replica running
/// in this process; a front door without one says so.
pub fn info_sections(door: &Door, args: &[Vec<u8>]) -> (String, bool) {
    let wants = |name: &str| {
        args.len() == 1
            || args[1..]
                .iter()
                .any(|a| is(a, name) || is(a, "all") || is(a, "everything") || is(a, "default"))
    };
    let mut out = String::new();
    if wants("server") {
        out.push_str(&format!(
            "# Server\r\nredis_version:{REDIS_VERSION}\r\ndiskv_version:{}\r\nredis_mode:standalone\r\n\
             process_id:{}\r\nuptime_in_seconds:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            door.started.elapsed().as_secs()
        ));
    }
    if wants("clients") {
        out.push_str(&format!(
            "# Clients\r\nconnected_clients:{}\r\n\r\n",
            door.connected.load(Ordering::Relaxed)
        ));
    }
    if wants("replication") {
        out.push_str(&replication(door));
    }
    if wants("persistence") {
        out.push_str(&persistence(door));
    }
    let keyspace = args[1..]
        .iter()
        .any(|a| is(a, "keyspace") || is(a, "all") || is(a, "everything"));
    (out, keyspace)
}

/// `INFO replication`: `role:master` always (every diskv front door takes
/// writes: a client that sees `slave` would think it read-only), then the local
/// replica's Paxos role (`leader` or `follower`) and log positions.
fn replication(door: &Door) -> String {
    let Some(server) = &door.local else {
        return "# Replication\r\nrole:master\r\ndiskv_local_replica:none\r\n\r\n".into();
    };
    let node = server.node();
    let (gid, config) = server.rsm().with_state(|s| (s.gid(), s.config().num));
    format!(
        "# Replication\r\nrole:master\r\ndiskv_local_replica:yes\r\ndiskv_paxos_role:{}\r\n\
         diskv_group:{gid}\r\n\
         diskv_config:{config}\r\ndiskv_paxos_leader:{}\r\ndiskv_commit_index:{}\r\n\
         diskv_applied_index:{}\r\n\r\n",
        if node.is_leader() {
            "leader"
        } else {
            "follower"
        },
        node.leader().map_or(-1, |l| l as i64),
        node.commit_index(),
        server.rsm().applied(),
    )
}

/// `INFO persistence`: diskv writes every operation to its Paxos log and
/// fsyncs before answering (like Redis's `appendfsync always`); the local
/// replica's storage state and fsync count.
fn persistence(door: &Door) -> String {
    let mut out = String::from(
        "# Persistence\r\nloading:0\r\naof_enabled:1\r\ndiskv_fsync_before_reply:1\r\n",
    );
    if let Some(server) = &door.local {
        let node = server.node();
        let failure = node.failure();
        out.push_str(&format!(
            "diskv_storage_failed:{}\r\ndiskv_storage_no_space:{}\r\ndiskv_fsyncs:{}\r\n",
            u8::from(failure.is_some()),
            u8::from(failure.is_some_and(|f| f.no_space)),
            node.stats().syncs.load(Ordering::Relaxed),
        ));
    }
    out.push_str("\r\n");
    out
}
