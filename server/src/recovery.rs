//! Disaster recovery (`docs/operations.md`): a new cluster from a backup
//! (`lockmgr snapshot restore`), and a survivor of a lost majority made a one-member
//! cluster with its own data (`lockmgr server --force-new-cluster`). Both write the data
//! directory before Raft starts on it, never while a member runs.

use lockmgr_io::{
    LogId, Vote,
    backup::{self, Backup, BackupError, Seed},
};
use tracing::warn;

use crate::{
    config::{ConfigError, ServerConfig},
    identity::{self, DataDir},
    node::{NodeError, founders, open_disk, own_node},
};

/// A failed read or write of `config`'s data directory.
fn storage_error(config: &ServerConfig) -> impl Fn(std::io::Error) -> NodeError + Copy + '_ {
    |source| NodeError::Storage { path: config.data_dir.display().to_string(), source }
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error("{0}")]
    Backup(#[from] BackupError),
    #[error("{0}")]
    Refused(String),
}

/// What a restore or a forced new cluster started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub term: u64,
    pub index: u64,
    pub revision: u64,
    pub leases: u64,
    pub locks: u64,
    /// The voters of the new cluster.
    pub members: Vec<u64>,
}

/// Writes a new data directory for `config`'s member of a new cluster (its
/// `initial_cluster`, or this node alone) holding the backup's state, its revision moved
/// `bump_revision` ahead. Every founding member is restored from the same file with the
/// same `initial_cluster` and `bump_revision`, then started as usual.
pub fn restore(
    config: &ServerConfig,
    backup: Backup,
    bump_revision: u64,
) -> Result<Recovered, RecoveryError> {
    config.validate()?;
    if config.join {
        return Err(RecoveryError::Refused(
            "a restored member founds its cluster: give --initial-cluster (or nothing, for one member), not --join".into(),
        ));
    }
    let found = identity::check(config)?;
    if found != DataDir::Fresh {
        return Err(RecoveryError::Refused(format!(
            "{} already holds a member's state: a restore writes a new directory (remove it, or give another --data-dir)",
            config.data_dir.display()
        )));
    }
    let members = founders(config)?;
    if !members.contains_key(&config.node_id) {
        return Err(RecoveryError::Refused(format!(
            "node {} is not one of the initial cluster's members {:?}",
            config.node_id,
            members.keys().collect::<Vec<_>>()
        )));
    }
    let Backup { header, mut machine, .. } = backup;
    machine.skip_revisions(bump_revision);
    let state = machine.snapshot();
    let last = LogId::new_term_index(header.term, header.index);
    // A vote for itself in the backup's term: every member's first election is in a
    // later term, so the new leader's entries follow the backup's in log order.
    let vote = Vote::new(header.term, config.node_id);
    let disk = open_disk(&config.data_dir)?;
    let storage_error = storage_error(config);
    backup::seed(&*disk, &Seed { state: &state, last, members: members.clone(), vote })
        .map_err(storage_error)?;
    drop(disk);
    // Written last: a directory without it after a failed restore is refused by the
    // next restore rather than half used.
    identity::record(config, &DataDir::Fresh).map_err(storage_error)?;
    Ok(Recovered {
        term: header.term,
        index: header.index,
        revision: machine.revision(),
        leases: machine.lease_count() as u64,
        locks: machine.lock_count() as u64,
        members: members.into_keys().collect(),
    })
}

/// Makes the member whose directory `config` names the only voter of its cluster, with
/// all its data: every entry in its log is applied (committed or not, as etcd's
/// `--force-new-cluster` does: with the majority gone, this log is the history), and the
/// membership becomes this node alone at the last entry. `None` when it already was.
pub fn force_new_cluster(
    config: &ServerConfig,
    disk: &dyn lockmgr_io::Disk,
) -> Result<Option<Recovered>, RecoveryError> {
    let storage_error = storage_error(config);
    let survivor = backup::survivor(disk, config.limits.clone()).map_err(storage_error)?;
    let Some(last) = survivor.last else {
        return Err(RecoveryError::Refused(format!(
            "{} holds no Raft state to recover: --force-new-cluster starts a survivor from its own data",
            config.data_dir.display()
        )));
    };
    if survivor.voters == [config.node_id] {
        return Ok(None);
    }
    let term = last.committed_leader_id().term;
    let vote = match survivor.vote {
        Some(vote) if vote.leader_id.term >= term => vote,
        _ => Vote::new(term, config.node_id),
    };
    let members = std::collections::BTreeMap::from([(config.node_id, own_node(config))]);
    let state = survivor.machine.snapshot();
    backup::seed(disk, &Seed { state: &state, last, members, vote }).map_err(storage_error)?;
    let recovered = Recovered {
        term,
        index: last.index(),
        revision: survivor.machine.revision(),
        leases: survivor.machine.lease_count() as u64,
        locks: survivor.machine.lock_count() as u64,
        members: vec![config.node_id],
    };
    warn!(
        index = recovered.index,
        revision = recovered.revision,
        leases = recovered.leases,
        locks = recovered.locks,
        former_voters = ?survivor.voters,
        "forced a new one-member cluster from this member's data: never start the former members with their old data again; add new members with `lockmgr cluster add`"
    );
    Ok(Some(recovered))
}
