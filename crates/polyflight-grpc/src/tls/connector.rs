//! The client side of the handshake: [`TlsConnector`] opens TLS connections and, when the server
//! asked for a client certificate, waits briefly for its verdict; `Prefixed` hands the bytes read
//! while waiting on to HTTP/2.

use super::client_config::ClientCert;
use super::diagnose::{client_error, rustls_error};
use super::{invalid, ClientTlsConfig};
use crate::client::Connector;
use crate::server::BoxedIo;
use crate::TcpConnector;
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use polyflight_core::{ConnectOptions, FlightError, Location, Result};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How long a client waits, after a handshake in which the server asked for a client
/// certificate, for the server's first bytes (see [`TlsConnector`]).
const CLIENT_CERT_VERDICT_WAIT: Duration = Duration::from_secs(2);

/// Opens TLS connections to a host:port.
///
/// In TLS 1.3 a client finishes its handshake before the server has judged the client's
/// certificate, so a server that refuses it (or requires one that was not sent) says so only
/// with an alert after the handshake — which hyper would report as a bare broken connection.
/// When the server asked for a client certificate, the connector therefore waits briefly for
/// the server's first bytes (a gRPC server speaks first, with its HTTP/2 SETTINGS): an alert
/// becomes a clear `UNAUTHENTICATED` error at connect time, and the bytes that did arrive are
/// handed on to HTTP/2 unchanged.
pub struct TlsConnector {
    tcp: TcpConnector,
    /// Presents a client certificate when asked (if one is configured).
    identity: Option<Arc<CertifiedKey>>,
    /// Built once (reading the system roots is slow); each connection gets a copy with a
    /// client-certificate resolver of its own.
    rustls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
    authority: String,
    connect_timeout: Option<Duration>,
}

impl TlsConnector {
    /// A connector for `location`'s host:port with these TLS settings.
    pub fn new(
        location: &Location,
        options: &ConnectOptions,
        config: ClientTlsConfig,
    ) -> Result<Self> {
        let tcp = TcpConnector::new(location, options)?;
        let host = location.host().ok_or_else(|| {
            invalid(format!(
                "{location} has no host to verify a certificate for"
            ))
        })?;
        let server_name = config.server_name_for(host)?;
        // Built now, so an unusable configuration (no roots, say) fails here, not at the first
        // call.
        let rustls = Arc::new(config.build()?);
        Ok(TlsConnector {
            authority: tcp.authority().to_string(),
            tcp,
            identity: config.identity,
            rustls,
            server_name,
            connect_timeout: options.connect_timeout,
        })
    }

    async fn connect_tls(&self) -> Result<BoxedIo> {
        let stream = self.tcp.connect_tcp().await?;
        let asked = Arc::new(AtomicBool::new(false));
        let mut config = (*self.rustls).clone();
        config.client_auth_cert_resolver = Arc::new(ClientCert {
            identity: self.identity.clone(),
            asked: Some(asked.clone()),
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let handshake = connector.connect(self.server_name.clone(), stream);
        let mut tls = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, handshake).await.map_err(|_| {
                FlightError::unavailable(format!("TLS handshake with {} timed out", self.authority))
            })?,
            None => handshake.await,
        }
        .map_err(|e| {
            client_error(
                &e,
                &self.authority,
                &self.server_name,
                asked.load(Ordering::Relaxed),
            )
        })?;
        if !asked.load(Ordering::Relaxed) {
            return Ok(Box::new(tls));
        }
        let mut first = vec![0u8; 16 * 1024];
        match tokio::time::timeout(CLIENT_CERT_VERDICT_WAIT, tls.read(&mut first)).await {
            // No verdict in time: carry on; HTTP/2 reports whatever happens next.
            Err(_) => Ok(Box::new(tls)),
            Ok(Ok(0)) => Err(self.closed_after_handshake()),
            Ok(Ok(n)) => {
                first.truncate(n);
                Ok(Box::new(Prefixed {
                    prefix: Bytes::from(first),
                    inner: tls,
                }))
            }
            Ok(Err(err)) if rustls_error(&err).is_some() => {
                Err(client_error(&err, &self.authority, &self.server_name, true))
            }
            // Some servers (OpenSSL-based gRPC C++, for one) refuse a client certificate by
            // closing the connection without an alert.
            Ok(Err(err))
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                Err(self.closed_after_handshake())
            }
            Ok(Err(err)) => Err(client_error(&err, &self.authority, &self.server_name, true)),
        }
    }

    /// The server asked for a client certificate, then hung up before saying anything else:
    /// it did not accept what it got.
    fn closed_after_handshake(&self) -> FlightError {
        if self.identity.is_some() {
            FlightError::unauthenticated(format!(
                "TLS: {} asked for a client certificate and closed the connection after the \
                 handshake: it rejected the client certificate; it must be issued by a CA the \
                 server trusts for client certificates",
                self.authority
            ))
        } else {
            FlightError::unauthenticated(format!(
                "TLS: {} asked for a client certificate and closed the connection after the \
                 handshake: it requires a client certificate (mutual TLS) and none was \
                 presented; configure one with ClientTlsConfig::with_client_identity_pem",
                self.authority
            ))
        }
    }
}

#[async_trait]
impl Connector for TlsConnector {
    async fn connect(&self) -> Result<BoxedIo> {
        self.connect_tls().await
    }

    fn authority(&self) -> &str {
        &self.authority
    }

    fn uri_scheme(&self) -> &'static str {
        "https"
    }
}

/// A stream that first yields bytes already read from it.
struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
