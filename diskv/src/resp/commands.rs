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
}

const RO: &[&str] = &["readonly"];
const WR: &[&str] = &["write"];
const CONN: &[&str] = &["fast", "no-auth"];

const fn spec(name: &'static str, arity: i64, flags: &'static [&'static str]) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys: (0, 0, 0),
    }
}

const fn keyed(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
    }
}

/// Every command, in the order `COMMAND` lists them. The last group is answered
/// with a "not supported yet" error that says why.
pub const COMMANDS: &[Spec] = &[
    spec("ping", -1, CONN),
    spec("echo", 2, CONN),
    spec("quit", -1, CONN),
    spec("hello", -1, CONN),
    spec("select", 2, CONN),
    spec("client", -2, CONN),
    spec("command", -1, CONN),
    spec("info", -1, CONN),
    spec("dbsize", 1, RO),
    keyed("get", 2, RO, (1, 1, 1)),
    keyed("set", -3, WR, (1, 1, 1)),
    keyed("getset", 3, WR, (1, 1, 1)),
    keyed("del", -2, WR, (1, -1, 1)),
    keyed("unlink", -2, WR, (1, -1, 1)),
    keyed("exists", -2, RO, (1, -1, 1)),
    keyed("strlen", 2, RO, (1, 1, 1)),
    keyed("mget", -2, RO, (1, -1, 1)),
    keyed("mset", -3, WR, (1, -1, 2)),
    spec("keys", 2, RO),
    spec("scan", -2, RO),
    spec("flushdb", -1, WR),
    spec("flushall", -1, WR),
    keyed("type", 2, RO, (1, 1, 1)),
    keyed("ttl", 2, RO, (1, 1, 1)),
    keyed("pttl", 2, RO, (1, 1, 1)),
    keyed("append", 3, WR, (1, 1, 1)),
    keyed("getdel", 2, WR, (1, 1, 1)),
    keyed("setnx", 3, WR, (1, 1, 1)),
    keyed("incr", 2, WR, (1, 1, 1)),
    keyed("decr", 2, WR, (1, 1, 1)),
    keyed("incrby", 3, WR, (1, 1, 1)),
    keyed("decrby", 3, WR, (1, 1, 1)),
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
