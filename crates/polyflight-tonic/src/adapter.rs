//! An arrow-flight (tonic) Flight service, served by polyflight.
//!
//! [`ArrowFlightAdapter`] implements polyflight's [`FlightService`] by calling the wrapped
//! `arrow_flight::flight_service_server::FlightService`, so every polyflight transport serves it
//! and polyflight's dispatcher has already authenticated the call, run the middleware and armed
//! the deadline before the tonic service sees it. What the service sees of the call:
//!
//! - request headers as `tonic::Request` metadata, and the deadline as its `grpc-timeout`;
//! - the peer: polyflight's [`PeerInfo`] and [`CallContext`] as request extensions (on every
//!   transport), and tonic's `TcpConnectInfo` for peers with an IP address, so
//!   `Request::remote_addr` works as under tonic's own server;
//! - response metadata goes out as response headers; the metadata of an error status as
//!   trailers, beside the status's code, message and details.
//!
//! Copies: none of ours. Messages move field by field between the two sets of types, and the
//! request streams (Handshake, DoPut, DoExchange) reach the service as a `tonic::Streaming` that
//! decodes nothing: its frames are empty, and each one hands over the next message as it came
//! from the transport (see [`handover`]), so a FlightData body is the buffer the transport
//! received. Cancellation is polyflight's: when the call ends or the peer goes away, the
//! service's future or response stream is dropped, as tonic does.

use crate::metadata::{headers_into_metadata, metadata_into_headers};
use arrow_flight::flight_service_server::FlightService as ArrowFlightService;
use futures::{Stream, StreamExt, TryStreamExt};
use polyflight_core::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use polyflight_core::{
    CallContext, FlightData, FlightError, FlightService, FlightStream, PeerInfo, Result, Scheme,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;

/// Serves an arrow-flight `FlightService` (or `FlightSqlService`) over polyflight's transports.
///
/// ```no_run
/// # async fn demo<S: arrow_flight::flight_service_server::FlightService>(service: S,
/// #     registry: polyflight_core::Registry) -> polyflight_core::Result<()> {
/// use polyflight_tonic::ArrowFlightAdapter;
///
/// let server = polyflight_core::ServerBuilder::new(ArrowFlightAdapter::new(service), registry)
///     .listen("grpc+unix:///tmp/flight.sock")
///     .listen("ucx://0.0.0.0:0")
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct ArrowFlightAdapter<S> {
    service: Arc<S>,
}

impl<S: ArrowFlightService> ArrowFlightAdapter<S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Self::from_arc(Arc::new(service))
    }

    /// Wraps a shared service (e.g. one also served by a tonic router).
    pub fn from_arc(service: Arc<S>) -> Self {
        ArrowFlightAdapter { service }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &Arc<S> {
        &self.service
    }
}

impl<S> Clone for ArrowFlightAdapter<S> {
    fn clone(&self) -> Self {
        ArrowFlightAdapter {
            service: self.service.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ArrowFlightAdapter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrowFlightAdapter")
            .field("service", &std::any::type_name::<S>())
            .finish()
    }
}

/// The tonic request for a call: metadata, timeout and peer from the polyflight context.
fn request<T>(ctx: &CallContext, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    headers_into_metadata(ctx.headers(), request.metadata_mut());
    if let Some(deadline) = ctx.deadline() {
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
    }
    let peer = ctx.peer();
    let extensions = request.extensions_mut();
    if let Some(remote_addr) = ip_peer(peer) {
        extensions.insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(remote_addr),
        });
    }
    extensions.insert(peer.clone());
    extensions.insert(ctx.clone());
    request
}

/// The peer's socket address, on the transports whose peers have one.
fn ip_peer(peer: &PeerInfo) -> Option<SocketAddr> {
    match peer.scheme {
        Some(Scheme::Grpc | Scheme::GrpcTcp | Scheme::GrpcTls | Scheme::Ucx) => {
            peer.address.as_deref()?.parse().ok()
        }
        _ => None,
    }
}

/// The message of a tonic response; its metadata becomes the call's response headers.
fn response<T>(ctx: &CallContext, response: tonic::Response<T>) -> T {
    let (metadata, message, _) = response.into_parts();
    for (key, value) in metadata_into_headers(&metadata).iter() {
        ctx.append_response_header(key, value.clone());
    }
    message
}

/// A status as the call's error; its metadata becomes the call's trailers.
fn status(ctx: &CallContext, status: tonic::Status) -> FlightError {
    for (key, value) in metadata_into_headers(status.metadata()).iter() {
        ctx.append_response_trailer(key, value.clone());
    }
    FlightError::from(status)
}

/// A tonic response stream as a polyflight one, converting every message.
fn stream<A, T>(
    ctx: &CallContext,
    response: tonic::Response<impl Stream<Item = Result<A, tonic::Status>> + Send + 'static>,
) -> FlightStream<T>
where
    T: From<A> + Send + 'static,
    A: Send + 'static,
{
    let ctx_for_errors = ctx.clone();
    self::response(ctx, response)
        .map_ok(T::from)
        .map_err(move |error| status(&ctx_for_errors, error))
        .boxed()
}

/// A polyflight request stream as the `tonic::Streaming` a tonic service takes.
fn streaming<T, A>(requests: FlightStream<T>) -> tonic::Streaming<A>
where
    A: From<T> + Send + 'static,
    T: Send + 'static,
{
    handover::streaming(requests.map_ok(A::from).map_err(tonic::Status::from))
}

#[polyflight_core::async_trait]
impl<S: ArrowFlightService> FlightService for ArrowFlightAdapter<S> {
    async fn handshake(
        &self,
        ctx: CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        let request = request(&ctx, streaming(requests));
        match self.service.handshake(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn list_flights(
        &self,
        ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let request = request(&ctx, criteria.into());
        match self.service.list_flights(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn get_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let request = request(&ctx, descriptor.into());
        match self.service.get_flight_info(request).await {
            Ok(answer) => Ok(response(&ctx, answer).into()),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        let request = request(&ctx, descriptor.into());
        match self.service.poll_flight_info(request).await {
            Ok(answer) => Ok(response(&ctx, answer).into()),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn get_schema(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let request = request(&ctx, descriptor.into());
        match self.service.get_schema(request).await {
            Ok(answer) => Ok(response(&ctx, answer).into()),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn do_get(&self, ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let request = request(&ctx, ticket.into());
        match self.service.do_get(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        let request = request(&ctx, streaming(data));
        match self.service.do_put(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        let request = request(&ctx, streaming(data));
        match self.service.do_exchange(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let request = request(&ctx, action.into());
        match self.service.do_action(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }

    async fn list_actions(&self, ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let request = request(&ctx, arrow_flight::Empty {});
        match self.service.list_actions(request).await {
            Ok(answer) => Ok(stream(&ctx, answer)),
            Err(error) => Err(status(&ctx, error)),
        }
    }
}

/// A `tonic::Streaming` over messages that are already decoded.
///
/// `tonic::Streaming` can only be made from an HTTP body and a decoder. Here the body yields,
/// for every message of the source stream, an empty gRPC frame (five bytes: not compressed,
/// length 0) after putting the message into a queue it shares with the decoder; the decoder,
/// called once per frame and in order, takes the message back out. Nothing is encoded or
/// copied, and a source error ends the stream with that status, as a broken request stream ends
/// a tonic one.
pub(crate) mod handover {
    use bytes::Bytes;
    use futures::stream::BoxStream;
    use futures::{Stream, StreamExt};
    use http_body::Frame;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use tonic::codec::{DecodeBuf, Decoder};
    use tonic::Status;

    /// An uncompressed gRPC frame of length 0.
    static EMPTY_FRAME: [u8; 5] = [0; 5];

    type Queue<T> = Arc<Mutex<VecDeque<T>>>;

    /// The stream as a `tonic::Streaming`.
    pub fn streaming<T: Send + 'static>(
        source: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> tonic::Streaming<T> {
        let queue: Queue<T> = Arc::new(Mutex::new(VecDeque::new()));
        let body = HandoverBody {
            source: source.boxed(),
            queue: queue.clone(),
        };
        // no size limit applies to frames of length 0; the transport bounded the messages
        tonic::Streaming::new_request(HandoverDecoder { queue }, body, None, None)
    }

    struct HandoverBody<T> {
        source: BoxStream<'static, Result<T, Status>>,
        queue: Queue<T>,
    }

    impl<T: Send + 'static> http_body::Body for HandoverBody<T> {
        type Data = Bytes;
        type Error = Status;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.source.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    match self.queue.lock() {
                        Ok(mut queue) => queue.push_back(message),
                        Err(_) => return Poll::Ready(Some(Err(Status::internal("poisoned")))),
                    }
                    Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&EMPTY_FRAME)))))
                }
                Poll::Ready(Some(Err(status))) => Poll::Ready(Some(Err(status))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        }
    }

    struct HandoverDecoder<T> {
        queue: Queue<T>,
    }

    impl<T> Decoder for HandoverDecoder<T> {
        type Item = T;
        type Error = Status;

        fn decode(&mut self, _frame: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
            let message = self
                .queue
                .lock()
                .ok()
                .and_then(|mut queue| queue.pop_front());
            match message {
                Some(message) => Ok(Some(message)),
                None => Err(Status::internal("request stream handover out of step")),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use futures::TryStreamExt;

        #[tokio::test]
        async fn messages_pass_unchanged_and_an_error_ends_the_stream() {
            let body = Bytes::from(vec![1u8; 1 << 20]);
            let items = vec![
                Ok(body.clone()),
                Ok(Bytes::new()),
                Err(Status::data_loss("cut")),
            ];
            let mut streaming = streaming(futures::stream::iter(items));
            let first = streaming.try_next().await.expect("first").expect("some");
            assert_eq!(
                first.as_ptr(),
                body.as_ptr(),
                "the buffer itself, not a copy"
            );
            assert_eq!(
                streaming.try_next().await.expect("second"),
                Some(Bytes::new())
            );
            let error = streaming.try_next().await.expect_err("the error");
            assert_eq!(error.code(), tonic::Code::DataLoss);
            assert_eq!(error.message(), "cut");
        }

        #[tokio::test]
        async fn a_clean_end_is_a_clean_end() {
            let items: Vec<Result<u32, Status>> = vec![Ok(1), Ok(2)];
            let all: Vec<u32> = streaming(futures::stream::iter(items))
                .try_collect()
                .await
                .expect("clean");
            assert_eq!(all, vec![1, 2]);
        }
    }
}
