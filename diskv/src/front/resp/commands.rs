//! The command table: every command the RESP front door knows, its arity (as
//! Redis counts it: the name included; negative = at least), flags and key
//! positions, for dispatch, for the arity check and for `COMMAND`.

use super::reply::Reply;

/// One command.
#[derive(Debug)]
pub struct Spec {
    /// Lower-case name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n words, `-n` at least n.
    pub arity: i64,
    /// Redis command flags, for `COMMAND`.
    pub flags: &'static [&'static str],
    /// First key, last key (-1: the last argument), step; 0 0 0 without keys.
    pub keys: (i64, i64, i64),
    /// Redis's command group, for `COMMAND DOCS`.
    pub group: &'static str,
    /// What the command does in diskv, for `COMMAND DOCS` (and redis-cli's help).
    pub summary: &'static str,
}

const RO: &[&str] = &["readonly"];
const WR: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "no-auth"];

/// A command without keys.
const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    group: &'static str,
    summary: &'static str,
) -> Spec {
    keyed(name, arity, flags, (0, 0, 0), group, summary)
}

/// A command with keys at `keys` (first, last, step).
const fn keyed(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    group: &'static str,
    summary: &'static str,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        group,
        summary,
    }
}

/// Every single-key command is linearizable and, for writes, applied exactly
/// once and durable on a majority of the group before it is answered.
const ONE: (i64, i64, i64) = (1, 1, 1);
/// Commands over every key argument.
const ALL: (i64, i64, i64) = (1, -1, 1);

/// Every command, in the order `COMMAND` lists them.
pub const COMMANDS: &[Spec] = &[
    spec("ping", -1, CONN, "connection", "Answers PONG, or the message given."),
    spec("echo", 2, CONN, "connection", "Answers the message."),
    spec("quit", -1, CONN, "connection", "Answers OK and closes the connection."),
    spec("hello", -1, CONN, "connection", "Switches to RESP2 or RESP3 and describes the server; HELLO 3 AUTH name token authenticates too."),
    spec("auth", -2, CONN, "connection", "Authenticates the connection with a diskv token: AUTH token, or AUTH name token (docs/SECURITY.md)."),
    spec("select", 2, CONN, "connection", "Database 0 only: diskv has one key space."),
    spec("client", -2, CONN, "connection", "CLIENT SETNAME, GETNAME, ID and SETINFO."),
    spec("command", -1, CONN, "server", "Describes the commands: COMMAND, COUNT, DOCS, INFO, LIST."),
    spec("info", -1, CONN, "server", "Server, clients, replication (the local Paxos replica), persistence and keyspace sections."),
    spec("dbsize", 1, RO, "server", "Counts every key: a scan of every shard, each read linearizably, not one snapshot."),
    keyed("get", 2, RO, ONE, "string", "Reads a key, linearizably."),
    keyed("set", -3, WR, ONE, "string", "Writes a key; NX, XX and GET are one replicated operation. EX, PX, EXAT, PXAT are refused: keys never expire."),
    keyed("getset", 3, WR, ONE, "string", "Writes a key and answers its old value, in one replicated operation."),
    keyed("del", -2, WR, ALL, "generic", "Removes keys, one operation per key in order: not atomic across keys."),
    keyed("unlink", -2, WR, ALL, "generic", "Same as DEL."),
    keyed("exists", -2, RO, ALL, "generic", "Counts the keys that exist, one read per key: not one snapshot."),
    keyed("strlen", 2, RO, ONE, "string", "The value's length in bytes."),
    keyed("mget", -2, RO, ALL, "string", "Reads keys, one linearizable read per key: not one snapshot across keys."),
    keyed("mset", -3, WR, (1, -1, 2), "string", "Writes pairs, one operation per pair in order: NOT atomic across keys (a failure names how many were written)."),
    spec("keys", 2, RO, "generic", "Every key matching a pattern: reads the whole store, avoid on large data sets (use SCAN)."),
    spec("scan", -2, RO, "generic", "Iterates the ordered key space; every key present for the whole iteration is returned once."),
    spec("flushdb", -1, WR, "server", "Removes every key, shard after shard: not atomic across shards."),
    spec("flushall", -1, WR, "server", "Same as FLUSHDB."),
    keyed("type", 2, RO, ONE, "generic", "string, or none for a missing key."),
    keyed("ttl", 2, RO, ONE, "generic", "-1 (keys never expire), or -2 for a missing key."),
    keyed("pttl", 2, RO, ONE, "generic", "Same as TTL."),
    keyed("append", 3, WR, ONE, "string", "Appends to a key and answers the new length, in one replicated operation."),
    keyed("getdel", 2, WR, ONE, "string", "Removes a key and answers its value, in one replicated operation."),
    keyed("setnx", 3, WR, ONE, "string", "Writes a missing key, in one replicated operation; 1 if written."),
    keyed("incr", 2, WR, ONE, "string", "Adds 1 to the integer in a key, in one replicated operation applied exactly once."),
    keyed("decr", 2, WR, ONE, "string", "Subtracts 1, as INCR."),
    keyed("incrby", 3, WR, ONE, "string", "Adds n, as INCR."),
    keyed("decrby", 3, WR, ONE, "string", "Subtracts n, as INCR."),
];

/// The command called `name` (any case).
pub fn find(name: &[u8]) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

impl Spec {
    /// True if `words` words (the name included) are right for this command.
    pub fn arity_ok(&self, words: usize) -> bool {
        let words = words as i64;
        if self.arity >= 0 {
            words == self.arity
        } else {
            words >= -self.arity
        }
    }

    /// The command's `COMMAND INFO` entry.
    pub fn info(&self) -> Reply {
        Reply::Array(vec![
            Reply::bulk(self.name),
            Reply::Int(self.arity),
            Reply::Array(
                self.flags
                    .iter()
                    .map(|f| Reply::Simple((*f).into()))
                    .collect(),
            ),
            Reply::Int(self.keys.0),
            Reply::Int(self.keys.1),
            Reply::Int(self.keys.2),
        ])
    }

    /// The command's `COMMAND DOCS` entry: its name, then a map of its summary,
    /// the Redis version that introduced it and its group.
    pub fn docs(&self) -> (Reply, Reply) {
        (
            Reply::bulk(self.name),
            Reply::Map(vec![
                (Reply::bulk("summary"), Reply::bulk(self.summary)),
                (Reply::bulk("since"), Reply::bulk("1.0.0")),
                (Reply::bulk("group"), Reply::bulk(self.group)),
            ]),
        )
    }
}

/// Redis's answer to a command it does not know.
pub fn unknown(args: &[Vec<u8>]) -> Reply {
    let mut rest = String::new();
    for arg in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let arg = String::from_utf8_lossy(arg);
        let room = 128 - rest.len();
        let cut: String = arg.chars().take(room).collect();
        rest.push_str(&format!("'{cut}' "));
    }
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {rest}",
        String::from_utf8_lossy(&args[0])
            .chars()
            .take(128)
            .collect::<String>()
    ))
}

/// Redis's answer to a command with the wrong number of arguments.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::err(format!("wrong number of arguments for '{name}' command"))
}

/// Redis's answer to an unknown subcommand.
pub fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    Reply::err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        command.to_ascii_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_any_case_and_checks_arity_as_redis() {
        let get = find(b"gEt").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let del = find(b"DEL").unwrap();
        assert!(del.arity_ok(2) && del.arity_ok(9) && !del.arity_ok(1));
        assert!(find(b"nope").is_none());
    }

    #[test]
    fn errors_are_worded_as_redis_words_them() {
        let args = vec![b"foo".to_vec(), b"a".to_vec(), b"b".to_vec()];
        assert_eq!(
            unknown(&args),
            Reply::Error("ERR unknown command 'foo', with args beginning with: 'a' 'b' ".into())
        );
        assert_eq!(
            wrong_arity("get"),
            Reply::Error("ERR wrong number of arguments for 'get' command".into())
        );
    }
}
