//! The service every conformance case runs against: the in-memory store plus behaviours the
//! tests need — errors with extra info on request, slow streams that record their cancellation,
//! header echoes, and a sleep action for timeouts.

use bytes::Bytes;
use futures::StreamExt;
use polyflight::codec::FlightDataEncoderBuilder;
use polyflight::memory::MemoryService;
use polyflight::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use polyflight::{
    CallContext, FlightCode, FlightData, FlightError, FlightService, FlightStream, Result,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The extra-info bytes every requested error carries.
pub const EXTRA_INFO: &[u8] = b"\x00extra\xffinfo";

/// Counters the tests read to observe the server side.
#[derive(Default)]
pub struct Observed {
    /// Handlers that saw their call cancelled.
    pub cancelled: AtomicUsize,
    /// Handlers that saw a deadline in their context.
    pub saw_deadline: AtomicUsize,
}

/// The conformance test service.
#[derive(Clone, Default)]
pub struct TestService {
    pub store: MemoryService,
    pub observed: Arc<Observed>,
}

fn requested_error(code_text: &[u8]) -> FlightError {
    let code = std::str::from_utf8(code_text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(FlightCode::from_number)
        .unwrap_or(FlightCode::Unknown);
    FlightError::new(code, format!("requested error {code}: ünïcode, 100% sure"))
        .with_extra_info(Bytes::from_static(EXTRA_INFO))
}

impl TestService {
    /// Records whether the call has a deadline, and counts its cancellation from a task of its
    /// own — the way a handler with background work notices it, since a cancelled handler's
    /// future is dropped rather than resumed.
    fn watch(&self, ctx: &CallContext) {
        if ctx.deadline().is_some() {
            self.observed.saw_deadline.fetch_add(1, Ordering::SeqCst);
        }
        let ctx = ctx.clone();
        let observed = self.observed.clone();
        tokio::spawn(async move {
            ctx.cancelled().await;
            observed.cancelled.fetch_add(1, Ordering::SeqCst);
        });
    }
}

#[polyflight::async_trait]
impl FlightService for TestService {
    async fn handshake(
        &self,
        ctx: CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        ctx.append_response_header("x-handshake", "yes");
        Ok(requests
            .map(|r| {
                r.map(|r| HandshakeResponse {
                    protocol_version: r.protocol_version,
                    payload: r.payload,
                })
            })
            .boxed())
    }

    async fn list_flights(
        &self,
        ctx: CallContext,
        c: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        self.store.list_flights(ctx, c).await
    }

    async fn get_flight_info(&self, ctx: CallContext, d: FlightDescriptor) -> Result<FlightInfo> {
        if let Some(code) = d.cmd.strip_prefix(b"error:") {
            return Err(requested_error(code));
        }
        self.store.get_flight_info(ctx, d).await
    }

    async fn poll_flight_info(&self, ctx: CallContext, d: FlightDescriptor) -> Result<PollInfo> {
        self.store.poll_flight_info(ctx, d).await
    }

    async fn get_schema(&self, ctx: CallContext, d: FlightDescriptor) -> Result<SchemaResult> {
        self.store.get_schema(ctx, d).await
    }

    async fn do_get(&self, ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        if let Some(code) = ticket.ticket.strip_prefix(b"error:") {
            return Err(requested_error(code));
        }
        if ticket.ticket.as_ref() == b"mid-error" {
            let batches = futures::stream::iter([
                Ok(crate::common::int64_batch(10, 2)),
                Err(requested_error(b"5")),
            ]);
            return Ok(FlightDataEncoderBuilder::new().build(batches).boxed());
        }
        if let Some(ms) = ticket.ticket.strip_prefix(b"slow:") {
            let ms: u64 = std::str::from_utf8(ms)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(100);
            self.watch(&ctx);
            let batches = futures::stream::unfold(0u64, move |i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                (i < 1000).then(|| (Ok(crate::common::int64_batch(4, 1)), i + 1))
            });
            return Ok(FlightDataEncoderBuilder::new().build(batches).boxed());
        }
        self.store.do_get(ctx, ticket).await
    }

    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        self.watch(&ctx);
        self.store.do_put(ctx, data).await
    }

    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        self.store.do_exchange(ctx, data).await
    }

    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        match action.r#type.as_str() {
            "echo-headers" => {
                if let Some(v) = ctx.headers().get("x-test") {
                    ctx.append_response_header("x-echo", v.clone());
                }
                let lines: Vec<Result<ActionResult>> = ctx
                    .headers()
                    .iter()
                    .filter(|(k, _)| k.starts_with("x-"))
                    .map(|(k, v)| {
                        let mut body = format!("{k}=").into_bytes();
                        body.extend_from_slice(v);
                        Ok(ActionResult { body: body.into() })
                    })
                    .collect();
                Ok(futures::stream::iter(lines).boxed())
            }
            "sleep" => {
                self.watch(&ctx);
                let ms: u64 = std::str::from_utf8(&action.body)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1000);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(futures::stream::iter([Ok(ActionResult {
                    body: Bytes::from_static(b"slept"),
                })])
                .boxed())
            }
            "error" => Err(requested_error(&action.body)),
            "whoami" => {
                let identity = ctx.identity().unwrap_or_default();
                Ok(futures::stream::iter([Ok(ActionResult {
                    body: identity.into(),
                })])
                .boxed())
            }
            "peer" => {
                let peer = ctx.peer();
                let text = format!(
                    "scheme={} address={}",
                    peer.scheme.map(|s| s.as_str()).unwrap_or("-"),
                    peer.address.as_deref().unwrap_or("-")
                );
                Ok(futures::stream::iter([Ok(ActionResult { body: text.into() })]).boxed())
            }
            _ => self.store.do_action(ctx, action).await,
        }
    }

    async fn list_actions(&self, ctx: CallContext) -> Result<FlightStream<ActionType>> {
        self.store.list_actions(ctx).await
    }
}
