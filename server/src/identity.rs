//! Whose data directory this is. The first start writes `identity.toml` (cluster id,
//! node id, and whether the member founded its cluster or joined one); every later start
//! checks it before the directory is touched, as etcd checks its member and cluster ids:
//! node 1's state served as node 2, or under another cluster id, or re-joined as a blank
//! member, would break Raft's promises in ways no later check can see.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ServerConfig};

const FILE: &str = "identity.toml";

/// How a member's directory began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Bootstrapped a cluster (alone or as one of `initial_cluster`).
    Founded,
    /// Started empty with `join` and was added by `cluster add`.
    Joined,
    /// Written by a version that kept no identity: not known.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub cluster_id: u64,
    pub node_id: u64,
    pub origin: Origin,
}

/// What [`check`] found in the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataDir {
    /// Nothing yet: this start writes the identity.
    Fresh,
    /// State from before identities were kept: this start records it as it is.
    Unrecorded,
    Known(Identity),
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Reads and checks the directory's identity against `config`, writing nothing.
pub fn check(config: &ServerConfig) -> Result<DataDir, ConfigError> {
    let dir = &config.data_dir;
    let file = path(dir);
    let invalid = |rule: String| ConfigError::Invalid { name: "data_dir", rule };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let has_state = dir.join("raft").exists();
            return Ok(if has_state { DataDir::Unrecorded } else { DataDir::Fresh });
        }
        Err(source) => return Err(ConfigError::Read { path: file, source }),
    };
    let identity: Identity = toml::from_str(&text)
        .map_err(|source| ConfigError::Parse { path: file.clone(), source })?;
    let shown = dir.display();
    if identity.node_id != config.node_id || identity.cluster_id != config.cluster_id {
        return Err(invalid(format!(
            "{shown} holds node {} of cluster {}, not node {} of cluster {} (node_id, cluster_id): give each member its own directory, or the ids it was created with",
            identity.node_id, identity.cluster_id, config.node_id, config.cluster_id
        )));
    }
    if config.join && identity.origin == Origin::Founded {
        return Err(invalid(format!(
            "{shown} holds the state of node {} that founded cluster {}; join starts an empty member: start it without join to resume, or give it an empty directory to join afresh",
            identity.node_id, identity.cluster_id
        )));
    }
    Ok(DataDir::Known(identity))
}

/// Writes the identity a [`check`] found missing; call before Raft writes anything.
pub fn record(config: &ServerConfig, found: &DataDir) -> std::io::Result<()> {
    let origin = match found {
        DataDir::Known(_) => return Ok(()),
        DataDir::Fresh if config.join => Origin::Joined,
        DataDir::Fresh => Origin::Founded,
        DataDir::Unrecorded => Origin::Unknown,
    };
    let identity = Identity { cluster_id: config.cluster_id, node_id: config.node_id, origin };
    let text = toml::to_string(&identity).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(&config.data_dir)?;
    // Written whole or not at all: a torn file would stop every later start.
    let temporary = config.data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&temporary, text)?;
    std::fs::File::open(&temporary)?.sync_all()?;
    std::fs::rename(&temporary, path(&config.data_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, node_id: u64, cluster_id: u64, join: bool) -> ServerConfig {
        ServerConfig { data_dir: dir.to_owned(), node_id, cluster_id, join, ..Default::default() }
    }

    #[test]
    fn a_directory_answers_only_to_its_own_ids() {
        let dir = tempfile::tempdir().unwrap();
        let first = config(dir.path(), 1, 1, false);
        let found = check(&first).unwrap();
        assert_eq!(found, DataDir::Fresh);
        record(&first, &found).unwrap();
        assert!(matches!(check(&first).unwrap(), DataDir::Known(_)));
        let named = |config: &ServerConfig| match check(config) {
            Err(ConfigError::Invalid { name, rule }) => format!("{name}: {rule}"),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(named(&config(dir.path(), 2, 1, false)).contains("holds node 1 of cluster 1"));
        assert!(named(&config(dir.path(), 1, 9, false)).contains("not node 1 of cluster 9"));
        assert!(named(&config(dir.path(), 1, 1, true)).contains("founded cluster 1"));
    }

    #[test]
    fn a_joined_member_may_restart_with_join() {
        let dir = tempfile::tempdir().unwrap();
        let joining = config(dir.path(), 4, 1, true);
        record(&joining, &check(&joining).unwrap()).unwrap();
        assert!(matches!(check(&joining).unwrap(), DataDir::Known(_)));
    }
}
