//! `lockmgr watch`: streams lock events, and outlives the member it streams from. When
//! the stream breaks (the member stopped, or was killed) it opens a new one, on whichever
//! member answers, from the revision after the last event shown: no event is lost or
//! shown twice. Only a real compaction (the events wanted are gone everywhere) or a
//! cluster that cannot be reached ends it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lockmgr_client::{Error, proto as v1};
use serde::Serialize;

use crate::{
    args::WatchArgs,
    commands::{Ctl, enum_name},
    views::{View, mode_name},
};

/// Between a broken stream and the next: a stopping member may take a while to refuse.
const RESUME_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug, Serialize)]
struct Event<'a> {
    revision: u64,
    kind: String,
    path: &'a str,
    lease_id: i64,
    holder_id: &'a str,
    mode: String,
    fencing_token: u64,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Compacted {
    compacted: bool,
    compact_revision: u64,
}

impl Ctl {
    pub async fn watch(&self, args: WatchArgs) -> Result<(), Error> {
        // The revision to start from: the one after the last event shown. "From now" is
        // the revision after the cluster's at the start, not whatever it is when a broken
        // stream is opened again (events in between would be lost).
        let mut from = match args.from {
            0 => self.client.status().await?.header.map_or(0, |header| header.revision) + 1,
            from => from,
        };
        // Streams that break without an event, for longer than --command-timeout: the
        // cluster is not serving watches, and `watch` gives up.
        let mut progress_at = Instant::now();
        loop {
            let mut stream = self.client.watch(&args.prefix, !args.exact, from).await?;
            let mut progressed = false;
            let broke = loop {
                let message = match stream.next().await {
                    None => break "the stream ended".to_owned(),
                    Some(Ok(message)) => message,
                    Some(Err(status)) => {
                        let error = Error::Rpc(status);
                        // A refusal from a server (it carries a reason) is final.
                        if error.reason().is_some() {
                            return Err(error);
                        }
                        break error.to_string();
                    }
                };
                // A member that stops, or finds this watcher too slow, ends its streams
                // as "compacted" at the revision after the last event it sent: elsewhere
                // those events may still be there.
                if message.compacted && message.compact_revision > from.max(1) {
                    self.print_compacted(message.compact_revision);
                    return Ok(());
                }
                if message.compacted {
                    break format!("the member stopped streaming at revision {from}");
                }
                for event in &message.events {
                    self.print_event(event);
                    from = event.revision + 1;
                    progressed = true;
                }
            };
            if progressed {
                progress_at = Instant::now();
            } else if progress_at.elapsed() > self.timeouts.command {
                return Err(Error::Unavailable { last: broke });
            }
            eprintln!("lockmgr: watch stream broke ({broke}); resuming from revision {from}");
            tokio::time::sleep(RESUME_PAUSE).await;
        }
    }

    fn print_event(&self, event: &v1::Event) {
        let name = |name: Option<&str>, prefix| {
            name.map_or("unknown".to_owned(), |n| enum_name(n, prefix))
        };
        self.show(&Event {
            revision: event.revision,
            kind: name(
                v1::EventKind::try_from(event.kind).ok().map(|k| k.as_str_name()),
                "EVENT_KIND_",
            ),
            path: &event.path,
            lease_id: event.lease_id,
            holder_id: &event.holder_id,
            mode: mode_name(event.mode),
            fencing_token: event.fencing_token,
            reason: name(
                v1::ReleaseReason::try_from(event.reason).ok().map(|r| r.as_str_name()),
                "RELEASE_REASON_",
            ),
        });
    }

    fn print_compacted(&self, compact_revision: u64) {
        self.show(&Compacted { compacted: true, compact_revision });
    }
}

impl View for Event<'_> {
    fn human(&self) -> String {
        format!(
            "{}\t{}\t{}\tlease {}\t{}\ttoken {}\t{}",
            self.revision,
            self.kind,
            self.path,
            self.lease_id,
            self.holder_id,
            self.fencing_token,
            self.reason
        )
    }
}

impl View for Compacted {
    fn human(&self) -> String {
        format!(
            "compacted: events before revision {} are gone; re-read and watch from there",
            self.compact_revision
        )
    }
}
