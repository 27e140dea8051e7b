//! A polyflight service as a tonic service, for a `tonic::transport::Server` router.
//!
//! [`TonicFlightService`] implements arrow-flight's tonic `FlightService` trait by handing every
//! call to a polyflight [`CallHandler`] — normally a [`Dispatcher`], which runs authentication,
//! middleware, sessions and deadlines exactly as polyflight's own listeners do — so a service
//! written for polyflight can sit beside tonic's health or reflection services on one port.
//!
//! What crosses: request metadata as headers (the gRPC wire's own left out), `grpc-timeout` as
//! the call's timeout, the peer's address from tonic's connection info; response headers as
//! response metadata; an error's code, message, details and the call's trailers as the status.
//! tonic has no way to send trailers of its own after a successful stream, so the trailers of a
//! call that ends well are not sent.
//!
//! Copies: tonic encodes every response message into its own buffer (its codec's copy of every
//! body, which polyflight's own gRPC transport avoids), and a FlightData body of several segments
//! (as polyflight's encoder writes record batches) is first gathered into one buffer, because
//! arrow-flight's `FlightData` has a single body field. Requests are decoded by tonic and then
//! moved field by field. Serve through polyflight's listeners where speed matters; this is for
//! sharing a tonic server.

use crate::metadata::{headers_into_metadata, metadata_into_headers};
use arrow_flight::flight_service_server::{
    FlightService as ArrowFlightService, FlightServiceServer,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use polyflight_core::proto;
use polyflight_core::rpc::WireMessage;
use polyflight_core::session::SessionMiddleware;
use polyflight_core::transport::DEFAULT_MAX_REQUEST_MESSAGE_SIZE;
use polyflight_core::{
    CallHandler, Dispatcher, FlightData, FlightError, FlightMethod, FlightService, IncomingCall,
    MessageStream, PeerInfo, Scheme, Trailers,
};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status, Streaming};

type TonicStream<T> = BoxStream<'static, Result<T, Status>>;

/// A polyflight service (through its call handler) as arrow-flight's tonic `FlightService`.
///
/// ```no_run
/// # async fn demo(service: impl polyflight_core::FlightService) -> Result<(), Box<dyn std::error::Error>> {
/// use polyflight_tonic::TonicFlightService;
///
/// tonic::transport::Server::builder()
///     .add_service(TonicFlightService::new(service).into_server())
///     // .add_service(health_service) …
///     .serve("127.0.0.1:8815".parse()?)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TonicFlightService {
    handler: Arc<dyn CallHandler>,
}

impl TonicFlightService {
    /// Serves `service` as `polyflight_core::ServerBuilder` does by default: client sessions,
    /// no authentication, no other middleware.
    pub fn new(service: impl FlightService) -> Self {
        let sessions: Arc<dyn polyflight_core::ServerMiddleware> =
            Arc::new(SessionMiddleware::new());
        Self::from_handler(Arc::new(Dispatcher::with_config(
            Arc::new(service),
            None,
            vec![sessions],
        )))
    }

    /// Hands calls to `handler`: a [`Dispatcher`] made with the authentication and middleware
    /// the server should run.
    pub fn from_handler(handler: Arc<dyn CallHandler>) -> Self {
        TonicFlightService { handler }
    }

    /// The tonic server for a router, with polyflight's message limit
    /// ([`DEFAULT_MAX_REQUEST_MESSAGE_SIZE`], 256 MiB) instead of tonic's 4 MiB for requests, and
    /// no limit on responses.
    pub fn into_server(self) -> FlightServiceServer<TonicFlightService> {
        FlightServiceServer::new(self)
            .max_decoding_message_size(DEFAULT_MAX_REQUEST_MESSAGE_SIZE)
            .max_encoding_message_size(usize::MAX)
    }

    /// Runs one call through the handler: the call's metadata from the tonic request, the
    /// response headers onto the tonic response.
    async fn call<R>(
        &self,
        method: FlightMethod,
        request: Request<R>,
        requests: impl FnOnce(R) -> MessageStream,
    ) -> Result<Answer, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let peer = peer(&extensions);
        let call = IncomingCall {
            method,
            headers: metadata_into_headers(&metadata),
            peer,
            timeout: metadata
                .get("grpc-timeout")
                .and_then(|value| value.to_str().ok())
                .and_then(parse_timeout),
        };
        let response = self
            .handler
            .call(call, requests(message))
            .await
            .map_err(Status::from)?;
        Ok(Answer {
            headers: response.headers,
            body: response.body,
            trailers: response.trailers,
        })
    }
}

/// What the handler answered a call.
struct Answer {
    headers: polyflight_core::Headers,
    body: MessageStream,
    trailers: Trailers,
}

impl Answer {
    fn response<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        headers_into_metadata(&self.headers, response.metadata_mut());
        response
    }

    /// The one message of a unary call, as arrow-flight's type `A` of polyflight's `P`.
    async fn unary<P, A>(mut self) -> Result<Response<A>, Status>
    where
        P: WireMessage,
        A: From<P>,
    {
        match self.body.next().await {
            Some(Ok(message)) => {
                let message = P::from_message(message).map_err(Status::from)?;
                Ok(self.response(A::from(message)))
            }
            Some(Err(error)) => Err(error_status(error, &self.trailers)),
            None => Err(Status::internal(format!("the service sent no {}", P::NAME))),
        }
    }

    /// The response stream, each message as arrow-flight's type `A` of polyflight's `P`.
    fn stream<P, A>(self) -> Response<TonicStream<A>>
    where
        P: WireMessage,
        A: From<P> + Send + 'static,
    {
        let Answer {
            headers,
            body,
            trailers,
        } = self;
        let stream = body
            .map(move |item| match item {
                Ok(message) => P::from_message(message).map(A::from).map_err(Status::from),
                Err(error) => Err(error_status(error, &trailers)),
            })
            .boxed();
        let mut response = Response::new(stream);
        headers_into_metadata(&headers, response.metadata_mut());
        response
    }
}

/// An error as the call's status, with the trailers the call set so far as its metadata.
fn error_status(error: FlightError, trailers: &Trailers) -> Status {
    let mut status = Status::from(error);
    headers_into_metadata(&trailers.get(), status.metadata_mut());
    status
}

/// The request stream of a unary call: its one message.
fn one<P: WireMessage>(message: P) -> MessageStream {
    futures::stream::iter([Ok(message.into_message())]).boxed()
}

/// The request stream of a streaming call.
fn many<A, P>(stream: Streaming<A>) -> MessageStream
where
    A: Send + 'static,
    P: WireMessage + From<A>,
{
    stream
        .map_ok(|message| P::from(message).into_message())
        .map_err(FlightError::from)
        .boxed()
}

/// The peer as tonic's connection info knows it.
fn peer(extensions: &http::Extensions) -> PeerInfo {
    let tcp = extensions.get::<tonic::transport::server::TcpConnectInfo>();
    match tcp.and_then(|info| info.remote_addr()) {
        Some(addr) => PeerInfo::new(Scheme::Grpc, addr.to_string()),
        None => PeerInfo::default(),
    }
}

/// A `grpc-timeout` value (`1..=8` digits and a unit: H, M, S, m, u, n).
fn parse_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[tonic::async_trait]
impl ArrowFlightService for TonicFlightService {
    type HandshakeStream = TonicStream<arrow_flight::HandshakeResponse>;
    type ListFlightsStream = TonicStream<arrow_flight::FlightInfo>;
    type DoGetStream = TonicStream<arrow_flight::FlightData>;
    type DoPutStream = TonicStream<arrow_flight::PutResult>;
    type DoExchangeStream = TonicStream<arrow_flight::FlightData>;
    type DoActionStream = TonicStream<arrow_flight::Result>;
    type ListActionsStream = TonicStream<arrow_flight::ActionType>;

    async fn handshake(
        &self,
        request: Request<Streaming<arrow_flight::HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let answer = self
            .call(
                FlightMethod::Handshake,
                request,
                many::<_, proto::HandshakeRequest>,
            )
            .await?;
        Ok(answer.stream::<proto::HandshakeResponse, _>())
    }

    async fn list_flights(
        &self,
        request: Request<arrow_flight::Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let answer = self
            .call(FlightMethod::ListFlights, request, |m| {
                one(proto::Criteria::from(m))
            })
            .await?;
        Ok(answer.stream::<proto::FlightInfo, _>())
    }

    async fn get_flight_info(
        &self,
        request: Request<arrow_flight::FlightDescriptor>,
    ) -> Result<Response<arrow_flight::FlightInfo>, Status> {
        let answer = self
            .call(FlightMethod::GetFlightInfo, request, |m| {
                one(proto::FlightDescriptor::from(m))
            })
            .await?;
        answer.unary::<proto::FlightInfo, _>().await
    }

    async fn poll_flight_info(
        &self,
        request: Request<arrow_flight::FlightDescriptor>,
    ) -> Result<Response<arrow_flight::PollInfo>, Status> {
        let answer = self
            .call(FlightMethod::PollFlightInfo, request, |m| {
                one(proto::FlightDescriptor::from(m))
            })
            .await?;
        answer.unary::<proto::PollInfo, _>().await
    }

    async fn get_schema(
        &self,
        request: Request<arrow_flight::FlightDescriptor>,
    ) -> Result<Response<arrow_flight::SchemaResult>, Status> {
        let answer = self
            .call(FlightMethod::GetSchema, request, |m| {
                one(proto::FlightDescriptor::from(m))
            })
            .await?;
        answer.unary::<proto::SchemaResult, _>().await
    }

    async fn do_get(
        &self,
        request: Request<arrow_flight::Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let answer = self
            .call(FlightMethod::DoGet, request, |m| {
                one(proto::Ticket::from(m))
            })
            .await?;
        Ok(answer.stream::<FlightData, _>())
    }

    async fn do_put(
        &self,
        request: Request<Streaming<arrow_flight::FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let answer = self
            .call(FlightMethod::DoPut, request, many::<_, FlightData>)
            .await?;
        Ok(answer.stream::<proto::PutResult, _>())
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<arrow_flight::FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let answer = self
            .call(FlightMethod::DoExchange, request, many::<_, FlightData>)
            .await?;
        Ok(answer.stream::<FlightData, _>())
    }

    async fn do_action(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let answer = self
            .call(FlightMethod::DoAction, request, |m| {
                one(proto::Action::from(m))
            })
            .await?;
        Ok(answer.stream::<proto::Result, _>())
    }

    async fn list_actions(
        &self,
        request: Request<arrow_flight::Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let answer = self
            .call(FlightMethod::ListActions, request, |m| {
                one(proto::Empty::from(m))
            })
            .await?;
        Ok(answer.stream::<proto::ActionType, _>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_and_nonsense_does_not() {
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5x", "123456789S", "-1S", "1.5S"] {
            assert_eq!(parse_timeout(bad), None, "{bad}");
        }
    }
}
