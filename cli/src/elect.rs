//! `lockmgr elect`: campaigns for an election and holds leadership until signalled
//! (resigning then, so the next candidate leads at once), or with `--listen` prints
//! every change of its leader, outliving the member it streams from (it resumes from
//! the revision after the last change shown).

use std::{process::ExitCode, time::Duration};

use lockmgr_client::{Error, proto as v1};
use serde::Serialize;

use crate::{
    args::{ElectArgs, Output},
    commands::{Ctl, json_line, note_ttl, try_write_stdout},
    exit::EXIT_SESSION_LOST,
    supervise::{Signals, signal_exit_code},
};

/// Between a broken stream and the next.
const RESUME_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize)]
struct Elected<'a> {
    event: &'static str,
    name: &'a str,
    value: &'a str,
    fencing_token: u64,
    lease_id: i64,
}

#[derive(Debug, Serialize)]
struct Change<'a> {
    name: &'a str,
    revision: u64,
    /// Absent: nobody leads.
    leader: Option<Leader<'a>>,
}

#[derive(Debug, Serialize)]
struct Leader<'a> {
    value: &'a str,
    lease_id: i64,
    fencing_token: u64,
}

impl Ctl {
    pub async fn elect(&self, args: ElectArgs) -> Result<ExitCode, Error> {
        let mut signals = Signals::catch()
            .map_err(|error| Error::Invalid(format!("cannot catch signals: {error}")))?;
        if args.listen {
            return tokio::select! {
                listened = self.listen(&args.name) => listened.map(|()| ExitCode::SUCCESS),
                _ = signals.recv() => Ok(ExitCode::SUCCESS),
            };
        }
        let session = tokio::select! {
            session = self.client.session(args.ttl) => session?,
            signal = signals.recv() => return Ok(ExitCode::from(signal_exit_code(signal))),
        };
        note_ttl(args.ttl, session.ttl());
        let value = args.value.clone().unwrap_or_else(|| self.client.config().holder_id.clone());
        let campaign = tokio::select! {
            campaign = session.campaign(&args.name, &value, args.wait) => campaign,
            signal = signals.recv() => {
                let _ = session.close().await;
                return Ok(ExitCode::from(signal_exit_code(signal)));
            }
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(error) => {
                let _ = session.close().await;
                return Err(error);
            }
        };
        let elected = Elected {
            event: "elected",
            name: &args.name,
            value: &value,
            fencing_token: leadership.fencing_token(),
            lease_id: session.lease_id(),
        };
        let printed = match self.output {
            Output::Human => {
                eprintln!(
                    "lockmgr: elected leader of {} as {value:?} (fencing token {}, lease {})",
                    args.name, elected.fencing_token, elected.lease_id
                );
                try_write_stdout(&elected.fencing_token.to_string())
            }
            Output::Json => try_write_stdout(&json_line(&elected)),
        };
        if let Err(error) = printed {
            eprintln!("lockmgr: cannot print the fencing token: {error}");
        }
        tokio::select! {
            _ = signals.recv() => {
                let resigned = leadership.resign().await;
                let closed = session.close().await;
                if let Err(error) = resigned.and(closed) {
                    eprintln!("lockmgr: could not resign at once ({error}); the lease's TTL will end it");
                }
                Ok(ExitCode::SUCCESS)
            }
            () = leadership.lost() => {
                eprintln!("lockmgr: leadership of {} lost: stop acting as its leader", args.name);
                Ok(ExitCode::from(EXIT_SESSION_LOST))
            }
        }
    }

    /// Prints the leader now and each change, resuming after a broken stream.
    async fn listen(&self, name: &str) -> Result<(), Error> {
        let mut from = 0;
        loop {
            let mut stream = self.client.observe(name, from).await?;
            loop {
                match stream.message().await {
                    Ok(Some(change)) if change.compacted => {
                        // The changes wanted are gone: start again from the leader now.
                        from = 0;
                        break;
                    }
                    Ok(Some(change)) => {
                        from = change.revision + 1;
                        self.print_change(name, &change);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            tokio::time::sleep(RESUME_PAUSE).await;
        }
    }

    fn print_change(&self, name: &str, change: &v1::ObserveResponse) {
        let leader = change.leader.as_ref().map(|key| Leader {
            value: &change.value,
            lease_id: key.lease_id,
            fencing_token: key.fencing_token,
        });
        let line = match self.output {
            Output::Json => json_line(&Change { name, revision: change.revision, leader }),
            Output::Human => match leader {
                Some(leader) => format!(
                    "{name}: leader {:?} (lease {}, fencing token {}) at revision {}",
                    leader.value, leader.lease_id, leader.fencing_token, change.revision
                ),
                None => format!("{name}: no leader at revision {}", change.revision),
            },
        };
        crate::commands::write_stdout(&line);
    }
}
