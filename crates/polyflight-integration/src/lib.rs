//! Arrow's Flight integration suite for polyflight: the server and client halves of every
//! scenario Arrow C++'s `flight-test-integration-{server,client}` know, the JSON round trip, and
//! a generator for the integration JSON files the round trip reads.
//!
//! The two binaries (`src/bin/server.rs`, `src/bin/client.rs`) take Arrow C++'s command lines,
//! so Arrow's archery can run them in place of the C++ ones; `-uri` (or `-transport`) runs the
//! same scenarios over every polyflight transport. The library is laid out the way a reader looks
//! for things:
//!
//! - [`cli`]: the gflags-style command line both binaries share;
//! - [`peer`]: turning a command line into a listen URI or a connection (TLS material included);
//! - [`scenarios`]: one module per named scenario, each holding its server and its client, and
//!   the registry that finds them by name;
//! - [`json_flight`]: the JSON round trip (the default "scenario" when none is named);
//! - [`json_writer`] and [`datagen`]: record batches written as integration JSON, and the data
//!   sets of every type family archery generates;
//! - [`matrix`]: server binaries against client binaries, every case over every transport, as
//!   a table; [`pyarrow`]: pyarrow as the other implementation (`python/pyarrow_peer.py`).

pub mod cli;
pub mod datagen;
pub mod failure;
pub mod json_flight;
pub mod json_writer;
pub mod matrix;
pub mod peer;
pub mod pyarrow;
pub mod scenarios;

pub use failure::{Failure, Outcome};
