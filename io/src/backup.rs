//! Backups and the two ways a data directory is made from a state rather than grown by
//! Raft: restoring a backup into a new cluster, and forcing a survivor into a one-member
//! cluster (`docs/operations.md`).
//!
//! A backup file: `b"LKMB"`, format version (u16 LE), header length (u32 LE), the header
//! (postcard of [`BackupHeader`]), the state (core's snapshot encoding, itself versioned
//! and checksummed), and the SHA-256 of everything before it (32 bytes), which
//! `lockmgr snapshot status` prints and every reader checks first.

use std::{collections::BTreeMap, io};

use lockmgr_core::{Limits, StateMachine};
use openraft::{Membership, entry::RaftEntry};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    disk::{Disk, Op, Space},
    log_store::{self, decode, encode},
    state_machine,
    types::{Entry, LogId, NodeInfo, SnapshotMeta, StoredMembership, Vote},
};

const MAGIC: &[u8; 4] = b"LKMB";
const FORMAT_VERSION: u16 = 1;
const DIGEST_BYTES: usize = 32;

/// What a backup says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The cluster it was taken from.
    pub cluster_id: u64,
    /// The member that served it (the leader at the time).
    pub node_id: u64,
    /// The last log entry in the state: term and index.
    pub term: u64,
    pub index: u64,
    /// The state's revision (every fencing token in it is at most this).
    pub revision: u64,
    pub leases: u64,
    pub locks: u64,
    /// When it was taken, milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a lockmgr backup (it does not start with LKMB)")]
    BadMagic,
    #[error(
        "backup format version {0} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion(u16),
    #[error("the backup is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("the backup's SHA-256 does not match its content: the file is damaged")]
    Digest,
    #[error("the backup's header does not decode: {0}")]
    Header(String),
    #[error("the backup's state does not decode: {0}")]
    State(#[from] lockmgr_core::SnapshotError),
}

/// A backup as read back: its header, its digest and the decoded state.
#[derive(Debug)]
pub struct Backup {
    pub header: BackupHeader,
    pub sha256: [u8; DIGEST_BYTES],
    pub machine: StateMachine,
    /// The state in core's snapshot encoding, as the file carries it.
    pub state: Vec<u8>,
}

impl BackupHeader {
    /// The header of a backup of `machine`, whose last applied entry is `last`.
    pub fn of(
        machine: &StateMachine,
        last: Option<LogId>,
        cluster_id: u64,
        node_id: u64,
        taken_at_unix_ms: u64,
    ) -> BackupHeader {
        BackupHeader {
            cluster_id,
            node_id,
            term: last.map_or(0, |id| id.committed_leader_id().term),
            index: last.map_or(0, |id| id.index()),
            revision: machine.revision(),
            leases: machine.lease_count() as u64,
            locks: machine.lock_count() as u64,
            taken_at_unix_ms,
        }
    }
}

/// Encodes a backup file of `state` (core's snapshot encoding) described by `header`.
pub fn encode_backup(header: &BackupHeader, state: &[u8]) -> Vec<u8> {
    let header = postcard::to_stdvec(header).expect("the header always serializes");
    let mut bytes = Vec::with_capacity(10 + header.len() + state.len() + DIGEST_BYTES);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(state);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// Reads a backup, checking its digest, its header and every invariant of its state.
pub fn decode_backup(bytes: &[u8], limits: Limits) -> Result<Backup, BackupError> {
    if bytes.len() < 10 + DIGEST_BYTES {
        return Err(if bytes.starts_with(MAGIC) || bytes.len() < 4 {
            BackupError::Truncated(bytes.len())
        } else {
            BackupError::BadMagic
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(BackupError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(BackupError::UnsupportedVersion(version));
    }
    let (content, digest) = bytes.split_at(bytes.len() - DIGEST_BYTES);
    if Sha256::digest(content).as_slice() != digest {
        return Err(BackupError::Digest);
    }
    let header_len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let Some(header) = content.get(10..10 + header_len) else {
        return Err(BackupError::Truncated(bytes.len()));
    };
    let header: BackupHeader =
        postcard::from_bytes(header).map_err(|e| BackupError::Header(e.to_string()))?;
    let state = content[10 + header_len..].to_vec();
    let machine = StateMachine::restore(limits, &state)?;
    let mut sha256 = [0; DIGEST_BYTES];
    sha256.copy_from_slice(digest);
    Ok(Backup { header, sha256, machine, state })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// What a seeded directory starts from.
#[derive(Debug)]
pub struct Seed<'a> {
    /// The state, in core's snapshot encoding.
    pub state: &'a [u8],
    /// The log entry the state is as of (the next entry gets `index + 1`).
    pub last: LogId,
    /// The voters, all of them founding members.
    pub members: BTreeMap<u64, NodeInfo>,
    pub vote: Vote,
}

/// Writes `seed` as the whole Raft state of an empty disk, in one atomic batch: the
/// state as the current snapshot (as of `last`, with the new membership), the log
/// purged up to `last` and committed to it, and the vote. Raft starts from it as from
/// a member that compacted its whole log.
pub fn seed(disk: &dyn Disk, seed: &Seed<'_>) -> io::Result<()> {
    let voters = seed.members.keys().copied().collect();
    let membership = Membership::new(vec![voters], seed.members.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let meta = SnapshotMeta {
        last_log_id: Some(seed.last),
        last_membership: StoredMembership::new(Some(seed.last), membership),
    };
    let mut ops: Vec<Op> = disk
        .scan(Space::Log, &[], None, usize::MAX)?
        .into_iter()
        .map(|(key, _)| Op::Delete(Space::Log, key))
        .collect();
    ops.push(state_machine::snapshot_op(&meta, seed.state)?);
    ops.push(Op::Put(Space::Meta, log_store::VOTE.to_vec(), encode(&seed.vote)?));
    ops.push(Op::Put(Space::Meta, log_store::COMMITTED.to_vec(), encode(&Some(seed.last))?));
    ops.push(Op::Put(Space::Meta, log_store::LAST_PURGED.to_vec(), encode(&seed.last)?));
    disk.commit(ops)
}

/// A member's whole state as its disk holds it: the snapshot with every log entry after
/// it applied, committed or not (as etcd's `--force-new-cluster` commits its whole log:
/// with the other members gone, this log is the cluster's history).
#[derive(Debug)]
pub struct Survivor {
    pub machine: StateMachine,
    /// The last entry in the log (or the snapshot's, with no log after it).
    pub last: Option<LogId>,
    pub vote: Option<Vote>,
    /// The membership the member last knew, as voter ids.
    pub voters: Vec<u64>,
}

/// Reads what a member's disk holds, as [`Survivor`].
pub fn survivor(disk: &dyn Disk, limits: Limits) -> io::Result<Survivor> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let snapshot: Option<(SnapshotMeta, Vec<u8>)> = state_machine::load_snapshot(disk)?;
    let (mut machine, mut last, mut membership) = match snapshot {
        Some((meta, data)) => (
            StateMachine::restore(limits, &data).map_err(|e| invalid(e.to_string()))?,
            meta.last_log_id,
            meta.last_membership.membership().clone(),
        ),
        None => (StateMachine::new(limits), None, Membership::default()),
    };
    let from = last.map_or(0, |id| id.index() + 1);
    for (_, value) in disk.scan(Space::Log, &from.to_be_bytes(), None, usize::MAX)? {
        let entry: Entry = decode(&value)?;
        match &entry.payload {
            openraft::EntryPayload::Normal(command) => {
                machine.apply(command);
            }
            openraft::EntryPayload::Membership(changed) => membership = changed.clone(),
            openraft::EntryPayload::Blank => {}
        }
        last = Some(entry.log_id());
    }
    let vote = disk.get(Space::Meta, log_store::VOTE)?.map(|bytes| decode(&bytes)).transpose()?;
    Ok(Survivor { machine, last, vote, voters: membership.voter_ids().collect() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemDisk;

    #[test]
    fn a_backup_reads_back_and_damage_is_named() {
        let machine = StateMachine::new(Limits::default());
        let last = LogId::new_term_index(3, 42);
        let header = BackupHeader::of(&machine, Some(last), 7, 2, 1_000);
        let bytes = encode_backup(&header, &machine.snapshot());
        let backup = decode_backup(&bytes, Limits::default()).unwrap();
        assert_eq!((backup.header.term, backup.header.index, backup.header.cluster_id), (3, 42, 7));
        let mut damaged = bytes.clone();
        damaged[12] ^= 1;
        assert!(matches!(decode_backup(&damaged, Limits::default()), Err(BackupError::Digest)));
        assert!(matches!(
            decode_backup(b"nonsense here, long enough to be read as a file", Limits::default()),
            Err(BackupError::BadMagic)
        ));
        assert!(matches!(
            decode_backup(&bytes[..20], Limits::default()),
            Err(BackupError::Truncated(20))
        ));
    }

    #[test]
    fn a_seeded_disk_reads_back_as_its_seed() {
        let disk = MemDisk::default();
        disk.commit(vec![Op::Put(Space::Log, 5u64.to_be_bytes().to_vec(), vec![1])]).unwrap();
        let machine = StateMachine::new(Limits::default());
        let state = machine.snapshot();
        let node = NodeInfo { peer_address: "a:1".into(), client_address: "a:2".into() };
        let last = LogId::new_term_index(4, 9);
        let vote = Vote::new(4, 1);
        seed(&disk, &Seed { state: &state, last, members: BTreeMap::from([(1, node)]), vote })
            .unwrap();
        let found = survivor(&disk, Limits::default()).unwrap();
        assert_eq!(found.last, Some(last));
        assert_eq!(found.vote, Some(vote));
        assert_eq!(found.voters, vec![1]);
        assert!(disk.scan(Space::Log, &[], None, 10).unwrap().is_empty());
    }
}
