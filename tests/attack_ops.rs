//! Found by the attack on `diskv admin status`, `backup` and `restore`: odd but
//! valid-looking numbers for `--wait` and `--timeout` (finite and positive, so
//! they passed the checks) overflowed `Duration::from_secs_f64` or
//! `Instant + Duration` and the command panicked instead of answering with an
//! error and exit status 1 ("nothing panics on odd input").

mod support;

use std::time::Duration;
use support::process::{diskv_bin, run};

/// Nothing listens on this address: the command must refuse its arguments
/// before it contacts anything anyway.
const NOBODY: &str = "127.0.0.1:1";

#[test]
fn attack_huge_wait_or_timeout_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let backup_dir = dir.path().join("b").display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["admin", "--masters", NOBODY, "status", "--wait", "1e20"],
        vec!["admin", "--masters", NOBODY, "status", "--wait", "1e19"],
        vec!["admin", "--masters", NOBODY, "--timeout", "1e20", "status"],
        vec!["admin", "--masters", NOBODY, "--timeout", "1e19", "query"],
        vec![
            "admin",
            "--masters",
            NOBODY,
            "--timeout",
            "1e20",
            "backup",
            &backup_dir,
        ],
        vec![
            "restore",
            &backup_dir,
            "--masters",
            NOBODY,
            "--timeout",
            "1e20",
        ],
    ];
    for args in cases {
        let out = run(diskv_bin(), &args, Duration::from_secs(20));
        assert!(
            !out.stderr.contains("panicked"),
            "diskv {args:?} panicked:\n{}",
            out.stderr
        );
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(1),
            "diskv {args:?}: {}",
            out.stderr
        );
    }
}
