//! Our small async layer over the UCX UCP API: the only code that touches UCX.
//!
//! The shape: a thread-safe [`Context`] (UCP features AM + WAKEUP); a single-threaded [`Worker`]
//! (`!Send`, shared as `Rc`) driven by a progress task, busy-polling or waiting on the worker's
//! wakeup fd ([`ProgressMode`]); a [`Listener`] whose connection requests can be accepted on
//! another thread's worker; [`Endpoint`]s created from a socket address or a connection request,
//! whose failure (UCX error callback) fails every pending and later operation; active message
//! sends with scatter-gather data ([`Endpoint::am_send`]); and an [`AmStream`] per AM id yielding
//! received messages, with rendezvous data fetched on demand into 64-byte aligned buffers.
//!
//! Non-blocking UCX operations are futures woken from UCX completion callbacks; the state a
//! callback touches (and every buffer UCX reads or writes) is owned by a reference that the
//! callback itself releases, so dropping a future early never frees memory UCX still uses.
//! Every UCX parameter struct is zero-initialised and then filled, with its field mask set.
//!
//! Errors are [`UcsError`](status::UcsError)s (an operation and its `ucs_status_t`), turned into Flight errors by
//! the layers above. Files, bottom up: `sys` (the C functions, loaded at run time), `status`,
//! `sockaddr`, `request` (operations as futures), `context`, `budget` (the receive budget),
//! `worker`, `am`, `listener`, `endpoint`.

mod am;
mod budget;
mod context;
mod endpoint;
mod listener;
mod request;
mod sockaddr;
mod status;
mod sys;
mod worker;

#[cfg(test)]
pub(crate) use am::held_descriptors;
pub(crate) use am::{AmData, AmMessage, AmStream, Refusal, RndvData};
pub(crate) use budget::{Held, ReceiveBudget};
pub use context::context_defaults;
pub(crate) use context::Context;
pub(crate) use endpoint::Endpoint;
pub use endpoint::ErrorHandling;
pub(crate) use listener::{ConnectionRequest, Listener};
pub use worker::ProgressMode;
pub(crate) use worker::{busy_threads_allowed, Worker};
