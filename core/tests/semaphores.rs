//! Semaphores (up to N holders of one path, FIFO, a token each) and `Proclaim` (an
//! election's value change), one rule per test.

mod support;

use lockmgr_core::{
    Command, LeaseId, Limits, LockMode, LockOutcome, Rejection, Reply, WatchEventKind,
};
use support::{Checked, lock_command, path, watch};

const TWO: LockMode = LockMode::Semaphore { permits: 2 };

fn queued(queued_revision: u64, position: usize) -> Reply {
    Reply::Lock(LockOutcome::Queued { queued_revision, position })
}

fn proclaim(sm: &mut Checked, lease_id: LeaseId, token: u64, value: &str) -> Reply {
    let command = Command::Proclaim {
        path: path("/election/db"),
        lease_id,
        token,
        value: value.into(),
        request_id: 0,
    };
    sm.apply(command).reply
}

#[test]
fn a_semaphore_admits_its_permits_each_with_a_token_then_queues_in_order() {
    let mut sm = Checked::new();
    let (a, b, c, d) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    let ta = sm.grant("/pool", a, TWO);
    let tb = sm.grant("/pool", b, TWO);
    assert!(tb > ta, "each holder gets its own, higher token");
    assert!(matches!(sm.lock("/pool", c, TWO, 0).reply, Reply::Lock(LockOutcome::Busy { .. })));
    assert_eq!(sm.lock("/pool", c, TWO, 5_000).reply, queued(3, 0));
    assert_eq!(sm.lock("/pool", d, TWO, 5_000).reply, queued(4, 1));
    let applied = sm.unlock("/pool", a, ta);
    let handed = watch(&applied);
    assert_eq!(handed.last().unwrap().2, c.0, "the first waiter takes the freed permit");
    assert_eq!(handed.last().unwrap().3, WatchEventKind::Acquired { queued_revision: Some(3) });
    let view = sm.0.lock(&path("/pool")).unwrap();
    assert_eq!(view.holders.len(), 2);
    assert_eq!(view.waiters.len(), 1);
    assert_eq!(view.waiters[0].lease_id, d);
}

#[test]
fn a_request_with_other_permits_or_a_lock_on_a_semaphore_is_refused_by_name() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    sm.grant("/pool", a, TWO);
    let three = LockMode::Semaphore { permits: 3 };
    let mismatch =
        Rejection::PermitsMismatch { path: path("/pool"), requested: Some(3), current: Some(2) };
    assert_eq!(sm.lock("/pool", b, three, 1_000).reply, Reply::Rejected(mismatch.clone()));
    assert!(mismatch.to_string().contains("a semaphore of 2 permits"), "{mismatch}");
    let lock = sm.lock("/pool", b, LockMode::Exclusive, 0).reply;
    let expected =
        Rejection::PermitsMismatch { path: path("/pool"), requested: None, current: Some(2) };
    assert_eq!(lock, Reply::Rejected(expected));
    sm.grant("/plain", a, LockMode::Shared);
    let semaphore = sm.lock("/plain", b, TWO, 0).reply;
    let expected =
        Rejection::PermitsMismatch { path: path("/plain"), requested: Some(2), current: None };
    assert_eq!(semaphore, Reply::Rejected(expected));
}

#[test]
fn permits_out_of_bounds_are_refused() {
    let mut sm = Checked::with(Limits { semaphore_permits_max: 8, ..Limits::default() });
    let a = sm.lease(10_000);
    for permits in [0, 9] {
        let reply = sm.lock("/pool", a, LockMode::Semaphore { permits }, 0).reply;
        assert_eq!(reply, Reply::Rejected(Rejection::InvalidPermits { permits, max: 8 }));
    }
    assert_eq!(sm.0.revision(), 0, "nothing changed");
}

#[test]
fn an_expired_holder_frees_its_permit_for_the_queue() {
    let mut sm = Checked::new();
    let (a, b, c) = (sm.lease(10_000), sm.lease(10_000), sm.lease(10_000));
    sm.grant("/pool", a, TWO);
    sm.grant("/pool", b, TWO);
    sm.lock("/pool", c, TWO, 5_000);
    let applied = sm.apply(Command::ExpireLease { lease_id: a });
    assert!(watch(&applied).iter().any(|event| event.2 == c.0));
    assert_eq!(sm.0.lock(&path("/pool")).unwrap().holders.len(), 2);
}

#[test]
fn a_retry_with_the_same_request_id_gets_the_same_permit() {
    let mut sm = Checked::new();
    let a = sm.lease(10_000);
    let first = sm.apply(lock_command("/pool", a, TWO, 0, 7)).reply;
    let again = sm.apply(lock_command("/pool", a, TWO, 0, 7)).reply;
    assert_eq!(first, again);
    let reused = sm.apply(lock_command("/pool", a, LockMode::Exclusive, 0, 7)).reply;
    assert!(matches!(reused, Reply::Rejected(Rejection::RequestIdReused { .. })), "{reused:?}");
}

#[test]
fn proclaim_changes_the_value_and_keeps_the_grant_and_the_queue() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/election/db", a, LockMode::Exclusive);
    sm.lock("/election/db", b, LockMode::Exclusive, 5_000);
    let applied = sm.apply(Command::Proclaim {
        path: path("/election/db"),
        lease_id: a,
        token,
        value: "10.0.0.7:5432".into(),
        request_id: 0,
    });
    assert_eq!(applied.reply, Reply::Proclaimed { token });
    let events = watch(&applied);
    assert_eq!(events, vec![(3, "/election/db".into(), a.0, WatchEventKind::Proclaimed { token })]);
    let view = sm.0.lock(&path("/election/db")).unwrap();
    assert_eq!(view.holders.len(), 1);
    assert_eq!(view.holders[0].holder_id, "10.0.0.7:5432");
    assert_eq!(view.holders[0].token, token);
    assert_eq!(view.waiters.len(), 1, "the candidate still waits");
}

#[test]
fn proclaim_with_a_stale_token_or_by_a_non_leader_is_refused() {
    let mut sm = Checked::new();
    let (a, b) = (sm.lease(10_000), sm.lease(10_000));
    let token = sm.grant("/election/db", a, LockMode::Exclusive);
    let stale = proclaim(&mut sm, a, token + 5, "x");
    assert!(matches!(stale, Reply::Rejected(Rejection::StaleToken { .. })), "{stale:?}");
    let other = proclaim(&mut sm, b, token, "x");
    assert!(matches!(other, Reply::Rejected(Rejection::LockNotHeld { .. })), "{other:?}");
    let long = "v".repeat(Limits::default().holder_id_bytes_max + 1);
    let too_long = proclaim(&mut sm, a, token, &long);
    assert!(matches!(too_long, Reply::Rejected(Rejection::HolderIdTooLong { .. })));
}
