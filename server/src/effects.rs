//! What the server does with every applied command, under the replica's lock: feed the
//! leader's lessor and timers, wake blocking `Lock` calls whose wait ended, publish watch
//! events, and note when grants and waits began (for the ages operators see).

use std::{collections::HashMap, sync::Arc};

use lockmgr_core::{
    Applied, Command, DequeueReason, Event, FencingToken, LeaseId, Lessor, LockMode, LockOutcome,
    LockPath, Rejection, Reply, Revision, StateMachine, Timers, WatchEventKind,
};
use lockmgr_io::ApplyObserver;
use tokio::sync::{Notify, oneshot};

use crate::{clock::Clock, metrics::Metrics, watch_hub::WatchHub};

/// The specification's "Lock acquired" event.
pub fn log_acquired(
    lock_path: &str,
    holder_id: &str,
    lease_id: i64,
    fencing_token: u64,
    wait_time_ms: u64,
) {
    tracing::info!(lock_path, holder_id, lease_id, fencing_token, wait_time_ms, "Lock acquired");
}

/// How a blocking `Lock`'s wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    Granted { token: FencingToken, mode: LockMode },
    Ended(DequeueReason),
}

/// One caller's attachment to a wait.
pub type AttachmentId = u64;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct WaitKey {
    path: LockPath,
    lease_id: LeaseId,
    queued_revision: Revision,
}

pub struct Effects {
    clock: Clock,
    pub lessor: Lessor,
    pub timers: Timers,
    pub hub: WatchHub,
    /// The callers attached to each wait: every retry of a queued request (and every new
    /// request that took its wait over) attaches, and all of them learn the outcome.
    waits: HashMap<WaitKey, Vec<(AttachmentId, oneshot::Sender<WaitOutcome>)>>,
    next_attachment: AttachmentId,
    /// When each live grant (by token) and wait (by queued revision) began, on this clock.
    began_ms: HashMap<Revision, u64>,
    /// Wakes the leader's driver when deadlines may have moved.
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
    tap: Option<ApplyTap>,
}

/// Sees each applied command with its log index and outcome (the simulator's checkers).
pub type ApplyTap = Arc<dyn Fn(u64, &Command, &Applied) + Send + Sync>;

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects").field("waits", &self.waits.len()).finish_non_exhaustive()
    }
}

impl Effects {
    pub fn new(
        clock: Clock,
        lessor: Lessor,
        timers: Timers,
        hub: WatchHub,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Effects {
        let waits = HashMap::new();
        let began_ms = HashMap::new();
        Effects {
            clock,
            lessor,
            timers,
            hub,
            waits,
            next_attachment: 0,
            began_ms,
            wake,
            metrics,
            tap: None,
        }
    }

    /// Shows every applied command to `tap` (the simulator's checkers), in log order.
    #[must_use]
    pub fn with_tap(mut self, tap: Option<ApplyTap>) -> Effects {
        self.tap = tap;
        self
    }

    /// Counts what the leader did (each event once in the cluster, not once per node).
    fn count_on_leader(&self, now_ms: u64, event: &Event) {
        let metrics = &self.metrics;
        match event {
            Event::LeaseGranted { ttl_ms, .. } => {
                metrics.lease_grant_total.inc();
                metrics.lease_ttl_seconds.observe(*ttl_ms as f64 / 1_000.0);
            }
            Event::LeaseEnded { reason, .. } => {
                let reason = match reason {
                    lockmgr_core::LeaseEndReason::Revoked => "revoked",
                    lockmgr_core::LeaseEndReason::Expired => {
                        metrics.lease_expire_total.inc();
                        "expired"
                    }
                };
                metrics.lease_revoke_total.with_label_values(&[reason]).inc();
            }
            Event::Lock(watch) => {
                if let WatchEventKind::Acquired { queued_revision } = watch.kind {
                    let waited_ms = queued_revision
                        .and_then(|queued| self.began_ms.get(&queued))
                        .map_or(0, |began_ms| now_ms.saturating_sub(*began_ms));
                    let (path, holder) = (watch.path.as_str(), watch.holder_id.as_str());
                    log_acquired(path, holder, watch.lease_id.0, watch.revision, waited_ms);
                }
                if let WatchEventKind::Proclaimed { token } = watch.kind {
                    tracing::info!(lock_path = %watch.path, holder_id = %watch.holder_id, lease_id = watch.lease_id.0,
                        fencing_token = token, "Lock value proclaimed");
                }
                if let WatchEventKind::Released { token, reason } = watch.kind {
                    let reason = match reason {
                        lockmgr_core::ReleaseReason::Released => "released",
                        lockmgr_core::ReleaseReason::Revoked => "revoked",
                        lockmgr_core::ReleaseReason::Expired => "expired",
                    };
                    tracing::info!(lock_path = %watch.path, holder_id = %watch.holder_id, lease_id = watch.lease_id.0,
                        fencing_token = token, reason, "Lock released");
                    let label = metrics.paths.label(watch.path.as_str());
                    metrics.lock_release_total.with_label_values(&[&label]).inc();
                    if let Some(began_ms) = self.began_ms.get(&token) {
                        let held_seconds = now_ms.saturating_sub(*began_ms) as f64 / 1_000.0;
                        let held = metrics.lock_held_duration_seconds.with_label_values(&[&label]);
                        held.observe(held_seconds);
                    }
                }
            }
            _ => {}
        }
    }

    /// Keeps the state gauges (active locks, waiters per path) in step with an event.
    fn track_gauges(&self, watch: &lockmgr_core::WatchEvent) {
        let metrics = &self.metrics;
        let waiters = || {
            let label = metrics.paths.label(watch.path.as_str());
            metrics.lock_waiters_current.with_label_values(&[&label])
        };
        match watch.kind {
            WatchEventKind::Acquired { queued_revision } => {
                metrics.locks_active_total.inc();
                if queued_revision.is_some() {
                    waiters().dec();
                }
            }
            WatchEventKind::Released { .. } => metrics.locks_active_total.dec(),
            WatchEventKind::Queued { .. } => waiters().inc(),
            WatchEventKind::Dequeued { .. } => waiters().dec(),
            WatchEventKind::Proclaimed { .. } => {}
        }
    }

    /// Attaches a caller (of `request_id`) to the wait queued at `queued_revision`;
    /// answers at once if the wait already ended.
    pub fn register_wait(
        &mut self,
        machine: &StateMachine,
        path: &LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        request_id: u64,
    ) -> Result<(AttachmentId, oneshot::Receiver<WaitOutcome>), WaitOutcome> {
        if let Some(outcome) = settled(machine, path, lease_id, queued_revision, request_id) {
            return Err(outcome);
        }
        let (sender, receiver) = oneshot::channel();
        let key = WaitKey { path: path.clone(), lease_id, queued_revision };
        self.next_attachment += 1;
        let id = self.next_attachment;
        self.waits.entry(key).or_default().push((id, sender));
        Ok((id, receiver))
    }

    /// Detaches one caller; says whether the wait has callers left.
    pub fn forget_wait(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        attachment: AttachmentId,
    ) -> bool {
        let key = WaitKey { path: path.clone(), lease_id, queued_revision };
        let Some(attached) = self.waits.get_mut(&key) else { return false };
        attached.retain(|(id, _)| *id != attachment);
        if attached.is_empty() {
            self.waits.remove(&key);
            return false;
        }
        true
    }

    /// Whether any caller is attached to the wait.
    pub fn is_attached(
        &self,
        path: &LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
    ) -> bool {
        self.waits.contains_key(&WaitKey { path: path.clone(), lease_id, queued_revision })
    }

    /// Milliseconds since the grant or wait at `revision` began, if this node saw it begin.
    pub fn age_ms(&self, revision: Revision) -> u64 {
        self.began_ms.get(&revision).map_or(0, |began| self.clock.now_ms().saturating_sub(*began))
    }

    fn wake_waiter(
        &mut self,
        path: &LockPath,
        lease_id: LeaseId,
        queued_revision: Revision,
        outcome: WaitOutcome,
    ) {
        let key = WaitKey { path: path.clone(), lease_id, queued_revision };
        for (_, sender) in self.waits.remove(&key).unwrap_or_default() {
            // The caller may have gone away; nothing to tell then.
            let _ = sender.send(outcome);
        }
    }
}

/// The outcome of a wait that is no longer in the queue (`None` while it waits), judged
/// from the state: a grant the lease holds, else what the state machine remembered as
/// the request's final answer.
pub fn settled(
    machine: &StateMachine,
    path: &LockPath,
    lease_id: LeaseId,
    queued_revision: Revision,
    request_id: u64,
) -> Option<WaitOutcome> {
    let view = machine.lock(path);
    let view = view.as_ref();
    if let Some(holder) = view.and_then(|v| v.holders.iter().find(|h| h.lease_id == lease_id)) {
        return Some(WaitOutcome::Granted { token: holder.token, mode: holder.mode });
    }
    let waiting = view.is_some_and(|v| {
        v.waiters.iter().any(|w| w.lease_id == lease_id && w.queued_revision == queued_revision)
    });
    if waiting {
        return None;
    }
    if machine.lease(lease_id).is_none() {
        return Some(WaitOutcome::Ended(DequeueReason::Expired));
    }
    let reason = match machine.remembered_reply(lease_id, request_id) {
        Some(Reply::Lock(LockOutcome::Granted { token, mode })) => {
            return Some(WaitOutcome::Granted { token, mode });
        }
        Some(Reply::Rejected(Rejection::WaitCancelled { .. })) => DequeueReason::Cancelled,
        _ => DequeueReason::WaitTimeout,
    };
    Some(WaitOutcome::Ended(reason))
}

impl ApplyObserver for Effects {
    fn applied(
        &mut self,
        machine: &StateMachine,
        log_index: u64,
        command: &Command,
        applied: &Applied,
    ) {
        if let Some(tap) = &self.tap {
            tap(log_index, command, applied);
        }
        crate::logging::note_revision(machine.revision());
        let now_ms = self.clock.now_ms();
        let leads = self.lessor.is_primary();
        for event in &applied.events {
            if leads {
                self.count_on_leader(now_ms, event);
            }
            self.lessor.handle_event(now_ms, event);
            self.timers.handle_event(now_ms, event);
            let Event::Lock(watch) = event else { continue };
            self.track_gauges(watch);
            match watch.kind {
                WatchEventKind::Acquired { queued_revision } => {
                    self.began_ms.insert(watch.revision, now_ms);
                    if let Some(queued_revision) = queued_revision {
                        self.began_ms.remove(&queued_revision);
                        let outcome =
                            WaitOutcome::Granted { token: watch.revision, mode: watch.mode };
                        self.wake_waiter(&watch.path, watch.lease_id, queued_revision, outcome);
                    }
                }
                WatchEventKind::Released { token, .. } => {
                    self.began_ms.remove(&token);
                }
                WatchEventKind::Queued { .. } => {
                    self.began_ms.insert(watch.revision, now_ms);
                }
                WatchEventKind::Proclaimed { .. } => {}
                WatchEventKind::Dequeued { queued_revision, reason } => {
                    self.began_ms.remove(&queued_revision);
                    self.wake_waiter(
                        &watch.path,
                        watch.lease_id,
                        queued_revision,
                        WaitOutcome::Ended(reason),
                    );
                }
            }
            self.hub.publish(watch);
        }
        if self.lessor.is_primary() {
            self.wake.notify_one();
        }
    }

    fn restored(&mut self, machine: &StateMachine) {
        self.hub.reset(machine.revision());
        let metrics = &self.metrics;
        let views = machine.locks("", None, usize::MAX);
        metrics.locks_active_total.set(views.iter().map(|v| v.holders.len() as i64).sum());
        metrics.lock_waiters_current.reset();
        for view in &views {
            let label = metrics.paths.label(view.path.as_str());
            metrics
                .lock_waiters_current
                .with_label_values(&[&label])
                .add(view.waiters.len() as i64);
        }
        self.began_ms.clear();
        let waits = std::mem::take(&mut self.waits);
        for (key, attached) in waits {
            // The request id only tells a cancelled wait from a timed-out one; a restored
            // snapshot ends such waits for every caller alike.
            match settled(machine, &key.path, key.lease_id, key.queued_revision, 0) {
                Some(outcome) => {
                    for (_, sender) in attached {
                        let _ = sender.send(outcome);
                    }
                }
                None => {
                    self.waits.insert(key, attached);
                }
            }
        }
    }
}
