//! Client connections, counted (`client_connections_current`) and logged as they come
//! and go. Wraps each accepted TCP stream; only the production transport has them.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{Stream, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// An accepted client connection, counted while it lives.
pub struct Counted {
    inner: TcpStream,
    remote: String,
    metrics: Arc<Metrics>,
    /// The first read or write error, if the connection broke rather than closed.
    broke: Option<io::ErrorKind>,
}

impl Counted {
    fn new(inner: TcpStream, metrics: Arc<Metrics>) -> Counted {
        let remote = inner.peer_addr().map_or_else(|_| "unknown".into(), |a| a.to_string());
        metrics.client_connections_current.inc();
        info!(client_id = %remote, remote_addr = %remote, "Client connected");
        Counted { inner, remote, metrics, broke: None }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.metrics.client_connections_current.dec();
        // A client closing its connection is routine (every CLI call does it); one that
        // broke off (reset, broken pipe) is worth an operator's look.
        match self.broke {
            Some(kind) => {
                let reason = match kind {
                    io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                    other => other.to_string(),
                };
                warn!(client_id = %self.remote, reason, "Client disconnected");
            }
            None => {
                debug!(client_id = %self.remote, reason = "connection closed", "Client disconnected");
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Err(error)) = &polled {
            self.broke.get_or_insert(error.kind());
        }
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Err(error)) = &polled {
            self.broke.get_or_insert(error.kind());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Counted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

/// Binds `address` (an error here is the node's start-up error) and yields counted
/// connections.
pub fn incoming(
    address: SocketAddr,
    metrics: Arc<Metrics>,
) -> io::Result<impl Stream<Item = io::Result<Counted>>> {
    let incoming = TcpIncoming::bind(address)?.with_nodelay(Some(true));
    Ok(incoming.map(move |stream| stream.map(|stream| Counted::new(stream, metrics.clone()))))
}
