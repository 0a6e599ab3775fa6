//! `--listen` apart from the advertised address (issue #15, item 2): a
//! shardmaster and a replica that listen on 127.0.0.1 while --peers and
//! --masters name them by a host name, resolved at each connect. The cluster
//! serves a client that also knows it only by that name, and the shardmaster
//! records the group under its advertised address.

mod support;

use std::time::Duration;
use support::process::{diskv_bin, reserve_addrs, run, run_with_input, wait_for, Process};

#[test]
fn daemons_listen_apart_from_the_host_names_they_advertise() {
    let root = tempfile::tempdir().unwrap();
    let logs = root.path().join("logs");
    let bound = reserve_addrs(2);
    let advertised: Vec<String> = bound
        .iter()
        .map(|a| a.replace("127.0.0.1", "localhost"))
        .collect();
    let (sm, kv) = (&advertised[0], &advertised[1]);
    let dir = |name: &str| root.path().join(name).display().to_string();
    let _master = Process::spawn(
        "sm0",
        &logs,
        diskv_bin(),
        [
            "shardmaster",
            "--me",
            "0",
            "--peers",
            sm,
            "--listen",
            &bound[0],
            "--dir",
            &dir("sm0"),
            "--insecure",
        ],
    );
    let _replica = Process::spawn(
        "g1",
        &logs,
        diskv_bin(),
        [
            "server",
            "--gid",
            "1",
            "--masters",
            sm,
            "--peers",
            kv,
            "--listen",
            &bound[1],
            "--me",
            "0",
            "--dir",
            &dir("g1"),
            "--join",
            "--insecure",
        ],
    );
    let answers = wait_for(
        Duration::from_secs(60),
        "a put and a get by host name",
        || {
            let out = run_with_input(
                diskv_bin(),
                ["client", "--masters", sm, "--insecure"],
                Some(b"PUT a 1\nGET a\nSTOP\n".to_vec()),
                Duration::from_secs(20),
            );
            (out.success() && out.stdout.contains("GET a 1")).then_some(out.stdout)
        },
    );
    assert!(answers.lines().any(|l| l == "GET a 1"), "{answers}");
    let config = run(
        diskv_bin(),
        ["admin", "--masters", sm, "--insecure", "query", "-1"],
        Duration::from_secs(30),
    );
    assert!(config.success(), "{}", config.stderr);
    assert!(
        config.stdout.contains(kv.as_str()),
        "the shardmaster should record the group at {kv}:\n{}",
        config.stdout
    );
}

/// The port of --listen is the one bound, not the advertised one: a shardmaster
/// advertised at one port and told to listen on another answers on the second
/// and leaves the first closed.
#[test]
fn the_listen_address_is_the_one_bound() {
    let root = tempfile::tempdir().unwrap();
    let ports = reserve_addrs(2);
    let (advertised, bound) = (&ports[0], &ports[1]);
    let dir = root.path().join("sm0").display().to_string();
    let _master = Process::spawn(
        "sm0",
        &root.path().join("logs"),
        diskv_bin(),
        [
            "shardmaster",
            "--me",
            "0",
            "--peers",
            advertised,
            "--listen",
            bound,
            "--dir",
            &dir,
            "--insecure",
        ],
    );
    wait_for(
        Duration::from_secs(60),
        "an answer on the --listen port",
        || {
            let out = run(
                diskv_bin(),
                [
                    "admin",
                    "--masters",
                    bound,
                    "--insecure",
                    "--timeout",
                    "5",
                    "query",
                    "-1",
                ],
                Duration::from_secs(20),
            );
            out.success().then_some(())
        },
    );
    assert!(
        std::net::TcpStream::connect(advertised.as_str()).is_err(),
        "something listens on the advertised port {advertised}"
    );
}
