//! A plain TCP proxy that can be opened and closed: a real server (PostgreSQL, say) that is not
//! reachable yet, then is, then is lost again, at the test's command.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Forwards connections on a loopback port to `upstream` while open. Closed (as it starts),
/// nothing listens on its port, so a connection is refused as by a server that is not up yet.
/// Dropping it closes it.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    upstream: SocketAddr,
    /// While open: the accept loop. It owns the connections it forwards, so ending it cuts them.
    open: Mutex<Option<JoinHandle<()>>>,
}

impl TcpProxy {
    /// A closed proxy to `upstream` on a free loopback port.
    pub fn closed(upstream: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self { port: crate::free_port()?, upstream, open: Mutex::new(None) })
    }

    /// The port it listens on while open.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts listening and forwarding.
    pub async fn open(&self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("opening the proxy on port {}", self.port))?;
        let upstream = self.upstream;
        let accept = tokio::spawn(async move {
            // Dropped with this task: every forwarded connection ends with it.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                // Forget the ones that have ended.
                while connections.try_join_next().is_some() {}
            }
        });
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = Some(accept);
        Ok(())
    }

    /// Stops listening and cuts every forwarded connection.
    pub fn close(&self) {
        if let Some(accept) = self.open.lock().unwrap_or_else(PoisonError::into_inner).take() {
            accept.abort();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.close();
    }
}
