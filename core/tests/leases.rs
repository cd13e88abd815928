//! Exact-output tests of the lease rules.

mod support;

use lockmgr_core::{
    Command, DequeueReason, Event, LeaseCheckpoint, LeaseEndReason, LeaseId, Limit, Limits,
    LockMode::{Exclusive, Shared},
    Rejection, ReleaseReason, Reply, WatchEventKind,
};
use support::{Checked, path, watch};

#[test]
fn grant_clamps_the_ttl_and_never_reuses_an_id() {
    let mut sm = Checked::new();
    let applied = sm.apply(Command::GrantLease { ttl_ms: 1 });
    assert_eq!(applied.reply, Reply::LeaseGranted { lease_id: LeaseId(1), ttl_ms: 2_000 });
    assert_eq!(applied.events, vec![Event::LeaseGranted { lease_id: LeaseId(1), ttl_ms: 2_000 }]);
    sm.apply(Command::RevokeLease { lease_id: LeaseId(1) });
    let applied = sm.apply(Command::GrantLease { ttl_ms: u64::MAX });
    assert_eq!(applied.reply, Reply::LeaseGranted { lease_id: LeaseId(2), ttl_ms: 86_400_000 });
}

#[test]
fn revoke_releases_every_lock_and_wait_and_hands_off_in_one_command() {
    let mut sm = Checked::new();
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    sm.grant("/1", a, Exclusive);
    sm.grant("/2", a, Shared);
    sm.grant("/3", c, Exclusive);
    sm.lock("/1", b, Exclusive, 1_000);
    sm.lock("/3", a, Exclusive, 1_000);
    let applied = sm.apply(Command::RevokeLease { lease_id: a });
    assert_eq!(applied.reply, Reply::LeaseEnded { lease_id: a });
    let revoked = |token| WatchEventKind::Released { token, reason: ReleaseReason::Revoked };
    let dropped = WatchEventKind::Dequeued { queued_revision: 5, reason: DequeueReason::Revoked };
    assert_eq!(
        watch(&applied),
        vec![
            (6, "/1".into(), a.0, revoked(1)),
            (7, "/2".into(), a.0, revoked(2)),
            (8, "/3".into(), a.0, dropped),
            (9, "/1".into(), b.0, WatchEventKind::Acquired { queued_revision: Some(4) }),
        ]
    );
    assert_eq!(
        applied.events.last(),
        Some(&Event::LeaseEnded { lease_id: a, reason: LeaseEndReason::Revoked })
    );
    assert_eq!(sm.0.lease(a), None);
    assert_eq!(sm.0.lock(&path("/2")), None);
    let gone = Rejection::LeaseNotFound { lease_id: a };
    assert_eq!(sm.apply(Command::RevokeLease { lease_id: a }).reply, Reply::Rejected(gone.clone()));
    assert_eq!(sm.apply(Command::ExpireLease { lease_id: a }).reply, Reply::Rejected(gone.clone()));
    assert_eq!(sm.lock("/9", a, Exclusive, 0).reply, Reply::Rejected(gone));
}

#[test]
fn expiry_releases_with_reason_expired_and_the_next_waiter_gets_a_higher_token() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let first = sm.grant("/x", a, Exclusive);
    sm.lock("/x", b, Exclusive, 60_000);
    let applied = sm.apply(Command::ExpireLease { lease_id: a });
    let events = watch(&applied);
    assert_eq!(
        events[0].3,
        WatchEventKind::Released { token: first, reason: ReleaseReason::Expired }
    );
    assert_eq!(events[1].2, b.0);
    let view = sm.0.lock(&path("/x")).unwrap();
    assert!(view.holders[0].token > first);
}

#[test]
fn checkpoints_record_remaining_ttl_capped_at_the_ttl_and_skip_unknown_leases() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    let applied = sm.apply(Command::CheckpointLeases {
        checkpoints: vec![
            LeaseCheckpoint { lease_id: a, remaining_ttl_ms: Some(99_999) },
            LeaseCheckpoint { lease_id: LeaseId(42), remaining_ttl_ms: Some(1) },
        ],
    });
    assert_eq!(applied.reply, Reply::Checkpointed);
    let checkpointed = Event::LeaseCheckpointed { lease_id: a, remaining_ttl_ms: Some(10_000) };
    assert_eq!(applied.events, vec![checkpointed]);
    assert_eq!(sm.0.lease(a).unwrap().remaining_ttl_ms, Some(10_000));
    sm.apply(Command::CheckpointLeases {
        checkpoints: vec![LeaseCheckpoint { lease_id: a, remaining_ttl_ms: None }],
    });
    assert_eq!(sm.0.lease(a).unwrap().remaining_ttl_ms, None);
}

#[test]
fn the_lease_limit_is_enforced() {
    let mut sm = Checked::with(Limits { leases_max: 1, ..Limits::default() });
    sm.lease(10_000);
    let exceeded = Rejection::LimitExceeded { limit: Limit::Leases, max: 1 };
    assert_eq!(sm.apply(Command::GrantLease { ttl_ms: 10_000 }).reply, Reply::Rejected(exceeded));
}

#[test]
fn time_to_live_views_list_held_and_waiting_paths() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(5_000));
    sm.grant("/x", a, Exclusive);
    sm.lock("/x", b, Exclusive, 1_000);
    sm.grant("/y", b, Exclusive);
    let view = sm.0.lease(b).unwrap();
    assert_eq!(view.ttl_ms, 5_000);
    assert_eq!(view.held, vec![path("/y")]);
    assert_eq!(view.waiting, vec![path("/x")]);
    let ids: Vec<_> = sm.0.leases(None, 10).into_iter().map(|v| v.lease_id).collect();
    assert_eq!(ids, vec![a, b]);
    let ids: Vec<_> = sm.0.leases(Some(a), 10).into_iter().map(|v| v.lease_id).collect();
    assert_eq!(ids, vec![b]);
}
