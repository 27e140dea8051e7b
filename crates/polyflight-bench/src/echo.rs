//! The latency floor of a gRPC call in Rust: a bare tonic unary echo — one small bytes message
//! each way, no Flight types, no service logic — served and called over loopback TCP in this
//! process, like the arrow-flight row. Its row has latency only (call `Echo`); polyflight's
//! small calls (GetFlightInfo, DoAction) are compared with it.

use crate::BenchError;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use tonic_prost::ProstCodec;

/// The echo row's name.
pub const ECHO_ROW: &str = "tonic unary echo";

/// The one method.
const PATH: &str = "/polyflight.bench.Echo/Echo";

/// The payload of each call: about what a small Flight request carries.
const PAYLOAD: usize = 64;

/// The echo service: answers `Echo` with the request's bytes.
#[derive(Clone, Default)]
struct EchoService;

impl tonic::server::NamedService for EchoService {
    const NAME: &'static str = "polyflight.bench.Echo";
}

struct Echo;

impl tonic::server::UnaryService<Vec<u8>> for Echo {
    type Response = Vec<u8>;
    type Future = std::future::Ready<Result<tonic::Response<Vec<u8>>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        std::future::ready(Ok(tonic::Response::new(request.into_inner())))
    }
}

impl<B> tower_service::Service<http::Request<B>> for EchoService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != PATH {
                return Ok(tonic::Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Vec<u8>, Vec<u8>>::default());
            Ok(grpc.unary(Echo, request).await)
        })
    }
}

/// The echo server on 127.0.0.1, on the current runtime; stopped by [`EchoServer::shutdown`].
pub struct EchoServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl EchoServer {
    /// Binds a free port and serves.
    pub async fn start() -> Result<EchoServer, BenchError> {
        let incoming = tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into())?
            .with_nodelay(Some(true));
        let addr = incoming.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .add_service(EchoService)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "echo server failed");
            }
        });
        Ok(EchoServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A client of the echo server.
#[derive(Clone)]
pub struct EchoClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl EchoClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<EchoClient, BenchError> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| BenchError::Other(format!("echo endpoint: {e}")))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| BenchError::Other(format!("connecting to the echo server: {e}")))?;
        Ok(EchoClient {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// One round trip.
    pub async fn echo(&self) -> Result<(), BenchError> {
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| BenchError::Other(format!("echo channel: {e}")))?;
        let payload = vec![7u8; PAYLOAD];
        let answer = grpc
            .unary(
                tonic::Request::new(payload),
                http::uri::PathAndQuery::from_static(PATH),
                ProstCodec::<Vec<u8>, Vec<u8>>::default(),
            )
            .await
            .map_err(|status| BenchError::Other(format!("echo: {status}")))?;
        if answer.get_ref().len() != PAYLOAD {
            return Err(BenchError::Protocol(format!(
                "the echo came back with {} bytes, not {PAYLOAD}",
                answer.get_ref().len()
            )));
        }
        Ok(())
    }
}
