//! The checker against brute force (attacks on Incr, PutIf, Take, AppendLen and
//! Keys): small random single-key histories mixing every operation,
//! checked by `check` and by brute force over every real-time-respecting order.
//! On one key, a Keys is atomic, so both must agree exactly.

use diskv_sim::linearizability::{
    check, step, CheckResult, History, KeyOp, KeyRet, Op, Outcome, Ret, State,
};

#[derive(Clone, Debug)]
struct Ev {
    op: Op,
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

/// The store's own semantics (diskv::shard::Shard::apply), written again here
/// independently of the checker's model: the reply and the next state.
fn apply(state: &State, op: &Op) -> (Ret, State) {
    let s = state.clone();
    match op {
        Op::Get { .. } => (Ret::Value(s.clone()), s),
        Op::Put { value, .. } => (Ret::Existed(s.is_some()), Some(value.clone())),
        Op::Append { value, .. } => (
            Ret::Existed(s.is_some()),
            Some(format!("{}{}", s.as_deref().unwrap_or(""), value)),
        ),
        Op::Swap { value, .. } => (Ret::Value(s), Some(value.clone())),
        Op::Delete { .. } => (Ret::Existed(s.is_some()), None),
        Op::PutIf { value, absent, .. } => {
            let writes = if *absent { s.is_none() } else { s.is_some() };
            let next = if writes {
                Some(value.clone())
            } else {
                s.clone()
            };
            (Ret::Value(s), next)
        }
        Op::Take { .. } => (Ret::Value(s), None),
        Op::AppendLen { value, .. } => {
            let v = format!("{}{}", s.as_deref().unwrap_or(""), value);
            (Ret::Length(v.len() as u64), Some(v))
        }
        Op::Incr { by, .. } => {
            let n = match s.as_deref() {
                None => Some(0),
                Some(v) => v.parse::<i64>().ok().filter(|n| n.to_string() == v),
            };
            match n.and_then(|n| n.checked_add(*by)) {
                Some(sum) => (Ret::Counter(Some(sum)), Some(sum.to_string())),
                None => (Ret::Counter(None), s),
            }
        }
        Op::Keys { start, limit } => {
            let found = match &s {
                Some(_) if "k" >= start.as_str() && *limit >= 1 => vec!["k".to_string()],
                _ => vec![],
            };
            (Ret::Keys(found), s)
        }
        _ => unreachable!(),
    }
}

/// The store accepts reply `r` of `op` from `state` (brute force's own rule).
fn accepts(state: &State, op: &Op, r: &Option<Ret>) -> Option<State> {
    let (want, next) = apply(state, op);
    match r {
        None => Some(next),
        Some(r) if *r == want => Some(next),
        _ => None,
    }
}

fn brute(evs: &[Ev]) -> bool {
    fn go(evs: &[Ev], used: &mut Vec<bool>, state: &State, done: usize, need: usize) -> bool {
        if done == need {
            return true;
        }
        for i in 0..evs.len() {
            if used[i] {
                continue;
            }
            let blocked = (0..evs.len())
                .any(|j| !used[j] && j != i && evs[j].ret.is_some_and(|r| r < evs[i].call));
            if blocked {
                continue;
            }
            if let Some(next) = accepts(state, &evs[i].op, &evs[i].reply) {
                used[i] = true;
                let d = done + evs[i].ret.is_some() as usize;
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

fn random_op(rng: &mut Rng, with_keys: bool, zero: bool) -> Op {
    let v = || ["a", "b", "ab", "", "1", "-1"];
    match rng.below(if with_keys { 13 } else { 12 }) {
        0 => Op::get("k"),
        1 => Op::put("k", v()[rng.below(4) as usize]),
        2 => Op::append("k", v()[rng.below(4) as usize]),
        3 => Op::delete("k"),
        4 => Op::swap("k", v()[rng.below(4) as usize]),
        5 | 6 => Op::put_if("k", v()[rng.below(4) as usize], rng.below(2) == 0),
        7 => Op::take("k"),
        8 | 9 => Op::append_len("k", v()[rng.below(4) as usize]),
        10 => Op::incr("k", [1, -2, i64::MAX][rng.below(3) as usize]),
        11 => Op::put("k", v()[4 + rng.below(2) as usize]),
        _ => Op::keys(
            ["", "k", "l"][rng.below(3) as usize],
            if zero {
                rng.below(3) as u32
            } else {
                1 + rng.below(2) as u32
            },
        ),
    }
}

fn history(rng: &mut Rng, with_keys: bool, zero: bool) -> Vec<Ev> {
    let n = 2 + rng.below(5) as usize;
    let mut evs = Vec::new();
    for _ in 0..n {
        let call = rng.below(12);
        let len = 1 + rng.below(6);
        evs.push(Ev {
            op: random_op(rng, with_keys, zero),
            call,
            ret: Some(call + len),
            reply: None,
        });
    }
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
        let (ret, next) = apply(&state, &evs[i].op);
        state = next;
        evs[i].reply = Some(ret);
    }
    for e in evs.iter_mut() {
        match rng.below(10) {
            0 => {
                e.reply = Some(match e.reply.take().unwrap() {
                    Ret::Existed(b) => Ret::Existed(!b),
                    Ret::Value(None) => Ret::Value(Some("a".into())),
                    Ret::Value(Some(v)) if v == "a" => Ret::Value(Some("ab".into())),
                    Ret::Value(Some(_)) => Ret::Value(None),
                    Ret::Length(n) => Ret::Length(n + 1),
                    Ret::Counter(Some(n)) => Ret::Counter(Some(n.wrapping_add(1))),
                    Ret::Counter(None) => Ret::Counter(Some(0)),
                    Ret::Keys(k) if k.is_empty() => Ret::Keys(vec!["k".into()]),
                    Ret::Keys(_) => Ret::Keys(vec![]),
                    r => r,
                })
            }
            1 if e.op.is_write() => {
                e.reply = None;
                e.ret = None;
            }
            _ => {}
        }
    }
    evs
}

fn cross_check(seed: u64, rounds: usize, with_keys: bool, zero: bool) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut disagreements = Vec::new();
    for round in 0..rounds {
        let evs = history(&mut rng, with_keys, zero);
        // A Keys reply over its limit is refused up front by the checker, and is
        // impossible in the store, so do not produce one.
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
        let agree = match &got {
            CheckResult::Ok => want,
            CheckResult::Violation { .. } => !want,
            _ => true,
        };
        if !agree && disagreements.len() < 3 {
            disagreements.push(format!(
                "round {round}: brute force says {want}, check says {got}\n{evs:#?}"
            ));
        }
    }
    disagreements
}

#[test]
fn attack_checker_agrees_with_brute_force_on_incr_putif_take_appendlen() {
    let d = cross_check(0x2545f4914f6cdd1d, 60_000, false, false);
    assert!(d.is_empty(), "{}", d.join("\n\n"));
}

/// Keys with limits 1 and 2 (what the simulator's clients send).
#[test]
fn attack_checker_agrees_with_brute_force_with_keys_on_one_key() {
    let d = cross_check(0x9e3779b97f4a7c15, 60_000, true, false);
    assert!(d.is_empty(), "{}", d.join("\n\n"));
}

/// Keys with limit 0 too: the store answers `[]` (Shard::keys_from takes 0
/// keys, Clerk::keys merges nothing), which observes no key. The checker's
/// `expand_keys` reads an empty reply to limit 0 as "fewer than the limit came
/// back, so every key from `start` on is absent" and rejects legal histories.
#[test]
fn attack_checker_agrees_with_brute_force_with_keys_limit_zero() {
    let d = cross_check(0x9e3779b97f4a7c15, 60_000, true, true);
    assert!(d.is_empty(), "{}", d.join("\n\n"));
}

/// The model's `step` agrees with the store's semantics on every op and state.
#[test]
fn attack_model_step_matches_the_store() {
    for state in [
        None,
        Some(String::new()),
        Some("a".to_string()),
        Some("ab".into()),
    ] {
        for op in [
            Op::put_if("k", "b", true),
            Op::put_if("k", "b", false),
            Op::take("k"),
            Op::append_len("k", "xy"),
            Op::append_len("k", ""),
        ] {
            let (ret, next) = apply(&state, &op);
            let (kop, kret) = match (&op, &ret) {
                (Op::PutIf { value, absent, .. }, Ret::Value(v)) => (
                    KeyOp::PutIf(value.clone(), *absent),
                    KeyRet::Value(v.clone()),
                ),
                (Op::Take { .. }, Ret::Value(v)) => (KeyOp::Take, KeyRet::Value(v.clone())),
                (Op::AppendLen { value, .. }, Ret::Length(n)) => {
                    (KeyOp::AppendLen(value.clone()), KeyRet::Length(*n))
                }
                _ => unreachable!(),
            };
            assert_eq!(step(&state, &kop, &kret), Some(next), "{state:?} {op:?}");
        }
    }
}

// ---- several keys, with Keys pages: every history that an atomic store could
// produce must be accepted (the checker is allowed to accept more: a Keys is
// not atomic across shards in diskv) ------------------------------------------

type Map = std::collections::BTreeMap<String, String>;

fn apply_map(m: &Map, op: &Op) -> (Ret, Map) {
    let mut m = m.clone();
    let one = |m: &Map, k: &str, op: &Op| apply(&m.get(k).cloned(), op);
    let key = match op {
        Op::Get { key }
        | Op::Put { key, .. }
        | Op::Append { key, .. }
        | Op::Swap { key, .. }
        | Op::Delete { key }
        | Op::PutIf { key, .. }
        | Op::Take { key }
        | Op::AppendLen { key, .. } => key.clone(),
        Op::Keys { start, limit } => {
            let found: Vec<String> = m
                .range::<str, _>((
                    std::ops::Bound::Included(start.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take(*limit as usize)
                .map(|(k, _)| k.clone())
                .collect();
            return (Ret::Keys(found), m);
        }
        _ => unreachable!(),
    };
    // `apply` pretends the key is "k" for Keys only; here it is not used.
    let (r, next) = one(&m, &key, op);
    match next {
        Some(v) => m.insert(key, v),
        None => m.remove(&key),
    };
    (r, m)
}

fn brute_map(evs: &[Ev]) -> bool {
    fn go(evs: &[Ev], used: &mut Vec<bool>, m: &Map, done: usize, need: usize) -> bool {
        if done == need {
            return true;
        }
        for i in 0..evs.len() {
            if used[i] {
                continue;
            }
            let blocked = (0..evs.len())
                .any(|j| !used[j] && j != i && evs[j].ret.is_some_and(|r| r < evs[i].call));
            if blocked {
                continue;
            }
            let (want, next) = apply_map(m, &evs[i].op);
            if evs[i].reply.as_ref().is_none_or(|r| *r == want) {
                used[i] = true;
                if go(evs, used, &next, done + evs[i].ret.is_some() as usize, need) {
                    used[i] = false;
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let need = evs.iter().filter(|e| e.ret.is_some()).count();
    go(evs, &mut vec![false; evs.len()], &Map::new(), 0, need)
}

#[test]
fn attack_checker_accepts_every_atomic_history_with_keys_pages() {
    let mut rng = Rng(0xdeadbeefcafef00d);
    let mut bad = Vec::new();
    for round in 0..40_000 {
        let n = 2 + rng.below(5) as usize;
        let mut evs = Vec::new();
        for _ in 0..n {
            let key = ["a", "b", "c"][rng.below(3) as usize];
            let v = ["x", "y", "xy"][rng.below(3) as usize];
            let op = match rng.below(9) {
                0 => Op::get(key),
                1 => Op::put(key, v),
                2 => Op::delete(key),
                3 => Op::put_if(key, v, rng.below(2) == 0),
                4 => Op::take(key),
                5 => Op::append_len(key, v),
                _ => Op::keys(
                    ["", "a", "b", "bb", "c"][rng.below(5) as usize],
                    1 + rng.below(3) as u32,
                ),
            };
            let call = rng.below(12);
            evs.push(Ev {
                op,
                call,
                ret: Some(call + 1 + rng.below(6)),
                reply: None,
            });
        }
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
        let mut m = Map::new();
        for &(_, i) in &points {
            let (r, next) = apply_map(&m, &evs[i].op);
            m = next;
            evs[i].reply = Some(r);
        }
        for e in evs.iter_mut() {
            if rng.below(10) == 0 && e.op.is_write() {
                e.reply = None;
                e.ret = None;
            }
        }
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
        assert!(brute_map(&evs), "generator bug");
        let got = check(&h);
        if got.is_violation() && bad.len() < 3 {
            bad.push(format!("round {round}: {got}\n{evs:#?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

fn done(h: &History, call: u64, ret: u64, op: Op, reply: Ret) {
    h.record(
        0,
        op,
        call,
        Outcome::Returned {
            at: ret,
            ret: reply,
        },
    );
}

/// Crafted: Put(a) completes, then Keys("", 0) answers [] as the store does
/// (a limit of 0 takes no key). Linearizable; the checker says "a" was missing.
#[test]
fn attack_keys_limit_zero_reply_is_read_as_every_key_absent() {
    let h = History::new();
    done(&h, 0, 1, Op::put("a", "1"), Ret::Existed(false));
    done(&h, 2, 3, Op::keys("", 0), Ret::Keys(vec![]));
    let r = check(&h);
    assert!(r.is_ok(), "expected linearizable, got: {r}");
}

/// Crafted: a replica answers at most MAX_KEYS_PER_READ (10,000) keys whatever
/// the limit (Shard::keys_from, Clerk::keys). With 10,001 keys written, a
/// Keys("", 20,000) gets the first 10,000; the checker reads "fewer than the
/// limit" as "the rest are absent" and rejects the store's own answer.
#[test]
fn attack_keys_limit_over_max_keys_per_read_is_read_as_absence() {
    let h = History::new();
    let keys: Vec<String> = (0..10_001).map(|i| format!("k{i:05}")).collect();
    for (i, k) in keys.iter().enumerate() {
        done(
            &h,
            2 * i as u64,
            2 * i as u64 + 1,
            Op::put(k.clone(), "v"),
            Ret::Existed(false),
        );
    }
    let t = 2 * keys.len() as u64;
    let page = keys[..diskv::op::MAX_KEYS_PER_READ as usize].to_vec();
    done(&h, t, t + 1, Op::keys("", 20_000), Ret::Keys(page));
    let r = check(&h);
    assert!(r.is_ok(), "expected linearizable, got: {r}");
}
