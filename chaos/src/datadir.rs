//! Reads a stopped node's data directory the way the server opens it (fjall, the Raft log
//! store): its committed log entries. A directory that does not open, or whose log does not
//! decode, is a failure of the run.

use std::path::Path;

use lockmgr_core::Command;
use lockmgr_io::{LogStore, TypeConfig};
use openraft::{EntryPayload, RaftLogReader, entry::RaftEntry, storage::RaftLogStorage};

#[derive(Debug)]
pub struct NodeLog {
    pub committed: u64,
    /// The committed client commands, by log index.
    pub commands: Vec<(u64, Command)>,
}

pub async fn read(data_dir: &Path) -> Result<NodeLog, String> {
    let disk = lockmgr_server::open_disk(data_dir).map_err(|e| e.to_string())?;
    let mut store = LogStore::new(disk);
    let what = |e: std::io::Error| format!("{}: {e}", data_dir.display());
    let state = RaftLogStorage::<TypeConfig>::get_log_state(&mut store).await.map_err(what)?;
    if let Some(purged) = state.last_purged_log_id {
        return Err(format!(
            "{}: log purged up to {} (a snapshot was taken): the checks need the whole log",
            data_dir.display(),
            purged.index()
        ));
    }
    let committed = RaftLogStorage::<TypeConfig>::read_committed(&mut store)
        .await
        .map_err(what)?
        .map_or(0, |id| id.index());
    let mut commands = Vec::new();
    let mut next = 1;
    while next <= committed {
        let entries = store.try_get_log_entries(next..=committed).await.map_err(what)?;
        let Some(last) = entries.last() else {
            return Err(format!("{}: committed entry {next} is missing", data_dir.display()));
        };
        let last = last.log_id().index();
        for entry in entries {
            let index = entry.log_id().index();
            if index != next {
                return Err(format!("{}: entry {next} is missing", data_dir.display()));
            }
            if let EntryPayload::Normal(command) = entry.payload {
                commands.push((index, command));
            }
            next += 1;
        }
        debug_assert_eq!(next, last + 1);
    }
    Ok(NodeLog { committed, commands })
}
