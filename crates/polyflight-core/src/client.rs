//! `FlightClient`: the transport-neutral client. `Clone`, `&self` methods, so many tasks share one
//! client; per-call options (headers, timeout, cancellation) through
//! [`FlightClient::with_call_options`]; record-batch level DoGet/DoPut/DoExchange; typed helpers
//! for the standard actions; and [`FlightClient::read_flight`], which reads every endpoint of a
//! FlightInfo in parallel over pooled connections.
//!
//! Timeouts and cancellation are enforced here, once, for every transport: a call whose timeout
//! passes fails with `TIMED_OUT`, a cancelled one with `CANCELLED`, and in both cases the
//! transport's future or stream is dropped, which cancels the call on the wire.

use crate::actions::{self, StandardAction};
use crate::call::{CallMetadata, FlightMethod, FlightStream, Response, ResponseStream, Trailers};
use crate::codec::{FlightDataEncoderBuilder, FlightRecordBatchStream};
use crate::data::FlightData;
use crate::error::{FlightCode, FlightError, Result};
use crate::headers::Headers;
use crate::location::Location;
use crate::middleware::ClientMiddleware;
use crate::proto::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CloseSessionRequest,
    CloseSessionResult, Criteria, Empty, FlightDescriptor, FlightEndpoint, FlightInfo,
    GetSessionOptionsRequest, GetSessionOptionsResult, HandshakeRequest, HandshakeResponse,
    PollInfo, PutResult, RenewFlightEndpointRequest, SessionOptionValue, SetSessionOptionsRequest,
    SetSessionOptionsResult, Ticket,
};
use crate::registry::Registry;
use crate::rpc::{self, method};
use crate::session::CookieMiddleware;
use crate::transport::{ClientTransport, ConnectOptions};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Options for one call (or, set on a client, for every call it makes).
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Headers sent with the call.
    pub headers: Headers,
    /// How long the whole call may take, including reading a response stream to its end.
    pub timeout: Option<Duration>,
    /// Fails a streaming call with `TIMED_OUT` when no response message arrives for this long
    /// (a stalled stream), however long the whole call may take.
    pub progress_timeout: Option<Duration>,
    /// Rejects an outgoing FlightData larger than this (IPC header + body bytes) before it is
    /// sent, failing the call with `INVALID_ARGUMENT`.
    pub max_write_size: Option<usize>,
    /// Cancels the call when triggered.
    pub cancel: Option<CancellationToken>,
}

impl CallOptions {
    /// Default options: no headers, no timeout.
    pub fn new() -> Self {
        CallOptions::default()
    }

    /// Adds a header.
    pub fn header(mut self, key: impl AsRef<str>, value: impl Into<Bytes>) -> Self {
        self.headers.append(key, value);
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the progress timeout.
    pub fn progress_timeout(mut self, timeout: Duration) -> Self {
        self.progress_timeout = Some(timeout);
        self
    }

    /// Sets the write size limit.
    pub fn max_write_size(mut self, bytes: usize) -> Self {
        self.max_write_size = Some(bytes);
        self
    }

    /// Sets a cancellation token.
    pub fn cancel_token(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// These options with `other`'s applied on top (headers appended, the rest replaced when set).
    fn merged(&self, other: &CallOptions) -> CallOptions {
        let mut headers = self.headers.clone();
        headers.extend(other.headers.clone());
        CallOptions {
            headers,
            timeout: other.timeout.or(self.timeout),
            progress_timeout: other.progress_timeout.or(self.progress_timeout),
            max_write_size: other.max_write_size.or(self.max_write_size),
            cancel: other.cancel.clone().or_else(|| self.cancel.clone()),
        }
    }
}

type Middleware = Arc<[Arc<dyn ClientMiddleware>]>;

/// One call in progress: its deadline, cancellation, progress timeout and middleware. Ends
/// exactly once, reporting the final status to middleware (in reverse order).
struct CallControl {
    method: FlightMethod,
    deadline: Option<Instant>,
    cancel: Option<CancellationToken>,
    progress_timeout: Option<Duration>,
    middleware: Middleware,
    ended: bool,
}

impl CallControl {
    /// Runs a transport future under the call's deadline and cancellation token.
    async fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let cancelled = async {
            match &self.cancel {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let timed = async {
            match self.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, fut)
                    .await
                    .unwrap_or_else(|_| Err(self.timed_out())),
                None => fut.await,
            }
        };
        tokio::select! {
            result = timed => result,
            () = cancelled => Err(self.cancelled()),
        }
    }

    fn timed_out(&self) -> FlightError {
        FlightError::timed_out(format!("{} timed out on the client", self.method))
    }

    fn cancelled(&self) -> FlightError {
        FlightError::cancelled(format!("{} was cancelled by the client", self.method))
    }

    fn stalled(&self, after: Duration) -> FlightError {
        FlightError::timed_out(format!(
            "{}: no message for {:.1} s (progress timeout)",
            self.method,
            after.as_secs_f64()
        ))
    }

    fn received_headers(&self, headers: &Headers) {
        for m in self.middleware.iter() {
            m.received_headers(self.method, headers);
        }
    }

    fn end(&mut self, status: std::result::Result<(), FlightError>, trailers: &Trailers) {
        if self.ended {
            return;
        }
        self.ended = true;
        let trailers = trailers.get();
        for m in self.middleware.iter().rev() {
            m.call_ended(self.method, &status, &trailers);
        }
    }

    /// A unary call: the response message.
    ///
    /// Middleware sees the response headers as soon as they arrive and the trailers at the end,
    /// also when the call fails after its headers (a server may send headers with its error).
    async fn unary<T: Send + 'static>(
        mut self,
        call: impl Future<Output = Result<Response<FlightStream<T>>>>,
    ) -> Result<T> {
        let response = match self.run(call).await {
            Ok(response) => response,
            Err(err) => {
                self.end(Err(err.clone()), &Trailers::default());
                return Err(err);
            }
        };
        self.received_headers(&response.headers);
        let method = self.method;
        let mut messages = response.body;
        let read = self
            .run(async {
                let first = messages.try_next().await?.ok_or_else(|| {
                    FlightError::internal(format!("{method}: server sent no response and no error"))
                })?;
                while messages.try_next().await?.is_some() {}
                Ok(first)
            })
            .await;
        self.end(
            read.as_ref().map(|_| ()).map_err(Clone::clone),
            &response.trailers,
        );
        read
    }

    /// A streaming call: the response with its stream under the call's control.
    async fn streaming<T: Send + 'static>(
        mut self,
        call: impl Future<Output = Result<Response<FlightStream<T>>>>,
    ) -> Result<Response<FlightStream<T>>> {
        match self.run(call).await {
            Ok(response) => {
                self.received_headers(&response.headers);
                let trailers = response.trailers.clone();
                Ok(response.map(|body| {
                    Box::pin(ControlledStream {
                        sleep: self.deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
                        stall: self
                            .progress_timeout
                            .map(|t| Box::pin(tokio::time::sleep(t))),
                        cancelled: self.cancel.clone().map(|t| Box::pin(t.cancelled_owned())),
                        inner: Some(body),
                        trailers,
                        control: self,
                    }) as FlightStream<T>
                }))
            }
            Err(err) => {
                self.end(Err(err.clone()), &Trailers::default());
                Err(err)
            }
        }
    }
}

struct ControlledStream<T> {
    inner: Option<FlightStream<T>>,
    sleep: Option<Pin<Box<Sleep>>>,
    stall: Option<Pin<Box<Sleep>>>,
    cancelled: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    trailers: Trailers,
    control: CallControl,
}

impl<T> ControlledStream<T> {
    fn fail(&mut self, err: FlightError) -> Poll<Option<Result<T>>> {
        self.inner = None;
        self.control.end(Err(err.clone()), &self.trailers);
        Poll::Ready(Some(Err(err)))
    }
}

impl<T> Stream for ControlledStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if this
            .cancelled
            .as_mut()
            .is_some_and(|c| c.as_mut().poll(cx).is_ready())
        {
            let err = this.control.cancelled();
            return this.fail(err);
        }
        if this
            .sleep
            .as_mut()
            .is_some_and(|s| s.as_mut().poll(cx).is_ready())
        {
            let err = this.control.timed_out();
            return this.fail(err);
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => {
                if let (Some(stall), Some(after)) =
                    (this.stall.as_mut(), this.control.progress_timeout)
                {
                    stall.as_mut().reset(Instant::now() + after);
                }
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Some(Err(err))) => this.fail(err),
            Poll::Ready(None) => {
                this.inner = None;
                this.control.end(Ok(()), &this.trailers);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let (Some(stall), Some(after)) =
                    (this.stall.as_mut(), this.control.progress_timeout)
                {
                    if stall.as_mut().poll(cx).is_ready() {
                        let err = this.control.stalled(after);
                        return this.fail(err);
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for ControlledStream<T> {
    fn drop(&mut self) {
        if self.inner.is_some() {
            self.control.end(
                Err(FlightError::cancelled(
                    "the response stream was dropped before its end",
                )),
                &self.trailers,
            );
        }
    }
}

/// Fails the call before sending a message over the write size limit.
fn limit_writes(data: FlightStream<FlightData>, limit: Option<usize>) -> FlightStream<FlightData> {
    let Some(limit) = limit else {
        return data;
    };
    Box::pin(data.map(move |item| {
        item.and_then(|message| {
            let size = message.data_len();
            if size > limit {
                Err(FlightError::invalid_argument(format!(
                    "a FlightData of {size} bytes exceeds the client's write size limit of \
                     {limit} bytes; split the batch or raise the limit"
                )))
            } else {
                Ok(message)
            }
        })
    }))
}

/// Remembers the first error of an outgoing stream supplied by the application, so that when
/// the transport aborts the call because of it, the caller sees that error rather than the
/// server's `CANCELLED`.
#[derive(Clone, Default)]
struct UploadError(Arc<Mutex<Option<FlightError>>>);

impl UploadError {
    fn watch<T: Send + 'static>(&self, input: FlightStream<T>) -> FlightStream<T> {
        let slot = self.clone();
        Box::pin(input.inspect_err(move |err| {
            if let Ok(mut guard) = slot.0.lock() {
                guard.get_or_insert_with(|| err.clone());
            }
        }))
    }

    fn take(&self) -> Option<FlightError> {
        self.0.lock().ok().and_then(|mut g| g.take())
    }

    /// Prefers the application's own upload error over the error the call ended with.
    fn wrap<T: Send + 'static>(&self, response: FlightStream<T>) -> FlightStream<T> {
        let slot = self.clone();
        Box::pin(response.map_err(move |err| slot.take().unwrap_or(err)))
    }
}

/// Set when an upload's input stream has had nothing to give: the application produces its
/// next message only later, perhaps only after it has read a reply.
#[derive(Clone, Default)]
struct InputWaiting(Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>);

impl InputWaiting {
    /// `input`, marking this whenever it answers `Pending`.
    fn watch<T: Send + 'static>(&self, input: FlightStream<T>) -> FlightStream<T> {
        struct Watched<T> {
            input: FlightStream<T>,
            waiting: InputWaiting,
        }
        impl<T> Stream for Watched<T> {
            type Item = Result<T>;
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                let polled = self.input.as_mut().poll_next(cx);
                if polled.is_pending() {
                    let (flag, notify) = &*self.waiting.0;
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    notify.notify_waiters();
                }
                polled
            }
        }
        Box::pin(Watched {
            input,
            waiting: self.clone(),
        })
    }

    /// Resolves once the input has answered `Pending`.
    async fn wait(&self) {
        let (flag, notify) = &*self.0;
        loop {
            let notified = notify.notified();
            if flag.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Hands back the response of a call whose client writes first (DoPut, DoExchange).
///
/// The response comes back once the server has sent its headers, as for every other call. But
/// a server may read before it answers: Arrow C++'s (and so pyarrow's) sends its headers with
/// its first message, and an echo writes that only after it has read one. If the application
/// feeds the upload from what it reads, waiting for those headers would wait forever. So once
/// the input stream has had nothing to give, the response is handed back at once, with no
/// headers: its body waits for the call, and the server's headers then reach the client's
/// middleware only. An error that ends the call before that point is returned here; after
/// it, it is the body's first item.
async fn upload_response<T: Send + 'static>(
    call: impl Future<Output = Result<Response<FlightStream<T>>>> + Send + 'static,
    waiting: InputWaiting,
) -> Result<Response<FlightStream<T>>> {
    let mut call = Box::pin(call);
    tokio::select! {
        biased;
        response = &mut call => response,
        () = waiting.wait() => {
            let trailers = Trailers::default();
            let outer = trailers.clone();
            let body = futures::stream::once(call).flat_map(move |response| match response {
                Ok(response) => {
                    let inner = response.trailers.clone();
                    let outer = outer.clone();
                    // The call's trailers, once its stream has ended, are this response's.
                    let end = futures::stream::once(async move {
                        outer.extend(inner.get());
                        None
                    });
                    Box::pin(response.body.map(Some).chain(end).filter_map(futures::future::ready))
                        as FlightStream<T>
                }
                Err(err) => Box::pin(futures::stream::iter([Err(err)])),
            });
            Ok(Response {
                headers: Headers::new(),
                body: Box::pin(body),
                trailers,
            })
        }
    }
}

struct Inner {
    location: Location,
    transport: Arc<dyn ClientTransport>,
    registry: Registry,
    connect_options: ConnectOptions,
    /// Connections to other locations (FlightEndpoint locations), keyed by URI.
    pool: Mutex<HashMap<String, FlightClient>>,
}

/// A Flight client over any transport.
///
/// A client keeps the cookies its server sets and sends them back on every call (one cookie jar
/// per connection, shared by the clients made from it with `with_call_options` and
/// `with_middleware`), so a server's sessions ([`crate::session`]) belong to this client.
///
/// ```no_run
/// # async fn demo(registry: polyflight_core::Registry) -> polyflight_core::Result<()> {
/// use polyflight_core::{FlightClient, CallOptions};
/// use futures::TryStreamExt;
/// use std::time::Duration;
///
/// let client = FlightClient::connect_with(registry, "grpc://localhost:8815").await?;
/// let info = client.get_flight_info(polyflight_core::proto::FlightDescriptor::new_path(["trips"])).await?;
/// let batches: Vec<_> = client
///     .with_call_options(CallOptions::new().timeout(Duration::from_secs(30)))
///     .read_flight(&info)
///     .await?
///     .try_collect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FlightClient {
    inner: Arc<Inner>,
    options: CallOptions,
    middleware: Middleware,
}

impl FlightClient {
    /// Connects to `uri` with the transports of `registry`.
    pub async fn connect_with(registry: Registry, uri: &str) -> Result<FlightClient> {
        Self::connect_with_options(registry, uri, ConnectOptions::default()).await
    }

    /// Connects to `uri` with the transports of `registry` and connection options.
    pub async fn connect_with_options(
        registry: Registry,
        uri: &str,
        options: ConnectOptions,
    ) -> Result<FlightClient> {
        let location = Location::parse(uri)?;
        let transport = registry.connect(&location, &options).await?;
        Ok(Self::from_transport(location, transport, registry, options))
    }

    /// A client over an already connected transport.
    pub fn from_transport(
        location: Location,
        transport: Arc<dyn ClientTransport>,
        registry: Registry,
        connect_options: ConnectOptions,
    ) -> FlightClient {
        FlightClient {
            inner: Arc::new(Inner {
                location,
                transport,
                registry,
                connect_options,
                pool: Mutex::new(HashMap::new()),
            }),
            options: CallOptions::default(),
            // the client keeps the cookies its server sets (sessions: `crate::session`)
            middleware: Arc::new([Arc::new(CookieMiddleware::new()) as Arc<dyn ClientMiddleware>]),
        }
    }

    /// The location this client is connected to.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// The transport underneath.
    pub fn transport(&self) -> &Arc<dyn ClientTransport> {
        &self.inner.transport
    }

    /// A client sharing this one's connection whose calls use `options` (on top of this
    /// client's own options: headers are added, timeout and cancellation replaced when set).
    pub fn with_call_options(&self, options: CallOptions) -> FlightClient {
        FlightClient {
            inner: self.inner.clone(),
            options: self.options.merged(&options),
            middleware: self.middleware.clone(),
        }
    }

    /// A client sharing this one's connection whose calls also run `middleware` (after the
    /// middleware this client already has).
    pub fn with_middleware(&self, middleware: impl ClientMiddleware) -> FlightClient {
        let mut all: Vec<Arc<dyn ClientMiddleware>> = self.middleware.iter().cloned().collect();
        all.push(Arc::new(middleware));
        FlightClient {
            inner: self.inner.clone(),
            options: self.options.clone(),
            middleware: all.into(),
        }
    }

    /// The options every call of this client uses.
    pub fn call_options(&self) -> &CallOptions {
        &self.options
    }

    fn begin(&self, method: FlightMethod) -> (CallMetadata, CallControl) {
        let mut headers = self.options.headers.clone();
        for m in self.middleware.iter() {
            m.call_started(method, &mut headers);
        }
        let meta = CallMetadata {
            headers,
            timeout: self.options.timeout,
        };
        let control = CallControl {
            method,
            deadline: self.options.timeout.map(|t| Instant::now() + t),
            cancel: self.options.cancel.clone(),
            progress_timeout: self.options.progress_timeout,
            middleware: self.middleware.clone(),
            ended: false,
        };
        (meta, control)
    }

    // ---- raw Flight RPCs -----------------------------------------------------------------------

    /// `Handshake` with a stream of requests; returns the server's response headers and stream.
    pub async fn handshake_stream(
        &self,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>> {
        let (meta, control) = self.begin(FlightMethod::Handshake);
        control
            .streaming(rpc::call_streaming::<method::Handshake>(
                &*self.inner.transport,
                meta,
                requests,
            ))
            .await
    }

    /// `Handshake` with one payload; returns the server's response headers and payloads.
    pub async fn handshake(&self, payload: impl Into<Bytes>) -> Result<Response<Vec<Bytes>>> {
        let request = HandshakeRequest {
            protocol_version: 0,
            payload: payload.into(),
        };
        let response = self
            .handshake_stream(Box::pin(futures::stream::iter([Ok(request)])))
            .await?;
        let trailers = response.trailers.clone();
        let payloads = response.body.map_ok(|r| r.payload).try_collect().await?;
        Ok(Response {
            headers: response.headers,
            body: payloads,
            trailers,
        })
    }

    /// `ListFlights` for a criteria expression (empty: all flights).
    pub async fn list_flights(
        &self,
        expression: impl Into<Bytes>,
    ) -> Result<FlightStream<FlightInfo>> {
        let (meta, control) = self.begin(FlightMethod::ListFlights);
        let criteria = Criteria {
            expression: expression.into(),
        };
        let call = rpc::call_server_streaming::<method::ListFlights>(
            &*self.inner.transport,
            meta,
            criteria,
        );
        Ok(control.streaming(call).await?.body)
    }

    /// `GetFlightInfo`.
    pub async fn get_flight_info(&self, descriptor: FlightDescriptor) -> Result<FlightInfo> {
        let (meta, control) = self.begin(FlightMethod::GetFlightInfo);
        control
            .unary(rpc::call_server_streaming::<method::GetFlightInfo>(
                &*self.inner.transport,
                meta,
                descriptor,
            ))
            .await
    }

    /// `PollFlightInfo`.
    pub async fn poll_flight_info(&self, descriptor: FlightDescriptor) -> Result<PollInfo> {
        let (meta, control) = self.begin(FlightMethod::PollFlightInfo);
        control
            .unary(rpc::call_server_streaming::<method::PollFlightInfo>(
                &*self.inner.transport,
                meta,
                descriptor,
            ))
            .await
    }

    /// `GetSchema`, decoded.
    pub async fn get_schema(&self, descriptor: FlightDescriptor) -> Result<SchemaRef> {
        let (meta, control) = self.begin(FlightMethod::GetSchema);
        let result = control
            .unary(rpc::call_server_streaming::<method::GetSchema>(
                &*self.inner.transport,
                meta,
                descriptor,
            ))
            .await?;
        Ok(Arc::new(crate::codec::decode_schema(&result.schema)?))
    }

    /// `DoGet` as raw FlightData.
    pub async fn do_get_data(&self, ticket: Ticket) -> Result<Response<FlightStream<FlightData>>> {
        let (meta, control) = self.begin(FlightMethod::DoGet);
        control
            .streaming(rpc::call_server_streaming::<method::DoGet>(
                &*self.inner.transport,
                meta,
                ticket,
            ))
            .await
    }

    /// `DoGet`, decoded into record batches; the stream keeps the call's response headers and
    /// trailers.
    pub async fn do_get(&self, ticket: impl Into<Ticket>) -> Result<FlightRecordBatchStream> {
        let response = self.do_get_data(ticket.into()).await?;
        Ok(FlightRecordBatchStream::from_response(response))
    }

    /// A call whose client streams FlightData (DoPut, DoExchange): the upload's own error wins
    /// over the call's, and the response comes back as [`upload_response`] says.
    async fn upload<R>(
        &self,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<R::Response>>>
    where
        R: rpc::Rpc<Request = FlightData> + 'static,
        R::Response: Send + 'static,
    {
        let (meta, control) = self.begin(R::METHOD);
        let upload = UploadError::default();
        let waiting = InputWaiting::default();
        let data = waiting.watch(upload.watch(limit_writes(data, self.options.max_write_size)));
        let transport = self.inner.transport.clone();
        let call = async move {
            let call = rpc::call_streaming::<R>(&*transport, meta, data);
            control.streaming(call).await
        };
        let response = match upload_response(call, waiting).await {
            Ok(response) => response,
            Err(err) => return Err(upload.take().unwrap_or(err)),
        };
        Ok(response.map(|body| upload.wrap(body)))
    }

    /// `DoPut` of raw FlightData (the first message should carry the descriptor).
    pub async fn do_put_data(
        &self,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<PutResult>>> {
        self.upload::<method::DoPut>(data).await
    }

    /// `DoPut` of record batches to `descriptor`; returns the server's PutResults as they come,
    /// with the call's response headers and trailers.
    /// The upload runs while the results are read; read them to the end to see whether the
    /// server accepted the whole stream.
    pub async fn do_put(
        &self,
        descriptor: FlightDescriptor,
        batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    ) -> Result<ResponseStream<PutResult>> {
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(descriptor)
            .build(batches);
        Ok(ResponseStream::new(self.do_put_data(Box::pin(data)).await?))
    }

    /// `DoExchange` of raw FlightData.
    pub async fn do_exchange_data(
        &self,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<FlightData>>> {
        self.upload::<method::DoExchange>(data).await
    }

    /// `DoExchange` of record batches: sends `batches` under `descriptor`, returns the server's
    /// stream decoded (metadata-only messages are visible through
    /// [`FlightRecordBatchStream::next_message`]).
    pub async fn do_exchange(
        &self,
        descriptor: FlightDescriptor,
        batches: impl Stream<Item = Result<RecordBatch>> + Send + 'static,
    ) -> Result<FlightRecordBatchStream> {
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(descriptor)
            .build(batches);
        let response = self.do_exchange_data(Box::pin(data)).await?;
        Ok(FlightRecordBatchStream::from_response(response))
    }

    /// `DoAction`; returns the result bodies as they come.
    pub async fn do_action(&self, action: Action) -> Result<FlightStream<Bytes>> {
        let (meta, control) = self.begin(FlightMethod::DoAction);
        let call =
            rpc::call_server_streaming::<method::DoAction>(&*self.inner.transport, meta, action);
        let response = control.streaming(call).await?;
        Ok(Box::pin(response.body.map_ok(|r| r.body)))
    }

    /// `ListActions`.
    pub async fn list_actions(&self) -> Result<Vec<ActionType>> {
        let (meta, control) = self.begin(FlightMethod::ListActions);
        let call = rpc::call_server_streaming::<method::ListActions>(
            &*self.inner.transport,
            meta,
            Empty {},
        );
        control.streaming(call).await?.body.try_collect().await
    }

    // ---- authentication -----------------------------------------------------------------------

    /// Basic → Bearer authentication (pyarrow's `authenticate_basic_token`): a Handshake with
    /// `authorization: Basic base64(user:password)`; returns a client (sharing this connection)
    /// that sends the `authorization: Bearer …` header the server answered with on every call.
    pub async fn authenticate_basic(&self, user: &str, password: &str) -> Result<FlightClient> {
        use base64::Engine;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let response = self
            .with_call_options(CallOptions::new().header(
                crate::auth::AUTHORIZATION_HEADER,
                format!("Basic {credentials}"),
            ))
            .handshake(Bytes::new())
            .await?;
        let bearer = response
            .headers
            .get_str(crate::auth::AUTHORIZATION_HEADER)
            .filter(|v| crate::auth::parse_bearer(v).is_some())
            .ok_or_else(|| {
                FlightError::unauthenticated(
                    "the server answered Basic credentials without a Bearer token",
                )
            })?
            .to_string();
        Ok(self.with_call_options(
            CallOptions::new().header(crate::auth::AUTHORIZATION_HEADER, bearer),
        ))
    }

    /// Handshake-token authentication (pyarrow's `authenticate(handler)`): sends `payloads` in
    /// one Handshake; the last response payload is the token, which the returned client (sharing
    /// this connection) sends on every call in `auth-token-bin`.
    pub async fn authenticate_handshake(&self, payloads: Vec<Bytes>) -> Result<FlightClient> {
        let requests = payloads
            .into_iter()
            .map(|payload| {
                Ok(HandshakeRequest {
                    protocol_version: 0,
                    payload,
                })
            })
            .collect::<Vec<_>>();
        let response = self
            .handshake_stream(Box::pin(futures::stream::iter(requests)))
            .await?;
        let responses: Vec<HandshakeResponse> = response.body.try_collect().await?;
        let token = responses
            .last()
            .map(|r| r.payload.clone())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FlightError::unauthenticated("the handshake returned no token"))?;
        Ok(
            self.with_call_options(
                CallOptions::new().header(crate::auth::AUTH_TOKEN_HEADER, token),
            ),
        )
    }

    /// [`FlightClient::authenticate_handshake`] with a serialized `BasicAuth` payload (Arrow's
    /// `auth:basic_proto` convention).
    pub async fn authenticate_basic_proto(
        &self,
        user: &str,
        password: &str,
    ) -> Result<FlightClient> {
        let payload = crate::proto::BasicAuth {
            username: user.to_string(),
            password: password.to_string(),
        };
        self.authenticate_handshake(vec![prost::Message::encode_to_vec(&payload).into()])
            .await
    }

    // ---- standard actions ----------------------------------------------------------------------

    async fn standard_action<R: prost::Message + Default>(
        &self,
        action: StandardAction,
    ) -> Result<R> {
        let name = action.name();
        let mut results = self.do_action(action.into_action()).await?;
        let body = results.try_next().await?.ok_or_else(|| {
            FlightError::internal(format!("server answered {name} with no result"))
        })?;
        // Drain the rest so the call completes cleanly (and surfaces a late error).
        while results.try_next().await?.is_some() {}
        actions::decode_result(name, &body)
    }

    /// `CancelFlightInfo`: asks the server to cancel the query behind `info`.
    pub async fn cancel_flight_info(&self, info: FlightInfo) -> Result<CancelFlightInfoResult> {
        self.standard_action(StandardAction::CancelFlightInfo(CancelFlightInfoRequest {
            info: Some(info),
        }))
        .await
    }

    /// `RenewFlightEndpoint`: extends an endpoint's expiration; returns the renewed endpoint.
    pub async fn renew_flight_endpoint(&self, endpoint: FlightEndpoint) -> Result<FlightEndpoint> {
        self.standard_action(StandardAction::RenewFlightEndpoint(
            RenewFlightEndpointRequest {
                endpoint: Some(endpoint),
            },
        ))
        .await
    }

    /// `SetSessionOptions`.
    pub async fn set_session_options(
        &self,
        options: HashMap<String, SessionOptionValue>,
    ) -> Result<SetSessionOptionsResult> {
        self.standard_action(StandardAction::SetSessionOptions(
            SetSessionOptionsRequest {
                session_options: options,
            },
        ))
        .await
    }

    /// `GetSessionOptions`.
    pub async fn get_session_options(&self) -> Result<GetSessionOptionsResult> {
        self.standard_action(StandardAction::GetSessionOptions(
            GetSessionOptionsRequest {},
        ))
        .await
    }

    /// `CloseSession`.
    pub async fn close_session(&self) -> Result<CloseSessionResult> {
        self.standard_action(StandardAction::CloseSession(CloseSessionRequest {}))
            .await
    }

    // ---- reading a whole flight ----------------------------------------------------------------

    /// A client for one of an endpoint's locations: this client for an endpoint with no location
    /// or with `arrow-flight-reuse-connection://`, else a pooled connection to the first
    /// location that accepts one, trying the locations of this client's own transport first
    /// (a client connected over `ucx://` reads an endpoint offered over gRPC and UCX by UCX).
    /// The returned client carries this client's call options.
    pub async fn client_for_endpoint(&self, endpoint: &FlightEndpoint) -> Result<FlightClient> {
        if endpoint.location.is_empty() {
            return Ok(self.clone());
        }
        let mut last_error = None;
        for proto_location in self.ranked_locations(endpoint) {
            let location = match Location::parse(&proto_location.uri) {
                Ok(location) => location,
                Err(err) => {
                    last_error = Some(err);
                    continue;
                }
            };
            if location.is_reuse_connection() || location == self.inner.location {
                return Ok(self.clone());
            }
            match self.pooled(&location).await {
                Ok(client) => return Ok(client.with_call_options(self.options.clone())),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error
            .unwrap_or_else(|| FlightError::unavailable("endpoint has no usable location")))
    }

    /// An endpoint's locations, those of this client's own scheme first, otherwise in the
    /// server's order.
    fn ranked_locations<'a>(
        &self,
        endpoint: &'a FlightEndpoint,
    ) -> Vec<&'a crate::proto::Location> {
        let own = self.inner.location.scheme();
        let mut ranked: Vec<_> = endpoint.location.iter().collect();
        ranked.sort_by_key(|l| Location::parse(&l.uri).map_or(true, |l| l.scheme() != own));
        ranked
    }

    async fn pooled(&self, location: &Location) -> Result<FlightClient> {
        let key = location.uri().to_string();
        if let Some(client) = self
            .inner
            .pool
            .lock()
            .ok()
            .and_then(|p| p.get(&key).cloned())
        {
            return Ok(client);
        }
        let transport = self
            .inner
            .registry
            .connect(location, &self.inner.connect_options)
            .await?;
        let client = FlightClient::from_transport(
            location.clone(),
            transport,
            self.inner.registry.clone(),
            self.inner.connect_options.clone(),
        );
        if let Ok(mut pool) = self.inner.pool.lock() {
            // Another task may have connected meanwhile; keep the first so the pool stays one
            // connection per location.
            return Ok(pool.entry(key).or_insert(client).clone());
        }
        Ok(client)
    }

    /// Reads every endpoint of `info`. Endpoints are fetched in parallel — each by a task of
    /// its own, from its own location over a connection pooled per location, up to three at a
    /// time and at most two from any one location (the one being read and the next) — while
    /// batches are returned endpoint by endpoint, in endpoint order, so an `ordered` FlightInfo
    /// keeps its order. Each endpoint buffers at most a few batches ahead of the reader, so a
    /// slow reader applies back-pressure instead of growing memory. Dropping the stream cancels
    /// every endpoint's call.
    ///
    /// Why a bounded number at a time: endpoints of one location share one connection, and an
    /// endpoint fetched ahead that the reader has not reached yet holds what its transport
    /// received unread — on HTTP/2, up to a stream's flow-control window, all of it counted
    /// against the connection's window. With every endpoint open at once, those ahead could
    /// hold the whole connection window and starve the endpoint being read: the read would
    /// stall forever. Why only one ahead per location: a second stream on the same connection
    /// adds no bandwidth (one connection is one socket, driven by one task on each side); it
    /// only holds another window of data that leaves the cache before it is read. Reading a
    /// 12-endpoint flight from one server with two ahead cost the client 1.1–1.15× the CPU and
    /// 108 MiB of peak RSS, against 76 MiB with one ahead (docs/benchmarks.md). The one ahead
    /// hides the next call's start.
    pub async fn read_flight(&self, info: &FlightInfo) -> Result<FlightStream<RecordBatch>> {
        let client = self.clone();
        let mut pending = info.endpoint.clone().into_iter().peekable();
        let mut open = std::collections::VecDeque::new();
        open_endpoints(&client, &mut pending, &mut open);
        let batches = futures::stream::unfold(
            (client, pending, open),
            |(client, mut pending, mut open)| async move {
                loop {
                    let (_, current) = open.front_mut()?;
                    match current.next().await {
                        Some(item) => return Some((item, (client, pending, open))),
                        None => {
                            open.pop_front();
                            open_endpoints(&client, &mut pending, &mut open);
                        }
                    }
                }
            },
        );
        Ok(Box::pin(batches))
    }

    /// Starts fetching one endpoint in a task of its own; its batches (at most a few ahead of
    /// the reader), and its error as the last item if it fails. Dropping the stream cancels the
    /// call.
    fn fetch_endpoint(
        &self,
        endpoint: FlightEndpoint,
    ) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
        const AHEAD: usize = 4;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(AHEAD);
        let client = self.clone();
        tokio::spawn(async move {
            let opened = async {
                let ticket = endpoint.ticket.clone().ok_or_else(|| {
                    FlightError::invalid_argument("FlightEndpoint without a ticket")
                })?;
                client
                    .client_for_endpoint(&endpoint)
                    .await?
                    .do_get(ticket)
                    .await
            };
            let mut batches = match opened.await {
                Ok(batches) => batches,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            loop {
                tokio::select! {
                    // The reader went away: stop, which cancels the call.
                    () = tx.closed() => return,
                    item = batches.next() => match item {
                        Some(item) => {
                            let failed = item.is_err();
                            if tx.send(item).await.is_err() || failed {
                                return;
                            }
                        }
                        None => return,
                    },
                }
            }
        });
        tokio_stream_from(rx)
    }
}

/// How many endpoints [`FlightClient::read_flight`] fetches at once, in all.
const READ_FLIGHT_OPEN_ENDPOINTS: usize = 3;

/// How many of them may come from one location (one connection): the one being read and the
/// next. Two streams ahead would hold at most two HTTP/2 stream windows (16 MiB each by default)
/// of the connection's window (64 MiB), so the endpoint being read always has room.
const READ_FLIGHT_OPEN_PER_LOCATION: usize = 2;

/// The endpoints being fetched, each with the location it is read from (`None`: the client's own
/// connection).
type OpenEndpoints = std::collections::VecDeque<(
    Option<String>,
    futures::stream::BoxStream<'static, Result<RecordBatch>>,
)>;

/// Starts fetching the next endpoints, in order, while the limits allow.
fn open_endpoints(
    client: &FlightClient,
    pending: &mut std::iter::Peekable<std::vec::IntoIter<FlightEndpoint>>,
    open: &mut OpenEndpoints,
) {
    while open.len() < READ_FLIGHT_OPEN_ENDPOINTS {
        let Some(next) = pending.peek() else {
            return;
        };
        let key = endpoint_location_key(client, next);
        let same = open.iter().filter(|(k, _)| *k == key).count();
        if same >= READ_FLIGHT_OPEN_PER_LOCATION {
            return;
        }
        if let Some(endpoint) = pending.next() {
            open.push_back((key, client.fetch_endpoint(endpoint)));
        }
    }
}

/// Which connection an endpoint is read over, as far as can be told without connecting: its
/// preferred location, unless that is the client's own or the reuse-connection URI.
fn endpoint_location_key(client: &FlightClient, endpoint: &FlightEndpoint) -> Option<String> {
    let first = *client.ranked_locations(endpoint).first()?;
    match Location::parse(&first.uri) {
        Ok(location) if location.is_reuse_connection() || location == client.inner.location => None,
        _ => Some(first.uri.clone()),
    }
}

/// A receiver as a stream (without a dependency on tokio-stream for one adapter).
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

impl std::fmt::Debug for FlightClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightClient")
            .field("location", &self.inner.location)
            .field("transport", &self.inner.transport)
            .finish()
    }
}

/// True for errors after which retrying on another connection could help.
pub fn is_retryable(err: &FlightError) -> bool {
    matches!(err.code(), FlightCode::Unavailable)
}
