//! `CallContext`: what a service handler knows about the call it serves — the method, the peer,
//! incoming headers, the deadline, a cancellation signal, the authenticated identity — and the
//! way it sets response headers. The same on every transport.

use crate::call::{FlightMethod, PeerInfo, Trailers};
use crate::headers::Headers;
use bytes::Bytes;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Inner {
    method: FlightMethod,
    peer: PeerInfo,
    headers: Headers,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    identity: Mutex<Option<String>>,
    response_headers: Mutex<Headers>,
    trailers: Trailers,
    extensions: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

/// The context of one incoming call. Cheap to clone; clones share state, so a handler can move
/// one into the stream it returns.
#[derive(Clone)]
pub struct CallContext {
    inner: Arc<Inner>,
}

impl CallContext {
    /// A context for a call; used by the dispatcher (and by tests of services).
    pub fn new(
        method: FlightMethod,
        peer: PeerInfo,
        headers: Headers,
        deadline: Option<Instant>,
    ) -> Self {
        CallContext {
            inner: Arc::new(Inner {
                method,
                peer,
                headers,
                deadline,
                cancel: CancellationToken::new(),
                identity: Mutex::new(None),
                response_headers: Mutex::new(Headers::new()),
                trailers: Trailers::default(),
                extensions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The RPC being served.
    pub fn method(&self) -> FlightMethod {
        self.inner.method
    }

    /// Who is calling.
    pub fn peer(&self) -> &PeerInfo {
        &self.inner.peer
    }

    /// The request headers.
    pub fn headers(&self) -> &Headers {
        &self.inner.headers
    }

    /// When the call must be finished, if the client set a timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// True once the call was cancelled: the client cancelled or went away, or the deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Completes when the call is cancelled (see [`CallContext::is_cancelled`]).
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    /// The token behind [`CallContext::cancelled`], for handing to other tasks.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// The identity the server's authenticator established, if any.
    pub fn identity(&self) -> Option<String> {
        self.inner
            .identity
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Records the authenticated identity (done by the dispatcher's authenticator).
    pub fn set_identity(&self, identity: impl Into<String>) {
        if let Ok(mut guard) = self.inner.identity.lock() {
            *guard = Some(identity.into());
        }
    }

    /// Adds a response header. Headers set before the handler returns its response (the first
    /// message of a stream) are sent with it.
    pub fn append_response_header(&self, key: impl AsRef<str>, value: impl Into<Bytes>) {
        if let Ok(mut guard) = self.inner.response_headers.lock() {
            guard.append(key, value);
        }
    }

    /// The response headers set so far, leaving them in place.
    pub fn response_headers(&self) -> Headers {
        self.inner
            .response_headers
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default()
    }

    /// Adds a response trailer, sent after the last response message (gRPC trailers; the UCX
    /// status frame).
    pub fn append_response_trailer(&self, key: impl AsRef<str>, value: impl Into<Bytes>) {
        self.inner.trailers.extend(Headers::new().with(key, value));
    }

    /// The trailers of this call, shared with the transport that sends them.
    pub fn response_trailers(&self) -> Trailers {
        self.inner.trailers.clone()
    }

    /// Attaches a value of type `T` to the call, replacing any earlier one: how middleware hands
    /// per-call state to the handler (the session middleware attaches the call's session).
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        if let Ok(mut map) = self.inner.extensions.lock() {
            map.insert(TypeId::of::<T>(), Box::new(value));
        }
    }

    /// The value of type `T` attached to the call, if any.
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        let map = self.inner.extensions.lock().ok()?;
        map.get(&TypeId::of::<T>())?.downcast_ref::<T>().cloned()
    }

    pub(crate) fn cancel(&self) {
        self.inner.cancel.cancel();
    }
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("method", &self.inner.method)
            .field("peer", &self.inner.peer)
            .field("deadline", &self.inner.deadline)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
