//! `lockmgr snapshot save | status | restore`: backups of the cluster's state, as
//! `etcdctl snapshot save` and `etcdutl snapshot status | restore` (the runbooks in
//! `docs/operations.md` use them).

use std::{io::Write, path::Path};

use lockmgr_io::backup::{self, Backup};
use lockmgr_server::recovery::{self, Recovered};
use serde::Serialize;

use crate::{
    args::RestoreArgs,
    commands::Ctl,
    views::{View, human_ms},
};

/// What a backup file holds (`save` and `status` print it).
#[derive(Debug, Serialize)]
pub struct BackupView {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub cluster_id: u64,
    /// The member that served it.
    pub node_id: u64,
    pub term: u64,
    pub index: u64,
    pub revision: u64,
    pub leases: u64,
    pub locks: u64,
    pub taken_at_unix_ms: u64,
}

impl BackupView {
    fn of(file: &Path, bytes: u64, backup: &Backup) -> BackupView {
        let header = &backup.header;
        BackupView {
            file: file.display().to_string(),
            bytes,
            sha256: backup::hex(&backup.sha256),
            cluster_id: header.cluster_id,
            node_id: header.node_id,
            term: header.term,
            index: header.index,
            revision: header.revision,
            leases: header.leases,
            locks: header.locks,
            taken_at_unix_ms: header.taken_at_unix_ms,
        }
    }
}

impl View for BackupView {
    fn human(&self) -> String {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        format!(
            "{}: {} bytes, sha256 {}\ncluster {}, from node {}, taken {} ago\nterm {}, index {}, revision {}: {} leases, {} locks",
            self.file,
            self.bytes,
            self.sha256,
            self.cluster_id,
            self.node_id,
            human_ms(now_ms.saturating_sub(self.taken_at_unix_ms) / 1_000 * 1_000),
            self.term,
            self.index,
            self.revision,
            self.leases,
            self.locks,
        )
    }
}

/// A data directory written by `restore`.
#[derive(Debug, Serialize)]
pub struct RestoredView {
    pub data_dir: String,
    pub node_id: u64,
    pub members: Vec<u64>,
    pub term: u64,
    pub index: u64,
    pub revision: u64,
    pub leases: u64,
    pub locks: u64,
}

impl View for RestoredView {
    fn human(&self) -> String {
        format!(
            "restored node {} of members {:?} into {}: revision {}, {} leases, {} locks\nstart it with the same flags: lockmgr server ...",
            self.node_id, self.members, self.data_dir, self.revision, self.leases, self.locks
        )
    }
}

/// Why an offline snapshot command failed.
pub type Failure = String;

fn read_backup(file: &Path) -> Result<(u64, Backup), Failure> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    // Checked under the default limits: a backup carries none, and the server that
    // starts from it applies its own.
    let backup = backup::decode_backup(&bytes, lockmgr_core::Limits::default())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((bytes.len() as u64, backup))
}

/// Writes `bytes` to `file` whole or not at all: a temporary file beside it, synced,
/// renamed over it, the directory synced.
fn write_whole(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = directory.join(format!(".{name}.part"));
    let mut out = std::fs::File::create(&temporary)?;
    out.write_all(bytes)?;
    out.sync_all()?;
    drop(out);
    std::fs::rename(&temporary, file)?;
    std::fs::File::open(&directory)?.sync_all()
}

impl Ctl {
    /// `snapshot save FILE`.
    pub async fn save_snapshot(&self, file: &Path) -> Result<(), lockmgr_client::Error> {
        let bytes = self.client.save_snapshot().await?;
        // Checked before it is kept: a backup that does not read back is not one.
        let backup =
            backup::decode_backup(&bytes, lockmgr_core::Limits::default()).map_err(|e| {
                lockmgr_client::Error::Invalid(format!(
                    "the leader's backup does not read back: {e}"
                ))
            })?;
        write_whole(file, &bytes).map_err(|e| {
            lockmgr_client::Error::Invalid(format!("cannot write {}: {e}", file.display()))
        })?;
        self.show(&BackupView::of(file, bytes.len() as u64, &backup));
        Ok(())
    }
}

/// `snapshot status FILE`.
pub fn status(file: &Path) -> Result<BackupView, Failure> {
    let (bytes, backup) = read_backup(file)?;
    Ok(BackupView::of(file, bytes, &backup))
}

/// `snapshot restore FILE ...`.
pub fn restore(args: &RestoreArgs) -> Result<RestoredView, Failure> {
    if args.server.force_new_cluster {
        return Err(
            "--force-new-cluster is a server flag: a restore always founds a new cluster".into()
        );
    }
    let config = args.server.config().map_err(|e| e.to_string())?;
    let (_, backup) = read_backup(&args.file)?;
    let Recovered { term, index, revision, leases, locks, members } =
        recovery::restore(&config, backup, args.bump_revision).map_err(|e| e.to_string())?;
    Ok(RestoredView {
        data_dir: config.data_dir.display().to_string(),
        node_id: config.node_id,
        members,
        term,
        index,
        revision,
        leases,
        locks,
    })
}
