//! Tokens on the Redis protocol (docs/SECURITY.md, [`crate::front::access`]): with a
//! token file, a connection runs nothing but `AUTH`, `HELLO … AUTH` and `QUIT`
//! until it authenticates with `AUTH token` (or `AUTH name token`, as Redis
//! clients send a user name); a `read` token runs read commands only. The token
//! is checked again before every command, so a revoked one stops working on
//! open connections too.

use super::commands::Spec;
use super::door::{Door, Session};
use super::reply::Reply;
use crate::front::access::{Denied, Role};

/// The refusal of `spec` for `session`, if it may not run it now.
pub fn gate(door: &Door, session: &mut Session, spec: &Spec) -> Option<Reply> {
    let tokens = door.opts.tokens.as_ref()?;
    if matches!(spec.name, "auth" | "hello" | "quit") {
        return None;
    }
    let role = if spec.flags.contains(&"write") {
        Role::Write
    } else {
        Role::Read
    };
    match tokens.check(session.token.as_deref(), role) {
        Ok(_) => None,
        Err(Denied::ReadOnly(name)) => Some(Reply::Error(format!(
            "NOPERM token '{name}' is read-only: it may not run '{}'",
            spec.name
        ))),
        Err(Denied::Missing) => Some(Reply::Error("NOAUTH Authentication required.".into())),
        Err(denied) => {
            session.token = None;
            Some(Reply::Error(format!("NOAUTH {denied}: AUTH again")))
        }
    }
}

/// `AUTH token` or `AUTH name token`: `+OK`, or `-WRONGPASS`.
pub fn auth(door: &Door, session: &mut Session, args: &[Vec<u8>]) -> Reply {
    let (name, token) = match args {
        [_, token] => (None, token),
        [_, name, token] => (Some(name), token),
        _ => return Reply::err("syntax error"),
    };
    login(door, session, name.map(Vec::as_slice), token)
}

/// Checks `token` (and `name`, if given and not `default`) and makes it the
/// session's.
pub fn login(door: &Door, session: &mut Session, name: Option<&[u8]>, token: &[u8]) -> Reply {
    let Some(tokens) = door.opts.tokens.as_ref() else {
        return Reply::err(
            "AUTH called without any token file configured (start diskv with --tokens FILE \
             to require tokens); connect without AUTH",
        );
    };
    let token = String::from_utf8_lossy(token).into_owned();
    match tokens.check(Some(&token), Role::Read) {
        Ok(grant) if name.is_none_or(|n| n == b"default" || n == grant.name.as_bytes()) => {
            session.token = Some(token);
            Reply::ok()
        }
        Ok(_) | Err(Denied::Unknown) | Err(Denied::Missing) | Err(Denied::ReadOnly(_)) => {
            Reply::Error("WRONGPASS invalid token (unknown, revoked, or not this name's)".into())
        }
        Err(denied @ Denied::BadFile(_)) => Reply::err(denied),
    }
}
