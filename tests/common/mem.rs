//! `mem://`: a transport of the test suite's own, in-process, under a scheme the core does not
//! know. It is written only against the public seam (a [`TransportFactory`], a
//! [`ClientTransport`] and a [`Listener`], with [`Scheme::custom`]), and the whole conformance
//! suite runs over it: proof that a new transport needs no edit in polyflight-core.
//!
//! A listener registers its location's name in a process-wide table; a client looks the name up
//! and hands each call straight to the listener's [`CallHandler`], messages and all. Nothing is
//! serialised, so it checks the seam's contract (message order, errors, headers, trailers,
//! cancellation by drop) without any wire in between.

use polyflight::{
    async_trait, CallHandler, CallMetadata, ClientTransport, ConnectOptions, FlightError,
    FlightMethod, IncomingCall, ListenOptions, Listener, Location, LoopbackEndpoint, MessageStream,
    PeerInfo, Response, Result, Scheme, TransportFactory,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

fn scheme() -> Scheme {
    Scheme::custom("mem").expect("mem is a valid scheme name")
}

/// Listening handlers by location name (`mem://NAME:1`).
fn listeners() -> &'static Mutex<HashMap<String, Arc<dyn CallHandler>>> {
    static LISTENERS: OnceLock<Mutex<HashMap<String, Arc<dyn CallHandler>>>> = OnceLock::new();
    LISTENERS.get_or_init(Default::default)
}

fn name_of(location: &Location) -> Result<String> {
    location
        .host()
        .map(str::to_string)
        .ok_or_else(|| FlightError::invalid_argument(format!("{location} has no name")))
}

/// The in-process transport's factory.
pub struct MemTransport {
    schemes: [Scheme; 1],
}

impl MemTransport {
    pub fn new() -> Self {
        MemTransport {
            schemes: [scheme()],
        }
    }
}

#[async_trait]
impl TransportFactory for MemTransport {
    fn name(&self) -> &str {
        "mem"
    }

    fn schemes(&self) -> &[Scheme] {
        &self.schemes
    }

    async fn connect(
        &self,
        location: &Location,
        _options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        let name = name_of(location)?;
        if !listeners().lock().unwrap().contains_key(&name) {
            return Err(FlightError::unavailable(format!(
                "nothing listens on {location}"
            )));
        }
        Ok(Arc::new(MemClient { name }))
    }

    async fn listen(
        &self,
        location: &Location,
        handler: Arc<dyn CallHandler>,
        _options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let name = name_of(location)?;
        let mut table = listeners().lock().unwrap();
        if table.contains_key(&name) {
            return Err(FlightError::already_exists(format!("{location} is in use")));
        }
        table.insert(name.clone(), handler);
        Ok(Box::new(MemListener {
            location: location.clone(),
            name,
        }))
    }

    fn loopback_endpoint(&self, _scheme: Scheme) -> Result<LoopbackEndpoint> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Ok(LoopbackEndpoint {
            listen_uri: format!("mem://endpoint-{}-{n}:1", std::process::id()),
            listen: ListenOptions::default(),
            connect: ConnectOptions::default(),
            cleanup: Vec::new(),
        })
    }
}

#[derive(Debug)]
struct MemClient {
    name: String,
}

#[async_trait]
impl ClientTransport for MemClient {
    async fn call(
        &self,
        method: FlightMethod,
        meta: CallMetadata,
        requests: MessageStream,
    ) -> Result<Response<MessageStream>> {
        let handler = listeners()
            .lock()
            .unwrap()
            .get(&self.name)
            .cloned()
            .ok_or_else(|| FlightError::unavailable(format!("mem://{} is gone", self.name)))?;
        let call = IncomingCall {
            method,
            headers: meta.headers,
            peer: PeerInfo::new(scheme(), format!("in-process:{}", std::process::id())),
            timeout: meta.timeout,
        };
        handler.call(call, requests).await
    }
}

struct MemListener {
    location: Location,
    name: String,
}

#[async_trait]
impl Listener for MemListener {
    fn location(&self) -> &Location {
        &self.location
    }

    async fn shutdown(self: Box<Self>, _grace: Duration) -> Result<()> {
        // Drop unregisters; calls in flight hold their own handler and finish on their own.
        Ok(())
    }
}

impl Drop for MemListener {
    fn drop(&mut self) {
        listeners().lock().unwrap().remove(&self.name);
    }
}
