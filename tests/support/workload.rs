//! Clients sending random operations on a few keys while a test injects faults,
//! each operation recorded in a [`History`]; at the end, final reads and the
//! linearizability check ([`super::linearizability::check`]).

use super::line_client::Client;
use super::line_ops::{op_line, parse_reply};
use super::linearizability::{check, History, Op};
use super::seed::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The keys every client works on.
const KEYS: [&str; 3] = ["x", "y", "z"];
/// Cap per client, so the history stays small enough to check.
const MAX_OPS: usize = 100;
/// How long outstanding operations may take once the faults stop.
const DRAIN: Duration = Duration::from_secs(15);

/// Clients at work, recording what they did.
pub struct Workload {
    tag: String,
    h: History,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<(usize, usize)>>,
}

/// What came back of a workload.
pub struct Outcome {
    /// Operations answered.
    pub returned: usize,
    /// Operations whose outcome is unknown (no answer before the drain ended).
    pub timed_out: usize,
    /// Operations in the history, final reads included.
    pub ops: usize,
}

impl Workload {
    /// Starts one thread per client, each sending up to [`MAX_OPS`] random
    /// operations (get, put, append, swap, delete) spread over time.
    pub fn start(tag: &str, clients: Vec<Client>, seed: u64) -> Workload {
        let h = History::new();
        let stop = Arc::new(AtomicBool::new(false));
        let handles = clients
            .into_iter()
            .enumerate()
            .map(|(ci, c)| {
                let (h, stop) = (h.clone(), stop.clone());
                let rng = Rng::new(seed, ci as u64 + 1);
                std::thread::spawn(move || run_client(c, ci, rng, &h, &stop))
            })
            .collect();
        Workload {
            tag: tag.to_string(),
            h,
            stop,
            handles,
        }
    }

    /// Stops the clients (each finishes or gives up on its operation in flight
    /// within [`DRAIN`]), reads every key through `last`, and asserts that the
    /// history is linearizable.
    pub fn finish(self, mut last: Client, seed: u64) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let (mut returned, mut timed_out) = (0, 0);
        for hd in self.handles {
            let (r, t) = hd.join().expect("client thread");
            returned += r;
            timed_out += t;
        }
        // Final reads, in the history: every acknowledged write must show.
        for key in KEYS {
            let op = Op::get(key);
            let id = self.h.invoke(100, op.clone());
            let l = last.req(&op_line(&op));
            let r = parse_reply(&mut last, &op, &l);
            eprintln!("{}: final {l}", self.tag);
            self.h.ret(id, r);
        }
        drop(last);
        let t_check = Instant::now();
        let verdict = check(&self.h);
        eprintln!("{}: check {:?}", self.tag, t_check.elapsed());
        assert!(
            verdict.is_ok(),
            "[{}] seed {seed}: {verdict}\nhistory: {:#?}",
            self.tag,
            self.h.operations()
        );
        Outcome {
            returned,
            timed_out,
            ops: self.h.len(),
        }
    }
}

/// One client's loop; returns (answered, unknown).
fn run_client(
    mut c: Client,
    ci: usize,
    mut rng: Rng,
    h: &History,
    stop: &AtomicBool,
) -> (usize, usize) {
    let (mut returned, mut timed_out) = (0usize, 0usize);
    let mut stopped_at: Option<Instant> = None;
    for j in 0..MAX_OPS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Spread the operations over the faults.
        std::thread::sleep(Duration::from_millis(rng.next() % 150));
        let key = KEYS[(rng.next() % KEYS.len() as u64) as usize];
        let val = format!("c{ci}.{j};");
        let op = match rng.next() % 100 {
            0..=29 => Op::get(key),
            30..=49 => Op::put(key, val),
            50..=74 => Op::append(key, val),
            75..=89 => Op::swap(key, val),
            _ => Op::delete(key),
        };
        let id = h.invoke(ci as u64, op.clone());
        c.send(&op_line(&op));
        let reply = loop {
            if let Some(l) = c.try_recv(Duration::from_millis(100)) {
                break Some(l);
            }
            if stop.load(Ordering::Relaxed) {
                let at = *stopped_at.get_or_insert_with(Instant::now);
                if at.elapsed() > DRAIN {
                    break None;
                }
            }
        };
        match reply {
            Some(l) => {
                h.ret(id, parse_reply(&mut c, &op, &l));
                returned += 1;
            }
            None => {
                // Unknown outcome; the client is killed when dropped.
                h.timeout(id);
                timed_out += 1;
                break;
            }
        }
    }
    (returned, timed_out)
}
