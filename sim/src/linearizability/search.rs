//! The search (Wing & Gong, with Lowe's memoization) for an order of one key's
//! operations that explains every reply.

use super::model::{legal, reachable, step, KeyEvent, KeyOp, State};
use super::options::CheckOptions;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How many possible values an explanation shows at most (the search records
/// no more for the event it watches).
pub(super) const MAX_SHOWN_STATES: usize = 12;

/// Budget of one search.
pub(super) struct Limits {
    pub(super) max_steps: u64,
    pub(super) max_time: Duration,
    pub(super) max_memory: usize,
}

impl Limits {
    pub(super) fn new(options: &CheckOptions) -> Limits {
        Limits {
            max_steps: options.max_steps,
            max_time: options.max_time,
            max_memory: options.max_memory,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Linearizable,
    Violation,
    /// Out of budget.
    Exhausted,
}

pub(super) struct SearchResult {
    pub(super) verdict: Verdict,
    /// With a watched event: each state from which it was tried, and whether its reply
    /// was possible there.
    pub(super) tried: BTreeMap<State, bool>,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// An entry of the event list: the call or the return of `events[event]`.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    event: usize,
    /// For a call: the node of its return. For a return: `NIL`.
    ret: usize,
}

/// Calls and returns of the operations with a reply in time order, as a doubly linked
/// list that can take out an operation (its call and return) and put it back in O(1).
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    fn new(events: &[KeyEvent]) -> EventList {
        // Sort by time; at equal times calls come first, so touching intervals overlap.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * events.len());
        for (i, e) in events.iter().enumerate() {
            if let Some(ret_at) = e.ret_at {
                order.push((e.call, false, i));
                order.push((ret_at, true, i));
            }
        }
        order.sort_unstable();
        let n = order.len();
        let mut nodes = vec![Node {
            prev: NIL,
            next: if n > 0 { 1 } else { NIL },
            event: NIL,
            ret: NIL,
        }];
        let mut ret_node = vec![NIL; events.len()];
        for (pos, &(_, is_return, event)) in order.iter().enumerate() {
            let index = pos + 1;
            if is_return {
                ret_node[event] = index;
            }
            let next = if index < n { index + 1 } else { NIL };
            nodes.push(Node {
                prev: index - 1,
                next,
                event,
                ret: NIL,
            });
        }
        for (pos, &(_, is_return, event)) in order.iter().enumerate() {
            if !is_return {
                nodes[pos + 1].ret = ret_node[event];
            }
        }
        EventList { nodes }
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn is_call(&self, node: usize) -> bool {
        self.nodes[node].ret != NIL
    }

    fn unlink(&mut self, x: usize) {
        let Node { prev, next, .. } = self.nodes[x];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, x: usize) {
        let Node { prev, next, .. } = self.nodes[x];
        self.nodes[prev].next = x;
        if next != NIL {
            self.nodes[next].prev = x;
        }
    }

    /// Takes the operation of call node `call` out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.nodes[call].ret);
    }

    /// Undoes the latest `lift`, which must have been of `call`.
    fn unlift(&mut self, call: usize) {
        self.relink(self.nodes[call].ret);
        self.relink(call);
    }
}

/// Gives each distinct state a small number, so the memo stores numbers, not strings.
#[derive(Default)]
struct States {
    ids: HashMap<State, u32>,
    values: Vec<State>,
}

impl States {
    fn id(&mut self, s: State) -> u32 {
        if let Some(&id) = self.ids.get(&s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(s.clone());
        self.ids.insert(s, id);
        id
    }
}

/// Searches for a linearization of one key's events. With `watch`, also records the
/// states from which that event was tried (for explanations).
pub(super) fn search(events: &[KeyEvent], limits: &Limits, watch: Option<usize>) -> SearchResult {
    let mut search = Search::new(events, watch);
    let verdict = search.run(limits);
    SearchResult {
        verdict,
        tried: search.tried,
    }
}

/// Where the enumeration of candidates at the current configuration stands. The
/// candidates are the operations not placed yet whose call comes before the first
/// return still in the list; they are tried in three passes: reads, then the other
/// operations with a reply (earliest return first), then unknown outcomes.
#[derive(Clone, Copy, Debug)]
enum Cursor {
    /// At this list node, looking for reads.
    Reads(usize),
    /// At this index of the current `Level::writes`.
    Writes(usize),
    /// At this position of `Search::unknown`.
    Unknown(usize),
}

/// The candidates of one configuration on the current path, for the last two passes.
struct Level {
    /// How many operations were placed in its configuration.
    depth: usize,
    /// Call nodes of the candidates other than reads, earliest return first.
    writes: Vec<usize>,
    /// Time of the first return in the list: unknown outcomes called after it are not
    /// candidates yet.
    deadline: u64,
}

/// One placed operation, to undo it.
struct Frame {
    event: usize,
    /// Its call node in the list, or `NIL` for an unknown outcome.
    node: usize,
    /// Its position in `Search::unknown`, for an unknown outcome.
    pos: usize,
    before: u32,
    /// A read placed as soon as it was legal: if it fails, so does the configuration
    /// before it, and no other candidate needs trying there.
    forced: bool,
    resume: Cursor,
}

enum Placement {
    Placed,
    /// The model rejects the reply from the current state.
    Illegal,
    /// The resulting configuration, or one that dominates it, was already explored.
    Seen,
}

/// The state of one search. A configuration is (placed operations, model state).
///
/// Candidates are tried earliest return first. Beyond Lowe's algorithm, three sound
/// prunings keep histories with many concurrent reads, concurrent appends or many
/// unknown outcomes tractable:
/// * A read that is a candidate and legal now is placed now, with no alternative tried:
///   in any completion, moving it here breaks no real-time constraint and changes no
///   state.
/// * A configuration is dropped as soon as some candidate's reply is illegal now and
///   cannot become legal with the operations that may still come before its return
///   (see [`reachable`]), instead of when that return is reached.
/// * Operations with unknown outcomes are tried last, and configuration A dominates B
///   if they placed the same operations with replies, are in the same state, and A
///   placed a subset of B's unknown ones: whatever completes B completes A (with the
///   extra unknown ones placed at the end). A configuration is skipped if one that
///   dominates it was seen. The search succeeds once every operation with a reply is
///   placed.
struct Search<'a> {
    events: &'a [KeyEvent],
    /// Calls and returns of the operations with a reply.
    list: EventList,
    /// Operations with unknown outcomes, by call time.
    unknown: Vec<usize>,
    states: States,
    state: u32,
    /// Placed operations with a reply, by event index.
    placed: Vec<u64>,
    /// Placed unknown outcomes, by position in `unknown`.
    placed_unknown: Vec<u64>,
    /// Configurations seen: for each state and set of placed operations with a reply,
    /// the minimal sets of unknown outcomes placed with them.
    seen: HashMap<u32, HashMap<Vec<u64>, Vec<Vec<u64>>>>,
    /// Approximate bytes held by `seen`.
    seen_bytes: usize,
    frames: Vec<Frame>,
    levels: Vec<Level>,
    watch: Option<usize>,
    tried: BTreeMap<State, bool>,
}

impl<'a> Search<'a> {
    fn new(events: &'a [KeyEvent], watch: Option<usize>) -> Search<'a> {
        let mut unknown: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].ret_at.is_none())
            .collect();
        unknown.sort_by_key(|&i| (events[i].call, i));
        let mut states = States::default();
        let state = states.id(None);
        Search {
            events,
            list: EventList::new(events),
            placed: vec![0; events.len().div_ceil(64)],
            placed_unknown: vec![0; unknown.len().div_ceil(64)],
            unknown,
            states,
            state,
            seen: HashMap::new(),
            seen_bytes: 0,
            frames: Vec::new(),
            levels: Vec::new(),
            watch,
            tried: BTreeMap::new(),
        }
    }

    fn run(&mut self, limits: &Limits) -> Verdict {
        let started = Instant::now();
        let mut cursor = Cursor::Reads(self.list.first());
        let mut steps = 0u64;
        loop {
            if self.list.first() == NIL {
                return Verdict::Linearizable; // everything with a reply is placed
            }
            steps += 1;
            if steps > limits.max_steps
                || self.seen_bytes > limits.max_memory
                || (steps & 4095 == 0 && started.elapsed() > limits.max_time)
            {
                return Verdict::Exhausted;
            }
            // Pick the next candidate; `cursor` moves past it. `node` is never NIL in
            // the first two passes: a call's return is always after it in the list.
            let list = &self.list;
            let (event, node, pos, forced) = match cursor {
                Cursor::Reads(node) if list.is_call(node) => {
                    cursor = Cursor::Reads(list.nodes[node].next);
                    let event = list.nodes[node].event;
                    let e = &self.events[event];
                    if e.op == KeyOp::Get {
                        (event, node, NIL, true)
                    } else {
                        // Others are tried later, but one whose reply can never become
                        // legal dooms this configuration now.
                        let state = &self.states.values[self.state as usize];
                        let now = legal(state, &e.op, &e.ret);
                        self.note_tried(event, now);
                        if !now && !self.can_become_legal(node) {
                            match self.backtrack() {
                                Some(resume) => cursor = resume,
                                None => return Verdict::Violation,
                            }
                        }
                        continue;
                    }
                }
                Cursor::Reads(first_return) => {
                    let level = self.level(first_return);
                    self.levels.push(level);
                    cursor = Cursor::Writes(0);
                    continue;
                }
                Cursor::Writes(i) => match self.levels.last().and_then(|l| l.writes.get(i)) {
                    Some(&node) => {
                        cursor = Cursor::Writes(i + 1);
                        (list.nodes[node].event, node, NIL, false)
                    }
                    None => {
                        cursor = Cursor::Unknown(0);
                        continue;
                    }
                },
                Cursor::Unknown(pos) => match self.unknown.get(pos) {
                    Some(&event)
                        if Some(self.events[event].call)
                            <= self.levels.last().map(|l| l.deadline) =>
                    {
                        cursor = Cursor::Unknown(pos + 1);
                        if get(&self.placed_unknown, pos) {
                            continue;
                        }
                        (event, NIL, pos, false)
                    }
                    _ => {
                        // No candidate left: this configuration fails.
                        match self.backtrack() {
                            Some(resume) => cursor = resume,
                            None => return Verdict::Violation,
                        }
                        continue;
                    }
                },
            };
            let doomed = match self.place(event, node, pos, forced, cursor) {
                Placement::Placed => {
                    cursor = Cursor::Reads(self.list.first());
                    false
                }
                Placement::Seen => forced,
                Placement::Illegal => forced && !self.can_become_legal(node),
            };
            if doomed {
                match self.backtrack() {
                    Some(resume) => cursor = resume,
                    None => return Verdict::Violation,
                }
            }
        }
    }

    /// Places `event` if the model accepts its reply and the configuration is new.
    fn place(
        &mut self,
        event: usize,
        node: usize,
        pos: usize,
        forced: bool,
        resume: Cursor,
    ) -> Placement {
        let e = &self.events[event];
        let next = step(&self.states.values[self.state as usize], &e.op, &e.ret);
        self.note_tried(event, next.is_some());
        let Some(next) = next else {
            return Placement::Illegal;
        };
        let next = self.states.id(next);
        self.mark(event, node, pos, true);
        if !self.remember(next) {
            self.mark(event, node, pos, false);
            return Placement::Seen;
        }
        self.frames.push(Frame {
            event,
            node,
            pos,
            before: self.state,
            forced,
            resume,
        });
        self.state = next;
        if node != NIL {
            self.list.lift(node);
        }
        Placement::Placed
    }

    /// For explanations: `event` was tried from the current state; `legal` tells whether
    /// its reply was possible there.
    fn note_tried(&mut self, event: usize, legal: bool) {
        if self.watch == Some(event) && self.tried.len() < MAX_SHOWN_STATES {
            let state = &self.states.values[self.state as usize];
            let entry = self.tried.entry(state.clone()).or_insert(false);
            *entry |= legal;
        }
    }

    /// Whether the operation of call node `call`, not placed yet, could still reply as it
    /// did: some of the operations that may come before its return could make it legal.
    fn can_become_legal(&self, call: usize) -> bool {
        let list = &self.list;
        let e = &self.events[list.nodes[call].event];
        let mut available = Vec::new();
        let mut node = list.first();
        while node != list.nodes[call].ret && node != NIL {
            if list.is_call(node) && node != call {
                available.push(&self.events[list.nodes[node].event].op);
            }
            node = list.nodes[node].next;
        }
        for (pos, &u) in self.unknown.iter().enumerate() {
            if Some(self.events[u].call) > e.ret_at {
                break;
            }
            if !get(&self.placed_unknown, pos) {
                available.push(&self.events[u].op);
            }
        }
        reachable(&self.states.values[self.state as usize], &e.ret, &available)
    }

    /// The candidates of the current configuration for the last two passes;
    /// `first_return` is the first return node in the list.
    fn level(&self, first_return: usize) -> Level {
        let list = &self.list;
        let mut writes = Vec::new();
        let mut node = list.first();
        while node != first_return {
            if self.events[list.nodes[node].event].op != KeyOp::Get {
                writes.push(node);
            }
            node = list.nodes[node].next;
        }
        writes.sort_by_key(|&n| (self.events[list.nodes[n].event].ret_at, n));
        let deadline = self.events[list.nodes[first_return].event]
            .ret_at
            .unwrap_or(u64::MAX);
        Level {
            depth: self.frames.len(),
            writes,
            deadline,
        }
    }

    /// Undoes placements up to and including the latest one not forced, and returns
    /// where to resume there; `None` when there is nothing left to undo.
    fn backtrack(&mut self) -> Option<Cursor> {
        while let Some(f) = self.frames.pop() {
            while self
                .levels
                .last()
                .is_some_and(|l| l.depth > self.frames.len())
            {
                self.levels.pop();
            }
            self.state = f.before;
            self.mark(f.event, f.node, f.pos, false);
            if f.node != NIL {
                self.list.unlift(f.node);
            }
            if !f.forced {
                return Some(f.resume);
            }
        }
        None
    }

    fn mark(&mut self, event: usize, node: usize, pos: usize, on: bool) {
        if node != NIL {
            set(&mut self.placed, event, on);
        } else {
            set(&mut self.placed_unknown, pos, on);
        }
    }

    /// Records the current placed sets with `state`; false if a configuration that
    /// dominates it was seen.
    fn remember(&mut self, state: u32) -> bool {
        // Rough sizes: a bitset's words plus the vector and hash table entry around it.
        let unknown_bytes = 8 * self.placed_unknown.len() + 32;
        let by_placed = self.seen.entry(state).or_default();
        let Some(minimal) = by_placed.get_mut(self.placed.as_slice()) else {
            by_placed.insert(self.placed.clone(), vec![self.placed_unknown.clone()]);
            self.seen_bytes += 8 * self.placed.len() + 64 + unknown_bytes;
            return true;
        };
        if minimal.iter().any(|u| is_subset(u, &self.placed_unknown)) {
            return false;
        }
        minimal.retain(|u| !is_subset(&self.placed_unknown, u));
        minimal.push(self.placed_unknown.clone());
        self.seen_bytes += unknown_bytes;
        true
    }
}

fn get(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn set(bits: &mut [u64], i: usize, on: bool) {
    if on {
        bits[i / 64] |= 1 << (i % 64);
    } else {
        bits[i / 64] &= !(1 << (i % 64));
    }
}

fn is_subset(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x & !y == 0)
}
