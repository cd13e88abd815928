//! Exact-output tests of the lock rules, one rule per test.

mod support;

use lockmgr_core::{
    CancelReason, Command, DequeueReason, Event, HolderView, LeaseId, Limit, Limits,
    LockMode::{Exclusive, Shared},
    LockOutcome, Rejection, ReleaseReason, Reply, WatchEventKind,
};
use support::{Checked, lock_command, path, watch};

const ACQUIRED: WatchEventKind = WatchEventKind::Acquired { queued_revision: None };

fn granted(token: u64, mode: lockmgr_core::LockMode) -> Reply {
    Reply::Lock(LockOutcome::Granted { token, mode })
}

fn queued(queued_revision: u64, position: usize) -> Reply {
    Reply::Lock(LockOutcome::Queued { queued_revision, position })
}

#[test]
fn a_free_path_is_granted_with_the_next_revision_as_token() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    let applied = sm.lock("/db/users", a, Exclusive, 0);
    assert_eq!(applied.reply, granted(1, Exclusive));
    assert_eq!(watch(&applied), vec![(1, "/db/users".into(), a.0, ACQUIRED)]);
    assert_eq!(sm.0.revision(), 1);
}

#[test]
fn try_lock_on_a_held_path_is_busy_and_names_the_holder() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    sm.grant("/x", a, Exclusive);
    let applied = sm.lock("/x", b, Exclusive, 0);
    let holder =
        HolderView { lease_id: a, holder_id: "holder-1".into(), token: 1, mode: Exclusive };
    let busy = LockOutcome::Busy { holders: vec![holder], lock_delay: false };
    assert_eq!(applied.reply, Reply::Lock(busy));
    assert!(applied.events.is_empty(), "a refused try-lock changes nothing");
    assert_eq!(sm.0.revision(), 1);
}

#[test]
fn waiters_are_granted_in_fifo_order_on_release() {
    let mut sm = Checked::new();
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let token_a = sm.grant("/q", a, Exclusive);
    assert_eq!(sm.lock("/q", b, Exclusive, 5_000).reply, queued(2, 0));
    assert_eq!(sm.lock("/q", c, Exclusive, 5_000).reply, queued(3, 1));

    let applied = sm.unlock("/q", a, token_a);
    assert_eq!(applied.reply, Reply::Unlocked { token: token_a });
    let released = WatchEventKind::Released { token: 1, reason: ReleaseReason::Released };
    let handed = WatchEventKind::Acquired { queued_revision: Some(2) };
    assert_eq!(
        watch(&applied),
        vec![(4, "/q".into(), a.0, released), (5, "/q".into(), b.0, handed)]
    );
    let view = sm.0.lock(&path("/q")).unwrap();
    assert_eq!(view.holders[0].lease_id, b);
    assert_eq!(view.holders[0].token, 5);
    assert_eq!(view.waiters.len(), 1);
    assert_eq!(view.waiters[0].lease_id, c);
}

#[test]
fn shared_holders_coexist_and_exclusive_waits_for_all_of_them() {
    let mut sm = Checked::new();
    let (r1, r2, w) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let t1 = sm.grant("/cfg", r1, Shared);
    let t2 = sm.grant("/cfg", r2, Shared);
    assert!(t2 > t1);
    assert_eq!(sm.lock("/cfg", w, Exclusive, 1_000).reply, queued(3, 0));
    assert!(watch(&sm.unlock("/cfg", r1, t1)).iter().all(|e| e.2 == r1.0));
    let applied = sm.unlock("/cfg", r2, t2);
    assert_eq!(watch(&applied).last().unwrap().2, w.0, "the writer gets it after the last reader");
}

#[test]
fn a_shared_request_behind_a_queued_exclusive_one_waits() {
    let mut sm = Checked::new();
    let (r1, w, r2) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let t1 = sm.grant("/cfg", r1, Shared);
    sm.lock("/cfg", w, Exclusive, 1_000);
    // Compatible with the shared holder, but a writer queued first: no starvation.
    assert_eq!(sm.lock("/cfg", r2, Shared, 1_000).reply, queued(3, 1));
    assert!(
        matches!(sm.lock("/cfg", r2, Shared, 0).reply, Reply::Lock(LockOutcome::Busy { .. })),
        "a try-lock from the queued reader is busy; its wait goes on"
    );
    let applied = sm.unlock("/cfg", r1, t1);
    let acquirers: Vec<i64> = watch(&applied).iter().skip(1).map(|e| e.2).collect();
    assert_eq!(acquirers, vec![w.0], "the writer first, the reader after it");
}

#[test]
fn consecutive_shared_waiters_are_granted_together() {
    let mut sm = Checked::new();
    let (w, r1, r2, w2) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/p", w, Exclusive);
    sm.lock("/p", r1, Shared, 1_000);
    sm.lock("/p", r2, Shared, 1_000);
    sm.lock("/p", w2, Exclusive, 1_000);
    let applied = sm.unlock("/p", w, token);
    let acquirers: Vec<i64> = watch(&applied).iter().skip(1).map(|e| e.2).collect();
    assert_eq!(acquirers, vec![r1.0, r2.0]);
    assert_eq!(sm.0.lock(&path("/p")).unwrap().waiters[0].lease_id, w2);
}

#[test]
fn the_same_lease_asking_again_gets_the_same_grant_or_place() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/x", a, Exclusive);
    let again = sm.lock("/x", a, Exclusive, 5_000);
    assert_eq!(again.reply, granted(token, Exclusive));
    assert!(again.events.is_empty());
    assert_eq!(sm.lock("/x", b, Exclusive, 5_000).reply, queued(2, 0));
    let again = sm.lock("/x", b, Exclusive, 7_000);
    assert_eq!(again.reply, queued(2, 0));
    assert!(watch(&again).is_empty(), "the place is kept, nothing is queued anew");
    let renewed = Event::WaitRenewed {
        path: path("/x"),
        lease_id: b,
        queued_revision: 2,
        wait_timeout_ms: 7_000,
    };
    assert_eq!(again.events, vec![renewed], "the wait's time-out runs again");
}

#[test]
fn a_try_lock_from_a_waiting_lease_is_busy_and_keeps_the_wait() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/x", a, Exclusive);
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 5_000, 1)).reply, queued(2, 0));
    let try_lock = sm.apply(lock_command("/x", b, Exclusive, 0, 2));
    assert!(matches!(try_lock.reply, Reply::Lock(LockOutcome::Busy { .. })), "{try_lock:?}");
    assert!(try_lock.events.is_empty());
    let applied = sm.unlock("/x", a, token);
    assert_eq!(watch(&applied).last().unwrap().2, b.0, "b kept its place and is granted");
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 5_000, 1)).reply, granted(4, Exclusive));
}

#[test]
fn a_cancel_of_a_request_taken_over_by_a_later_one_ends_nothing() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    sm.grant("/x", a, Exclusive);
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 5_000, 1)).reply, queued(2, 0));
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 5_000, 2)).reply, queued(2, 0));
    let cancel = |request_id| Command::CancelWait {
        path: path("/x"),
        lease_id: b,
        queued_revision: 2,
        request_id,
        reason: CancelReason::Cancelled,
    };
    assert_eq!(sm.apply(cancel(1)).reply, Reply::NotWaiting, "request 1 was taken over");
    assert_eq!(sm.0.lock(&path("/x")).unwrap().waiters.len(), 1);
    assert_eq!(sm.apply(cancel(2)).reply, Reply::WaitCancelled);
    let cancelled = Reply::Rejected(Rejection::WaitCancelled { path: path("/x") });
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 5_000, 2)).reply, cancelled);
}

#[test]
fn a_request_id_reused_for_another_request_is_refused() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    assert_eq!(sm.apply(lock_command("/a", a, Exclusive, 0, 555)).reply, granted(1, Exclusive));
    let reused = |reply: Reply| {
        matches!(reply, Reply::Rejected(Rejection::RequestIdReused { request_id: 555, .. }))
    };
    let other_path = sm.apply(lock_command("/b", a, Exclusive, 0, 555));
    assert!(reused(other_path.reply.clone()), "{other_path:?}");
    assert!(other_path.events.is_empty(), "/b is not locked");
    assert!(sm.0.lock(&path("/b")).is_none());
    assert!(reused(sm.apply(lock_command("/a", a, Shared, 0, 555)).reply), "another mode");
    let unlock = Command::Unlock { path: path("/a"), lease_id: a, token: 1, request_id: 555 };
    assert!(reused(sm.apply(unlock).reply), "an unlock under the lock's id");
    assert_eq!(sm.0.lock(&path("/a")).unwrap().holders.len(), 1, "/a is still held");
    // The other order: an unlock's id reused by a lock.
    let unlock = Command::Unlock { path: path("/a"), lease_id: a, token: 1, request_id: 556 };
    assert_eq!(sm.apply(unlock).reply, Reply::Unlocked { token: 1 });
    assert!(reused_556(&sm.apply(lock_command("/a", a, Exclusive, 0, 556)).reply));
    assert_eq!(sm.apply(lock_command("/a", a, Exclusive, 0, 555)).reply, granted(1, Exclusive));
}

fn reused_556(reply: &Reply) -> bool {
    matches!(reply, Reply::Rejected(Rejection::RequestIdReused { request_id: 556, .. }))
}

#[test]
fn the_same_lease_in_another_mode_is_refused() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    sm.grant("/x", a, Shared);
    let reply = sm.lock("/x", a, Exclusive, 0).reply;
    let conflict = Rejection::ModeConflict { path: path("/x"), lease_id: a, held: Shared };
    assert_eq!(reply, Reply::Rejected(conflict));
}

#[test]
fn unlock_refuses_a_stale_token_and_an_unheld_path() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/x", a, Exclusive);
    let stale = Rejection::StaleToken { path: path("/x"), lease_id: a, token: 99, current: token };
    assert_eq!(sm.unlock("/x", a, 99).reply, Reply::Rejected(stale));
    let not_held = Rejection::LockNotHeld { path: path("/x"), lease_id: b };
    assert_eq!(sm.unlock("/x", b, token).reply, Reply::Rejected(not_held));
    assert_eq!(sm.unlock("/x", a, token).reply, Reply::Unlocked { token });
    assert_eq!(sm.0.lock(&path("/x")), None, "a free path leaves the table");
    let unknown = Rejection::LeaseNotFound { lease_id: LeaseId(77) };
    assert_eq!(sm.unlock("/x", LeaseId(77), token).reply, Reply::Rejected(unknown));
}

#[test]
fn cancel_wait_removes_exactly_the_named_wait() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    sm.grant("/x", a, Exclusive);
    sm.lock("/x", b, Exclusive, 100);
    let cancel = |queued_revision| Command::CancelWait {
        path: path("/x"),
        lease_id: b,
        queued_revision,
        request_id: 0,
        reason: CancelReason::WaitTimeout,
    };
    assert_eq!(sm.apply(cancel(7)).reply, Reply::NotWaiting, "another wait's time-out");
    let applied = sm.apply(cancel(2));
    assert_eq!(applied.reply, Reply::WaitCancelled);
    let dequeued =
        WatchEventKind::Dequeued { queued_revision: 2, reason: DequeueReason::WaitTimeout };
    assert_eq!(watch(&applied), vec![(3, "/x".into(), b.0, dequeued)]);
    assert_eq!(sm.apply(cancel(2)).reply, Reply::NotWaiting, "a repeated time-out");
}

#[test]
fn cancelling_a_queued_writer_lets_the_readers_behind_it_in() {
    let mut sm = Checked::new();
    let (r1, w, r2) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    sm.grant("/cfg", r1, Shared);
    sm.lock("/cfg", w, Exclusive, 1_000);
    sm.lock("/cfg", r2, Shared, 1_000);
    let applied = sm.apply(Command::CancelWait {
        path: path("/cfg"),
        lease_id: w,
        queued_revision: 2,
        request_id: 0,
        reason: CancelReason::Cancelled,
    });
    let kinds: Vec<_> = watch(&applied).into_iter().map(|e| (e.2, e.3)).collect();
    let dequeued =
        WatchEventKind::Dequeued { queued_revision: 2, reason: DequeueReason::Cancelled };
    let acquired = WatchEventKind::Acquired { queued_revision: Some(3) };
    assert_eq!(kinds, vec![(w.0, dequeued), (r2.0, acquired)]);
}

#[test]
fn lock_delay_holds_a_path_after_its_holder_expires() {
    let mut sm = Checked::with(Limits { lock_delay_ms: 5_000, ..Limits::default() });
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/x", a, Exclusive);
    // A clean release starts no delay.
    sm.unlock("/x", a, token);
    sm.grant("/x", a, Exclusive);
    let applied = sm.apply(Command::ExpireLease { lease_id: a });
    assert!(
        applied.events.contains(&Event::LockDelayStarted { path: path("/x"), delay_ms: 5_000 })
    );
    let busy = LockOutcome::Busy { holders: vec![], lock_delay: true };
    assert_eq!(sm.lock("/x", b, Exclusive, 0).reply, Reply::Lock(busy));
    assert!(matches!(
        sm.lock("/x", c, Exclusive, 9_000).reply,
        Reply::Lock(LockOutcome::Queued { .. })
    ));
    let applied = sm.apply(Command::EndLockDelay { path: path("/x") });
    assert_eq!(applied.reply, Reply::LockDelayEnded);
    assert_eq!(applied.events[0], Event::LockDelayEnded { path: path("/x") });
    assert_eq!(watch(&applied)[0].2, c.0, "the waiter gets the path when the delay ends");
}

#[test]
fn limits_are_enforced_with_the_limit_named() {
    let limits = Limits {
        locks_max: 2,
        waiters_per_path_max: 1,
        locks_per_lease_max: 3,
        ..Limits::default()
    };
    let mut sm = Checked::with(limits);
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    sm.grant("/1", a, Exclusive);
    sm.grant("/2", a, Exclusive);
    let exceeded = |limit, max| Reply::Rejected(Rejection::LimitExceeded { limit, max });
    assert_eq!(sm.lock("/3", b, Exclusive, 0).reply, exceeded(Limit::Locks, 2));
    sm.lock("/1", b, Exclusive, 1_000);
    assert_eq!(sm.lock("/1", c, Exclusive, 1_000).reply, exceeded(Limit::WaitersPerPath, 1));
    sm.lock("/2", c, Exclusive, 1_000);
    let mut sm = Checked::with(Limits { locks_per_lease_max: 1, ..Limits::default() });
    let a = sm.lease(10_000);
    sm.grant("/1", a, Exclusive);
    assert_eq!(sm.lock("/2", a, Exclusive, 0).reply, exceeded(Limit::LocksPerLease, 1));
    let long = "h".repeat(257);
    let mut command = lock_command("/3", a, Exclusive, 0, 0);
    if let Command::Lock(request) = &mut command {
        request.holder_id = long;
    }
    let too_long = Rejection::HolderIdTooLong { len: 257, max: 256 };
    assert_eq!(sm.apply(command).reply, Reply::Rejected(too_long));
    let wait = sm.lock("/3", a, Exclusive, 3_600_001).reply;
    let too_long = Rejection::WaitTimeoutTooLong { wait_timeout_ms: 3_600_001, max_ms: 3_600_000 };
    assert_eq!(wait, Reply::Rejected(too_long));
}

#[test]
fn a_retried_request_is_answered_not_applied_again() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let first = sm.apply(lock_command("/x", a, Exclusive, 0, 1));
    assert_eq!(first.reply, granted(1, Exclusive));
    let unlock = Command::Unlock { path: path("/x"), lease_id: a, token: 1, request_id: 2 };
    assert_eq!(sm.apply(unlock.clone()).reply, Reply::Unlocked { token: 1 });
    sm.grant("/x", b, Exclusive);
    // The lock's retry arrives late: it must not take the path from b.
    let retry = sm.apply(lock_command("/x", a, Exclusive, 0, 1));
    assert_eq!(retry.reply, granted(1, Exclusive));
    assert!(retry.events.is_empty());
    let again = sm.apply(unlock);
    assert_eq!(again.reply, Reply::Unlocked { token: 1 });
    assert!(again.events.is_empty());
    assert_eq!(sm.0.lock(&path("/x")).unwrap().holders[0].lease_id, b);
}

#[test]
fn a_retried_queued_request_learns_how_its_wait_ended() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/x", a, Exclusive);
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 1_000, 5)).reply, queued(2, 0));
    sm.unlock("/x", a, token);
    assert_eq!(sm.apply(lock_command("/x", b, Exclusive, 1_000, 5)).reply, granted(4, Exclusive));
}

#[test]
fn request_ids_older_than_the_window_are_refused() {
    let mut sm = Checked::with(Limits { request_window_per_lease: 2, ..Limits::default() });
    let a = sm.lease(10_000);
    for (request_id, p) in [(10, "/a"), (11, "/b"), (12, "/c")] {
        sm.apply(lock_command(p, a, Exclusive, 0, request_id));
    }
    let too_old = Rejection::RequestIdTooOld { lease_id: a, request_id: 10, oldest_kept: 11 };
    assert_eq!(sm.apply(lock_command("/a", a, Exclusive, 0, 10)).reply, Reply::Rejected(too_old));
    // Out of order but newer than the floor: applied.
    assert!(matches!(sm.apply(lock_command("/d", a, Exclusive, 0, 14)).reply, Reply::Lock(_)));
    assert!(matches!(sm.apply(lock_command("/e", a, Exclusive, 0, 13)).reply, Reply::Lock(_)));
}

#[test]
fn validate_fence_accepts_only_a_current_token() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let t1 = sm.grant("/x", a, Exclusive);
    assert!(sm.0.validate_fence(&path("/x"), t1).valid);
    sm.unlock("/x", a, t1);
    let t2 = sm.grant("/x", b, Exclusive);
    let check = sm.0.validate_fence(&path("/x"), t1);
    assert!(!check.valid);
    assert_eq!(check.current_tokens, vec![t2]);
    assert!(!sm.0.validate_fence(&path("/free"), 1).valid);
}

#[test]
fn list_locks_pages_through_a_prefix_on_segment_boundaries() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    for p in ["/db", "/db/users", "/db/orders", "/db.x", "/dbx/y", "/other"] {
        sm.grant(p, a, Exclusive);
    }
    let names = |views: Vec<lockmgr_core::LockView>| -> Vec<String> {
        views.into_iter().map(|v| v.path.to_string()).collect()
    };
    assert_eq!(names(sm.0.locks("/db", None, 10)), vec!["/db", "/db/orders", "/db/users"]);
    assert_eq!(names(sm.0.locks("/db", None, 2)), vec!["/db", "/db/orders"]);
    assert_eq!(names(sm.0.locks("/db", Some(&path("/db/orders")), 2)), vec!["/db/users"]);
    assert_eq!(sm.0.locks("", None, 100).len(), 6);
    assert_eq!(sm.0.locks("/", None, 100).len(), 6);
}
