//! `lockmgr lock`: takes a lock, runs a command under it (or, with `--no-command`, holds
//! it until signalled), and releases it as soon as the command ends or a signal arrives.
//!
//! The states: opening the session, waiting for the lock, holding it, releasing it. A
//! SIGINT, SIGTERM or SIGHUP in any of them ends the run: before the lock is held,
//! lockmgr gives up and exits 128+n; while a command runs, the signal is forwarded to the
//! command's process group and lockmgr exits with the command's status once it ends. A
//! lost session while holding stops the command's whole group and exits 76.

use std::process::ExitCode;

use lockmgr_client::{Client, Error, LockGuard, LockMode, LockState, Session, proto::ErrorReason};
use serde::Serialize;

use crate::{
    args::LockArgs,
    commands::{Ctl, json_line, note_ttl, try_write_stdout},
    exit::{EXIT_BUSY, EXIT_SESSION_LOST},
    supervise::{Signals, Supervised, exit_code, signal_exit_code, spawn_exit_code},
};

#[derive(Debug, Serialize)]
struct Acquired<'a> {
    event: &'static str,
    path: &'a str,
    fencing_token: u64,
    lease_id: i64,
    granted_ttl_ms: u64,
}

#[derive(Debug, Serialize)]
struct Note<'a> {
    event: &'static str,
    path: &'a str,
    message: String,
}

/// How a held lock ended.
enum Held {
    /// The command ended (or, without one, a signal came): release and exit with this.
    Done(u8),
    /// The session was lost: the lock is gone, nothing to release.
    Lost,
}

impl Ctl {
    pub async fn lock(&self, args: LockArgs) -> Result<ExitCode, Error> {
        let mut signals = Signals::catch()
            .map_err(|error| Error::Invalid(format!("cannot catch signals: {error}")))?;
        let client = match &args.holder_id {
            Some(holder_id) => {
                let mut config = self.client.config().clone();
                config.holder_id.clone_from(holder_id);
                Client::new(config)?
            }
            None => self.client.clone(),
        };
        let session = tokio::select! {
            session = client.session(args.ttl) => session?,
            signal = signals.recv() => return Ok(ExitCode::from(signal_exit_code(signal))),
        };
        note_ttl(args.ttl, session.ttl());
        let mode = match (args.shared, args.permits) {
            (true, _) => LockMode::Shared,
            (false, Some(permits)) => LockMode::Semaphore { permits },
            (false, None) => LockMode::Exclusive,
        };
        let acquiring = async {
            if args.verbose {
                self.acquire_verbose(&args.path, &session, mode, args.wait).await
            } else {
                session.acquire(&args.path, mode, args.wait).await
            }
        };
        let acquired = tokio::select! {
            acquired = acquiring => acquired,
            signal = signals.recv() => {
                let _ = session.close().await;
                return Ok(ExitCode::from(signal_exit_code(signal)));
            }
        };
        let guard = match acquired {
            Ok(Some(guard)) => guard,
            Ok(None) => return self.busy(&args, session).await,
            Err(error) if error.reason() == Some(ErrorReason::WaitTimeout) => {
                return self.busy(&args, session).await;
            }
            // The lease ended while the request waited in the queue (revoked, or it could
            // not be kept alive): the session is lost, as it would be while holding.
            Err(error)
                if session.is_lost()
                    || matches!(
                        error.reason(),
                        Some(ErrorReason::LeaseLost | ErrorReason::LeaseNotFound)
                    ) =>
            {
                self.note(&Note {
                    event: "session_lost",
                    path: &args.path,
                    message: format!("session lost while waiting for {}: {error}", args.path),
                });
                let _ = session.close().await;
                return Ok(ExitCode::from(EXIT_SESSION_LOST));
            }
            Err(error) => {
                let _ = session.close().await;
                return Err(error);
            }
        };
        self.announce(&args, &guard, &session);
        let held = if args.no_command {
            self.hold(&args.path, &session, &mut signals).await
        } else {
            match self.run(&args, &guard, &session, &mut signals).await {
                Ok(held) => held,
                Err(code) => {
                    release(guard, session).await;
                    return Ok(ExitCode::from(code));
                }
            }
        };
        match held {
            Held::Done(code) => {
                release(guard, session).await;
                Ok(ExitCode::from(code))
            }
            // No revoke: the lease is gone or about to be, and the cluster may be
            // unreachable.
            Held::Lost => Ok(ExitCode::from(EXIT_SESSION_LOST)),
        }
    }

    /// `--verbose`: acquires through the acquisition stream, reporting each state on
    /// stderr, and goes on reporting (jeopardy, loss) in the background while held.
    async fn acquire_verbose(
        &self,
        path: &str,
        session: &Session,
        mode: LockMode,
        wait: std::time::Duration,
    ) -> Result<Option<LockGuard>, Error> {
        let mut acquisition = session.lock_stream(path, mode, wait).await?;
        loop {
            let Some(state) = acquisition.next().await? else {
                return Err(Error::Invalid(format!("the acquisition stream of {path} ended")));
            };
            match state {
                LockState::Busy => return Ok(None),
                LockState::Acquired { .. } => {
                    let guard = acquisition.guard();
                    let (output, path) = (self.output, path.to_owned());
                    tokio::spawn(async move {
                        while let Ok(Some(state)) = acquisition.next().await {
                            print_note(output, &state_note(&path, &state));
                        }
                    });
                    return Ok(guard);
                }
                state => self.note(&state_note(path, &state)),
            }
        }
    }

    async fn busy(&self, args: &LockArgs, session: Session) -> Result<ExitCode, Error> {
        let waited = humantime::format_duration(args.wait);
        self.note(&Note {
            event: "busy",
            path: &args.path,
            message: format!("{} is busy (waited {waited})", args.path),
        });
        let _ = session.close().await;
        Ok(ExitCode::from(EXIT_BUSY))
    }

    /// "acquired" on stderr (stdout is the command's); with `--no-command` the token goes
    /// to stdout too, for the script that holds the lock to read.
    fn announce(&self, args: &LockArgs, guard: &LockGuard, session: &Session) {
        let acquired = Acquired {
            event: "acquired",
            path: &args.path,
            fencing_token: guard.fencing_token(),
            lease_id: session.lease_id(),
            granted_ttl_ms: session.ttl().as_millis() as u64,
        };
        let human = format!(
            "acquired {} (fencing token {}, lease {})",
            args.path, acquired.fencing_token, acquired.lease_id
        );
        if args.no_command {
            // Not write_stdout: a reader gone must not end lockmgr with the lock held.
            let written = match self.output {
                crate::args::Output::Human => {
                    eprintln!("lockmgr: {human}");
                    try_write_stdout(&acquired.fencing_token.to_string())
                }
                crate::args::Output::Json => try_write_stdout(&json_line(&acquired)),
            };
            if let Err(error) = written {
                eprintln!("lockmgr: cannot print the fencing token: {error}");
            }
        } else {
            match self.output {
                crate::args::Output::Human => eprintln!("lockmgr: {human}"),
                crate::args::Output::Json => eprintln!("{}", json_line(&acquired)),
            }
        }
    }

    fn note(&self, note: &Note<'_>) {
        print_note(self.output, note);
    }

    /// `--no-command`: holds until a signal (exit 0) or the session is lost.
    async fn hold(&self, path: &str, session: &Session, signals: &mut Signals) -> Held {
        tokio::select! {
            _ = signals.recv() => Held::Done(0),
            () = session.lost() => {
                self.note(&Note {
                    event: "session_lost",
                    path,
                    message: "session lost: the lock is no longer held".to_owned(),
                });
                Held::Lost
            }
        }
    }

    /// Runs the command; `Err` with the exit status if it could not be started.
    async fn run(
        &self,
        args: &LockArgs,
        guard: &LockGuard,
        session: &Session,
        signals: &mut Signals,
    ) -> Result<Held, u8> {
        let mut command = tokio::process::Command::new(&args.command[0]);
        command
            .args(&args.command[1..])
            .env("LOCKMGR_FENCING_TOKEN", guard.fencing_token().to_string())
            .env("LOCKMGR_LOCK_PATH", &args.path)
            .env("LOCKMGR_LEASE_ID", session.lease_id().to_string());
        let mut child = match Supervised::spawn(&mut command) {
            Ok(child) => child,
            Err(error) => {
                self.note(&Note {
                    event: "cannot_run",
                    path: &args.path,
                    message: format!("cannot run {:?}: {error}", args.command[0]),
                });
                return Err(spawn_exit_code(&error));
            }
        };
        loop {
            tokio::select! {
                status = child.wait() => {
                    return Ok(Held::Done(status.map_or(1, exit_code)));
                }
                signal = signals.recv() => child.signal_group(signal),
                () = session.lost() => {
                    self.note(&Note {
                        event: "session_lost",
                        path: &args.path,
                        message: format!(
                            "session lost; stopping the command's process group (SIGTERM, then SIGKILL after {}) so it cannot run without the lock",
                            humantime::format_duration(args.kill_grace)
                        ),
                    });
                    child.stop(args.kill_grace).await;
                    return Ok(Held::Lost);
                }
            }
        }
    }
}

/// Releases at once: the next holder need not wait for the TTL. A failure is reported
/// but does not change the exit status (the command's): the lease's expiry frees the
/// lock anyway.
async fn release(guard: LockGuard, session: Session) {
    let unlocked = guard.unlock().await;
    let closed = session.close().await;
    if let Err(error) = unlocked.and(closed) {
        eprintln!("lockmgr: could not release at once ({error}); the lease's TTL will");
    }
}

fn print_note(output: crate::args::Output, note: &Note<'_>) {
    match output {
        crate::args::Output::Human => eprintln!("lockmgr: {}", note.message),
        crate::args::Output::Json => eprintln!("{}", json_line(note)),
    }
}

/// What `--verbose` says of an acquisition state.
fn state_note<'a>(path: &'a str, state: &LockState) -> Note<'a> {
    let (event, message) = match state {
        LockState::Queued { position, ahead } => (
            "queued",
            format!(
                "queued for {path}: place {position} in the queue, {ahead} ahead (holders and waiters)"
            ),
        ),
        LockState::Acquired { token } => (
            "renewed",
            format!("the lease is renewed again: {path} is held (fencing token {token})"),
        ),
        LockState::Jeopardy { token, remaining } => (
            "jeopardy",
            format!(
                "jeopardy: the lease holding {path} (fencing token {token}) has not been renewed; {} left",
                humantime::format_duration(*remaining)
            ),
        ),
        LockState::Lost { token, reason } => {
            ("lost", format!("{path} is no longer held (fencing token {token}): {reason}"))
        }
        LockState::Busy => ("busy", format!("{path} is busy")),
    };
    Note { event, path, message }
}
