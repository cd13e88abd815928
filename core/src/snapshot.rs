//! The snapshot encoding: deterministic (the same state gives the same bytes on every
//! node: every map is ordered, nothing derived is written) and versioned, with a decoder
//! that answers corrupt input with an error, never a panic or an unbounded allocation.
//!
//! Layout: `b"LKMS"`, format version (u16 LE), CRC-32 of the body (u32 LE), body
//! (postcard of the state). Derived indexes (which paths a lease holds or waits for) are
//! rebuilt on decode and every invariant is checked before the state is used.

use crate::{
    invariants::InvariantViolation, limits::Limits, machine::State, machine::StateMachine,
};

const MAGIC: &[u8; 4] = b"LKMS";
/// Version 2 added semaphores and `Proclaim` (new enum variants at the end); a version 1
/// body is a version 2 body without them, so both decode the same way.
const FORMAT_VERSION: u16 = 2;
const OLDEST_READABLE: u16 = 1;
const HEADER_BYTES: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("snapshot is {0} bytes, shorter than its header")]
    Truncated(usize),
    #[error("not a lockmgr snapshot (bad magic bytes)")]
    BadMagic,
    #[error(
        "snapshot format version {0} is not supported (this build reads versions {OLDEST_READABLE} to {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u16),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot body does not decode: {0}")]
    Decode(String),
    #[error("snapshot state is inconsistent: {0}")]
    Inconsistent(String),
}

impl From<InvariantViolation> for SnapshotError {
    fn from(violation: InvariantViolation) -> Self {
        SnapshotError::Inconsistent(violation.0)
    }
}

impl StateMachine {
    /// Encodes the whole replicated state.
    pub fn snapshot(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(&self.state).expect("state always serializes");
        let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    /// Decodes a snapshot made by [`StateMachine::snapshot`], to run with `limits`.
    pub fn restore(limits: Limits, bytes: &[u8]) -> Result<StateMachine, SnapshotError> {
        if bytes.len() < HEADER_BYTES {
            return Err(SnapshotError::Truncated(bytes.len()));
        }
        let (header, body) = bytes.split_at(HEADER_BYTES);
        if &header[..4] != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = u16::from_le_bytes([header[4], header[5]]);
        if !(OLDEST_READABLE..=FORMAT_VERSION).contains(&version) {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let stored = u32::from_le_bytes([header[6], header[7], header[8], header[9]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let (state, rest): (State, _) =
            postcard::take_from_bytes(body).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if !rest.is_empty() {
            return Err(SnapshotError::Decode(format!("{} trailing bytes", rest.len())));
        }
        let mut machine = StateMachine { limits, state };
        machine.rebuild_lease_indexes()?;
        machine.check_invariants()?;
        if crate::planted::planted(crate::planted::PlantedBug::TokenReuseAfterRestart) {
            machine.state.revision -= 1;
        }
        Ok(machine)
    }

    fn rebuild_lease_indexes(&mut self) -> Result<(), SnapshotError> {
        let State { leases, locks, .. } = &mut self.state;
        for (path, entry) in locks.iter() {
            let holders = entry.holders.iter().map(|grant| (grant.lease_id, true));
            let waiters = entry.waiters.iter().map(|waiter| (waiter.lease_id, false));
            for (lease_id, holds) in holders.chain(waiters) {
                let Some(lease) = leases.get_mut(&lease_id) else {
                    let message = format!("{path} names lease {lease_id}, which does not exist");
                    return Err(SnapshotError::Inconsistent(message));
                };
                let set = if holds { &mut lease.held } else { &mut lease.waiting };
                if !set.insert(path.clone()) {
                    let message = format!("{path} names lease {lease_id} twice");
                    return Err(SnapshotError::Inconsistent(message));
                }
            }
        }
        Ok(())
    }
}
