//! The server side of the handshake: [`TlsAcceptor`] accepts TCP connections, runs each TLS
//! handshake on a task of its own under a timeout, and hands finished connections, with the
//! client certificate's identity, to the gRPC server.

use super::diagnose::rustls_error;
use super::identity::peer_identity;
use super::ServerTlsConfig;
use crate::server::{Acceptor, BoxedIo};
use crate::TcpAcceptor;
use async_trait::async_trait;
use polyflight_core::{Location, PeerInfo, Result};
use std::io;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};
use tokio::task::{JoinHandle, JoinSet};

/// Connections whose TLS handshake is complete but that the gRPC server has not taken yet.
const ACCEPT_BACKLOG: usize = 64;

/// Accepts TLS connections: TCP connections are accepted on a background task and each
/// handshake runs on a task of its own (bounded by the configured handshake timeout), so a slow
/// or silent client never holds up the others. Failed handshakes are logged and dropped.
pub struct TlsAcceptor {
    ready: Mutex<mpsc::Receiver<(BoxedIo, PeerInfo)>>,
    task: JoinHandle<()>,
}

impl TlsAcceptor {
    /// Binds `host:port` of `location` (port 0 picks a free port) and starts accepting;
    /// returns the acceptor and the bound location.
    pub async fn bind(location: &Location, config: &ServerTlsConfig) -> Result<(Self, Location)> {
        let rustls_config = config.rustls_config()?;
        let (tcp, bound) = TcpAcceptor::bind(location).await?;
        let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
        let timeout = config.handshake_timeout;
        let task = tokio::spawn(accept_loop(
            tcp,
            tokio_rustls::TlsAcceptor::from(rustls_config),
            timeout,
            tx,
        ));
        Ok((
            TlsAcceptor {
                ready: Mutex::new(rx),
                task,
            },
            bound,
        ))
    }
}

impl Drop for TlsAcceptor {
    fn drop(&mut self) {
        // Closes the listening socket and abandons handshakes in progress.
        self.task.abort();
    }
}

#[async_trait]
impl Acceptor for TlsAcceptor {
    async fn accept(&self) -> io::Result<(BoxedIo, PeerInfo)> {
        match self.ready.lock().await.recv().await {
            Some(connection) => Ok(connection),
            None => Err(io::Error::other("the TLS accept loop has stopped")),
        }
    }
}

async fn accept_loop(
    tcp: TcpAcceptor,
    tls: tokio_rustls::TlsAcceptor,
    timeout: Duration,
    ready: mpsc::Sender<(BoxedIo, PeerInfo)>,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = tcp.accept_tcp() => match accepted {
                Ok((stream, peer)) => {
                    let tls = tls.clone();
                    let ready = ready.clone();
                    handshakes.spawn(async move {
                        if let Some(connection) = handshake(tls, stream, peer, timeout).await {
                            // The receiver is gone only when the listener shuts down.
                            let _ = ready.send(connection).await;
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a TCP connection failed");
                    // Avoid a hot loop when the socket keeps failing (e.g. out of fds).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            _ = ready.closed() => return,
        }
    }
}

async fn handshake(
    tls: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: PeerInfo,
    timeout: Duration,
) -> Option<(BoxedIo, PeerInfo)> {
    let address = peer.address.clone().unwrap_or_default();
    let stream = match tokio::time::timeout(timeout, tls.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            match rustls_error(&err) {
                Some(rustls::Error::NoCertificatesPresented) => tracing::warn!(
                    peer = %address,
                    "TLS client rejected: it presented no client certificate (mutual TLS is required)"
                ),
                Some(rustls::Error::InvalidCertificate(cert)) => tracing::warn!(
                    peer = %address,
                    problem = ?cert,
                    "TLS client rejected: its client certificate did not verify"
                ),
                _ => tracing::debug!(peer = %address, error = %err, "TLS handshake failed"),
            }
            return None;
        }
        Err(_) => {
            tracing::debug!(peer = %address, ?timeout, "TLS handshake timed out");
            return None;
        }
    };
    let peer = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
    {
        Some(cert) => peer.with_tls(peer_identity(cert)),
        None => peer,
    };
    Some((Box::new(stream), peer))
}
