//! The leader's other clocks: wait time-outs and lock-delays. Like the lessor, it reads
//! no clock; the driver passes `now_ms` and proposes the commands it polls.
//!
//! Calling order, on the node that leads: `promote(now_ms, &state)`, then
//! `handle_event(now_ms, event)` for every applied event, and at `poll_timeout()` propose
//! each command of `poll_due(now_ms)`; `demote()` when leadership is lost. A new leader
//! gives every wait its full time-out and every lock-delay its full delay again, from its
//! own `now`: late, never early.

use crate::{
    command::{CancelReason, Command},
    deadline_queue::DeadlineQueue,
    event::{Event, WatchEventKind},
    machine::StateMachine,
    path::LockPath,
    types::{LeaseId, Revision},
};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// One lease waits for one path at a time, so (path, lease) names the wait; the
    /// revision at which it queued goes into `CancelWait`.
    Wait {
        path: LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
    },
    LockDelay {
        path: LockPath,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimersConfig {
    pub batch_max: usize,
    /// A due timer comes back after this long if its command did not take effect.
    pub retry_ms: u64,
}

impl Default for TimersConfig {
    fn default() -> Self {
        TimersConfig { batch_max: 1_000, retry_ms: 1_000 }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Timers {
    config: TimersConfig,
    primary: bool,
    queue: DeadlineQueue<Timer>,
}

impl Timers {
    pub fn new(config: TimersConfig) -> Timers {
        Timers { config, ..Timers::default() }
    }

    /// Arms a timer for every waiter and lock-delay in `state`.
    pub fn promote(&mut self, now_ms: u64, state: &StateMachine) {
        self.demote();
        self.primary = true;
        for (path, waiter) in state.waiters() {
            let timer = Timer::Wait {
                path: path.clone(),
                lease_id: waiter.lease_id,
                queued_revision: waiter.queued_revision,
            };
            self.queue.insert(timer, now_ms + waiter.wait_timeout_ms);
        }
        let delay_ms = state.limits().lock_delay_ms;
        for path in state.delayed_paths() {
            self.queue.insert(Timer::LockDelay { path: path.clone() }, now_ms + delay_ms);
        }
    }

    pub fn demote(&mut self) {
        self.primary = false;
        self.queue.clear();
    }

    /// Follows the applied state. Ignored unless primary.
    pub fn handle_event(&mut self, now_ms: u64, event: &Event) {
        if !self.primary {
            return;
        }
        match event {
            Event::Lock(watch) => {
                let path = watch.path.clone();
                let lease_id = watch.lease_id;
                match watch.kind {
                    WatchEventKind::Queued { wait_timeout_ms } => {
                        let queued_revision = watch.revision;
                        let timer = Timer::Wait { path, lease_id, queued_revision };
                        self.queue.insert(timer, now_ms + wait_timeout_ms);
                    }
                    WatchEventKind::Dequeued { queued_revision, .. }
                    | WatchEventKind::Acquired { queued_revision: Some(queued_revision) } => {
                        self.queue.remove(&Timer::Wait { path, lease_id, queued_revision });
                    }
                    WatchEventKind::Acquired { queued_revision: None }
                    | WatchEventKind::Released { .. }
                    | WatchEventKind::Proclaimed { .. } => {}
                }
            }
            Event::WaitRenewed { path, lease_id, queued_revision, wait_timeout_ms } => {
                let timer = Timer::Wait {
                    path: path.clone(),
                    lease_id: *lease_id,
                    queued_revision: *queued_revision,
                };
                self.queue.insert(timer, now_ms + wait_timeout_ms);
            }
            Event::LockDelayStarted { path, delay_ms } => {
                self.queue.insert(Timer::LockDelay { path: path.clone() }, now_ms + delay_ms);
            }
            Event::LockDelayEnded { path } => {
                self.queue.remove(&Timer::LockDelay { path: path.clone() });
            }
            _ => {}
        }
    }

    /// The commands whose time has come: `CancelWait` and `EndLockDelay`.
    pub fn poll_due(&mut self, now_ms: u64) -> Vec<Command> {
        if !self.primary {
            return Vec::new();
        }
        let retry_at_ms = now_ms + self.config.retry_ms;
        let due = self.queue.pop_due(now_ms, self.config.batch_max, retry_at_ms);
        due.into_iter()
            .map(|timer| match timer {
                Timer::Wait { path, lease_id, queued_revision } => Command::CancelWait {
                    path,
                    lease_id,
                    queued_revision,
                    request_id: 0,
                    reason: CancelReason::WaitTimeout,
                },
                Timer::LockDelay { path } => Command::EndLockDelay { path },
            })
            .collect()
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        if self.primary { self.queue.next_deadline() } else { None }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.len() == 0
    }
}
