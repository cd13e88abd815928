//! `lockmgr endpoint health` and `endpoint status`: every endpoint asked on its own (in
//! parallel, each within the dial time-out), so that a dead member shows as unhealthy with
//! its error instead of being skipped as the retrying client would. With `--cluster`, the
//! endpoints are the client addresses the cluster's membership lists.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use lockmgr_client::{Client, ClientConfig, Error};
use serde::Serialize;

use crate::{
    args::EndpointCommand,
    commands::Ctl,
    exit::EXIT_FAILURE,
    views::{Status, View},
};

/// One endpoint's answer, or why there was none.
#[derive(Debug, Serialize)]
pub struct EndpointStatus {
    pub endpoint: String,
    /// Answered, and knows a leader.
    pub healthy: bool,
    pub took_ms: u64,
    pub node_id: Option<u64>,
    pub leader_id: Option<u64>,
    pub is_leader: Option<bool>,
    pub raft_term: Option<u64>,
    /// The last log index this member applied.
    pub raft_applied_index: Option<u64>,
    pub raft_committed_index: Option<u64>,
    /// Entries the leader has committed that this member has not applied (when the
    /// leader answered too).
    pub lag: Option<u64>,
    pub is_learner: Option<bool>,
    pub version: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Endpoints {
    pub endpoints: Vec<EndpointStatus>,
}

/// The human form of `endpoint health`.
struct Health<'a>(&'a Endpoints);

impl Serialize for Health<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl View for Health<'_> {
    fn human(&self) -> String {
        let line = |e: &EndpointStatus| match (&e.error, e.healthy) {
            (Some(error), _) => format!("{} is unhealthy: {error}", e.endpoint),
            (None, false) => format!("{} is unhealthy: it knows no leader", e.endpoint),
            (None, true) => format!("{} is healthy: answered in {} ms", e.endpoint, e.took_ms),
        };
        self.0.endpoints.iter().map(line).collect::<Vec<_>>().join("\n")
    }
}

impl View for Endpoints {
    fn human(&self) -> String {
        let cell = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
        let mut lines =
            vec!["ENDPOINT\tNODE\tLEADER\tTERM\tAPPLIED\tCOMMITTED\tLAG\tHEALTH".to_owned()];
        for e in &self.endpoints {
            let health = match &e.error {
                Some(error) => format!("unhealthy: {error}"),
                None if e.healthy => "healthy".to_owned(),
                None => "unhealthy: no leader".to_owned(),
            };
            lines.push(format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{health}",
                e.endpoint,
                cell(e.node_id),
                cell(e.leader_id),
                cell(e.raft_term),
                cell(e.raft_applied_index),
                cell(e.raft_committed_index),
                cell(e.lag),
            ));
        }
        lines.join("\n")
    }
}

impl Ctl {
    pub async fn endpoint(&self, command: EndpointCommand) -> Result<ExitCode, Error> {
        let (EndpointCommand::Health { cluster } | EndpointCommand::Status { cluster }) = command;
        let endpoints = if cluster {
            let members = self.client.members().await?.members;
            members.into_iter().map(|m| m.client_address).collect()
        } else {
            self.client.config().endpoints.clone()
        };
        let mut statuses = join_all(endpoints.into_iter().map(|e| self.ask(e))).await;
        fill_in_lag(&mut statuses);
        let endpoints = Endpoints { endpoints: statuses };
        // health fails if any endpoint is unhealthy; status only if none answered.
        let failed = match command {
            EndpointCommand::Health { .. } => {
                self.show(&Health(&endpoints));
                endpoints.endpoints.iter().any(|status| !status.healthy)
            }
            EndpointCommand::Status { .. } => {
                self.show(&endpoints);
                endpoints.endpoints.iter().all(|status| status.error.is_some())
            }
        };
        Ok(if failed { ExitCode::from(EXIT_FAILURE) } else { ExitCode::SUCCESS })
    }

    /// `Status` of one endpoint alone, within the dial time-out.
    async fn ask(&self, endpoint: String) -> EndpointStatus {
        let started = Instant::now();
        let answer = async {
            let mut config = ClientConfig::new([endpoint.clone()]);
            config.connect_timeout = self.timeouts.dial;
            config.unreachable_budget = Some(self.timeouts.dial);
            config.retry_budget = self.timeouts.dial;
            let client = Client::new(config)?;
            match tokio::time::timeout(self.timeouts.dial + Duration::from_secs(1), client.status())
                .await
            {
                Ok(answer) => answer,
                Err(_) => Err(Error::Invalid(format!("no answer within {:?}", self.timeouts.dial))),
            }
        }
        .await;
        let took_ms = started.elapsed().as_millis() as u64;
        match answer {
            Ok(status) => {
                let status = Status::from(status);
                EndpointStatus {
                    endpoint,
                    healthy: status.leader_id != 0,
                    took_ms,
                    node_id: Some(status.node_id),
                    leader_id: Some(status.leader_id),
                    is_leader: Some(status.leader_id == status.node_id),
                    raft_term: Some(status.raft_term),
                    raft_applied_index: Some(status.applied_index),
                    raft_committed_index: Some(status.committed_index),
                    lag: None,
                    is_learner: Some(status.is_learner),
                    version: Some(status.version),
                    error: None,
                }
            }
            Err(error) => EndpointStatus {
                endpoint,
                healthy: false,
                took_ms,
                node_id: None,
                leader_id: None,
                is_leader: None,
                raft_term: None,
                raft_applied_index: None,
                raft_committed_index: None,
                lag: None,
                is_learner: None,
                version: None,
                error: Some(error.to_string()),
            },
        }
    }
}

/// Each answering member's lag behind the leader's commit index, if the leader answered.
fn fill_in_lag(statuses: &mut [EndpointStatus]) {
    let leader_committed = statuses
        .iter()
        .find(|s| s.is_leader == Some(true))
        .and_then(|leader| leader.raft_committed_index);
    for status in statuses {
        if let (Some(committed), Some(applied)) = (leader_committed, status.raft_applied_index) {
            status.lag = Some(committed.saturating_sub(applied));
        }
    }
}
