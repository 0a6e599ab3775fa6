//! The test identity of the TLS process tests (`tests/tls_process.rs`,
//! `tests/tls_tokens_process.rs`): the certificates, made once per test binary
//! with `diskv certs`, and reading the daemons' logs.

use super::process::{diskv_bin, run};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The directory holding every certificate of this test binary.
pub struct Certs {
    root: tempfile::TempDir,
}

impl Certs {
    /// The cluster's CA directory.
    pub fn ca(&self) -> PathBuf {
        self.root.path().join("ca")
    }
    /// The identity every process of the cluster uses.
    pub fn node(&self) -> PathBuf {
        self.root.path().join("node")
    }
    /// Another cluster's CA and a node of it.
    pub fn stranger(&self) -> PathBuf {
        self.root.path().join("other").join("node")
    }
    /// A client's identity of the cluster's CA (`--role client`).
    pub fn client(&self) -> PathBuf {
        self.root.path().join("client")
    }
}

/// Runs `diskv ARGS` and asserts that it succeeded.
pub fn diskv_ok(args: &[&str]) -> String {
    let out = run(diskv_bin(), args, Duration::from_secs(30));
    assert!(
        out.success(),
        "diskv {args:?}: {:?} {}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// Makes the certificates once (with the CLI) and sets `DISKV_TLS_DIR`, which
/// every child of this test binary inherits. Every test calls it first, before
/// starting any process.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let certs = Certs {
            root: tempfile::tempdir().expect("tempdir"),
        };
        let ca = certs.ca().display().to_string();
        let node = certs.node().display().to_string();
        diskv_ok(&["certs", "init", "--dir", &ca]);
        diskv_ok(&[
            "certs",
            "issue",
            "--ca",
            &ca,
            "--name",
            "node",
            "--host",
            "127.0.0.1,localhost",
            "--out",
            &node,
        ]);
        let client = certs.client().display().to_string();
        let issued = diskv_ok(&[
            "certs", "issue", "--ca", &ca, "--name", "app", "--role", "client", "--out", &client,
        ]);
        assert!(
            issued.starts_with("client certificate for app "),
            "{issued}"
        );
        let other = certs.root.path().join("other").display().to_string();
        let stranger = certs.stranger().display().to_string();
        diskv_ok(&["certs", "init", "--dir", &other]);
        diskv_ok(&[
            "certs",
            "issue",
            "--ca",
            &other,
            "--name",
            "node",
            "--host",
            "127.0.0.1",
            "--out",
            &stranger,
        ]);
        // Set before any child starts; every test waits here until it is.
        std::env::set_var("DISKV_TLS_DIR", certs.node());
        certs
    })
}

/// The file at `path`, or "" if it cannot be read.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Every log line of the directory `logs`.
pub fn all_logs(logs: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(logs).into_iter().flatten().flatten() {
        text.push_str(&read(&entry.path()));
    }
    super::cluster::strip_ansi(&text)
}
