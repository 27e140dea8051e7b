//! Arrow Flight over UCX for polyflight: the `ucx://host:port` transport.
//!
//! The wire is the one Arrow C++ 8–19 shipped as its `ucx:` transport (see `spec/ucx-wire.md`),
//! extended compatibly to every Flight RPC, call headers, timeouts and cancellation. The public
//! face is [`UcxTransport`] (register it with a `Registry`), [`UcxOptions`], [`ProgressMode`]
//! and [`ErrorHandling`]; everything else is internal. Read it bottom up — each layer uses only
//! those below it:
//!
//! 1. `ucp`: our small async layer over the UCX C API (`ucx1-sys` types, library loaded at run
//!    time): context, single-threaded workers, listener, endpoints, active message send
//!    (scatter-gather) and receive (eager, data and rendezvous). Its errors are `UcsError`s (an
//!    operation and its UCX status), which become `FlightError`s at its edge; every layer above
//!    speaks `polyflight_core::FlightError` only.
//! 2. `frame`: the framing as pure functions over bytes (frame header, Headers, PayloadHeader,
//!    status frames, the reorder buffer), tested byte for byte; `wire`: Flight messages ⇄
//!    frames, also pure (FlightData ⇄ PayloadHeader + PayloadBody, headers, status, timeouts).
//! 3. `sequence`: the sequencing of one call as synchronous state machines, client side and
//!    server side — what each frame means, what to send next, cancellation, draining, whether
//!    the connection can be reused — with no I/O, tested frame by frame.
//! 4. `thread` (a worker per thread, on a current-thread runtime) and `conn` (a frame
//!    connection on one worker: counters, the empty-body rule, in-order delivery, rendezvous
//!    bodies in 64-byte aligned buffers).
//! 5. `client` and `server`: the core's `ClientTransport` and the listener handing calls to a
//!    `CallHandler`; they only move frames between `conn`, `sequence` and the application's
//!    channels, one generic path for every method, driven by the method's shape.
//! 6. `transport`: [`UcxTransport`], the factory.
//!
//! `docs/ucx.md` explains the choices (why not `async-ucx`, linking, progress modes, tuning).

#![warn(missing_docs)]

mod client;
mod conn;
mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod log;
mod options;
mod sequence;
mod server;
mod thread;
mod transport;
mod ucp;
mod wire;

pub use options::UcxOptions;
pub use transport::UcxTransport;
pub use ucp::{context_defaults, ErrorHandling, ProgressMode};
