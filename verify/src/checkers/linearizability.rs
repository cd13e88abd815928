//! Linearizability of the client history against the lock model, path by path, with the
//! Wing-Gong-Lowe search (as in Lowe's "Testing for linearizability" and porcupine): walk
//! the invocations in time order, linearize an operation whose invocation is at the front
//! when the model allows it, backtrack at the first response that cannot be passed, and
//! remember every (linearized set, state) pair already explored. Operations whose outcome
//! the client never learned were settled from the applied log first (`resolve.rs`), so
//! every operation here has a window and an outcome. A search that exceeds its budget is
//! undecided, and fails the run like a violation.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    Violation,
    lock_model::{PathState, ends_lease},
};
use crate::history::{Op, OpKind, Outcome};

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

/// Each operation's rank among the distinct tokens granted on the path (`None`: it
/// grants nothing). Tokens are granted in increasing order, so in every linearization the
/// first operation answered with a token comes after one answered with each lower token:
/// the search never linearizes a grant before all lower tokens have one. Without this,
/// many concurrent shared grants make the search try every subset of them.
fn token_ranks(ops: &[&Op]) -> (Vec<Option<usize>>, usize) {
    let token = |op: &Op| match op.outcome {
        Outcome::Granted { token } => Some(token),
        _ => None,
    };
    let mut tokens: Vec<u64> = ops.iter().filter_map(|op| token(op)).collect();
    tokens.sort_unstable();
    tokens.dedup();
    let ranks = ops
        .iter()
        .map(|op| token(op).map(|t| tokens.binary_search(&t).expect("collected above")))
        .collect();
    (ranks, tokens.len())
}

/// Which operations end a lease that no other operation of the same lease overlaps in
/// time: where its lease holds nothing on the path, such an end changes nothing any other
/// lease's operation can see, and every operation of its own lease is ordered before or
/// after it by real time, so it commutes with everything concurrent and can be taken
/// where first allowed, like a read. Without this, many concurrent revokes and expiries
/// of idle leases make the search try every subset of them.
fn lone_ends(ops: &[&Op]) -> Vec<bool> {
    let window =
        |op: &Op| (op.invoke_us, op.complete_us.expect("resolved operations have completed"));
    let mut per_lease: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        per_lease.entry(op.lease).or_default().push(i);
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            matches!(op.kind, OpKind::Revoke | OpKind::Expire { delays: false }) && {
                let (invoke, complete) = window(op);
                per_lease[&op.lease].iter().filter(|&&j| j != i).all(|&j| {
                    let (other_invoke, other_complete) = window(ops[j]);
                    other_complete < invoke || other_invoke > complete
                })
            }
        })
        .collect()
}

fn check_path(ops: &[&Op]) -> Result<(), String> {
    let mut events = Events::new(ops);
    let lone_ends = lone_ends(ops);
    let (ranks, tokens) = token_ranks(ops);
    // How many linearized operations carry each token; those above zero form a prefix.
    let mut granted = vec![0usize; tokens];
    let in_order = |granted: &[usize], op: usize| match ranks[op] {
        Some(rank) => rank == 0 || granted[rank - 1] > 0,
        None => true,
    };
    // The linearized set, as the XOR of its operations' random keys (Zobrist hashing):
    // with the state, what the search remembers. A whole set per state made memory grow
    // with the square of a long history. Two sets colliding in 64 bits (about one in 10^7
    // for 10^6 states) could only make the search skip a branch and fail a valid history,
    // never pass an invalid one: a passing search has built its linearization.
    let keys: Vec<u64> = (0..ops.len() as u64).map(zobrist).collect();
    let mut linearized = 0u64;
    // Per lease, how many of its ending operations are linearized.
    let mut ended: FxHashMap<i64, u32> = FxHashMap::default();
    let mut seen: FxHashSet<(u64, PathState)> = FxHashSet::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = PathState::default();
    let mut cursor = events.first();
    // The furthest the search got: (operations linearized, the response it could not pass).
    let mut deepest = (0, 0);
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
            let lease = ops[op].lease;
            let alive = ended.get(&lease).is_none_or(|n| *n == 0);
            let next = if in_order(&granted, op) { state.step(ops[op], alive) } else { None };
            // (Ending a lease changes what its other operations may do, even where the
            // path's state stays the same.)
            let greedy = (next.as_ref() == Some(&state) && !ends_lease(ops[op]))
                || (lone_ends[op] && state.held_by(lease).is_none());
            match next {
                Some(next) if greedy || seen.insert((linearized ^ keys[op], next.clone())) => {
                    linearized ^= keys[op];
                    if ends_lease(ops[op]) {
                        *ended.entry(lease).or_default() += 1;
                    }
                    let before = std::mem::replace(&mut state, next);
                    stack.push(Frame { op, before, greedy });
                    if let Some(rank) = ranks[op] {
                        granted[rank] += 1;
                    }
                    events.lift(op);
                    cursor = events.first();
                }
                _ => cursor = events.next[cursor],
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
            linearized ^= keys[frame.op];
            if ends_lease(ops[frame.op]) {
                *ended.get_mut(&ops[frame.op].lease).expect("counted when taken") -= 1;
            }
            if let Some(rank) = ranks[frame.op] {
                granted[rank] -= 1;
            }
            state = frame.before;
            if !frame.greedy {
                cursor = events.next[events.at[frame.op].0];
                break;
            }
        }
    }
    Ok(())
}

/// A random 64-bit key for operation `i` (SplitMix64: fixed, so runs stay reproducible).
fn zobrist(i: u64) -> u64 {
    let mut z = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use lockmgr_core::LockMode;

    use super::*;

    fn op(lease: i64, kind: OpKind, outcome: Outcome, invoke_us: u64, complete_us: u64) -> Op {
        Op {
            client: lease as usize,
            path: 0,
            lease,
            kind,
            outcome,
            request_id: 0,
            invoke_us,
            complete_us: Some(complete_us),
        }
    }

    fn lock(lease: i64, mode: LockMode, token: u64, at: (u64, u64)) -> Op {
        op(lease, OpKind::Lock { mode, wait: false }, Outcome::Granted { token }, at.0, at.1)
    }

    #[test]
    fn a_read_that_misses_an_acknowledged_grant_is_not_linearizable() {
        let history = [
            lock(1, LockMode::Exclusive, 10, (0, 5)),
            op(2, OpKind::Get, Outcome::Holders(vec![]), 6, 8),
        ];
        let violations = check(&history, &[], false);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("not linearizable"), "{violations:?}");
    }

    #[test]
    fn nothing_is_granted_during_a_lock_delay() {
        let expire = op(1, OpKind::Expire { delays: true }, Outcome::Done, 6, 7);
        let busy = op(2, OpKind::Lock { mode: LockMode::Shared, wait: false }, Outcome::Busy, 8, 9);
        let end = op(0, OpKind::EndLockDelay, Outcome::Done, 10, 11);
        let held = lock(1, LockMode::Exclusive, 10, (0, 5));
        let history = [held.clone(), expire.clone(), busy.clone(), end.clone()];
        assert!(check(&history, &[], false).is_empty(), "busy with no holder while delayed");
        let early = lock(2, LockMode::Exclusive, 20, (8, 9));
        let history = [held.clone(), expire.clone(), early, end.clone()];
        assert_eq!(check(&history, &[], false).len(), 1, "a grant before the delay ended");
        let late = lock(2, LockMode::Exclusive, 20, (12, 13));
        let history = [held, expire, busy, end, late];
        assert!(check(&history, &[], false).is_empty(), "granted once the delay ended");
    }

    #[test]
    fn a_fence_check_must_agree_with_the_holders() {
        let fence = |token, valid, current: Vec<u64>, at: u64| {
            op(3, OpKind::Fence { token }, Outcome::Fence { valid, current }, at, at + 1)
        };
        let unlock = op(1, OpKind::Unlock { token: 10 }, Outcome::Done, 6, 8);
        let granted = [lock(1, LockMode::Exclusive, 10, (0, 5)), unlock];
        let history: Vec<Op> =
            granted.iter().cloned().chain([fence(10, true, vec![10], 2)]).collect();
        assert!(check(&history, &[], false).is_empty(), "current while held");
        // After the release the token is stale: calling it valid is a lie.
        let history: Vec<Op> =
            granted.iter().cloned().chain([fence(10, true, vec![10], 9)]).collect();
        assert_eq!(check(&history, &[], false).len(), 1);
        let history: Vec<Op> =
            granted.iter().cloned().chain([fence(10, false, vec![], 9)]).collect();
        assert!(check(&history, &[], false).is_empty(), "stale after the release");
        // A never-granted token is never valid, even below the current one.
        let history = [lock(1, LockMode::Exclusive, 10, (0, 5)), fence(4, true, vec![10], 6)];
        assert_eq!(check(&history, &[], false).len(), 1);
    }

    #[test]
    fn grants_must_follow_token_order_in_real_time() {
        // The higher token was acknowledged before the lower one was asked for.
        let history =
            [lock(1, LockMode::Shared, 20, (0, 5)), lock(2, LockMode::Shared, 10, (6, 8))];
        assert_eq!(check(&history, &[], false).len(), 1);
        // Concurrent, either order of the calls is fine.
        let history =
            [lock(1, LockMode::Shared, 20, (0, 8)), lock(2, LockMode::Shared, 10, (1, 7))];
        assert!(check(&history, &[], false).is_empty());
    }

    #[test]
    fn many_concurrent_shared_grants_and_idle_ends_are_decided() {
        // 60 shared grants and 60 revokes of other, idle leases, all concurrent, then a read
        // of every holder: every subset would be 2^120 states; the token order and the
        // commuting ends keep the search linear.
        let mut history = Vec::new();
        for lease in 0..60 {
            history.push(lock(lease, LockMode::Shared, 100 + lease as u64, (0, 1_000)));
            history.push(op(1_000 + lease, OpKind::Revoke, Outcome::Done, 0, 1_000));
        }
        let holders = (0..60).map(|lease| (lease, LockMode::Shared, 100 + lease as u64)).collect();
        history.push(op(5_000, OpKind::Get, Outcome::Holders(holders), 1_001, 1_002));
        assert!(check(&history, &[], false).is_empty());
    }

    #[test]
    fn a_lease_is_gone_once_its_end_is_taken() {
        let revoke = op(1, OpKind::Revoke, Outcome::Done, 0, 5);
        // The grant overlaps the revoke: it must be taken first, though the revoke of a
        // lease holding nothing leaves the path as it is.
        let overlapping = lock(1, LockMode::Exclusive, 10, (1, 8));
        assert!(check(&[revoke.clone(), overlapping], &[], false).is_empty());
        let granted_after = lock(1, LockMode::Exclusive, 10, (6, 8));
        assert_eq!(check(&[revoke.clone(), granted_after], &[], false).len(), 1);
        let refused_after = op(
            1,
            OpKind::Lock { mode: LockMode::Exclusive, wait: false },
            Outcome::LeaseGone,
            6,
            8,
        );
        assert!(check(&[revoke.clone(), refused_after.clone()], &[], false).is_empty());
        // Concurrent with the revoke, the refusal can come after it.
        let concurrent = Op { invoke_us: 1, complete_us: Some(4), ..refused_after };
        assert!(check(&[revoke, concurrent], &[], false).is_empty());
    }

    #[test]
    fn a_long_history_is_decided() {
        // 30,000 operations on one path (what a 30-minute chaos run gives a hot path):
        // remembered states stay small, so memory grows with the history, not its square.
        let mut history = Vec::new();
        for lease in 0..10_000 {
            let t = lease as u64 * 10;
            history.push(lock(lease, LockMode::Exclusive, 1 + lease as u64, (t, t + 3)));
            let unlock = OpKind::Unlock { token: 1 + lease as u64 };
            history.push(op(lease, unlock, Outcome::Done, t + 2, t + 6));
            history.push(op(lease, OpKind::Revoke, Outcome::Done, t + 5, t + 12));
        }
        assert!(check(&history, &[], false).is_empty());
    }
}
