//! The settings of the UCX transport.

use std::time::Duration;

use crate::ucp::{ErrorHandling, ProgressMode};

/// Settings of the UCX transport for one client or listener.
///
/// Pass them in `ConnectOptions::extensions` or `ListenOptions::extensions`; without them the
/// defaults apply. UCX's own settings come from the `UCX_*` environment variables (read once,
/// when the process first uses UCX).
///
/// ```
/// use polyflight_core::ConnectOptions;
/// use polyflight_ucx::{ProgressMode, UcxOptions};
///
/// let mut options = ConnectOptions::default();
/// options.extensions.insert(UcxOptions {
///     progress: ProgressMode::Busy,
///     ..UcxOptions::default()
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UcxOptions {
    /// How worker threads wait for work (default: from `POLYFLIGHT_UCX_PROGRESS`, else adaptive
    /// with a 20 µs spin).
    pub progress: ProgressMode,
    /// Idle client connections kept for later calls (Arrow C++ keeps 3). A client opens one
    /// connection per concurrent call; calls beyond this many idle connections close theirs when
    /// they end.
    pub max_idle_connections: usize,
    /// The error handling mode of a client's endpoints (default: from
    /// `POLYFLIGHT_UCX_ERROR_HANDLING`, else peer). A server's endpoints always take the mode of
    /// the client that connects; this setting does nothing there.
    pub error_handling: ErrorHandling,
    /// The bytes of received messages a connection holds before the application reads them
    /// (default 64 MiB): eager data queued, frames waiting for an earlier one, rendezvous bodies
    /// fetched. While they reach it the connection's worker stops reading from the transport,
    /// which holds the sender back. A frame larger than this is fetched when it is the next one
    /// the call needs; eager frames that arrive meanwhile may take as much again. A connection
    /// holds at most twice this plus one frame: memory is bounded by this setting, never by what
    /// a peer claims.
    pub receive_budget: usize,
    /// How long a server's connection may stay at its receive budget, its handler not reading,
    /// before the call is refused with UNAVAILABLE and the connection closed (default 30 s, as
    /// the gRPC transport's `request_budget_wait`).
    pub receive_budget_wait: Duration,
}

impl Default for UcxOptions {
    fn default() -> Self {
        UcxOptions {
            progress: ProgressMode::from_env(),
            max_idle_connections: 3,
            error_handling: ErrorHandling::from_env(),
            receive_budget: 64 << 20,
            receive_budget_wait: Duration::from_secs(30),
        }
    }
}
