//! The dashboard (`GET /ui`) in a real headless browser (Debian's chromium)
//! against a `diskv cluster`: the page shows every group and its leader, the
//! leader moves after a `kill -9`, and a screenshot is saved
//! (`target/tmp/ui-dashboard.png`; README's picture is one of these).
//!
//! Skipped, with a message, where chromium is not installed — unless
//! `DISKV_REQUIRE_BROWSER` is set, as `.ci/run` does after installing it, so CI
//! cannot skip it silently.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::http::must_put;
use support::launcher::{self, Orphans};
use support::process::{reserve_addrs, run};

/// The browser, if this machine has one.
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("DISKV_REQUIRE_BROWSER").is_none(),
            "DISKV_REQUIRE_BROWSER is set but chromium is not installed (apt-get install chromium)"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium); the dashboard was not tested in a browser");
    }
    found
}

/// Runs headless chromium on `url` with `what` (`--dump-dom` or
/// `--screenshot=FILE`), letting the page's script run for a few seconds of
/// virtual time first; returns what it printed.
fn browse(browser: &Path, profile: &Path, url: &str, what: &str) -> String {
    let profile = format!("--user-data-dir={}", profile.display());
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        "--virtual-time-budget=5000",
        &profile,
        what,
        url,
    ];
    let out = run(browser.to_str().unwrap(), args, Duration::from_secs(60));
    assert!(out.success(), "chromium {what} failed: {}", out.stderr);
    out.stdout
}

/// The `data-leader` of the group card `gid` in a dumped DOM ("" for no leader);
/// `None` if the card is not there.
fn leader_in(dom: &str, gid: &str) -> Option<String> {
    let card = format!("data-gid=\"{gid}\" data-leader=\"");
    let at = dom.find(&card)? + card.len();
    Some(dom[at..].split('"').next()?.to_string())
}

/// The `data-role` of the row of replica `addr` in a dumped DOM.
fn role_in(dom: &str, addr: &str) -> Option<String> {
    let row = format!("data-addr=\"{addr}\" data-role=\"");
    let at = dom.find(&row)? + row.len();
    Some(dom[at..].split('"').next()?.to_string())
}

/// Dumps the page until `ok` holds for the DOM; returns that DOM.
fn dom_until(
    browser: &Path,
    profile: &Path,
    url: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let dom = browse(browser, profile, url, "--dump-dom");
        if ok(&dom) {
            return dom;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 90 s; the page last showed:\n{dom}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_dashboard_shows_every_group_and_follows_the_leader_after_a_kill() {
    let Some(browser) = chromium() else { return };
    let root = tempfile::tempdir().unwrap();
    let profile = root.path().join("chromium-profile");
    let logs = root.path().join("logs");
    let http = reserve_addrs(1).remove(0);
    let (mut launcher, pids) = launcher::launch(
        &root.path().join("cluster"),
        &http,
        &logs,
        "ui-cluster",
        &[
            "--groups",
            "2",
            "--replicas",
            "3",
            "--masters",
            "3",
            "--shards",
            "6",
        ],
    );
    let _orphans = Orphans(pids);
    for i in 0..30 {
        must_put(&http, &format!("key{i}"), "value");
    }
    let url = format!("http://{http}/ui");

    // Every group and the shardmasters, each with a leader, and the cluster healthy.
    let cards = ["shardmasters", "1", "2"];
    let dom = dom_until(
        &browser,
        &profile,
        &url,
        "every card shows a leader",
        |dom| {
            dom.contains("data-health=\"healthy\"")
                && cards
                    .iter()
                    .all(|g| leader_in(dom, g).is_some_and(|l| !l.is_empty()))
        },
    );
    for shard in 0..6 {
        assert!(
            dom.contains(&format!("data-shard=\"{shard}\"")),
            "shard {shard} missing from the map"
        );
    }
    let old = leader_in(&dom, "1").unwrap();

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        &browser,
        &profile,
        &url,
        &format!("--screenshot={}", shot.display()),
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "not a real screenshot"
    );
    eprintln!("screenshot: {}", shot.display());

    // kill -9 group 1's leader: the page shows it down and another replica leading.
    let stdout = launcher.stdout();
    let line = stdout
        .lines()
        .find(|l| l.contains(&format!("listening on {old}")) && l.contains(", pid "))
        .unwrap_or_else(|| panic!("no launcher line for {old}:\n{stdout}"));
    let pid = launcher::child_pids(line)[0];
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    dom_until(
        &browser,
        &profile,
        &url,
        "a new leader after the kill",
        |dom| {
            leader_in(dom, "1").is_some_and(|l| !l.is_empty() && l != old)
                && role_in(dom, &old).as_deref() == Some("down")
        },
    );
    launcher.sigterm();
    launcher.wait_exit(Duration::from_secs(30));
}
