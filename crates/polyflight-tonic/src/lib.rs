//! # polyflight-tonic
//!
//! Where polyflight meets the tonic-based Rust Flight ecosystem:
//!
//! - [`ArrowFlightAdapter`] serves any `arrow_flight::flight_service_server::FlightService`
//!   (so also every `arrow_flight::sql::server::FlightSqlService`) as a polyflight
//!   [`FlightService`](polyflight_core::FlightService): over `grpc`, `grpc+tls`, `grpc+unix` and
//!   `ucx`, several at once, with polyflight's authentication, middleware, deadlines and
//!   cancellation.
//! - [`TonicFlightService`] is the reverse: a polyflight service (with its authentication and
//!   middleware) as a tonic `FlightServiceServer`, to add to a `tonic::transport::Server` router
//!   beside other gRPC services.
//! - [`sql::FlightSqlClient`] speaks Flight SQL over any polyflight transport.
//!
//! Type conversions (`From` both ways between polyflight's and arrow-flight's messages, and
//! between `FlightError` and `tonic::Status`) live in `polyflight_core::arrow_flight`.
//!
//! ```no_run
//! # async fn demo<S: arrow_flight::flight_service_server::FlightService>(service: S)
//! # -> polyflight_core::Result<()> {
//! use polyflight_tonic::ArrowFlightAdapter;
//!
//! let server = polyflight_core::ServerBuilder::new(ArrowFlightAdapter::new(service), todo!())
//!     .listen("grpc://0.0.0.0:8815")
//!     .listen("grpc+unix:///run/flight.sock")
//!     .listen("ucx://0.0.0.0:8816")
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod adapter;
pub mod metadata;
mod service;
pub mod sql;

pub use adapter::ArrowFlightAdapter;
pub use service::TonicFlightService;
