//! The [`Dispatcher`]: the [`CallHandler`] every listener of a server hands its calls to.
//!
//! It does, once and for every transport, what must not differ between transports: it types
//! the call's messages for its method, builds the [`CallContext`], runs authentication and
//! middleware, enforces the call's deadline (`TIMED_OUT`), turns a peer that went away into
//! cancellation of the handler, and logs each call in a `tracing` span.

use crate::auth::ServerAuthHandler;
use crate::call::{FlightMethod, FlightStream, IncomingCall, MessageStream, Response};
use crate::context::CallContext;
use crate::error::{FlightError, Result};
use crate::middleware::ServerMiddleware;
use crate::proto::Empty;
use crate::rpc::{self, WireMessage};
use crate::service::FlightService;
use crate::transport::CallHandler;
use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

/// Routes incoming calls to a [`FlightService`]. A server hands one to each of its listeners as
/// their [`CallHandler`]. Cheap to clone.
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

    /// The answer to a call that failed before its first response message: the error alone, or,
    /// when middleware or the handler set response headers or trailers, those with the error as
    /// the response, so they still reach the client (Arrow C++ peers see headers set by server
    /// middleware on failing calls too; Arrow's `middleware` integration scenario checks it).
    fn failed<T: Send + 'static>(
        ctx: &CallContext,
        err: FlightError,
    ) -> Result<Response<FlightStream<T>>> {
        let headers = ctx.response_headers();
        if headers.is_empty() && ctx.response_trailers().get().is_empty() {
            return Err(err);
        }
        Ok(Response {
            headers,
            body: futures::stream::iter([Err(err)]).boxed(),
            trailers: ctx.response_trailers(),
        })
    }

    /// Runs a unary handler; its one response goes out as a stream of one message.
    async fn unary<T, F>(&self, call: IncomingCall, handler: F) -> Result<Response<MessageStream>>
    where
        T: WireMessage,
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
        let body = match result {
            Ok(body) => body.into_message(),
            Err(err) => return Self::failed(&ctx, err),
        };
        Ok(Response {
            headers: ctx.response_headers(),
            body: futures::stream::iter([Ok::<_, FlightError>(body)]).boxed(),
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
                return Self::failed(&ctx, err);
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

    /// Serves one call: the request messages typed for its method, the service's answer as
    /// messages again.
    async fn dispatch(
        &self,
        call: IncomingCall,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>> {
        use FlightMethod as M;
        Ok(match call.method {
            M::Handshake => {
                let requests = rpc::decode(requests);
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
                .await?
                .map(rpc::encode)
            }
            M::ListFlights => {
                let criteria = rpc::single_request(requests).await?;
                self.streaming(call, move |s, ctx| {
                    async move { s.list_flights(ctx, criteria).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
            M::GetFlightInfo => {
                let descriptor = rpc::single_request(requests).await?;
                self.unary(call, move |s, ctx| {
                    async move { s.get_flight_info(ctx, descriptor).await }.boxed()
                })
                .await?
            }
            M::PollFlightInfo => {
                let descriptor = rpc::single_request(requests).await?;
                self.unary(call, move |s, ctx| {
                    async move { s.poll_flight_info(ctx, descriptor).await }.boxed()
                })
                .await?
            }
            M::GetSchema => {
                let descriptor = rpc::single_request(requests).await?;
                self.unary(call, move |s, ctx| {
                    async move { s.get_schema(ctx, descriptor).await }.boxed()
                })
                .await?
            }
            M::DoGet => {
                let ticket = rpc::single_request(requests).await?;
                self.streaming(call, move |s, ctx| {
                    async move { s.do_get(ctx, ticket).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
            M::DoPut => {
                let data = rpc::decode(requests);
                self.streaming(call, move |s, ctx| {
                    async move { s.do_put(ctx, data).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
            M::DoExchange => {
                let data = rpc::decode(requests);
                self.streaming(call, move |s, ctx| {
                    async move { s.do_exchange(ctx, data).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
            M::DoAction => {
                let action = rpc::single_request(requests).await?;
                self.streaming(call, move |s, ctx| {
                    async move { s.do_action(ctx, action).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
            M::ListActions => {
                // The request is an Empty message, which some wires leave out; nothing in it
                // matters, so an absent or malformed one is not an error.
                let _: Empty = rpc::single_request(requests).await.unwrap_or_default();
                self.streaming(call, move |s, ctx| {
                    async move { s.list_actions(ctx).await }.boxed()
                })
                .await?
                .map(rpc::encode)
            }
        })
    }
}

#[async_trait]
impl CallHandler for Dispatcher {
    async fn call(
        &self,
        call: IncomingCall,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>> {
        self.dispatch(call, requests).await
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
