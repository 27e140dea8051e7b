//! polyflight-core: the transport-neutral heart of polyflight.
//!
//! Read it bottom-up; no module imports from a layer above its own:
//!
//! 1. the words: [`error`], [`headers`], [`proto`], [`location`], [`data`] and [`call`] (the call
//!    vocabulary: [`FlightMethod`], [`Message`], [`Response`], [`Trailers`], [`PeerInfo`] …);
//! 2. [`transport`]: the seam backends implement — [`ClientTransport`] and [`CallHandler`], one
//!    method each, plus [`Listener`] and [`TransportFactory`] — and [`Registry`], which maps URI
//!    schemes to factories;
//! 3. [`rpc`]: each method's message types, typed once for every transport; [`codec`]:
//!    RecordBatch ⇄ FlightData without copying column buffers;
//! 4. what serves a call: [`CallContext`], [`FlightService`] (what an application implements),
//!    [`ServerAuthHandler`], [`ServerMiddleware`], and the [`Dispatcher`] that runs them for every
//!    transport;
//! 5. on top: [`FlightClient`] and [`ServerBuilder`]/[`Server`].
//!
//! This crate knows no backend: it has no dependency on tonic, hyper or UCX.

#![warn(missing_docs)]

pub mod actions;
#[cfg(feature = "arrow-flight")]
pub mod arrow_flight;
pub mod auth;
mod buffer;
pub mod call;
mod client;
pub mod codec;
mod context;
pub mod data;
mod dispatcher;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
pub mod location;
mod middleware;
pub mod proto;
mod registry;
pub mod rpc;
mod server;
mod service;
pub mod session;
pub mod transport;
mod types;
pub mod warn_limit;

pub use async_trait::async_trait;
pub use auth::{BasicAuthenticator, ServerAuthHandler};
pub use buffer::{aligned_bytes, AlignedBuf, BUFFER_ALIGNMENT};
pub use call::{
    CallMetadata, FlightMethod, FlightStream, IncomingCall, Message, MessageStream,
    PeerCredentials, PeerInfo, Response, ResponseStream, TlsPeerIdentity, Trailers,
};
pub use client::{is_retryable, CallOptions, FlightClient};
pub use context::CallContext;
pub use data::{DataBody, FlightData};
pub use dispatcher::Dispatcher;
pub use error::{FlightCode, FlightError, Result};
pub use headers::Headers;
pub use location::{Location, Scheme};
pub use middleware::{ClientMiddleware, ServerMiddleware};
pub use registry::Registry;
pub use server::{Server, ServerBuilder};
pub use service::FlightService;
pub use transport::{
    CallHandler, ClientTransport, ConnectOptions, Extensions, ListenOptions, Listener,
    LoopbackEndpoint, TransportFactory,
};
