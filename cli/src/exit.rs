//! The exit statuses of `lockmgr`, one table for every command (the README's "Exit
//! statuses" lists the same): a script can tell "busy" from "lost" from "broken".

/// Any error not listed below (the cluster unreachable, a refused request, ...).
pub const EXIT_FAILURE: u8 = 1;
/// A usage error (clap's own status for bad arguments), a server configuration that does
/// not validate, or `fence check` unable to answer.
pub const EXIT_USAGE: u8 = 2;
/// `lockmgr lock`: the lock stayed busy for the whole `--wait` (`--wait 0` included).
pub const EXIT_BUSY: u8 = 75;
/// `lockmgr lock`: the session's lease was lost while the lock was held; the command was
/// stopped.
pub const EXIT_SESSION_LOST: u8 = 76;
/// `lockmgr lock`: the command was found but cannot be executed.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// `lockmgr lock`: the command was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// `fence check`: the token is not the current holder's.
pub const EXIT_NOT_CURRENT: u8 = 1;
