//! polyflight-core: the transport-neutral heart of polyflight.
//!
//! - [`FlightService`]: what an application implements, once, to serve Flight over every transport.
//! - [`FlightClient`]: the client, over whatever transport a URI picks.
//! - [`transport`]: the seam backends implement ([`ClientTransport`], [`Listener`],
//!   [`TransportFactory`]) and [`Registry`], which maps URI schemes to them.
//! - [`server`]: the [`Dispatcher`] (deadlines, cancellation, tracing — once, for every
//!   transport) and the [`ServerBuilder`].
//! - [`codec`]: RecordBatch ⇄ FlightData without copying column buffers.
//! - [`proto`]: the Flight protocol messages; [`actions`]: the standard actions.
//!
//! This crate knows no backend: it has no dependency on tonic, hyper or UCX.

#![warn(missing_docs)]

pub mod actions;
pub mod auth;
pub mod client;
pub mod codec;
pub mod context;
pub mod data;
pub mod error;
pub mod headers;
pub mod location;
pub mod middleware;
pub mod proto;
pub mod registry;
pub mod server;
pub mod service;
pub mod transport;
mod types;

pub use async_trait::async_trait;
pub use auth::{BasicAuthenticator, ServerAuthHandler};
pub use client::{CallOptions, FlightClient};
pub use context::{CallContext, PeerCredentials, PeerInfo, TlsPeerIdentity};
pub use data::{DataBody, FlightData};
pub use error::{FlightCode, FlightError, Result};
pub use headers::Headers;
pub use location::{Location, Scheme};
pub use middleware::{ClientMiddleware, ServerMiddleware};
pub use registry::Registry;
pub use server::{Dispatcher, Server, ServerBuilder};
pub use service::FlightService;
pub use transport::{
    CallMetadata, ClientTransport, ConnectOptions, Extensions, FlightMethod, FlightStream,
    IncomingCall, ListenOptions, Listener, LoopbackEndpoint, Response, Trailers, TransportFactory,
};
