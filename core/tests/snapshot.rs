//! The snapshot encoding: deterministic, round-trips, and refuses corrupt input.

mod support;

use lockmgr_core::{
    Limits,
    LockMode::{Exclusive, Shared},
    SnapshotError, StateMachine,
};
use support::Checked;

fn busy_state() -> Checked {
    let mut sm = Checked::with(Limits { lock_delay_ms: 1_000, ..Limits::default() });
    let (a, b, c) = (sm.lease(10_000), sm.lease(20_000), sm.lease(30_000));
    sm.grant("/db/users", a, Exclusive);
    sm.grant("/cfg", b, Shared);
    sm.grant("/cfg", c, Shared);
    sm.lock("/db/users", b, Exclusive, 5_000);
    sm.apply(support::lock_command("/db/users", c, Exclusive, 5_000, 9));
    sm.grant("/gone", c, Exclusive);
    sm.apply(lockmgr_core::Command::ExpireLease { lease_id: a });
    sm
}

#[test]
fn the_same_state_gives_the_same_bytes() {
    let one = busy_state().0.snapshot();
    let two = busy_state().0.snapshot();
    assert_eq!(one, two);
    assert_eq!(&one[..4], b"LKMS");
}

#[test]
fn restore_gives_back_the_same_state() {
    let sm = busy_state().0;
    let restored = StateMachine::restore(sm.limits().clone(), &sm.snapshot()).unwrap();
    assert_eq!(restored, sm);
    assert_eq!(restored.snapshot(), sm.snapshot());
}

#[test]
fn corrupt_snapshots_are_refused_with_a_reason() {
    let bytes = busy_state().0.snapshot();
    let restore = |bytes: &[u8]| StateMachine::restore(Limits::default(), bytes).unwrap_err();
    assert_eq!(restore(&bytes[..3]), SnapshotError::Truncated(3));
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(restore(&bad), SnapshotError::BadMagic);
    let mut bad = bytes.clone();
    bad[4] = 9;
    assert_eq!(restore(&bad), SnapshotError::UnsupportedVersion(9));
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 0x40;
    assert!(matches!(restore(&bad), SnapshotError::Checksum { .. }));
}

#[test]
fn a_well_checksummed_but_altered_body_is_refused_or_consistent() {
    // Every one-byte change to the body, with a fresh checksum, must be refused by the
    // decoder or the consistency checks, or decode to a state that passes every invariant.
    let sm = busy_state().0;
    let bytes = sm.snapshot();
    let body = &bytes[10..];
    let mut refused = 0;
    for index in 0..body.len() {
        let mut body = body.to_vec();
        body[index] = body[index].wrapping_add(1);
        let mut bytes = bytes[..6].to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        match StateMachine::restore(Limits::default(), &bytes) {
            Ok(restored) => restored.check_invariants().unwrap(),
            Err(SnapshotError::Decode(_) | SnapshotError::Inconsistent(_)) => refused += 1,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(refused > 0);
}
