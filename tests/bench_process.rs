//! `diskv bench` as users run it: against a local cluster it spawns itself, with
//! results on disk, and every process it started gone when it ends (normally or on
//! Ctrl-C).

mod support;

use std::time::Duration;
use support::process::{diskv_bin, run, wait_until, Process};

/// Pids of the processes a `--spawn` run started (from its "pid N" lines).
fn spawned_pids(stdout: &str) -> Vec<i32> {
    stdout
        .lines()
        .filter_map(|l| l.split(", pid ").nth(1)?.split(',').next()?.parse().ok())
        .collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_spawned_cluster_is_measured_and_stopped() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "--spawn",
        "1x1",
        "--workload",
        "a",
        "--clients",
        "4",
        "--records",
        "200",
        "--duration",
        "2s",
        "--warmup",
        "1s",
        "--out",
    ];
    let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    argv.push(out.path().display().to_string());
    let done = run(diskv_bin(), &argv, Duration::from_secs(120));
    assert!(
        done.success(),
        "diskv bench failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );

    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let reports: serde_json::Value = serde_json::from_str(&text).unwrap();
    let run = &reports[0];
    assert_eq!(run["store"], "diskv 1x1");
    assert_eq!(run["workload"], "A");
    assert!(run["ops"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["load"]["records"], 200);
    let ops: Vec<&str> = run["per_op"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["read", "update"]);
    assert!(out.path().join("results.csv").exists());
    assert!(out.path().join("latency-percentiles.svg").exists());
    assert!(
        done.stderr.contains("measuring"),
        "progress lines: {}",
        done.stderr
    );

    let pids = spawned_pids(&done.stdout);
    assert_eq!(
        pids.len(),
        2,
        "a shardmaster and a replica: {}",
        done.stdout
    );
    wait_until(Duration::from_secs(10), "spawned processes gone", || {
        pids.iter().all(|&p| !alive(p))
    });
}

/// `diskv bench scale` loads a node, kills it with SIGKILL twice, restarts it
/// on the same directory with the page cache dropped, and reports a read served
/// after each restart: a node that lost keys or never served again fails the run.
#[test]
fn scale_measures_memory_and_restarts_of_a_loaded_node() {
    let out = tempfile::tempdir().unwrap();
    let json = out.path().join("scale.json");
    let json_arg = json.display().to_string();
    let argv = [
        "bench",
        "scale",
        "--keys",
        "3000",
        "--value-size",
        "100",
        "--clients",
        "4",
        "--settle",
        "0s",
        "--restarts",
        "2",
        "--json",
        &json_arg,
    ];
    let done = run(diskv_bin(), argv, Duration::from_secs(240));
    assert!(
        done.success(),
        "diskv bench scale failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    assert!(done.stdout.contains("kill -9 restart"), "{}", done.stdout);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["keys"], 3000);
    assert_eq!(report["load"]["errors"], 0, "{report}");
    let restarts = report["restart_secs"].as_array().unwrap();
    assert_eq!(restarts.len(), 2, "{report}");
    assert!(
        restarts.iter().all(|s| s.as_f64().unwrap() > 0.0),
        "{report}"
    );
    for field in ["peak_rss", "steady_rss", "restarted_rss"] {
        let bytes = report[field].as_u64().unwrap();
        assert!(bytes > 1 << 20, "{field} of a live process: {report}");
    }
    assert!(
        report["disk_bytes"].as_u64().unwrap() > 3000 * 100,
        "{report}"
    );
}

/// With `--tls` the spawned processes get certificates and no `--insecure`, so
/// they refuse plaintext: the run can only load and measure if the benchmark's
/// own connections switched to mutual TLS too.
#[test]
fn a_spawned_cluster_with_mutual_tls_is_measured() {
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().display().to_string();
    let argv = [
        "bench",
        "--spawn",
        "1x1",
        "--tls",
        "--clients",
        "2",
        "--records",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--out",
        &out_dir,
    ];
    let done = run(diskv_bin(), argv, Duration::from_secs(120));
    assert!(
        done.success(),
        "diskv bench --tls failed:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    let text = std::fs::read_to_string(out.path().join("results.json")).unwrap();
    let reports: serde_json::Value = serde_json::from_str(&text).unwrap();
    let run = &reports[0];
    assert_eq!(run["store"], "diskv 1x1 TLS");
    assert!(run["ops"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["errors"], 0, "{run}");
    let pids = spawned_pids(&done.stdout);
    assert_eq!(pids.len(), 2, "{}", done.stdout);
    wait_until(Duration::from_secs(10), "spawned processes gone", || {
        pids.iter().all(|&p| !alive(p))
    });
}

#[test]
fn ctrl_c_stops_the_spawned_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out").display().to_string();
    let mut bench = Process::spawn(
        "bench",
        dir.path(),
        diskv_bin(),
        [
            "bench",
            "--spawn",
            "1x1",
            "--duration",
            "60s",
            "--records",
            "50",
            "--clients",
            "2",
            "--out",
            &out,
        ],
    );
    wait_until(Duration::from_secs(90), "the benchmark measuring", || {
        bench.stderr().contains("warm-up") || bench.stderr().contains("measuring")
    });
    let pids = spawned_pids(&bench.stdout());
    assert_eq!(pids.len(), 2, "{}", bench.stdout());
    assert!(pids.iter().all(|&p| alive(p)));
    bench.signal(libc::SIGINT);
    let status = bench
        .wait_exit(Duration::from_secs(30))
        .expect("bench exits after SIGINT");
    assert!(
        !status.success(),
        "an interrupted benchmark reports failure"
    );
    wait_until(Duration::from_secs(10), "spawned processes gone", || {
        pids.iter().all(|&p| !alive(p))
    });
}
