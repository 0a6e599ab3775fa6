//! Attack on the checker (review of Op::Incr): small random single-key histories
//! with Incr, integer Puts, Appends, Deletes, Swaps, Gets and unknown outcomes,
//! checked both by `check` and by brute force over every real-time-respecting
//! order. The two must agree: a disagreement is the checker being unsound
//! (accepting a non-linearizable history) or incomplete (rejecting a legal one).

use diskv_sim::linearizability::{
    check, step, CheckResult, History, KeyOp, KeyRet, Op, Outcome, Ret, State,
};

#[derive(Clone, Debug)]
struct Ev {
    op: Op,
    kop: KeyOp,
    kret: KeyRet,
    call: u64,
    ret: Option<u64>,
    reply: Option<Ret>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn key_of(op: &Op) -> KeyOp {
    match op {
        Op::Get { .. } => KeyOp::Get,
        Op::Put { value, .. } => KeyOp::Put(value.clone()),
        Op::Append { value, .. } => KeyOp::Append(value.clone()),
        Op::Swap { value, .. } => KeyOp::Swap(value.clone()),
        Op::Delete { .. } => KeyOp::Delete,
        Op::Incr { by, .. } => KeyOp::Incr(*by),
        _ => unreachable!(),
    }
}

fn kret_of(r: &Option<Ret>) -> KeyRet {
    match r {
        None => KeyRet::Any,
        Some(Ret::Value(v)) => KeyRet::Value(v.clone()),
        Some(Ret::Existed(e)) => KeyRet::Existed(*e),
        Some(Ret::Counter(c)) => KeyRet::Counter(*c),
        _ => unreachable!(),
    }
}

/// The reply `op` gets from `state` in the model, and the next state.
fn run(state: &State, op: &KeyOp) -> (Ret, State) {
    for r in [
        KeyRet::Value(state.clone()),
        KeyRet::Existed(state.is_some()),
    ] {
        if let Some(next) = step(state, op, &r) {
            let ret = match r {
                KeyRet::Value(v) => Ret::Value(v),
                KeyRet::Existed(e) => Ret::Existed(e),
                _ => unreachable!(),
            };
            return (ret, next);
        }
    }
    // Incr.
    for c in [None, Some(0i64)] {
        let _ = c;
    }
    let KeyOp::Incr(by) = op else { unreachable!() };
    let n = match state.as_deref() {
        None => Some(0i64),
        Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == v),
    };
    let sum = n.and_then(|n| n.checked_add(*by));
    let r = KeyRet::Counter(sum);
    let next = step(state, op, &r).expect("model accepts its own Incr");
    (Ret::Counter(sum), next)
}

/// Brute force: some order of a subset (every op with a reply, any of the
/// unknown ones) that respects real time explains every reply.
fn brute(evs: &[Ev]) -> bool {
    fn go(
        evs: &[Ev],
        used: &mut Vec<bool>,
        state: &State,
        done_with_reply: usize,
        need: usize,
    ) -> bool {
        if done_with_reply == need {
            return true;
        }
        for i in 0..evs.len() {
            if used[i] {
                continue;
            }
            // i may go next only if every unused op with a reply that returned
            // strictly before i's call is placed already.
            let blocked = (0..evs.len())
                .any(|j| !used[j] && j != i && evs[j].ret.is_some_and(|r| r < evs[i].call));
            if blocked {
                continue;
            }
            if let Some(next) = step(state, &evs[i].kop, &evs[i].kret) {
                used[i] = true;
                let d = done_with_reply + evs[i].ret.is_some() as usize;
                if go(evs, used, &next, d, need) {
                    used[i] = false;
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let need = evs.iter().filter(|e| e.ret.is_some()).count();
    go(evs, &mut vec![false; evs.len()], &None, 0, need)
}

fn random_op(rng: &mut Rng, i: usize) -> Op {
    match rng.below(8) {
        0 | 1 => Op::get("k"),
        2 => Op::put("k", (rng.below(5) as i64 - 1).to_string()),
        3 => Op::append("k", ["0", "1", "x", "-"][rng.below(4) as usize]),
        4 => Op::delete("k"),
        5 => Op::swap("k", format!("{}", rng.below(3))),
        6 => Op::put(
            "k",
            if i.is_multiple_of(2) {
                i64::MAX.to_string()
            } else {
                "01".into()
            },
        ),
        _ => Op::incr("k", rng.below(5) as i64 - 2),
    }
}

fn history(rng: &mut Rng) -> Vec<Ev> {
    let n = 2 + rng.below(5) as usize;
    // A real execution: each op takes effect at one instant inside its interval.
    let mut evs = Vec::new();
    for i in 0..n {
        let call = rng.below(12);
        let len = 1 + rng.below(6);
        let op = random_op(rng, i);
        let kop = key_of(&op);
        evs.push(Ev {
            op,
            kop,
            kret: KeyRet::Any,
            call,
            ret: Some(call + len),
            reply: None,
        });
    }
    // Linearize at a random point in each interval (ties broken by index).
    let mut points: Vec<(u64, usize)> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (
                e.call * 10 + 1 + rng.below((e.ret.unwrap() - e.call) * 10 - 1),
                i,
            )
        })
        .collect();
    points.sort();
    let mut state: State = None;
    for &(_, i) in &points {
        let (ret, next) = run(&state, &evs[i].kop);
        state = next;
        evs[i].reply = Some(ret);
    }
    // Sometimes corrupt one reply, sometimes lose some outcomes.
    for e in evs.iter_mut() {
        match rng.below(10) {
            0 => {
                e.reply = Some(match e.reply.take().unwrap() {
                    Ret::Counter(Some(n)) => Ret::Counter(Some(n.wrapping_add(1))),
                    Ret::Counter(None) => Ret::Counter(Some(0)),
                    Ret::Existed(b) => Ret::Existed(!b),
                    Ret::Value(None) => Ret::Value(Some("0".into())),
                    Ret::Value(Some(_)) => Ret::Value(None),
                    r => r,
                })
            }
            1 if e.op.is_write() => {
                e.reply = None;
                e.ret = None;
            }
            _ => {}
        }
        e.kret = kret_of(&e.reply);
    }
    evs
}

#[test]
fn attack_checker_agrees_with_brute_force_on_incr_histories() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut disagreements = Vec::new();
    let (mut ok, mut bad) = (0, 0);
    for round in 0..60_000 {
        let evs = history(&mut rng);
        let h = History::new();
        for e in &evs {
            let outcome = match (&e.ret, &e.reply) {
                (Some(at), Some(r)) => Outcome::Returned {
                    at: *at,
                    ret: r.clone(),
                },
                _ => Outcome::TimedOut,
            };
            h.record(0, e.op.clone(), e.call, outcome);
        }
        let want = brute(&evs);
        let got = check(&h);
        if want {
            ok += 1
        } else {
            bad += 1
        }
        let agree = match &got {
            CheckResult::Ok => want,
            CheckResult::Violation { .. } => !want,
            _ => true,
        };
        if !agree && disagreements.len() < 5 {
            disagreements.push(format!(
                "round {round}: brute force says {want}, check says {got}\n{evs:#?}"
            ));
        }
    }
    println!("{ok} linearizable, {bad} not");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}
