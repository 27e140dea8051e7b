//! Middleware, transport-neutral. Server middleware sees every call start (method, headers,
//! peer, identity) after authentication, may reject it, may add response headers and trailers,
//! and observes the end of the call with its final status. Client middleware adds headers to
//! every call, sees the response headers and the final status. Several of each run in the order
//! they were added (ends in reverse order).

use crate::call::FlightMethod;
use crate::context::CallContext;
use crate::error::{FlightError, Result};
use crate::headers::Headers;
use async_trait::async_trait;

/// Server-side middleware.
#[async_trait]
pub trait ServerMiddleware: Send + Sync + 'static {
    /// A call starts (after authentication). Set response headers with
    /// `ctx.append_response_header` here: they are decided at call start, before the handler
    /// runs, as Arrow C++ peers expect. An error rejects the call before the service sees it.
    async fn call_started(&self, ctx: &CallContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// The call ended: `Ok` or the error it ended with (a call whose client went away ends with
    /// `CANCELLED`). Trailers added here with `ctx.append_response_trailer` are sent.
    fn call_ended(&self, ctx: &CallContext, status: &std::result::Result<(), FlightError>) {
        let _ = (ctx, status);
    }
}

/// Client-side middleware.
pub trait ClientMiddleware: Send + Sync + 'static {
    /// A call is about to start: add headers.
    fn call_started(&self, method: FlightMethod, headers: &mut Headers) {
        let _ = (method, headers);
    }

    /// The server's response headers arrived.
    fn received_headers(&self, method: FlightMethod, headers: &Headers) {
        let _ = (method, headers);
    }

    /// The call ended: `Ok`, or the error it ended with; `trailers` as received.
    fn call_ended(
        &self,
        method: FlightMethod,
        status: &std::result::Result<(), FlightError>,
        trailers: &Headers,
    ) {
        let _ = (method, status, trailers);
    }
}
