//! The command `lockmgr lock` runs, supervised as consul and etcdctl do: in its own
//! process group, with SIGINT, SIGTERM and SIGHUP forwarded to the group, and, when the
//! lock can no longer be counted on, the whole group stopped (SIGTERM, a grace period,
//! SIGKILL) so that no background job of the command writes after the lock is free.
//!
//! A command run from a terminal gets the terminal while it runs, as a shell's
//! foreground job does: it can read it, and Ctrl-C reaches its group directly.
//!
//! Exit statuses follow the shell's: the command's own code, 128+n if a signal n ended
//! it, 127 if it cannot be found and 126 if it cannot be executed.

use std::{
    io::{self, IsTerminal},
    os::unix::process::ExitStatusExt,
    process::ExitStatus,
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::signal::{SigSet, Signal, killpg},
    unistd::{Pid, getpgrp, tcgetpgrp, tcsetpgrp},
};
use tokio::{
    process::Child,
    signal::unix::{SignalKind, signal},
    time::Instant,
};

use crate::exit::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND};

/// How often the group is polled while it is given its grace period.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// SIGINT, SIGTERM and SIGHUP, caught from the start of `lockmgr lock` so that none of
/// them can kill it with a lock held; each one is answered by the caller.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn catch() -> io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of the three to arrive.
    pub async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::SIGINT,
            _ = self.terminate.recv() => Signal::SIGTERM,
            _ = self.hangup.recv() => Signal::SIGHUP,
        }
    }
}

/// The exit status a shell would give for a process ended by `signal`.
pub fn signal_exit_code(signal: Signal) -> u8 {
    u8::try_from(128 + signal as i32).unwrap_or(1)
}

/// The exit status of `spawn` failing with `error`, as a shell reports it.
pub fn spawn_exit_code(error: &io::Error) -> u8 {
    match error.kind() {
        io::ErrorKind::NotFound => EXIT_NOT_FOUND,
        _ => EXIT_CANNOT_EXECUTE,
    }
}

/// The command's status as an exit code: its own, or 128+n for signal n.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(signal)) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        (None, None) => 1,
    }
}

/// A running command, leader of its own process group.
#[derive(Debug)]
pub struct Supervised {
    child: Child,
    group: Pid,
    /// lockmgr's own group, if it handed the terminal to the command's (and must take it
    /// back).
    terminal_owner: Option<Pid>,
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(ours) = self.terminal_owner.take() {
            take_back_terminal(ours);
        }
    }
}

/// Run in the foreground, a command in a group of its own would be stopped (SIGTTIN) when
/// it reads the terminal, and Ctrl-C would not reach it: like a shell, hand it the
/// terminal if lockmgr holds it. Returns lockmgr's group if it did.
fn hand_over_terminal(group: Pid) -> Option<Pid> {
    let stdin = io::stdin();
    let ours = getpgrp();
    if !stdin.is_terminal() || tcgetpgrp(&stdin).ok()? != ours {
        return None;
    }
    tcsetpgrp(&stdin, group).ok()?;
    // It may have tried to read before it held the terminal, and been stopped for it.
    let _ = killpg(group, Signal::SIGCONT);
    Some(ours)
}

/// Takes the terminal back for lockmgr's group: from the background, which the kernel
/// allows only with SIGTTOU blocked (in this thread, for the call).
fn take_back_terminal(ours: Pid) {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    if ttou.thread_block().is_ok() {
        let _ = tcsetpgrp(io::stdin(), ours);
        let _ = ttou.thread_unblock();
    }
}

impl Supervised {
    /// `command`, spawned in a new process group of which it is the leader.
    pub fn spawn(command: &mut tokio::process::Command) -> io::Result<Supervised> {
        let child = command.process_group(0).kill_on_drop(false).spawn()?;
        let pid = child.id().expect("a child just spawned has a pid");
        let group = Pid::from_raw(i32::try_from(pid).expect("pids fit in an i32"));
        let terminal_owner = hand_over_terminal(group);
        Ok(Supervised { child, group, terminal_owner })
    }

    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await;
        if let Some(ours) = self.terminal_owner.take() {
            take_back_terminal(ours);
        }
        status
    }

    /// Sends `signal` to every process of the group (a group already gone is no error).
    pub fn signal_group(&self, signal: Signal) {
        match killpg(self.group, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(error) => eprintln!("lockmgr: cannot signal the command's group: {error}"),
        }
    }

    /// Stops the whole group: SIGTERM, then up to `grace` for the command to exit and
    /// the rest of its group to follow, then SIGKILL for whatever is left.
    pub async fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.signal_group(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        let mut status = None;
        loop {
            if status.is_none() {
                status = self.child.try_wait().ok().flatten();
            }
            // Until the leader is reaped it counts as a member of its group.
            if status.is_some() && self.group_is_empty() {
                return status;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.signal_group(Signal::SIGKILL);
        match status {
            Some(status) => Some(status),
            None => self.child.wait().await.ok(),
        }
    }

    fn group_is_empty(&self) -> bool {
        killpg(self.group, None) == Err(Errno::ESRCH)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn statuses_read_as_a_shell_reports_them() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc_signal(Signal::SIGTERM))), 143);
        assert_eq!(exit_code(ExitStatus::from_raw(libc_signal(Signal::SIGKILL))), 137);
        assert_eq!(signal_exit_code(Signal::SIGINT), 130);
        assert_eq!(spawn_exit_code(&io::Error::from(io::ErrorKind::NotFound)), EXIT_NOT_FOUND);
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(spawn_exit_code(&denied), EXIT_CANNOT_EXECUTE);
    }

    /// A wait status for "ended by `signal`".
    fn libc_signal(signal: Signal) -> i32 {
        signal as i32
    }
}
