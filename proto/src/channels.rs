//! Lazily connected gRPC channels, one per address, shared by everything that talks to
//! that address (peers, the leader, cluster members).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use tonic::transport::{Channel, Endpoint};

#[derive(Debug)]
pub struct Channels {
    cache: Mutex<HashMap<String, Channel>>,
    connect_timeout: Duration,
}

impl Channels {
    pub fn new(connect_timeout: Duration) -> Channels {
        Channels { cache: Mutex::default(), connect_timeout }
    }

    /// The channel to `address` (`host:port`); it connects on first use.
    pub fn get(&self, address: &str) -> Result<Channel, String> {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(channel) = cache.get(address) {
            return Ok(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("bad address {address:?}: {e}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        cache.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }
}
