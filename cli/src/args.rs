//! The command line: `lockmgr server` and the client subcommands. Server settings come
//! from defaults, then the `--config` TOML file, then `LOCKMGR_*` variables, then flags.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use lockmgr_server::config::{ConfigError, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "lockmgr",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("LOCKMGR_GIT_COMMIT"), ")"),
    about = "A distributed lock manager: locks on paths, leases, fencing tokens, Raft"
)]
pub struct Cli {
    /// Client addresses of cluster members (comma-separated); one is enough.
    #[arg(
        long,
        global = true,
        env = "LOCKMGR_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:7070"
    )]
    pub endpoints: Vec<String>,
    /// Output format of client commands (errors too, as a JSON object on stderr).
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// How long a client command tries to connect to a member before counting it down
    /// (and, when no member can be connected to at all, before giving up).
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration)]
    pub dial_timeout: Duration,
    /// How long one request keeps trying (other members, a new leader) before giving up;
    /// `lock --wait` and `watch` streams are not bounded by it.
    #[arg(long, global = true, default_value = "15s", value_parser = humantime::parse_duration)]
    pub command_timeout: Duration,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a cluster member (with no flags: a single node on 127.0.0.1:7070).
    Server(Box<ServerArgs>),
    /// Run a command while holding a lock; its fencing token is in LOCKMGR_FENCING_TOKEN.
    Lock(LockArgs),
    /// Leases: grant, revoke, ttl, list, keep-alive.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Locks: get, list.
    #[command(subcommand)]
    Locks(LocksCommand),
    /// Fencing tokens: check whether a token is still current.
    #[command(subcommand)]
    Fence(FenceCommand),
    /// Stream lock events under a prefix (or of one path).
    Watch(WatchArgs),
    /// Leader election: campaign for NAME and hold leadership until signalled (the
    /// fencing token on stdout), or with --listen print each change of its leader.
    Elect(ElectArgs),
    /// Cluster: status, members, add, remove, transfer-leader.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Each endpoint's health or Raft status, dead ones included.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Backups: save the cluster's state to a file, check a file, restore one into a new
    /// cluster.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Print a shell completion script: `source <(lockmgr completion bash)`.
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A TOML configuration file (see the README for its keys).
    #[arg(long, env = "LOCKMGR_CONFIG")]
    pub config: Option<PathBuf>,
    /// This member's id, unique in the cluster [default: 1].
    #[arg(long, env = "LOCKMGR_NODE_ID")]
    pub node_id: Option<u64>,
    /// The cluster's id: members of another cluster are refused [default: 1].
    #[arg(long, env = "LOCKMGR_CLUSTER_ID")]
    pub cluster_id: Option<u64>,
    /// Where the Raft log, snapshots and state live [default: lockmgr-data].
    #[arg(long, env = "LOCKMGR_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where clients connect (gRPC) [default: 127.0.0.1:7070].
    #[arg(long, env = "LOCKMGR_CLIENT_ADDRESS")]
    pub client_address: Option<String>,
    /// Where the other members connect (Raft) [default: 127.0.0.1:7071].
    #[arg(long, env = "LOCKMGR_PEER_ADDRESS")]
    pub peer_address: Option<String>,
    /// The client address others are told (if it differs from --client-address, e.g.
    /// behind NAT) [default: --client-address].
    #[arg(long, env = "LOCKMGR_ADVERTISE_CLIENT_ADDRESS")]
    pub advertise_client_address: Option<String>,
    /// The peer address others are told [default: --peer-address].
    #[arg(long, env = "LOCKMGR_ADVERTISE_PEER_ADDRESS")]
    pub advertise_peer_address: Option<String>,
    /// Founding members, `ID=PEER_ADDRESS/CLIENT_ADDRESS`, comma-separated or repeated.
    #[arg(long, env = "LOCKMGR_INITIAL_CLUSTER", value_delimiter = ',')]
    pub initial_cluster: Vec<String>,
    /// Start empty and wait to be added with `lockmgr cluster add`.
    #[arg(long, env = "LOCKMGR_JOIN")]
    pub join: bool,
    /// Where /metrics, /healthz and /readyz are served ("" turns them off); give each
    /// member on one host its own [default: 127.0.0.1:9464].
    #[arg(long, env = "LOCKMGR_METRICS_ADDRESS")]
    pub metrics_address: Option<String>,
    /// Export traces to this OTLP/gRPC collector (e.g. http://127.0.0.1:4317).
    #[arg(long, env = "LOCKMGR_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Lock-delay after an expiry, e.g. `5s` (overrides limits.lock_delay_ms).
    #[arg(long, env = "LOCKMGR_LOCK_DELAY", value_parser = humantime::parse_duration)]
    pub lock_delay: Option<Duration>,
    /// Snapshot every this many applied entries [default: raft.snapshot_interval_entries
    /// of the config file].
    #[arg(long, env = "LOCKMGR_SNAPSHOT_INTERVAL_ENTRIES")]
    pub snapshot_interval_entries: Option<u64>,
    /// Log filter (`info`, `debug`, `lockmgr_server=debug,openraft=warn`, ...); given
    /// here it is fixed for the run, while `[log] filter` in the config file is read again
    /// on SIGHUP [default: info,openraft=warn,fjall=warn,lsm_tree=warn].
    #[arg(long, env = "LOCKMGR_LOG")]
    pub log: Option<String>,
    /// Log lines as text or as JSON objects.
    #[arg(long, env = "LOCKMGR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Disaster recovery when a majority is lost for good: make this member the only voter
    /// of its cluster, with all its data (every entry in its log applied), then add new
    /// members with `lockmgr cluster add`. Never start the former members with their old
    /// data again. Does nothing on a member that already is alone.
    #[arg(long)]
    pub force_new_cluster: bool,
    #[command(flatten)]
    pub client_flags: ClientFlagsOfServer,
}

/// The client commands' global flags, shadowed under `server` so that `server --help`
/// does not list them: an argument of the same id stops clap from propagating the global
/// one. Values given (or defaulted) still land here, and `server` ignores them.
#[derive(Debug, Args)]
pub struct ClientFlagsOfServer {
    #[arg(long = "endpoints", id = "endpoints", hide = true, value_delimiter = ',')]
    endpoints: Vec<String>,
    #[arg(long = "output", id = "output", hide = true, value_enum)]
    output: Option<Output>,
    #[arg(long = "dial-timeout", id = "dial_timeout", hide = true, value_parser = humantime::parse_duration)]
    dial_timeout: Option<Duration>,
    #[arg(long = "command-timeout", id = "command_timeout", hide = true, value_parser = humantime::parse_duration)]
    command_timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl ServerArgs {
    /// Defaults, then the file, then these arguments (flags and environment).
    pub fn config(&self) -> Result<ServerConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        macro_rules! set {
            ($field:ident) => {
                if let Some(value) = &self.$field {
                    config.$field = value.clone();
                }
            };
        }
        set!(node_id);
        set!(cluster_id);
        set!(data_dir);
        set!(client_address);
        set!(peer_address);
        if self.advertise_client_address.is_some() {
            config.advertise_client_address.clone_from(&self.advertise_client_address);
        }
        if self.advertise_peer_address.is_some() {
            config.advertise_peer_address.clone_from(&self.advertise_peer_address);
        }
        if !self.initial_cluster.is_empty() {
            config.initial_cluster.clone_from(&self.initial_cluster);
        }
        config.join |= self.join;
        if let Some(endpoint) = &self.otlp_endpoint {
            config.tracing.otlp_endpoint.clone_from(endpoint);
        }
        if let Some(address) = &self.metrics_address {
            config.metrics.address.clone_from(address);
        }
        if let Some(delay) = self.lock_delay {
            config.limits.lock_delay_ms = delay.as_millis() as u64;
        }
        if let Some(filter) = &self.log {
            config.log.filter.clone_from(filter);
        }
        if let Some(entries) = self.snapshot_interval_entries {
            config.raft.snapshot_interval_entries = entries;
        }
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's path, e.g. /db/users/schema-migration.
    pub path: String,
    /// Take a shared (reader) lock.
    #[arg(long, conflicts_with = "permits")]
    pub shared: bool,
    /// Take one of N places of a semaphore on the path (every holder names the same N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub permits: Option<u32>,
    /// Report the acquisition on stderr as it happens: the place in the queue as it
    /// moves, the grant, a lease in jeopardy (not renewed for a third of its TTL), the loss.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// How long to wait for the lock (0: fail at once if busy).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// The session lease's TTL (the cluster clamps it to its limits, and says so).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// Shown to operators as the holder (default: HOSTNAME-PID).
    #[arg(long)]
    pub holder_id: Option<String>,
    /// If the session is lost: how long the command's process group has between SIGTERM
    /// and SIGKILL.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub kill_grace: Duration,
    /// Run no command: print the fencing token on stdout, hold the lock until SIGINT,
    /// SIGTERM or SIGHUP, then release it and exit 0.
    #[arg(long, conflicts_with = "command")]
    pub no_command: bool,
    /// The command to run while holding the lock (after `--`).
    #[arg(last = true, required_unless_present = "no_command")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grant a lease (not kept alive: see keep-alive).
    Grant {
        /// The lease's TTL (the cluster clamps it to its limits, and says so).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        ttl: Duration,
    },
    /// Revoke a lease: every lock it holds is released, its waits end.
    Revoke {
        /// The lease's id.
        lease_id: i64,
    },
    /// A lease's remaining TTL, and the paths it holds and waits for.
    Ttl {
        /// The lease's id.
        lease_id: i64,
    },
    /// List the leases, a page at a time.
    List {
        /// Start after this lease id (0: from the first).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// At most this many (0: the server's page size).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
    /// Keep a lease alive until SIGINT or SIGTERM (then exit 0; the lease is not revoked).
    KeepAlive {
        /// The lease's id.
        lease_id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum LocksCommand {
    /// One lock: its holders (lease, holder id, mode, fencing token, age) and waiters.
    Get {
        /// The lock's path.
        path: String,
    },
    /// The locks under a prefix, a page at a time.
    List {
        /// Only locks under this prefix.
        #[arg(default_value = "/")]
        prefix: String,
        /// Continue from a previous page (its "more: --page-token" line).
        #[arg(long, default_value = "")]
        page_token: String,
        /// At most this many (0: the server's page size).
        #[arg(long, default_value_t = 0)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum FenceCommand {
    /// Exit 0 if the token is the current holder's, 1 if not, 2 if it cannot tell.
    Check {
        /// The lock's path.
        path: String,
        /// The fencing token to check.
        token: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Whether each endpoint answers and knows a leader (exit 1 if any does not).
    Health {
        /// Every member the cluster's membership lists, not only --endpoints.
        #[arg(long)]
        cluster: bool,
    },
    /// Each endpoint's node id, leader, term, Raft index and lag behind the leader.
    Status {
        /// Every member the cluster's membership lists, not only --endpoints.
        #[arg(long)]
        cluster: bool,
    },
}

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election's name (a lock path), e.g. /services/scheduler/leader.
    pub name: String,
    /// The leader's value once elected, e.g. its address (default: HOSTNAME-PID).
    #[arg(conflicts_with = "listen")]
    pub value: Option<String>,
    /// Campaign for nothing: print the leader now and each change, until signalled.
    #[arg(long)]
    pub listen: bool,
    /// How long to wait for leadership (0: as long as the cluster allows, its
    /// wait_timeout_ms_max).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// The session lease's TTL (the cluster clamps it to its limits, and says so).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch the locks under this prefix (with --exact: this one path).
    #[arg(default_value = "/")]
    pub prefix: String,
    /// Watch exactly this path, not everything under it.
    #[arg(long)]
    pub exact: bool,
    /// Replay events from this revision (0: only new events).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a backup of the whole state from the leader to FILE (every write acknowledged
    /// before the call is in it), checked, then written whole: `lockmgr snapshot save
    /// backup.lkmb`.
    Save {
        /// Where the backup goes (replaced if it exists).
        file: PathBuf,
    },
    /// Check a backup file and say what it holds: size, SHA-256, revision, counts.
    Status {
        /// The backup file.
        file: PathBuf,
    },
    /// Write a new data directory from a backup, for one founding member of a new
    /// cluster; run it for each member with the flags it will be started with, e.g.
    /// `lockmgr snapshot restore backup.lkmb --data-dir d1 --node-id 1 --initial-cluster
    /// 1=127.0.0.1:7071/127.0.0.1:7070,...`, then `lockmgr server` with the same flags.
    Restore(Box<RestoreArgs>),
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    /// Move the revision, and so every fencing token handed out from now on, this far
    /// ahead: for a backup older than the tokens the old cluster handed out since (the
    /// same value on every member).
    #[arg(long, default_value_t = 0)]
    pub bump_revision: u64,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The answering member's view: leader, term, indexes, counts.
    Status,
    /// The members: ids, addresses, voter or learner, the leader.
    Members,
    /// Add a member: as a learner, then (unless --learner) as a voter once caught up.
    Add {
        /// The new member's id.
        node_id: u64,
        /// Its peer address (as its --peer-address).
        peer_address: String,
        /// Its client address (as its --client-address).
        client_address: String,
        /// Leave it a learner (it replicates but does not vote).
        #[arg(long)]
        learner: bool,
    },
    /// Remove a member.
    Remove {
        /// The member's id.
        node_id: u64,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The new leader (default: the most up-to-date other voter).
        #[arg(default_value_t = 0)]
        node_id: u64,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand says what it does, every flag and argument what it means.
    #[test]
    fn every_subcommand_and_flag_has_help() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if command.get_about().is_none() && path != "lockmgr" {
                missing.push(format!("{path} (subcommand)"));
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_hide_set() && !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut command = Cli::command();
        command.build();
        let mut missing = Vec::new();
        check(&command, "lockmgr", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
