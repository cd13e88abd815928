//! The server's configuration: a TOML file, overridden by `LOCKMGR_*` environment
//! variables, overridden by flags (see `cli.rs`). Every field has a default, so
//! `lockmgr server` with nothing else starts a working single node.

use std::{path::PathBuf, time::Duration};

use lockmgr_core::Limits;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// This member's id (unique in the cluster, not 0).
    pub node_id: u64,
    /// Reported in every response header, to tell clusters apart.
    pub cluster_id: u64,
    pub data_dir: PathBuf,
    /// Where clients connect (gRPC).
    pub client_address: String,
    /// Where peers connect (Raft).
    pub peer_address: String,
    /// The addresses others use to reach this node, if not the listen addresses.
    pub advertise_client_address: Option<String>,
    pub advertise_peer_address: Option<String>,
    /// `ID=PEER_ADDRESS/CLIENT_ADDRESS` for every founding member. Empty: a single node
    /// that bootstraps itself (unless `join` is set).
    pub initial_cluster: Vec<String>,
    /// Start empty and wait to be added by `lockmgr cluster add`.
    pub join: bool,
    pub raft: RaftSettings,
    pub limits: Limits,
    pub server: ServiceSettings,
    pub metrics: MetricsSettings,
    pub tracing: TracingSettings,
    pub log: LogSettings,
}

/// The log filter when `--log` / `LOCKMGR_LOG` does not give one.
pub const DEFAULT_LOG_FILTER: &str = "info,openraft=warn,fjall=warn,lsm_tree=warn";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter (`info`, `info,lockmgr_server=debug`). Read again on SIGHUP: the
    /// way to change it without a restart (a `--log` flag pins it instead).
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { filter: DEFAULT_LOG_FILTER.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSettings {
    /// An OTLP/gRPC collector (`http://127.0.0.1:4317`); empty: no traces.
    pub otlp_endpoint: String,
    pub service_name: String,
}

impl Default for TracingSettings {
    fn default() -> Self {
        TracingSettings { otlp_endpoint: String::new(), service_name: "lockmgr".into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Where `/metrics`, `/healthz` and `/readyz` are served; empty: not served.
    pub address: String,
    /// `lock_path` label values keep this many leading segments of the path.
    pub path_label_depth: usize,
    /// Distinct `lock_path` values before new ones are counted as `_overflow`.
    pub path_label_values_max: usize,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            address: "127.0.0.1:9464".into(),
            path_label_depth: 2,
            path_label_values_max: 1_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log behind it) every this many applied entries.
    pub snapshot_interval_entries: u64,
    /// Log entries kept behind a snapshot, for followers that are only a little behind.
    pub log_entries_kept_after_snapshot: u64,
    pub snapshot_bytes_max: usize,
    pub connect_timeout_ms: u64,
}

impl RaftSettings {
    /// The longest a leader's death goes unanswered, as openraft elects: a follower
    /// grants no vote until `election_timeout_max_ms` after it last heard from the
    /// leader (openraft's leader lease), and campaigns a random election time-out
    /// (`election_timeout_min_ms..election_timeout_max_ms`) after that; the leader's last
    /// heartbeat may be one interval before its death (`docs/semantics.md`, failover).
    pub fn failover_max_ms(&self) -> u64 {
        2 * self.election_timeout_max_ms + self.heartbeat_interval_ms
    }

    /// The shortest TTL a session rides out a failover with: it renews every quarter
    /// TTL and gives up a tenth early, so a failover shorter than 0.65 TTL (less the
    /// client's 100 ms retry pause) leaves it alive: `ttl >= (failover + 100 ms) / 0.65`.
    pub fn session_ttl_min_ms(&self) -> u64 {
        (self.failover_max_ms() + 100) * 20 / 13
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSettings {
    pub grpc_message_bytes_max: usize,
    pub list_page_size_default: u32,
    pub list_page_size_max: u32,
    pub watchers_max: usize,
    /// Watch events kept in memory for replays from an older revision.
    pub watch_history_events: usize,
    /// Events a slow watcher may fall behind before it is told it was compacted.
    pub watch_buffer_events: usize,
    /// Remaining lease TTLs are checkpointed through Raft this often (`docs/semantics.md`,
    /// leader changes and TTL checkpoints).
    pub lease_checkpoint_interval_ms: u64,
    /// How fast (parts per million) a node's clock may run against real time: the leader
    /// holds each lease this much longer than its TTL, so no lock is freed early.
    pub clock_drift_max_ppm: u64,
    /// How long a proposal may wait for a leader before `UNAVAILABLE`.
    pub propose_timeout_ms: u64,
    /// A blocking `Lock` answers `DEADLINE_EXCEEDED` at most this long after its wait
    /// time-out even if the leader's `CancelWait` has not arrived.
    pub wait_grace_ms: u64,
    /// A blocking `Lock` whose callers all went away (a cancelled call, a lost
    /// connection, a forwarding member that died) keeps its place this long for a retry
    /// with the same request_id (or a new request from the lease) to take it up again;
    /// then the leader cancels the wait.
    pub abandoned_wait_grace_ms: u64,
    /// `AddMember` waits this long for the new member to replicate the leader's log
    /// before promoting it; past it the member stays a learner and the call fails.
    pub member_catch_up_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            node_id: 1,
            cluster_id: 1,
            data_dir: PathBuf::from("lockmgr-data"),
            client_address: "127.0.0.1:7070".into(),
            peer_address: "127.0.0.1:7071".into(),
            advertise_client_address: None,
            advertise_peer_address: None,
            initial_cluster: Vec::new(),
            join: false,
            raft: RaftSettings::default(),
            limits: Limits::default(),
            server: ServiceSettings::default(),
            metrics: MetricsSettings::default(),
            tracing: TracingSettings::default(),
            log: LogSettings::default(),
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            // A failover takes up to 2 x 500 + 100 ms (see `RaftSettings::failover_max_ms`).
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 500,
            snapshot_interval_entries: 100_000,
            log_entries_kept_after_snapshot: 1_000,
            snapshot_bytes_max: 1 << 30,
            connect_timeout_ms: 1_000,
        }
    }
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            grpc_message_bytes_max: 4 << 20,
            list_page_size_default: 100,
            list_page_size_max: 1_000,
            watchers_max: 10_000,
            watch_history_events: 100_000,
            watch_buffer_events: 4_096,
            lease_checkpoint_interval_ms: 1_000,
            clock_drift_max_ppm: 10_000,
            propose_timeout_ms: 5_000,
            wait_grace_ms: 2_000,
            abandoned_wait_grace_ms: 3_000,
            member_catch_up_timeout_ms: 60_000,
        }
    }
}

/// A founding member from `--initial-cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: u64,
    pub peer_address: String,
    pub client_address: String,
}

/// A configuration that cannot run, with the setting it names.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting {name}: {rule}")]
    Invalid { name: &'static str, rule: String },
}

impl ServerConfig {
    pub fn from_file(path: &std::path::Path) -> Result<ServerConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
    }

    pub fn advertised_client_address(&self) -> &str {
        self.advertise_client_address.as_deref().unwrap_or(&self.client_address)
    }

    pub fn advertised_peer_address(&self) -> &str {
        self.advertise_peer_address.as_deref().unwrap_or(&self.peer_address)
    }

    /// The founding members, parsed.
    pub fn members(&self) -> Result<Vec<Member>, ConfigError> {
        let invalid = |rule: String| ConfigError::Invalid { name: "initial_cluster", rule };
        let mut members = Vec::new();
        for spec in self.initial_cluster.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if spec.is_empty() {
                continue;
            }
            let parse = || -> Option<Member> {
                let (id, addresses) = spec.split_once('=')?;
                let (peer, client) = addresses.split_once('/')?;
                let node_id = id.trim().parse().ok().filter(|id| *id != 0)?;
                Some(Member { node_id, peer_address: peer.into(), client_address: client.into() })
            };
            let member = parse().ok_or_else(|| {
                invalid(format!("{spec:?} is not ID=PEER_ADDRESS/CLIENT_ADDRESS (ID > 0)"))
            })?;
            if members.iter().any(|m: &Member| m.node_id == member.node_id) {
                return Err(invalid(format!("node id {} appears twice", member.node_id)));
            }
            members.push(member);
        }
        if !members.is_empty() && !members.iter().any(|m| m.node_id == self.node_id) {
            return Err(invalid(format!("does not list this node ({})", self.node_id)));
        }
        Ok(members)
    }

    /// Checks everything that can be checked before starting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, rule: &str| Err(ConfigError::Invalid { name, rule: rule.into() });
        if self.node_id == 0 {
            return invalid("node_id", "must be at least 1");
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(ConfigError::Invalid {
                name: "log.filter",
                rule: format!(
                    "{:?} is not a tracing filter ({error}); e.g. \"info,lockmgr_server=debug\"",
                    self.log.filter
                ),
            });
        }
        self.limits.validate().map_err(|e| ConfigError::Invalid { name: e.name, rule: e.rule })?;
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0
            || raft.election_timeout_min_ms <= raft.heartbeat_interval_ms
            || raft.election_timeout_max_ms <= raft.election_timeout_min_ms
        {
            return invalid(
                "raft.election_timeout_min_ms",
                "need 0 < heartbeat_interval_ms < election_timeout_min_ms < election_timeout_max_ms",
            );
        }
        if self.limits.lease_ttl_ms_min < raft.session_ttl_min_ms() {
            return Err(ConfigError::Invalid {
                name: "limits.lease_ttl_ms_min",
                rule: format!(
                    "must be at least {} ms with these raft time-outs ((2 x election_timeout_max_ms + heartbeat_interval_ms + 100) / 0.65), or a session with the minimum TTL could be lost in a leader failover",
                    raft.session_ttl_min_ms()
                ),
            });
        }
        if raft.snapshot_interval_entries == 0 {
            return invalid("raft.snapshot_interval_entries", "must be at least 1");
        }
        let server = &self.server;
        if server.list_page_size_default == 0
            || server.list_page_size_default > server.list_page_size_max
        {
            return invalid("server.list_page_size_default", "must be in 1..=list_page_size_max");
        }
        if server.watch_buffer_events == 0
            || server.watchers_max == 0
            || server.watch_history_events == 0
        {
            return invalid("server.watch_*", "watch limits must be at least 1");
        }
        if server.clock_drift_max_ppm > 100_000 {
            return invalid(
                "server.clock_drift_max_ppm",
                "must be at most 100000 (10%); a clock that drifts more needs fixing, not a longer lease",
            );
        }
        if server.abandoned_wait_grace_ms > 600_000 {
            return invalid(
                "server.abandoned_wait_grace_ms",
                "must be at most 600000 (10 minutes): an abandoned wait holds a queue place",
            );
        }
        let listen = [
            ("client_address", &self.client_address),
            ("peer_address", &self.peer_address),
            ("metrics.address", &self.metrics.address),
        ];
        for (name, address) in listen {
            let optional = name == "metrics.address" && address.is_empty();
            if !optional && address.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    name,
                    rule: format!("{address:?} is not an IP:PORT socket address to listen on"),
                });
            }
        }
        if self.join && !self.initial_cluster.is_empty() {
            return invalid(
                "join",
                "a joining node must not also found a cluster (initial_cluster)",
            );
        }
        self.members()?;
        Ok(())
    }

    pub fn propose_timeout(&self) -> Duration {
        Duration::from_millis(self.server.propose_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_run_a_single_node() {
        let config = ServerConfig::default();
        config.validate().unwrap();
        assert_eq!(config.client_address, "127.0.0.1:7070");
        assert_eq!(config.peer_address, "127.0.0.1:7071");
        assert!(config.members().unwrap().is_empty());
    }

    #[test]
    fn a_toml_file_sets_what_it_names() {
        let config: ServerConfig = toml::from_str(
            "node_id = 2\ninitial_cluster = [\"1=a:1/a:2\", \"2=b:1/b:2\"]\n[limits]\nlock_delay_ms = 500\n",
        )
        .unwrap();
        assert_eq!(config.node_id, 2);
        assert_eq!(config.limits.lock_delay_ms, 500);
        assert_eq!(config.members().unwrap()[1].client_address, "b:2");
        assert!(toml::from_str::<ServerConfig>("nodeid = 2").is_err(), "unknown keys are refused");
    }

    #[test]
    fn bad_settings_are_named() {
        let named = |config: ServerConfig| match config.validate() {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("expected an invalid setting, got {other:?}"),
        };
        assert_eq!(named(ServerConfig { node_id: 0, ..ServerConfig::default() }), "node_id");
        let cluster = vec!["1=a:1".to_string()];
        assert_eq!(
            named(ServerConfig { initial_cluster: cluster, ..ServerConfig::default() }),
            "initial_cluster"
        );
        let cluster = vec!["2=a:1/a:2".to_string()];
        assert_eq!(
            named(ServerConfig { initial_cluster: cluster, ..ServerConfig::default() }),
            "initial_cluster"
        );
        let mut config = ServerConfig::default();
        config.limits.lease_ttl_ms_min = 1_000;
        assert_eq!(named(config), "limits.lease_ttl_ms_min");
        let mut config = ServerConfig::default();
        config.server.clock_drift_max_ppm = 200_000;
        assert_eq!(named(config), "server.clock_drift_max_ppm");
    }
}
