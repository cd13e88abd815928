//! Linearizability of the client history against the lock model, path by path, with the
//! Wing-Gong-Lowe search (as in Lowe's "Testing for linearizability" and porcupine): walk
//! the invocations in time order, linearize an operation whose invocation is at the front
//! when the model allows it, backtrack at the first response that cannot be passed, and
//! remember every (linearized set, state) pair already explored. Operations whose outcome
//! the client never learned were settled from the applied log first (`resolve.rs`), so
//! every operation here has a window and an outcome. A search that exceeds its budget is
//! undecided, and fails the run like a violation.

use std::collections::{BTreeMap, HashSet};

use super::{Violation, lock_model::PathState};
use crate::history::Op;

const NAME: &str = "linearizability";

/// How many (set, state) pairs one path may explore before the search gives up.
pub const STATES_MAX: usize = 2_000_000;

/// With `dump`, a failing path's history is printed, in invocation order.
pub fn check(operations: &[Op], expiries: &[Op], dump: bool) -> Vec<Violation> {
    let mut per_path: BTreeMap<usize, Vec<&Op>> = BTreeMap::new();
    for op in operations.iter().chain(expiries) {
        per_path.entry(op.path).or_default().push(op);
    }
    per_path
        .into_iter()
        .filter_map(|(path, mut ops)| {
            check_path(&ops).err().map(|message| {
                if dump {
                    ops.sort_by_key(|op| op.invoke_us);
                    println!("history of path {path}:");
                    for op in &ops {
                        println!(
                            "  {:>12} {:>12?} client {:>4} lease {:>4} {:?} -> {:?}",
                            op.invoke_us, op.complete_us, op.client, op.lease, op.kind, op.outcome
                        );
                    }
                }
                Violation::new(NAME, format!("path {path} ({} operations): {message}", ops.len()))
            })
        })
        .collect()
}

struct Event {
    op: usize,
    call: bool,
}

/// A doubly linked list of events; `HEAD` is the sentinel at index `len`.
struct Events {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Each operation's call and return positions.
    at: Vec<(usize, usize)>,
}

impl Events {
    fn new(ops: &[&Op]) -> Events {
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            order.push((op.invoke_us, false, i));
            let complete_us = op.complete_us.expect("resolved operations have completed");
            order.push((complete_us, true, i));
        }
        // Calls sort before returns at the same instant: such operations overlap.
        order.sort_unstable();
        let len = order.len();
        let mut at = vec![(0, 0); ops.len()];
        let events = order
            .iter()
            .enumerate()
            .map(|(position, &(_, is_return, op))| {
                if is_return {
                    at[op].1 = position;
                } else {
                    at[op].0 = position;
                }
                Event { op, call: !is_return }
            })
            .collect();
        let next = (0..=len).map(|i| if i == len { 0 } else { i + 1 }).collect();
        let prev = (0..=len).map(|i| if i == 0 { len } else { i - 1 }).collect();
        Events { events, next, prev, at }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    fn first(&self) -> usize {
        self.next[self.head()]
    }

    fn unlink(&mut self, x: usize) {
        let (prev, next) = (self.prev[x], self.next[x]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn relink(&mut self, x: usize) {
        let (prev, next) = (self.prev[x], self.next[x]);
        self.next[prev] = x;
        self.prev[next] = x;
    }

    fn lift(&mut self, op: usize) {
        let (call, ret) = self.at[op];
        self.unlink(call);
        self.unlink(ret);
    }

    fn unlift(&mut self, op: usize) {
        let (call, ret) = self.at[op];
        self.relink(ret);
        self.relink(call);
    }
}

struct Frame {
    op: usize,
    before: PathState,
    /// Taken where first allowed, without loss of generality: never retried later.
    greedy: bool,
}

fn check_path(ops: &[&Op]) -> Result<(), String> {
    let mut events = Events::new(ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, PathState)> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = PathState::default();
    let mut cursor = events.first();
    // The furthest the search got: (operations linearized, the response it could not pass).
    let mut deepest = (0, 0);
    let flip = |set: &mut Vec<u64>, op: usize| set[op / 64] ^= 1 << (op % 64);
    while events.first() != events.head() {
        if seen.len() > STATES_MAX {
            return Err(format!(
                "undecided: more than {STATES_MAX} states explored; the longest linearized prefix ({} operations) could not pass {:?}",
                deepest.0, ops[deepest.1]
            ));
        }
        let event = &events.events[cursor];
        let op = event.op;
        if event.call {
            // An operation that leaves the state as it is, taken where it is allowed, can
            // be taken first without loss: nothing after it sees a difference. So when
            // the search backs up past it, it never tries it later (Lowe's observation for
            // reads; here also busy try-locks, time-outs, refusals).
            let next = state.step(ops[op]);
            let greedy = next.as_ref() == Some(&state);
            flip(&mut linearized, op);
            match next {
                Some(next) if greedy || seen.insert((linearized.clone(), next.clone())) => {
                    let before = std::mem::replace(&mut state, next);
                    stack.push(Frame { op, before, greedy });
                    events.lift(op);
                    cursor = events.first();
                }
                _ => {
                    flip(&mut linearized, op);
                    cursor = events.next[cursor];
                }
            }
            continue;
        }
        // A response whose operation is not linearized yet: undo the last choice, and any
        // greedy ones above it, then try the undone operation later.
        if stack.len() >= deepest.0 {
            deepest = (stack.len(), op);
        }
        loop {
            let Some(frame) = stack.pop() else {
                return Err(format!(
                    "not linearizable; the longest linearized prefix ({} operations) cannot pass {:?}",
                    deepest.0, ops[deepest.1]
                ));
            };
            events.unlift(frame.op);
            flip(&mut linearized, frame.op);
            state = frame.before;
            if !frame.greedy {
                cursor = events.next[events.at[frame.op].0];
                break;
            }
        }
    }
    Ok(())
}
