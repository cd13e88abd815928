//! The lockmgr client library.
//!
//! ```no_run
//! # async fn example() -> Result<(), lockmgr_client::Error> {
//! use std::time::Duration;
//! use lockmgr_client::{Client, ClientConfig};
//!
//! let client = Client::connect(ClientConfig::new(["127.0.0.1:7070"])).await?;
//! let session = client.session(Duration::from_secs(10)).await?;
//! let guard = session.lock("/db/users/schema-migration", Duration::from_secs(30)).await?;
//! // Hand guard.fencing_token() to every resource the critical section writes to.
//! println!("token {}", guard.fencing_token());
//! guard.unlock().await?;
//! session.close().await?;
//! # Ok(()) }
//! ```
//!
//! A [`Client`] talks to any member and follows the leader. A [`Session`] is a lease kept
//! alive in the background; [`Session::lost`] resolves as soon as the lease may no longer
//! be counted on, before the server could hand its locks to anyone else. A [`LockGuard`]
//! carries the grant's fencing token and releases the lock on `unlock()` or on drop.

mod client;
mod election;
mod error;
mod session;

pub use client::{Client, ClientConfig};
pub use election::{Acquisition, Leadership, LockState};
pub use error::Error;
pub use lockmgr_proto::v1 as proto;
pub use session::{LockGuard, LockMode, Session};
/// What [`Error::code`] and [`Error::Rpc`] carry: match on them without adding tonic.
pub use tonic::{Code, Status};
