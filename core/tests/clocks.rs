//! The leader's clocks: the lessor (lease deadlines, keepalives, checkpoints) and the
//! timers (wait time-outs, lock-delays), driven by `now_ms` only.

mod support;

use lockmgr_core::{
    CancelReason, Command, KeepAliveError, LeaseCheckpoint, LeaseId, Lessor, LessorConfig, Limits,
    LockMode::Exclusive, Renewal, Timers, TimersConfig,
};
use support::{Checked, path};

fn lessor() -> Lessor {
    Lessor::new(LessorConfig {
        checkpoint_interval_ms: 1_000,
        checkpoint_batch_max: 100,
        expire_batch_max: 100,
        expire_retry_ms: 500,
        clock_drift_max_ppm: 0,
    })
}

/// Applies a command and feeds its events to the lessor and timers, as a leader would.
fn drive(
    sm: &mut Checked,
    lessor: &mut Lessor,
    timers: &mut Timers,
    now_ms: u64,
    command: Command,
) {
    let applied = sm.apply(command);
    for event in &applied.events {
        lessor.handle_event(now_ms, event);
        timers.handle_event(now_ms, event);
    }
}

#[test]
fn a_lease_expires_at_its_ttl_after_the_last_keepalive_and_not_before() {
    let mut sm = Checked::new();
    let mut lessor = lessor();
    let mut timers = Timers::default();
    lessor.promote(0, sm.0.lease_ttls());
    drive(&mut sm, &mut lessor, &mut timers, 100, Command::GrantLease { ttl_ms: 3_000 });
    let lease = LeaseId(1);
    assert_eq!(lessor.poll_timeout(), Some(1_000), "the first checkpoint round comes first");
    assert_eq!(
        lessor.handle_keepalive(2_000, lease),
        Ok(Renewal { ttl_ms: 3_000, needs_checkpoint_clear: false })
    );
    assert_eq!(lessor.remaining_ms(2_500, lease), Some(2_500));
    assert!(lessor.poll_expired(4_999).is_empty());
    assert_eq!(lessor.poll_expired(5_000), vec![lease]);
    assert_eq!(lessor.handle_keepalive(5_001, lease), Err(KeepAliveError::Expired(lease)));
    assert!(lessor.poll_expired(5_400).is_empty());
    assert_eq!(lessor.poll_expired(5_500), vec![lease], "retried until the expiry applies");
    drive(&mut sm, &mut lessor, &mut timers, 5_600, Command::ExpireLease { lease_id: lease });
    assert!(lessor.poll_expired(100_000).is_empty());
    assert_eq!(lessor.handle_keepalive(5_700, lease), Err(KeepAliveError::NotFound(lease)));
}

#[test]
fn a_drift_allowance_holds_leases_longer_on_the_leaders_clock_and_promises_no_more() {
    let mut sm = Checked::new();
    // 1% drift: a leader whose clock runs 1% fast still frees the lock only after the TTL.
    let mut lessor =
        Lessor::new(LessorConfig { clock_drift_max_ppm: 10_000, ..LessorConfig::default() });
    let mut timers = Timers::default();
    lessor.promote(0, sm.0.lease_ttls());
    drive(&mut sm, &mut lessor, &mut timers, 0, Command::GrantLease { ttl_ms: 10_000 });
    let lease = LeaseId(1);
    assert!(lessor.poll_expired(10_099).is_empty());
    assert_eq!(lessor.handle_keepalive(10_000, lease).map(|r| r.ttl_ms), Ok(10_000));
    assert_eq!(lessor.remaining_ms(10_000, lease), Some(10_000), "clients are promised the TTL");
    assert!(lessor.poll_expired(20_099).is_empty());
    assert_eq!(lessor.poll_expired(20_100), vec![lease]);
    // A new leader holds unchecked leases for the TTL plus the allowance too.
    let mut next =
        Lessor::new(LessorConfig { clock_drift_max_ppm: 10_000, ..LessorConfig::default() });
    next.promote(50_000, sm.0.lease_ttls());
    assert!(next.poll_expired(60_099).is_empty());
    assert_eq!(next.poll_expired(60_100), vec![lease]);
}

#[test]
fn only_the_primary_answers() {
    let mut lessor = lessor();
    assert_eq!(lessor.handle_keepalive(0, LeaseId(1)), Err(KeepAliveError::NotPrimary));
    assert_eq!(lessor.poll_timeout(), None);
    lessor.promote(0, [(LeaseId(1), 1_000, None)]);
    assert!(lessor.handle_keepalive(10, LeaseId(1)).is_ok());
    lessor.demote();
    assert_eq!(lessor.handle_keepalive(20, LeaseId(1)), Err(KeepAliveError::NotPrimary));
    assert!(lessor.poll_expired(1_000_000).is_empty());
}

#[test]
fn a_new_leader_gives_full_ttls_except_to_checkpointed_leases() {
    let mut lessor = lessor();
    lessor.promote(10_000, [(LeaseId(1), 6_000, None), (LeaseId(2), 6_000, Some(1_000))]);
    assert_eq!(lessor.remaining_ms(10_000, LeaseId(1)), Some(6_000));
    assert_eq!(lessor.remaining_ms(10_000, LeaseId(2)), Some(1_000));
    assert_eq!(lessor.poll_expired(11_000), vec![LeaseId(2)]);
}

#[test]
fn lapsing_leases_are_checkpointed_and_a_keepalive_must_clear_the_checkpoint() {
    let mut sm = Checked::new();
    let mut lessor = lessor();
    let mut timers = Timers::default();
    lessor.promote(0, sm.0.lease_ttls());
    drive(&mut sm, &mut lessor, &mut timers, 0, Command::GrantLease { ttl_ms: 10_000 });
    drive(&mut sm, &mut lessor, &mut timers, 0, Command::GrantLease { ttl_ms: 10_000 });
    let (lapsing, healthy) = (LeaseId(1), LeaseId(2));
    lessor.handle_keepalive(4_000, healthy).unwrap();
    assert!(lessor.poll_checkpoints(999).is_empty(), "not before the interval");
    assert!(lessor.poll_checkpoints(1_000).is_empty(), "nobody is lapsing yet");
    let checkpoints = lessor.poll_checkpoints(6_000);
    let expected = vec![LeaseCheckpoint { lease_id: lapsing, remaining_ttl_ms: Some(4_000) }];
    assert_eq!(checkpoints, expected);
    // A keepalive before the checkpoint is applied must already clear it.
    let renewal = lessor.handle_keepalive(6_100, lapsing).unwrap();
    assert!(renewal.needs_checkpoint_clear);
    drive(&mut sm, &mut lessor, &mut timers, 6_200, Command::CheckpointLeases { checkpoints });
    assert!(lessor.handle_keepalive(6_300, lapsing).unwrap().needs_checkpoint_clear);
    let clear = vec![LeaseCheckpoint { lease_id: lapsing, remaining_ttl_ms: None }];
    drive(
        &mut sm,
        &mut lessor,
        &mut timers,
        6_400,
        Command::CheckpointLeases { checkpoints: clear },
    );
    assert!(!lessor.handle_keepalive(6_500, lapsing).unwrap().needs_checkpoint_clear);
    assert!(!lessor.handle_keepalive(6_500, healthy).unwrap().needs_checkpoint_clear);
    assert_eq!(sm.0.lease(lapsing).unwrap().remaining_ttl_ms, None);
}

#[test]
fn a_lease_nobody_keeps_alive_expires_despite_leader_changes() {
    // Leaders that each live 6 s (over half a TTL plus a checkpoint interval) hand the
    // lapsing lease's remainder on; it must expire within a bounded time.
    let mut sm = Checked::new();
    let mut timers = Timers::default();
    let mut now_ms = 0;
    let mut lessor = lessor();
    lessor.promote(now_ms, sm.0.lease_ttls());
    drive(&mut sm, &mut lessor, &mut timers, now_ms, Command::GrantLease { ttl_ms: 10_000 });
    let expired_at = loop {
        let term_end_ms = now_ms + 6_000;
        let mut expired = None;
        while now_ms < term_end_ms && expired.is_none() {
            now_ms += 100;
            let checkpoints = lessor.poll_checkpoints(now_ms);
            if !checkpoints.is_empty() {
                drive(
                    &mut sm,
                    &mut lessor,
                    &mut timers,
                    now_ms,
                    Command::CheckpointLeases { checkpoints },
                );
            }
            if let Some(lease_id) = lessor.poll_expired(now_ms).pop() {
                drive(&mut sm, &mut lessor, &mut timers, now_ms, Command::ExpireLease { lease_id });
                expired = Some(now_ms);
            }
        }
        if let Some(at) = expired {
            break at;
        }
        assert!(now_ms < 60_000, "the lease lived forever");
        now_ms += 1_500; // an election
        lessor = self::lessor();
        lessor.promote(now_ms, sm.0.lease_ttls());
    };
    assert!(expired_at >= 10_000, "never early");
    assert!(expired_at <= 20_000, "expired only at {expired_at} ms");
}

#[test]
fn a_wait_times_out_into_a_cancel_wait_and_a_grant_disarms_it() {
    let mut sm = Checked::new();
    let mut lessor = lessor();
    let mut timers = Timers::new(TimersConfig { batch_max: 10, retry_ms: 200 });
    timers.promote(0, &sm.0);
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    sm.grant("/x", a, Exclusive);
    for lease in [b, c] {
        let command = support::lock_command("/x", lease, Exclusive, 1_000, 0);
        drive(&mut sm, &mut lessor, &mut timers, 100, command);
    }
    assert_eq!(timers.poll_timeout(), Some(1_100));
    assert!(timers.poll_due(1_099).is_empty());
    let due = timers.poll_due(1_100);
    let cancel = |lease_id, queued_revision| Command::CancelWait {
        path: path("/x"),
        lease_id,
        queued_revision,
        request_id: 0,
        reason: CancelReason::WaitTimeout,
    };
    assert_eq!(due, vec![cancel(b, 2), cancel(c, 3)]);
    drive(&mut sm, &mut lessor, &mut timers, 1_150, cancel(b, 2));
    // c is granted before its retry: its timer goes away.
    drive(&mut sm, &mut lessor, &mut timers, 1_160, Command::RevokeLease { lease_id: a });
    assert!(timers.is_empty());
    assert!(timers.poll_due(10_000).is_empty());
}

#[test]
fn a_new_leader_rearms_waits_and_lock_delays_with_their_full_time() {
    let mut sm = Checked::with(Limits { lock_delay_ms: 3_000, ..Limits::default() });
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    sm.grant("/x", a, Exclusive);
    sm.grant("/y", a, Exclusive);
    sm.lock("/y", b, Exclusive, 9_000);
    sm.apply(Command::ExpireLease { lease_id: a });
    let mut timers = Timers::default();
    timers.promote(50_000, &sm.0);
    assert_eq!(timers.len(), 3);
    let mut due = timers.poll_due(53_000);
    due.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        due,
        vec![
            Command::EndLockDelay { path: path("/x") },
            Command::EndLockDelay { path: path("/y") }
        ]
    );
    let mut lessor = lessor();
    for command in due {
        drive(&mut sm, &mut lessor, &mut timers, 53_100, command);
    }
    assert_eq!(sm.0.lock(&path("/y")).unwrap().holders[0].lease_id, b);
    assert!(timers.is_empty(), "the grant at the delay's end disarmed b's wait");
}

/// Seed 171 of the simulator: a lessor renews a checkpointed lease and its clear is still
/// in flight when the node is promoted again (a new term) from a state that still has the
/// checkpoint. When the clear commits, the new lessor must honour the renewal it stands for.
#[test]
fn a_clear_committed_after_a_promotion_extends_the_lease_to_a_full_ttl() {
    let mut sm = Checked::new();
    let mut lessor = lessor();
    let mut timers = Timers::default();
    lessor.promote(0, sm.0.lease_ttls());
    drive(&mut sm, &mut lessor, &mut timers, 0, Command::GrantLease { ttl_ms: 4_000 });
    let lease = LeaseId(1);
    let checkpoint = LeaseCheckpoint { lease_id: lease, remaining_ttl_ms: Some(1_500) };
    let checkpoints = vec![checkpoint];
    drive(&mut sm, &mut lessor, &mut timers, 2_500, Command::CheckpointLeases { checkpoints });
    // The new term's lessor starts from the state: 1.5 s left.
    lessor.promote(3_000, sm.0.lease_ttls());
    assert_eq!(lessor.remaining_ms(3_000, lease), Some(1_500));
    // The old lessor's renewal commits its clear now; its client was promised 4 s.
    let clear = vec![LeaseCheckpoint { lease_id: lease, remaining_ttl_ms: None }];
    drive(
        &mut sm,
        &mut lessor,
        &mut timers,
        3_100,
        Command::CheckpointLeases { checkpoints: clear },
    );
    assert_eq!(lessor.remaining_ms(3_100, lease), Some(4_000));
    assert!(lessor.poll_expired(7_099).is_empty());
    assert_eq!(lessor.poll_expired(7_100), vec![lease]);
}
