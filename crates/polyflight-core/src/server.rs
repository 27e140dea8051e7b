//! The server side of the core: the [`Dispatcher`] every transport hands its calls to, and the
//! [`ServerBuilder`] that binds a service to one or more listen URIs.
//!
//! The dispatcher does, once and for every transport, what must not differ between transports:
//! it builds the [`CallContext`], enforces the call's deadline (`TIMED_OUT`), turns a peer that
//! went away into cancellation of the handler, and logs each call in a `tracing` span.

use crate::context::CallContext;
use crate::data::FlightData;
use crate::error::{FlightCode, FlightError, Result};
use crate::location::Location;
use crate::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use crate::registry::Registry;
use crate::service::FlightService;
use crate::transport::{FlightStream, IncomingCall, ListenOptions, Listener, Response};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

/// Routes incoming calls to a [`FlightService`]. Transports receive one when they listen and
/// call the method matching each incoming RPC. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    service: Arc<dyn FlightService>,
}

/// Cancels the call's context when dropped: when the transport drops the handler's future or
/// response stream (the peer went away or cancelled), the handler sees `ctx.cancelled()`.
struct CancelOnDrop(CallContext);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl Dispatcher {
    /// A dispatcher serving `service`.
    pub fn new(service: Arc<dyn FlightService>) -> Self {
        Dispatcher { service }
    }

    fn start(&self, call: IncomingCall) -> CallContext {
        let deadline = call.timeout.map(|t| Instant::now() + t);
        CallContext::new(call.method, call.peer, call.headers, deadline)
    }

    fn span(ctx: &CallContext) -> tracing::Span {
        tracing::debug_span!(
            "flight_call",
            method = %ctx.method(),
            peer = ctx.peer().address.as_deref().unwrap_or("-"),
            scheme = ctx.peer().scheme.map(|s| s.as_str()).unwrap_or("-"),
        )
    }

    /// Runs the handler future under the call's deadline.
    async fn run<T>(ctx: &CallContext, fut: BoxFuture<'_, Result<T>>) -> Result<T> {
        let result = match ctx.deadline() {
            Some(deadline) => match tokio::time::timeout_at(deadline, fut).await {
                Ok(result) => result,
                Err(_) => Err(FlightError::timed_out(format!(
                    "{} exceeded its deadline",
                    ctx.method()
                ))),
            },
            None => fut.await,
        };
        if let Err(err) = &result {
            tracing::debug!(code = %err.code(), message = err.message(), "call failed");
        }
        result
    }

    async fn unary<T, F>(&self, call: IncomingCall, handler: F) -> Result<Response<T>>
    where
        F: FnOnce(Arc<dyn FlightService>, CallContext) -> BoxFuture<'static, Result<T>>,
    {
        let ctx = self.start(call);
        let span = Self::span(&ctx);
        let _guard = CancelOnDrop(ctx.clone());
        let fut = handler(self.service.clone(), ctx.clone());
        let body = Self::run(&ctx, fut).instrument(span).await?;
        Ok(Response {
            headers: ctx.response_headers(),
            body,
        })
    }

    async fn streaming<T, F>(
        &self,
        call: IncomingCall,
        handler: F,
    ) -> Result<Response<FlightStream<T>>>
    where
        T: Send + 'static,
        F: FnOnce(
            Arc<dyn FlightService>,
            CallContext,
        ) -> BoxFuture<'static, Result<FlightStream<T>>>,
    {
        let ctx = self.start(call);
        let span = Self::span(&ctx);
        let guard = CancelOnDrop(ctx.clone());
        let fut = handler(self.service.clone(), ctx.clone());
        let stream = Self::run(&ctx, fut).instrument(span).await?;
        let headers = ctx.response_headers();
        let deadline = ctx
            .deadline()
            .map(|d| Box::pin(tokio::time::sleep_until(d)));
        let body: FlightStream<T> = Box::pin(CallStream {
            inner: Some(stream),
            deadline,
            guard,
        });
        Ok(Response { headers, body })
    }

    /// Serves `Handshake`.
    pub async fn handshake(
        &self,
        call: IncomingCall,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.handshake(ctx, requests).await }.boxed()
        })
        .await
    }

    /// Serves `ListFlights`.
    pub async fn list_flights(
        &self,
        call: IncomingCall,
        criteria: Criteria,
    ) -> Result<Response<FlightStream<FlightInfo>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.list_flights(ctx, criteria).await }.boxed()
        })
        .await
    }

    /// Serves `GetFlightInfo`.
    pub async fn get_flight_info(
        &self,
        call: IncomingCall,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>> {
        self.unary(call, move |s, ctx| {
            async move { s.get_flight_info(ctx, descriptor).await }.boxed()
        })
        .await
    }

    /// Serves `PollFlightInfo`.
    pub async fn poll_flight_info(
        &self,
        call: IncomingCall,
        descriptor: FlightDescriptor,
    ) -> Result<Response<PollInfo>> {
        self.unary(call, move |s, ctx| {
            async move { s.poll_flight_info(ctx, descriptor).await }.boxed()
        })
        .await
    }

    /// Serves `GetSchema`.
    pub async fn get_schema(
        &self,
        call: IncomingCall,
        descriptor: FlightDescriptor,
    ) -> Result<Response<SchemaResult>> {
        self.unary(call, move |s, ctx| {
            async move { s.get_schema(ctx, descriptor).await }.boxed()
        })
        .await
    }

    /// Serves `DoGet`.
    pub async fn do_get(
        &self,
        call: IncomingCall,
        ticket: Ticket,
    ) -> Result<Response<FlightStream<FlightData>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.do_get(ctx, ticket).await }.boxed()
        })
        .await
    }

    /// Serves `DoPut`.
    pub async fn do_put(
        &self,
        call: IncomingCall,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<PutResult>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.do_put(ctx, data).await }.boxed()
        })
        .await
    }

    /// Serves `DoExchange`.
    pub async fn do_exchange(
        &self,
        call: IncomingCall,
        data: FlightStream<FlightData>,
    ) -> Result<Response<FlightStream<FlightData>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.do_exchange(ctx, data).await }.boxed()
        })
        .await
    }

    /// Serves `DoAction`.
    pub async fn do_action(
        &self,
        call: IncomingCall,
        action: Action,
    ) -> Result<Response<FlightStream<ActionResult>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.do_action(ctx, action).await }.boxed()
        })
        .await
    }

    /// Serves `ListActions`.
    pub async fn list_actions(
        &self,
        call: IncomingCall,
    ) -> Result<Response<FlightStream<ActionType>>> {
        self.streaming(call, move |s, ctx| {
            async move { s.list_actions(ctx).await }.boxed()
        })
        .await
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatcher")
    }
}

/// A handler's response stream under the call's deadline. The stream ends after its first error;
/// dropping it (peer gone) cancels the call's context.
struct CallStream<T> {
    inner: Option<FlightStream<T>>,
    deadline: Option<Pin<Box<Sleep>>>,
    guard: CancelOnDrop,
}

impl<T> Stream for CallStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.inner = None;
                this.guard.0.cancel();
                return Poll::Ready(Some(Err(FlightError::timed_out(format!(
                    "{} exceeded its deadline",
                    this.guard.0.method()
                )))));
            }
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(err))) => {
                this.inner = None;
                if err.code() == FlightCode::Cancelled {
                    this.guard.0.cancel();
                }
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

/// Builds a [`Server`]: a service, the registry of transports to serve it with, and the URIs to
/// listen on.
pub struct ServerBuilder {
    service: Arc<dyn FlightService>,
    registry: Registry,
    listens: Vec<(String, ListenOptions)>,
    grace: Duration,
}

impl ServerBuilder {
    /// A server for `service`, binding with the transports of `registry`.
    pub fn new(service: impl FlightService, registry: Registry) -> Self {
        Self::from_arc(Arc::new(service), registry)
    }

    /// [`ServerBuilder::new`] for a shared service.
    pub fn from_arc(service: Arc<dyn FlightService>, registry: Registry) -> Self {
        ServerBuilder {
            service,
            registry,
            listens: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }

    /// Listens on a URI (`grpc://0.0.0.0:8815`, `grpc+unix:///run/f.sock`, `ucx://host:0` …).
    pub fn listen(self, uri: impl Into<String>) -> Self {
        self.listen_with(uri, ListenOptions::default())
    }

    /// Listens on a URI with transport options.
    pub fn listen_with(mut self, uri: impl Into<String>, options: ListenOptions) -> Self {
        self.listens.push((uri.into(), options));
        self
    }

    /// How long [`Server::shutdown`] lets in-flight calls finish (default 5 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Binds every listen URI and starts serving. If one fails, those already bound are shut
    /// down and the error says which URI failed.
    pub async fn start(self) -> Result<Server> {
        if self.listens.is_empty() {
            return Err(FlightError::invalid_argument(
                "server has no listen URI: call listen(…) at least once",
            ));
        }
        let dispatcher = Dispatcher::new(self.service);
        let mut listeners: Vec<Box<dyn Listener>> = Vec::new();
        for (uri, options) in &self.listens {
            let bound = async {
                let location = Location::parse(uri)?;
                let factory = self.registry.factory_for(location.scheme())?;
                factory.listen(&location, dispatcher.clone(), options).await
            }
            .await;
            match bound {
                Ok(listener) => {
                    tracing::info!(location = %listener.location(), "listening");
                    listeners.push(listener)
                }
                Err(err) => {
                    for listener in listeners {
                        let _ = listener.shutdown(Duration::ZERO).await;
                    }
                    return Err(err.context(format!("cannot listen on {uri}")));
                }
            }
        }
        let locations = listeners.iter().map(|l| l.location().clone()).collect();
        Ok(Server {
            listeners,
            locations,
            grace: self.grace,
        })
    }
}

/// A running server. Dropping it without [`Server::shutdown`] stops the listeners abruptly
/// (each backend releases its resources on drop); prefer an explicit graceful shutdown.
pub struct Server {
    listeners: Vec<Box<dyn Listener>>,
    locations: Vec<Location>,
    grace: Duration,
}

impl Server {
    /// Where the server listens, in the order of the `listen` calls, with real ports.
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// The first listen location.
    pub fn location(&self) -> &Location {
        // `start` refuses to build a server without listeners.
        &self.locations[0]
    }

    /// Stops accepting calls, lets in-flight ones finish within the grace period, and releases
    /// every listener's resources.
    pub async fn shutdown(self) -> Result<()> {
        let grace = self.grace;
        let results =
            futures::future::join_all(self.listeners.into_iter().map(|l| l.shutdown(grace))).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
    }

    /// Serves until `signal` completes (e.g. `tokio::signal::ctrl_c()`), then shuts down.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        signal.await;
        self.shutdown().await
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("locations", &self.locations)
            .finish()
    }
}
