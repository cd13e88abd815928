//! Property tests: random command sequences, checked after every step.
//!
//! - fencing: revisions rise by one per event; tokens strictly increase per path and
//!   globally, and are never issued twice;
//! - mutual exclusion, replayed from the events alone: an exclusive grant is never live
//!   beside another grant of its path;
//! - FIFO: a waiter is granted only when every waiter queued before it on that path has
//!   been granted or removed;
//! - a revoked or expired lease holds and waits for nothing;
//! - snapshot -> restore -> continue answers exactly as never snapshotting;
//! - the snapshot decoder survives arbitrary bytes.

mod support;

use std::collections::{BTreeMap, VecDeque};

use lockmgr_core::{
    CancelReason, Command, Event, LeaseCheckpoint, LeaseId, Limits, LockMode, LockPath,
    LockRequest, Reply, StateMachine, WatchEventKind,
};
use proptest::prelude::*;
use support::path;

const PATHS: [&str; 4] = ["/a", "/a/b", "/c", "/d/e/f"];

#[derive(Clone, Debug)]
enum Op {
    Grant {
        ttl_ms: u64,
    },
    Revoke {
        lease: usize,
    },
    Expire {
        lease: usize,
    },
    Lock {
        path: usize,
        lease: usize,
        /// 0 exclusive, 1 shared, 2 and 3 a semaphore of that many permits.
        mode: u32,
        wait: bool,
        request_id: u64,
    },
    /// Unlock with the lease's current token (or a wrong one).
    Unlock {
        path: usize,
        lease: usize,
        right_token: bool,
        request_id: u64,
    },
    /// Cancel the lease's current wait (or a made-up one).
    Cancel {
        path: usize,
        lease: usize,
        real: bool,
        timeout: bool,
    },
    EndDelay {
        path: usize,
    },
    /// Proclaim a new value with the lease's current token (or a wrong one).
    Proclaim {
        path: usize,
        lease: usize,
        right_token: bool,
    },
    Checkpoint {
        lease: usize,
        remaining_ttl_ms: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // An index into the live leases (an index past them names a lease that never was).
    let lease = 0..5usize;
    let path = 0..PATHS.len();
    prop_oneof![
        2 => (0..20_000u64).prop_map(|ttl_ms| Op::Grant { ttl_ms }),
        1 => (lease.clone(), any::<bool>()).prop_map(|(lease, expire)| if expire {
            Op::Expire { lease }
        } else {
            Op::Revoke { lease }
        }),
        8 => (path.clone(), lease.clone(), 0..4u32, any::<bool>(), 0..6u64).prop_map(
            |(path, lease, mode, wait, request_id)| Op::Lock { path, lease, mode, wait, request_id }
        ),
        1 => (path.clone(), lease.clone(), any::<bool>())
            .prop_map(|(path, lease, right_token)| Op::Proclaim { path, lease, right_token }),
        5 => (path.clone(), lease.clone(), prop::bool::weighted(0.9), 0..6u64).prop_map(
            |(path, lease, right_token, request_id)| Op::Unlock { path, lease, right_token, request_id }
        ),
        2 => (path.clone(), lease.clone(), prop::bool::weighted(0.9), any::<bool>())
            .prop_map(|(path, lease, real, timeout)| Op::Cancel { path, lease, real, timeout }),
        1 => path.prop_map(|path| Op::EndDelay { path }),
        1 => (lease, prop::option::of(0..30_000u64))
            .prop_map(|(lease, remaining_ttl_ms)| Op::Checkpoint { lease, remaining_ttl_ms }),
    ]
}

fn limits(lock_delay_ms: u64) -> Limits {
    Limits {
        waiters_per_path_max: 4,
        locks_per_lease_max: 4,
        leases_max: 5,
        request_window_per_lease: 4,
        lock_delay_ms,
        ..Limits::default()
    }
}

/// Request ids: 0 (no de-duplication), a fresh id, or a retry of the last one.
fn pick_request_id(choice: u64, last_request_id: &mut u64) -> u64 {
    match choice {
        0 => 0,
        1..=3 => {
            *last_request_id += 1;
            *last_request_id
        }
        _ => *last_request_id,
    }
}

/// Turns an op into a command, reading the state for "the current token / wait".
fn command(sm: &StateMachine, op: &Op, last_request_id: &mut u64) -> Command {
    let lock_path = |index: usize| path(PATHS[index]);
    let live: Vec<LeaseId> = sm.leases(None, usize::MAX).into_iter().map(|l| l.lease_id).collect();
    let lease_id = |index: usize| live.get(index).copied().unwrap_or(LeaseId(1_000 + index as i64));
    match *op {
        Op::Grant { ttl_ms } => Command::GrantLease { ttl_ms },
        Op::Revoke { lease } => Command::RevokeLease { lease_id: lease_id(lease) },
        Op::Expire { lease } => Command::ExpireLease { lease_id: lease_id(lease) },
        Op::Lock { path, lease, mode, wait, request_id: request_id_choice } => {
            Command::Lock(LockRequest {
                path: lock_path(path),
                lease_id: lease_id(lease),
                mode: match mode {
                    0 => LockMode::Exclusive,
                    1 => LockMode::Shared,
                    permits => LockMode::Semaphore { permits },
                },
                wait_timeout_ms: if wait { 1_000 } else { 0 },
                holder_id: format!("h{}", lease_id(lease)),
                request_id: pick_request_id(request_id_choice, last_request_id),
            })
        }
        Op::Unlock { path, lease, right_token, request_id } => {
            // Mostly unlock something the lease holds.
            let held = sm.lease(lease_id(lease)).map(|view| view.held).unwrap_or_default();
            let path = match held.get(path % held.len().max(1)) {
                Some(held) if right_token => {
                    PATHS.iter().position(|p| *p == held.as_str()).unwrap()
                }
                _ => path,
            };
            let view = sm.lock(&lock_path(path));
            let held =
                view.and_then(|v| v.holders.into_iter().find(|h| h.lease_id == lease_id(lease)));
            let token = match held {
                Some(holder) if right_token => holder.token,
                Some(holder) => holder.token + 1,
                None => sm.revision(),
            };
            let request_id = pick_request_id(request_id, last_request_id);
            Command::Unlock { path: lock_path(path), lease_id: lease_id(lease), token, request_id }
        }
        Op::Cancel { path, lease, real, timeout } => {
            let view = sm.lock(&lock_path(path));
            let waiting =
                view.and_then(|v| v.waiters.into_iter().find(|w| w.lease_id == lease_id(lease)));
            let queued_revision = match waiting {
                Some(waiter) if real => waiter.queued_revision,
                _ => sm.revision() + 1,
            };
            let reason = if timeout { CancelReason::WaitTimeout } else { CancelReason::Cancelled };
            Command::CancelWait {
                path: lock_path(path),
                lease_id: lease_id(lease),
                queued_revision,
                request_id: 0,
                reason,
            }
        }
        Op::EndDelay { path } => Command::EndLockDelay { path: lock_path(path) },
        Op::Proclaim { path, lease, right_token } => {
            let view = sm.lock(&lock_path(path));
            let held =
                view.and_then(|v| v.holders.into_iter().find(|h| h.lease_id == lease_id(lease)));
            let token = match held {
                Some(holder) if right_token => holder.token,
                _ => sm.revision() + 7,
            };
            Command::Proclaim {
                path: lock_path(path),
                lease_id: lease_id(lease),
                token,
                value: format!("v{}", sm.revision()),
                request_id: 0,
            }
        }
        Op::Checkpoint { lease, remaining_ttl_ms } => Command::CheckpointLeases {
            checkpoints: vec![LeaseCheckpoint { lease_id: lease_id(lease), remaining_ttl_ms }],
        },
    }
}

/// What the events alone say, checked as they arrive.
#[derive(Default)]
struct Observer {
    last_request_id: u64,
    revision: u64,
    last_token: BTreeMap<LockPath, u64>,
    holders: BTreeMap<LockPath, Vec<(LeaseId, LockMode)>>,
    queues: BTreeMap<LockPath, VecDeque<u64>>,
}

impl Observer {
    fn observe(&mut self, events: &[Event]) -> Result<(), TestCaseError> {
        for event in events.iter().filter_map(Event::as_watch) {
            prop_assert_eq!(event.revision, self.revision + 1, "revisions rise by one per event");
            self.revision = event.revision;
            let path = event.path.clone();
            match event.kind {
                WatchEventKind::Acquired { queued_revision } => {
                    let last = self.last_token.insert(path.clone(), event.revision).unwrap_or(0);
                    prop_assert!(event.revision > last, "tokens increase per path");
                    if let Some(queued) = queued_revision {
                        let queue = self.queues.entry(path.clone()).or_default();
                        prop_assert_eq!(queue.pop_front(), Some(queued), "FIFO grant order");
                    }
                    let holders = self.holders.entry(path).or_default();
                    holders.push((event.lease_id, event.mode));
                    let exclusive = holders.iter().any(|(_, mode)| *mode == LockMode::Exclusive);
                    prop_assert!(!exclusive || holders.len() == 1, "mutual exclusion");
                    if let Some(permits) = event.mode.permits() {
                        prop_assert!(holders.iter().all(|(_, mode)| *mode == event.mode));
                        prop_assert!(holders.len() <= permits as usize, "at most N holders");
                    }
                }
                WatchEventKind::Released { .. } => {
                    let holders = self.holders.entry(path).or_default();
                    let before = holders.len();
                    holders.retain(|(lease_id, _)| *lease_id != event.lease_id);
                    prop_assert_eq!(holders.len() + 1, before, "released a live grant");
                }
                WatchEventKind::Proclaimed { token } => {
                    let holders = self.holders.entry(path).or_default();
                    prop_assert!(holders.iter().any(|(lease_id, _)| *lease_id == event.lease_id));
                    prop_assert!(token < event.revision, "a proclaim keeps its grant's token");
                }
                WatchEventKind::Queued { .. } => {
                    self.queues.entry(path).or_default().push_back(event.revision);
                }
                WatchEventKind::Dequeued { queued_revision, .. } => {
                    let queue = self.queues.entry(path).or_default();
                    let at = queue.iter().position(|q| *q == queued_revision);
                    prop_assert!(at.is_some(), "dequeued a queued waiter");
                    queue.remove(at.unwrap());
                }
            }
        }
        Ok(())
    }
}

/// Every case starts with four live leases (the limit is five).
fn setup(sm: &mut StateMachine, observer: &mut Observer) -> Result<(), TestCaseError> {
    for _ in 0..4 {
        step(sm, observer, &Op::Grant { ttl_ms: 10_000 })?;
    }
    Ok(())
}

fn step(
    sm: &mut StateMachine,
    observer: &mut Observer,
    op: &Op,
) -> Result<(Command, Reply, Vec<Event>), TestCaseError> {
    let command = command(sm, op, &mut observer.last_request_id);
    let applied = sm.apply(&command);
    if let Err(violation) = sm.check_invariants() {
        return Err(TestCaseError::fail(format!("{violation} after {command:?}")));
    }
    observer.observe(&applied.events)?;
    if let (
        Command::RevokeLease { lease_id } | Command::ExpireLease { lease_id },
        Reply::LeaseEnded { .. },
    ) = (&command, &applied.reply)
    {
        prop_assert!(sm.lease(*lease_id).is_none());
        let everything = sm.locks("", None, usize::MAX);
        let mentions = everything.iter().any(|view| {
            view.holders.iter().any(|h| h.lease_id == *lease_id)
                || view.waiters.iter().any(|w| w.lease_id == *lease_id)
        });
        prop_assert!(!mentions, "an ended lease holds or waits for nothing");
    }
    Ok((command, applied.reply, applied.events))
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn every_step_keeps_the_invariants(ops in prop::collection::vec(op(), 1..120), delay in prop::bool::ANY) {
        let mut sm = StateMachine::new(limits(if delay { 1_000 } else { 0 }));
        let mut observer = Observer::default();
        setup(&mut sm, &mut observer)?;
        for op in &ops {
            step(&mut sm, &mut observer, op)?;
        }
    }

    #[test]
    fn snapshot_restore_continue_answers_as_never_snapshotting(
        ops in prop::collection::vec(op(), 1..120),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(ops.len());
        let mut straight = StateMachine::new(limits(500));
        let mut observer = Observer::default();
        setup(&mut straight, &mut observer)?;
        for op in &ops[..cut] {
            step(&mut straight, &mut observer, op)?;
        }
        let mut restored = StateMachine::restore(limits(500), &straight.snapshot())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&restored, &straight);
        let mut restored_request_id = observer.last_request_id;
        for op in &ops[cut..] {
            let expected = step(&mut straight, &mut observer, op)?;
            let command = command(&restored, op, &mut restored_request_id);
            prop_assert_eq!(&command, &expected.0);
            let applied = restored.apply(&command);
            prop_assert_eq!(applied.reply, expected.1);
            prop_assert_eq!(applied.events, expected.2);
        }
        prop_assert_eq!(restored.snapshot(), straight.snapshot());
    }

    #[test]
    fn the_decoder_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = StateMachine::restore(Limits::default(), &bytes);
        // The same bytes as a body behind a valid header reach the decoder proper.
        let mut framed = b"LKMS\x01\x00".to_vec();
        framed.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
        framed.extend_from_slice(&bytes);
        if let Ok(sm) = StateMachine::restore(Limits::default(), &framed) {
            prop_assert!(sm.check_invariants().is_ok());
        }
    }
}
