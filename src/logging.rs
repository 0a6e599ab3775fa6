//! Where the binary's tracing goes, set up once at start for every subcommand.
//!
//! - The filter is `RUST_LOG` when it is set and parses, else `info,tarpc=warn`.
//! - Lines go to stderr, with ANSI colours only when stderr is a terminal and
//!   `NO_COLOR` is unset or empty (<https://no-color.org>); a pipe, a file or a
//!   service manager's journal never gets escape codes.
//! - The launcher (`diskv cluster`) writes its log to `DIR/logs/launcher.log`,
//!   next to its children's, and shows on stderr only warnings and errors unless
//!   `RUST_LOG` is set (then stderr gets what `RUST_LOG` selects, as before): its
//!   terminal holds the human lines it prints on stdout.

use std::ffi::OsStr;
use std::fs::File;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// The filter when `RUST_LOG` is unset or does not parse.
const DEFAULT_FILTER: &str = "info,tarpc=warn";

/// What the launcher shows on stderr when `RUST_LOG` is unset or does not parse.
const LAUNCHER_STDERR_FILTER: &str = "warn";

/// Whether log lines written to a stream may carry ANSI colour codes: only on a
/// terminal, and not when `NO_COLOR` (its value given here) is set and non-empty.
pub fn colour(no_color: Option<&OsStr>, terminal: bool) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

/// `RUST_LOG` if it is set and parses, else `default`.
fn filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

/// Opens `path` for appending, making its folder if missing.
fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Installs the process's tracing subscriber: stderr only, or, given the
/// launcher's log file, that file plus warnings on stderr (see the module
/// documentation). A launcher log that cannot be opened falls back to stderr
/// with a warning.
pub fn init(launcher_log: Option<&Path>) {
    let file = launcher_log.map(|path| (path, open_log(path)));
    let to_file = matches!(file, Some((_, Ok(_))));
    let ansi = colour(
        std::env::var_os("NO_COLOR").as_deref(),
        std::io::stderr().is_terminal(),
    );
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        // By default a failed write of a log line is reported with `eprintln!`,
        // which panics when stderr is a file on a full disk: every request that
        // logged anything was dropped without an answer (found by the disk-full
        // process test). A log line that cannot be written is lost instead.
        .log_internal_errors(false)
        .with_filter(filter(if to_file {
            LAUNCHER_STDERR_FILTER
        } else {
            DEFAULT_FILTER
        }));
    let (log_file, failed) = match file {
        Some((_, Ok(f))) => (Some(f), None),
        Some((path, Err(e))) => (None, Some((path, e))),
        None => (None, None),
    };
    let log_file = log_file.map(|f| {
        fmt::layer()
            .with_writer(Mutex::new(f))
            .with_ansi(false)
            .log_internal_errors(false)
            .with_filter(filter(DEFAULT_FILTER))
    });
    tracing_subscriber::registry()
        .with(stderr)
        .with(log_file)
        .init();
    if let Some((path, error)) = failed {
        tracing::warn!(path = %path.display(), %error, "cannot open the launcher's log; logging to stderr");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = |v: &'static str| Some(OsStr::new(v));
        assert!(colour(None, true));
        assert!(colour(set(""), true), "an empty NO_COLOR counts as unset");
        assert!(!colour(set("1"), true));
        assert!(!colour(set("false"), true), "any non-empty value");
        assert!(!colour(None, false), "a pipe or a file");
        assert!(!colour(set(""), false));
        assert!(!colour(set("1"), false));
    }
}
