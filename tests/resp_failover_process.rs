//! Redis clients pipelining INCR, APPEND, SET NX GET, GETDEL, SET GET and GET
//! through `diskv cluster --resp` while the group's Paxos leader is killed with
//! SIGKILL. Every reply is recorded and the whole history, final reads included,
//! must be linearizable: no command applied twice, no acknowledged write lost,
//! no value that no order of the commands explains.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::strip_ansi;
use support::launcher::{self, child_pid, Orphans};
use support::linearizability::{check, CheckResult, History, Op, OpId, Ret};
use support::process::{reserve_addrs, wait_for};
use support::seed::{seed as test_seed, Rng};

/// Counters (INCRBY, SET GET), logs (APPEND) and a lock (SET NX GET, GETDEL).
const COUNTERS: [&str; 2] = ["c0", "c1"];
const LOGS: [&str; 2] = ["a0", "a1"];
const LOCK: &str = "l0";
/// Client threads, and commands per pipeline.
const CLIENTS: u64 = 3;
const PIPELINE: usize = 4;
/// Load before the kill, and after the new leader is elected.
const PHASE: Duration = Duration::from_secs(3);
/// Deadline of one pipeline (a write may wait out the failover).
const CALL: Duration = Duration::from_secs(30);

/// A command, as sent and as the checker models it.
struct Command {
    cmd: redis::Cmd,
    op: Op,
}

fn command(rng: &mut Rng, client: u64, n: u64) -> Command {
    let value = format!("{client}.{n};");
    let counter = COUNTERS[rng.below(2) as usize];
    let log = LOGS[rng.below(2) as usize];
    let mut cmd;
    let op = match rng.below(10) {
        0..=2 => {
            let by = rng.below(7) as i64 - 2;
            cmd = redis::cmd("INCRBY");
            cmd.arg(counter).arg(by);
            Op::incr(counter, by)
        }
        3 => {
            let v = rng.below(50).to_string();
            cmd = redis::cmd("SET");
            cmd.arg(counter).arg(&v).arg("GET");
            Op::swap(counter, v)
        }
        4..=5 => {
            cmd = redis::cmd("APPEND");
            cmd.arg(log).arg(&value);
            Op::append_len(log, value)
        }
        6 => {
            cmd = redis::cmd("SET");
            cmd.arg(LOCK).arg(&value).arg("NX").arg("GET");
            Op::put_if(LOCK, value, true)
        }
        7 => {
            cmd = redis::cmd("GETDEL");
            cmd.arg(LOCK);
            Op::take(LOCK)
        }
        _ => {
            let key = [counter, log, LOCK][rng.below(3) as usize];
            cmd = redis::cmd("GET");
            cmd.arg(key);
            Op::get(key)
        }
    };
    Command { cmd, op }
}

/// The checker's reply for `op`'s RESP answer; `None` when the outcome is
/// unknown (an error such as a timeout, or a broken connection).
fn ret_of(op: &Op, answer: &redis::RedisResult<redis::Value>) -> Option<Ret> {
    use redis::Value;
    let text = |v: &Value| match v {
        Value::Nil => Some(None),
        Value::BulkString(b) => Some(Some(String::from_utf8(b.clone()).ok()?)),
        _ => None,
    };
    match (op, answer) {
        (Op::Incr { .. }, Ok(Value::Int(n))) => Some(Ret::Counter(Some(*n))),
        (Op::Incr { .. }, Err(e)) if e.to_string().contains("not an integer") => {
            Some(Ret::Counter(None))
        }
        (Op::AppendLen { .. }, Ok(Value::Int(n))) => Some(Ret::Length(*n as u64)),
        (Op::Get { .. } | Op::Swap { .. } | Op::PutIf { .. } | Op::Take { .. }, Ok(v)) => {
            text(v).map(Ret::Value)
        }
        _ => None,
    }
}

/// One client: pipelines of random commands until `stop`, each recorded.
fn client(resp: String, history: History, stop: Arc<AtomicBool>, id: u64, seed: u64) -> u64 {
    let mut rng = Rng::new(seed, id);
    let mut con = connect(&resp);
    let (mut n, mut unknown) = (0, 0);
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120) {
        let batch: Vec<Command> = (0..PIPELINE)
            .map(|_| {
                n += 1;
                command(&mut rng, id, n)
            })
            .collect();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for c in &batch {
            pipe.add_command(c.cmd.clone());
        }
        let ids: Vec<OpId> = batch
            .iter()
            .map(|c| history.invoke(id, c.op.clone()))
            .collect();
        let answers: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> =
            pipe.query(&mut con);
        let answers = match answers {
            Ok(a) => a,
            Err(e) => {
                eprintln!("client {id}: pipeline failed ({e}); reconnecting");
                con = connect(&resp);
                Vec::new()
            }
        };
        for (i, (c, op_id)) in batch.iter().zip(ids).enumerate() {
            match answers.get(i).and_then(|a| ret_of(&c.op, a)) {
                Some(ret) => history.ret(op_id, ret),
                None => {
                    unknown += 1;
                    history.timeout(op_id);
                }
            }
        }
    }
    unknown
}

fn connect(resp: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{resp}/")).unwrap();
    let con = client.get_connection_with_timeout(CALL).unwrap();
    con.set_read_timeout(Some(CALL)).unwrap();
    con.set_write_timeout(Some(CALL)).unwrap();
    con
}

/// The replica of group 1 that most recently became leader, by ballot (round,
/// incarnation, node: the order ballots compare in), from the replicas' logs.
fn leader(dir: &std::path::Path) -> Option<(u64, u64, usize)> {
    let mut best = None;
    for i in 0..3 {
        let log = dir.join("logs").join(format!("group-1-replica-{i}.log"));
        let text = strip_ansi(&std::fs::read_to_string(log).unwrap_or_default());
        for line in text.lines().filter(|l| l.contains("became leader")) {
            let Some(ballot) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("ballot="))
            else {
                continue;
            };
            let (round_node, inc) = ballot.split_once('@').unwrap_or((ballot, "0"));
            let Some((round, node)) = round_node.split_once('.') else {
                continue;
            };
            if let (Ok(r), Ok(inc), Ok(node)) = (round.parse(), inc.parse(), node.parse()) {
                best = best.max(Some((r, inc, node)));
            }
        }
    }
    best
}

#[test]
fn pipelined_redis_clients_stay_linearizable_across_a_leader_kill() {
    let seed = test_seed("pipelined_redis_clients_stay_linearizable_across_a_leader_kill");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cluster");
    let logs = root.path().join("logs");
    let addrs = reserve_addrs(2);
    let (http, resp) = (addrs[0].clone(), addrs[1].clone());
    let shape = ["--groups", "1", "--replicas", "3", "--masters", "1"];
    let (p, pids) = launcher::launch_with_resp(&dir, &http, &resp, &logs, "cluster", &shape);
    let _orphans = Orphans(pids);
    let before = wait_for(Duration::from_secs(30), "group 1 has a leader", || {
        leader(&dir)
    });

    let history = History::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (resp, history, stop) = (resp.clone(), history.clone(), stop.clone());
            std::thread::spawn(move || client(resp, history, stop, id, seed))
        })
        .collect();
    std::thread::sleep(PHASE);

    let victim = format!("group-1-replica-{}", before.2);
    let pid = child_pid(&p.stdout(), &victim).expect("the launcher printed the leader's pid");
    let ops_at_kill = history.len();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGKILL) },
        0,
        "kill -9 {victim}"
    );
    let after = wait_for(Duration::from_secs(60), "another replica leads", || {
        leader(&dir).filter(|l| *l > before && l.2 != before.2)
    });
    eprintln!(
        "killed {victim} (pid {pid}) after {ops_at_kill} commands; replica {} leads now",
        after.2
    );
    std::thread::sleep(PHASE);
    stop.store(true, Ordering::Relaxed);
    let unknown: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();

    // Final reads: every acknowledged write must show in them.
    let mut con = connect(&resp);
    for key in COUNTERS.iter().chain(&LOGS).chain([&LOCK]) {
        let id = history.invoke(99, Op::get(*key));
        let v: Option<String> = redis::cmd("GET").arg(*key).query(&mut con).unwrap();
        history.ret(id, Ret::Value(v));
    }
    let total = history.len();
    eprintln!("{total} commands, {unknown} with unknown outcomes");
    assert!(
        total > ops_at_kill + 40,
        "the clients made progress after the kill ({ops_at_kill} before, {total} in all)"
    );
    let started = Instant::now();
    let verdict = check(&history);
    eprintln!("checked in {:?}", started.elapsed());
    assert!(matches!(verdict, CheckResult::Ok), "{verdict}");
}
