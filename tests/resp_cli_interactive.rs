//! `redis-cli` used interactively, as a person would, against `diskv cluster
//! --resp` (what `make run` starts, with fewer processes): it runs in a terminal
//! made by tmux (so redis-cli sees a tty, asks `COMMAND` for its hints and
//! prints its prompt), every command of docs/RESP.md's table is typed, and each
//! answer is read off the screen. Skips itself, saying so, without tmux or
//! redis-cli (`.ci/run` installs both).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::launcher::{self, Orphans};
use support::process::{reserve_addrs, run, wait_for};

/// How long one command may take to be answered on screen.
const ANSWER: Duration = Duration::from_secs(30);

/// A tmux server of this test's own (its own socket), running one command in a
/// terminal; killed by pid when dropped.
struct Terminal {
    socket: PathBuf,
    pid: i32,
}

impl Terminal {
    fn start(socket: PathBuf, command: &str) -> Terminal {
        let sock = socket.display().to_string();
        let out = run(
            "tmux",
            [
                "-S",
                &sock,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                command,
            ],
            ANSWER,
        );
        assert!(out.success(), "tmux new-session: {}", out.stderr);
        let out = run("tmux", ["-S", &sock, "display", "-p", "#{pid}"], ANSWER);
        let pid = out.stdout.trim().parse().expect("tmux server pid");
        Terminal { socket, pid }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let sock = self.socket.display().to_string();
        let mut all = vec!["-S", sock.as_str()];
        all.extend_from_slice(args);
        let out = run("tmux", all, ANSWER);
        assert!(out.success(), "tmux {args:?}: {}", out.stderr);
        out.stdout
    }

    /// Everything on the screen and in its scrollback.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-"])
    }

    /// Types `line` and Enter, and returns what was printed after it once the
    /// prompt is back.
    fn type_line(&self, prompt: &str, line: &str) -> String {
        let before = self.screen().matches(prompt).count();
        self.tmux(&["send-keys", "-l", line]);
        self.tmux(&["send-keys", "Enter"]);
        let echoed = format!("{prompt} {line}\n");
        wait_for(ANSWER, &format!("the answer to {line:?}"), || {
            let screen = self.screen();
            if screen.matches(prompt).count() <= before {
                return None;
            }
            let at = screen.rfind(&echoed)? + echoed.len();
            let answer = &screen[at..];
            let end = answer.find(prompt)?;
            Some(answer[..end].trim_end().to_string())
        })
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our tmux server's.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

fn installed(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|p| Path::new(&p).join(tool).is_file())
    })
}

/// Every command of docs/RESP.md, typed in this order, and what redis-cli must
/// show for it (each expected line must appear in the answer).
const SESSION: &[(&str, &[&str])] = &[
    ("PING", &["PONG"]),
    ("ECHO hello", &["\"hello\""]),
    ("SELECT 0", &["OK"]),
    ("SELECT 1", &["(error) ERR DB index is out of range"]),
    ("HELLO 2", &["\"diskv\""]),
    ("AUTH sometoken", &["without any token file configured"]),
    ("CLIENT SETNAME cli", &["OK"]),
    ("CLIENT GETNAME", &["\"cli\""]),
    ("CLIENT ID", &["(integer) "]),
    ("COMMAND COUNT", &["(integer) 33"]),
    ("COMMAND INFO get", &["\"get\"", "(integer) 2"]),
    ("COMMAND DOCS mset", &["NOT atomic across keys"]),
    (
        "INFO replication",
        &["role:master", "diskv_local_replica:none"],
    ),
    ("SET user:1 Ada", &["OK"]),
    ("GET user:1", &["\"Ada\""]),
    ("SET user:1 Grace GET", &["\"Ada\""]),
    ("SET lock me NX", &["OK"]),
    ("SET lock you NX", &["(nil)"]),
    ("SET lock you XX GET", &["\"me\""]),
    ("SETNX lock x", &["(integer) 0"]),
    ("GETSET lock z", &["\"you\""]),
    ("GETDEL lock", &["\"z\""]),
    ("GETDEL lock", &["(nil)"]),
    ("SET t 1 EX 10", &["never expire"]),
    ("APPEND log ab", &["(integer) 2"]),
    ("APPEND log cde", &["(integer) 5"]),
    ("STRLEN log", &["(integer) 5"]),
    ("INCR n", &["(integer) 1"]),
    ("INCRBY n 41", &["(integer) 42"]),
    ("DECR n", &["(integer) 41"]),
    ("DECRBY n 40", &["(integer) 1"]),
    ("INCR log", &["value is not an integer or out of range"]),
    ("MSET a 1 b 2", &["OK"]),
    ("MGET a b c", &["1) \"1\"", "2) \"2\"", "3) (nil)"]),
    ("EXISTS a b c a", &["(integer) 3"]),
    ("TYPE a", &["string"]),
    ("TYPE c", &["none"]),
    ("TTL a", &["(integer) -1"]),
    ("PTTL c", &["(integer) -2"]),
    ("DEL a b c", &["(integer) 2"]),
    ("UNLINK log", &["(integer) 1"]),
    ("KEYS user:*", &["\"user:1\""]),
    ("SCAN 0 MATCH user:* COUNT 100", &["1) \"0\"", "\"user:1\""]),
    ("DBSIZE", &["(integer) 2"]),
    ("FLUSHDB", &["OK"]),
    ("DBSIZE", &["(integer) 0"]),
    ("SET bad/key v", &["invalid key"]),
    ("FLUSHALL", &["OK"]),
    ("NOSUCH x", &["(error) ERR unknown command 'NOSUCH'"]),
    ("GET", &["wrong number of arguments for 'get' command"]),
];

#[test]
fn redis_cli_works_interactively_against_a_cluster() {
    if !installed("tmux") || !installed("redis-cli") {
        println!(
            "tmux or redis-cli is not installed (Debian tmux, redis-tools); skipping this test"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let logs = root.path().join("logs");
    let addrs = reserve_addrs(2);
    let (http, resp) = (addrs[0].clone(), addrs[1].clone());
    let shape = ["--groups", "2", "--replicas", "3", "--masters", "1"];
    let (_launcher, pids) =
        launcher::launch_with_resp(&dir, &http, &resp, &logs, "cluster", &shape);
    let _orphans = Orphans(pids);

    let (host, port) = resp.rsplit_once(':').unwrap();
    let term = Terminal::start(
        root.path().join("tmux.sock"),
        &format!("redis-cli -h {host} -p {port}"),
    );
    let prompt = format!("{resp}>");
    wait_for(ANSWER, "redis-cli's prompt", || {
        term.screen().contains(&prompt).then_some(())
    });
    let started = Instant::now();
    for (line, want) in SESSION {
        let answer = term.type_line(&prompt, line);
        for w in *want {
            assert!(
                answer.contains(w),
                "{line:?} answered\n{answer}\nwithout {w:?}; the screen:\n{}",
                term.screen()
            );
        }
    }
    eprintln!("{} commands in {:?}", SESSION.len(), started.elapsed());
}
