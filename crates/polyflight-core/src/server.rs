//! The server side of the core: the [`Dispatcher`] every transport hands its calls to, and the
//! [`ServerBuilder`] that binds a service to one or more listen URIs.
//!
//! The dispatcher does, once and for every transport, what must not differ between transports:
//! it builds the [`CallContext`], enforces the call's deadline (`TIMED_OUT`), turns a peer that
//! went away into cancellation of the handler, and logs each call in a `tracing` span.

use crate::auth::ServerAuthHandler;
use crate::context::CallContext;
use crate::data::FlightData;
use crate::error::{FlightError, Result};
use crate::location::Location;
use crate::middleware::ServerMiddleware;
use crate::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use crate::registry::Registry;
use crate::service::FlightService;
use crate::transport::{
    FlightMethod, FlightStream, IncomingCall, ListenOptions, Listener, Response,
};
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
///
/// For every call, in this order: a [`CallContext`] is made; unless the call is a Handshake,
/// the authenticator (if any) validates its credentials; server middleware sees it start (and
/// may reject it); the handler runs under the call's deadline; middleware sees it end with its
/// final status. Rejected calls never reach the service.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<DispatchConfig>,
}

struct DispatchConfig {
    service: Arc<dyn FlightService>,
    auth: Option<Arc<dyn ServerAuthHandler>>,
    middleware: Vec<Arc<dyn ServerMiddleware>>,
}

/// Ends the call exactly once: reports its status to middleware (in reverse order) and cancels
/// its context. Dropped without an explicit end — the transport dropped the call because the
/// peer went away — it reports `CANCELLED`.
struct CallGuard {
    ctx: CallContext,
    middleware: Vec<Arc<dyn ServerMiddleware>>,
    ended: bool,
}

impl CallGuard {
    fn end(&mut self, status: std::result::Result<(), FlightError>) {
        if self.ended {
            return;
        }
        self.ended = true;
        for m in self.middleware.iter().rev() {
            m.call_ended(&self.ctx, &status);
        }
        self.ctx.cancel();
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.end(Err(FlightError::cancelled(
            "the call was abandoned by the client",
        )));
    }
}

impl Dispatcher {
    /// A dispatcher serving `service` with no authentication and no middleware.
    pub fn new(service: Arc<dyn FlightService>) -> Self {
        Self::with_config(service, None, Vec::new())
    }

    /// A dispatcher with an authenticator and middleware.
    pub fn with_config(
        service: Arc<dyn FlightService>,
        auth: Option<Arc<dyn ServerAuthHandler>>,
        middleware: Vec<Arc<dyn ServerMiddleware>>,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(DispatchConfig {
                service,
                auth,
                middleware,
            }),
        }
    }

    fn span(ctx: &CallContext) -> tracing::Span {
        tracing::debug_span!(
            "flight_call",
            method = %ctx.method(),
            peer = ctx.peer().address.as_deref().unwrap_or("-"),
            scheme = ctx.peer().scheme.map(|s| s.as_str()).unwrap_or("-"),
        )
    }

    /// Makes the context and runs authentication and middleware's `call_started`.
    async fn start(&self, call: IncomingCall) -> (CallGuard, Result<()>) {
        let deadline = call.timeout.map(|t| Instant::now() + t);
        let ctx = CallContext::new(call.method, call.peer, call.headers, deadline);
        let guard = CallGuard {
            ctx: ctx.clone(),
            middleware: self.inner.middleware.clone(),
            ended: false,
        };
        let admitted = async {
            if call.method != FlightMethod::Handshake {
                if let Some(auth) = &self.inner.auth {
                    let identity = auth.authenticate(&ctx).await?;
                    ctx.set_identity(identity);
                }
            }
            for m in &self.inner.middleware {
                m.call_started(&ctx).await?;
            }
            Ok(())
        }
        .await;
        (guard, admitted)
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
        let (mut guard, admitted) = self.start(call).await;
        let ctx = guard.ctx.clone();
        let result = match admitted {
            Ok(()) => {
                let fut = handler(self.inner.service.clone(), ctx.clone());
                Self::run(&ctx, fut).instrument(Self::span(&ctx)).await
            }
            Err(err) => Err(err),
        };
        guard.end(result.as_ref().map(|_| ()).map_err(Clone::clone));
        let body = result?;
        Ok(Response {
            headers: ctx.response_headers(),
            body,
            trailers: ctx.response_trailers(),
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
        let (mut guard, admitted) = self.start(call).await;
        let ctx = guard.ctx.clone();
        let opened = match admitted {
            Ok(()) => {
                let fut = handler(self.inner.service.clone(), ctx.clone());
                Self::run(&ctx, fut).instrument(Self::span(&ctx)).await
            }
            Err(err) => Err(err),
        };
        let stream = match opened {
            Ok(stream) => stream,
            Err(err) => {
                guard.end(Err(err.clone()));
                return Err(err);
            }
        };
        let headers = ctx.response_headers();
        let deadline = ctx
            .deadline()
            .map(|d| Box::pin(tokio::time::sleep_until(d)));
        let body: FlightStream<T> = Box::pin(CallStream {
            inner: Some(stream),
            deadline,
            guard,
        });
        Ok(Response {
            headers,
            body,
            trailers: ctx.response_trailers(),
        })
    }

    /// Serves `Handshake` (with the authenticator when there is one, else the service).
    pub async fn handshake(
        &self,
        call: IncomingCall,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>> {
        let auth = self.inner.auth.clone();
        self.streaming(call, move |s, ctx| {
            async move {
                match auth {
                    Some(auth) => auth.handshake(&ctx, requests).await,
                    None => s.handshake(ctx, requests).await,
                }
            }
            .boxed()
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
        f.debug_struct("Dispatcher")
            .field("auth", &self.inner.auth.is_some())
            .field("middleware", &self.inner.middleware.len())
            .finish()
    }
}

/// A handler's response stream under the call's deadline. The stream ends after its first
/// error; its end (or its drop, when the peer went away) ends the call.
struct CallStream<T> {
    inner: Option<FlightStream<T>>,
    deadline: Option<Pin<Box<Sleep>>>,
    guard: CallGuard,
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
                let err = FlightError::timed_out(format!(
                    "{} exceeded its deadline",
                    this.guard.ctx.method()
                ));
                this.guard.end(Err(err.clone()));
                return Poll::Ready(Some(Err(err)));
            }
        }
        match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(err))) => {
                this.inner = None;
                this.guard.end(Err(err.clone()));
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.guard.end(Ok(()));
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
    auth: Option<Arc<dyn ServerAuthHandler>>,
    middleware: Vec<Arc<dyn ServerMiddleware>>,
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
            auth: None,
            middleware: Vec::new(),
            registry,
            listens: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }

    /// Authenticates every call with `auth` (Handshake goes to it instead of the service).
    pub fn auth(mut self, auth: Arc<dyn ServerAuthHandler>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Adds server middleware; several run in the order added.
    pub fn middleware(mut self, middleware: impl ServerMiddleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
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
        let dispatcher = Dispatcher::with_config(self.service, self.auth, self.middleware);
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
