//! The client subcommands of `lockmgr`, through the client library. Human output by
//! default, `--output json` for scripts.

use std::{io::Write, process::ExitCode, time::Duration};

use lockmgr_client::{Client, ClientConfig, Error, proto as v1};

use crate::{
    args::{ClusterCommand, FenceCommand, LeaseCommand, LocksCommand, Output},
    exit::{EXIT_FAILURE, EXIT_NOT_CURRENT},
    supervise::Signals,
    views::{self, View},
};

/// The client commands' time limits (`--dial-timeout`, `--command-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub dial: Duration,
    pub command: Duration,
}

/// `HOSTNAME-PID`, with the machine's real host name (shells do not export `$HOSTNAME`).
fn default_holder_id() -> String {
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}-{}", std::process::id())
}

#[derive(Debug)]
pub struct Ctl {
    pub client: Client,
    pub output: Output,
    pub timeouts: Timeouts,
}

impl Ctl {
    pub fn new(endpoints: Vec<String>, output: Output, timeouts: Timeouts) -> Result<Ctl, Error> {
        let mut config = ClientConfig::new(endpoints);
        config.connect_timeout = timeouts.dial;
        config.unreachable_budget = Some(timeouts.dial);
        config.retry_budget = timeouts.command;
        config.holder_id = default_holder_id();
        Ok(Ctl { client: Client::new(config)?, output, timeouts })
    }

    /// An answer, as `--output` asks.
    pub(crate) fn show(&self, view: &impl View) {
        match self.output {
            Output::Human => write_stdout(&view.human()),
            Output::Json => {
                write_stdout(&json_line(view));
            }
        }
    }

    pub async fn lease(&self, command: LeaseCommand) -> Result<(), Error> {
        match command {
            LeaseCommand::Grant { ttl } => {
                let granted = self.client.grant_lease(ttl).await?;
                note_ttl(ttl, Duration::from_millis(granted.ttl_ms.max(0) as u64));
                let granted = views::LeaseGranted {
                    lease_id: granted.lease_id,
                    granted_ttl_ms: granted.ttl_ms,
                };
                self.show(&granted);
            }
            LeaseCommand::Revoke { lease_id } => {
                self.client.revoke_lease(lease_id).await?;
                self.show(&views::LeaseRevoked { lease_id, revoked: true });
            }
            LeaseCommand::Ttl { lease_id } => {
                let ttl = self.client.time_to_live(lease_id).await?;
                self.show(&views::LeaseTtl::from(ttl));
            }
            LeaseCommand::List { after, limit } => {
                let list = self.client.leases(after, limit).await?;
                self.show(&views::LeaseList::from(list));
            }
            LeaseCommand::KeepAlive { lease_id } => self.keep_alive(lease_id).await?,
        }
        Ok(())
    }

    /// Renews the lease every third of its TTL until SIGINT or SIGTERM; an error if the
    /// lease is gone (or cannot be renewed in time).
    async fn keep_alive(&self, lease_id: i64) -> Result<(), Error> {
        let mut signals = Signals::catch()
            .map_err(|error| Error::Invalid(format!("cannot catch signals: {error}")))?;
        loop {
            let renewed = tokio::select! {
                renewed = self.client.renew_lease(lease_id) => renewed?,
                _ = signals.recv() => return Ok(()),
            };
            if renewed <= 0 {
                return Err(Error::Invalid(format!(
                    "lease {lease_id} is gone (expired or revoked)"
                )));
            }
            self.show(&views::LeaseKept { lease_id, granted_ttl_ms: renewed });
            let pause = Duration::from_millis(renewed as u64 / 3);
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = signals.recv() => return Ok(()),
            }
        }
    }

    pub async fn locks(&self, command: LocksCommand) -> Result<(), Error> {
        match command {
            LocksCommand::Get { path } => {
                let lock = self.client.get_lock(&path).await?.lock;
                self.show(
                    &lock.as_ref().map_or_else(|| views::Lock::free(path), views::Lock::from),
                );
            }
            LocksCommand::List { prefix, page_token, limit } => {
                let list = self.client.list_locks(&prefix, &page_token, limit).await?;
                self.show(&views::LockList {
                    locks: list.locks.iter().map(views::Lock::from).collect(),
                    next_page_token: list.next_page_token,
                });
            }
        }
        Ok(())
    }

    pub async fn fence(
        &self,
        FenceCommand::Check { path, token }: FenceCommand,
    ) -> Result<ExitCode, Error> {
        let check = self.client.validate_fence(&path, token).await?;
        self.show(&views::FenceCheck {
            path,
            fencing_token: token,
            current: check.valid,
            current_fencing_tokens: check.current_tokens,
        });
        Ok(if check.valid { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_CURRENT) })
    }

    pub async fn cluster(&self, command: ClusterCommand) -> Result<(), Error> {
        match command {
            ClusterCommand::Status => self.show(&views::Status::from(self.client.status().await?)),
            ClusterCommand::Members => {
                self.show(&views::Members::from(&self.client.members().await?.members[..]));
            }
            ClusterCommand::Add { node_id, peer_address, client_address, learner } => {
                let request = v1::AddMemberRequest {
                    node_id,
                    peer_address,
                    client_address,
                    learner_only: learner,
                };
                let added = self.client.add_member(request).await?;
                warn_of(&added.warnings);
                self.show(&views::Members::from(&added.members[..]));
            }
            ClusterCommand::Remove { node_id } => {
                let removed = self.client.remove_member(node_id).await?;
                warn_of(&removed.warnings);
                self.show(&views::Members::from(&removed.members[..]));
            }
            ClusterCommand::TransferLeader { node_id } => {
                let leader_id = self.client.transfer_leader(node_id).await?.leader_id;
                self.show(&views::Leader { leader_id });
            }
        }
        Ok(())
    }
}

/// One line on stdout. A reader that went away (`lockmgr lease list | head -1`) ends
/// the command quietly, as it ends `cat`: there is nobody left to tell.
pub fn write_stdout(line: &str) {
    match try_write_stdout(line) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("lockmgr: cannot write to stdout: {error}");
            std::process::exit(i32::from(EXIT_FAILURE));
        }
    }
}

/// One line on stdout, flushed (a script may be waiting for it).
/// One JSON object, on one line.
pub fn json_line(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("plain structs serialize")
}

pub fn try_write_stdout(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush())
}

/// The cluster clamps TTLs to its limits; say so rather than run with another TTL in
/// silence.
pub fn note_ttl(asked: Duration, granted: Duration) {
    if asked != granted {
        eprintln!(
            "lockmgr: note: the cluster granted a TTL of {}, not {} (its limits)",
            humantime::format_duration(granted),
            humantime::format_duration(asked)
        );
    }
}

/// A proto enum value as JSON shows it: `LOCK_MODE_EXCLUSIVE` is `exclusive`.
pub fn enum_name(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_ascii_lowercase()
}

/// The server's warnings about an accepted change, on stderr (stdout keeps the answer).
fn warn_of(warnings: &[String]) {
    for warning in warnings {
        eprintln!("lockmgr: warning: {warning}");
    }
}
