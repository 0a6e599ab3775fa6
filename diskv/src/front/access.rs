//! Who may use the front doors (HTTP API, Redis protocol): bearer tokens with a
//! role, kept in a token file (docs/SECURITY.md).
//!
//! A token is `dkv_` and 32 random hex digits, shown once when it is made. The
//! file keeps only its SHA-256, one token per line: `NAME ROLE SHA256`, where
//! ROLE is `read` or `write` (`write` may read too); `#` starts a comment. The
//! file is replaced atomically on every change, and a front door notices a change
//! at the next request (it compares the file's inode, size, mtime and ctime, and
//! reads a file changed in the last two seconds again each time), so a
//! revoked token is refused at once, without a restart. A file that cannot be
//! read or parsed refuses every token until it is fixed: access fails closed.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads only: GET, `/metrics`, Redis read commands.
    Read,
    /// Reads and writes.
    Write,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            _ => None,
        }
    }

    /// The role's name in the token file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
        }
    }
}

/// A token that was accepted: whose it is and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    /// No token came with the request (HTTP 401, Redis `NOAUTH`).
    #[error("authentication required: send a token (HTTP: Authorization: Bearer <token>; Redis: AUTH <token>)")]
    Missing,
    /// The token is not in the file (never made, or revoked) (401).
    #[error("unknown or revoked token")]
    Unknown,
    /// The token may not do this (HTTP 403, Redis `NOPERM`).
    #[error("token '{0}' is read-only")]
    ReadOnly(String),
    /// The token file cannot be used: every token is refused until it is fixed.
    #[error("the token file cannot be used ({0}); every token is refused until it is fixed")]
    BadFile(String),
}

/// Why the token file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A line of the file is not `NAME ROLE SHA256`.
    #[error("{path} line {line}: expected `NAME read|write SHA256`")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
    },
    /// A name is taken already.
    #[error("a token named '{0}' exists already; revoke it first or pick another name")]
    Exists(String),
    /// A name holds whitespace or is empty.
    #[error("token names are non-empty and without whitespace or '#'")]
    BadName,
}

/// One line of the file.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    role: Role,
    digest: String,
}

fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn read_entries(path: &Path) -> Result<Vec<Entry>, TokenFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(TokenFileError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Vec<Entry>, TokenFileError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let malformed = || TokenFileError::Malformed {
            path: path.to_path_buf(),
            line: i + 1,
        };
        let mut fields = line.split_whitespace();
        let (Some(name), Some(role), Some(digest), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(malformed());
        };
        let role = Role::parse(role).ok_or_else(malformed)?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        entries.push(Entry {
            name: name.to_string(),
            role,
            digest: digest.to_ascii_lowercase(),
        });
    }
    Ok(entries)
}

fn write_entries(path: &Path, entries: &[Entry]) -> Result<(), TokenFileError> {
    let io = |source| TokenFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::from("# diskv tokens: NAME ROLE SHA256 (diskv token add/list/revoke)\n");
    for e in entries {
        text.push_str(&format!("{} {} {}\n", e.name, e.role.as_str(), e.digest));
    }
    paxos::fs::durable::replace_with_mode(path, text.as_bytes(), 0o600).map_err(io)
}

/// Adds a token named `name` with `role` to the file at `path` (made if
/// missing) and returns it; only its digest is stored.
pub fn add(path: &Path, name: &str, role: Role) -> Result<String, TokenFileError> {
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('#') {
        return Err(TokenFileError::BadName);
    }
    let mut entries = read_entries(path)?;
    if entries.iter().any(|e| e.name == name) {
        return Err(TokenFileError::Exists(name.to_string()));
    }
    let secret: [u8; 16] = rand::random();
    let token = format!(
        "dkv_{}",
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    entries.push(Entry {
        name: name.to_string(),
        role,
        digest: digest(&token),
    });
    write_entries(path, &entries)?;
    Ok(token)
}

/// The names and roles in the file.
pub fn list(path: &Path) -> Result<Vec<(String, Role)>, TokenFileError> {
    Ok(read_entries(path)?
        .into_iter()
        .map(|e| (e.name, e.role))
        .collect())
}

/// Removes the token named `name`; false if there was none.
pub fn revoke(path: &Path, name: &str) -> Result<bool, TokenFileError> {
    let mut entries = read_entries(path)?;
    let before = entries.len();
    entries.retain(|e| e.name != name);
    if entries.len() == before {
        return Ok(false);
    }
    write_entries(path, &entries)?;
    Ok(true)
}

/// The file's identity: a change of any part means it was replaced or edited
/// (device, inode, size, mtime and ctime with their nanoseconds; the ctime
/// catches a rewrite whose mtime was set back, `cp -p` or `touch -r`).
type Stamp = (u64, u64, u64, i64, i64, i64, i64);

/// How long after its last change a file's stamp is not trusted: timestamps
/// are as coarse as a second on some file systems, and a rewrite of the same
/// size within that time keeps the stamp. Until the file is this old, every
/// check reads it again (the "racy" files of git's index).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The grants by token digest, or why the file cannot be used.
type Table = Result<HashMap<String, Grant>, String>;

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// True if the file stamped `s` last changed (mtime or ctime) more than
/// [`SETTLE`] before `now`: a change after this read would change its stamp.
fn settled(s: &Stamp, now: std::time::SystemTime) -> bool {
    let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    let latest = s.3.max(s.5);
    i64::try_from(now.saturating_sub(SETTLE).as_secs()).is_ok_and(|limit| latest < limit)
}

/// The tokens a front door accepts, read again whenever the file changes.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    /// The stamp at the last read, whether the file had settled then, and
    /// what was read.
    table: Mutex<(Option<Stamp>, bool, Table)>,
}

impl Tokens {
    /// Opens the token file at `path`; a file that cannot be read or parsed is
    /// an error here (at start), and refuses every token later.
    pub fn open(path: &Path) -> Result<Tokens, TokenFileError> {
        if !path.exists() {
            return Err(TokenFileError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such token file (make one with `diskv token add --file FILE NAME`)",
                ),
            });
        }
        read_entries(path)?;
        let tokens = Tokens {
            path: path.to_path_buf(),
            table: Mutex::new((None, false, Err("not read yet".into()))),
        };
        drop(tokens.refresh());
        Ok(tokens)
    }

    /// Reads the file again if it changed since the last read.
    fn refresh(&self) -> std::sync::MutexGuard<'_, (Option<Stamp>, bool, Table)> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let checked = std::time::SystemTime::now();
        let now = stamp(&self.path).ok();
        // The stamp of the last read proves nothing if the file was still
        // within SETTLE of a change then: read it again.
        if now.is_none() || now != t.0 || !t.1 {
            let read = self.load(now.is_some());
            if let Err(why) = &read {
                tracing::error!(path = %self.path.display(), reason = %why, "token file unusable: refusing every token");
            }
            let trusted = now.as_ref().is_some_and(|n| settled(n, checked));
            *t = (now, trusted, read);
        }
        t
    }

    /// The grants of the file, by digest; a file that vanished refuses
    /// everyone too.
    fn load(&self, exists: bool) -> Table {
        if !exists {
            return Err(format!("{}: the token file is gone", self.path.display()));
        }
        let entries = read_entries(&self.path).map_err(|e| e.to_string())?;
        Ok(entries
            .into_iter()
            .map(|e| {
                let grant = Grant {
                    name: e.name,
                    role: e.role,
                };
                (e.digest, grant)
            })
            .collect())
    }

    /// The grant of `token`, if it may do what needs `role`.
    pub fn check(&self, token: Option<&str>, role: Role) -> Result<Grant, Denied> {
        let Some(token) = token else {
            return Err(Denied::Missing);
        };
        let t = self.refresh();
        let table = t.2.as_ref().map_err(|why| Denied::BadFile(why.clone()))?;
        let grant = table.get(&digest(token)).ok_or(Denied::Unknown)?;
        if grant.role < role {
            return Err(Denied::ReadOnly(grant.name.clone()));
        }
        Ok(grant.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_added_checked_by_role_and_revoked_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let writer = add(&file, "app", Role::Write).unwrap();
        let reader = add(&file, "dash", Role::Read).unwrap();
        assert!(matches!(
            add(&file, "app", Role::Read),
            Err(TokenFileError::Exists(_))
        ));
        assert!(
            !std::fs::read_to_string(&file).unwrap().contains(&writer),
            "a token stored in clear"
        );
        let tokens = Tokens::open(&file).unwrap();
        assert_eq!(
            tokens.check(Some(&writer), Role::Write).unwrap().name,
            "app"
        );
        assert_eq!(
            tokens.check(Some(&reader), Role::Read).unwrap().name,
            "dash"
        );
        assert_eq!(
            tokens.check(Some(&reader), Role::Write),
            Err(Denied::ReadOnly("dash".into()))
        );
        assert_eq!(tokens.check(None, Role::Read), Err(Denied::Missing));
        assert_eq!(
            tokens.check(Some("dkv_nope"), Role::Read),
            Err(Denied::Unknown)
        );
        assert!(revoke(&file, "app").unwrap());
        assert!(!revoke(&file, "app").unwrap());
        assert_eq!(
            tokens.check(Some(&writer), Role::Read),
            Err(Denied::Unknown)
        );
        assert_eq!(list(&file).unwrap(), vec![("dash".to_string(), Role::Read)]);
    }

    #[test]
    fn a_broken_token_file_refuses_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let reader = add(&file, "dash", Role::Read).unwrap();
        let tokens = Tokens::open(&file).unwrap();
        assert!(tokens.check(Some(&reader), Role::Read).is_ok());
        std::fs::write(&file, "dash read not-a-digest\n").unwrap();
        assert!(matches!(
            tokens.check(Some(&reader), Role::Read),
            Err(Denied::BadFile(_))
        ));
        assert!(matches!(
            Tokens::open(&file),
            Err(TokenFileError::Malformed { line: 1, .. })
        ));
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            tokens.check(Some(&reader), Role::Read),
            Err(Denied::BadFile(_))
        ));
        assert!(add(&file, "bad name", Role::Read).is_err());
    }

    /// Attack on issue #14 (docs/attacks/tls-auth.md finding 3): a token file
    /// rewritten in place (same inode) to the same size, within the
    /// granularity of the file system's timestamps (a second on many; `cp -p`,
    /// `touch -r` and `rsync --inplace -t` set the time back on purpose), kept
    /// its (inode, size, mtime) stamp: the front door went on with the old
    /// table, and the token rotated out was still accepted.
    #[test]
    fn attack_an_in_place_rewrite_of_the_same_size_and_time_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        let old = add(&file, "app", Role::Write).unwrap();
        let tokens = Tokens::open(&file).unwrap();
        assert!(tokens.check(Some(&old), Role::Write).is_ok());
        let before = std::fs::metadata(&file).unwrap();
        // The token rotated: same name, same role, another digest; written
        // through the same inode, and the time left as it was.
        let new = "dkv_00000000000000000000000000000001";
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace(&digest(&old), &digest(new));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f.set_modified(before.modified().unwrap()).unwrap();
        drop(f);
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(
            (after.ino(), after.size(), after.mtime(), after.mtime_nsec()),
            (
                before.ino(),
                before.size(),
                before.mtime(),
                before.mtime_nsec()
            )
        );
        assert_eq!(
            tokens.check(Some(&old), Role::Read),
            Err(Denied::Unknown),
            "the rotated-out token is still accepted"
        );
        assert_eq!(tokens.check(Some(new), Role::Write).unwrap().name, "app");
    }
}
