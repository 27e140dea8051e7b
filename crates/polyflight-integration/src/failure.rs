//! What a scenario's client reports when a check fails: a message naming what differed, or the
//! error of the call that failed.

use arrow_schema::ArrowError;
use polyflight::FlightError;

/// Why a scenario (or the JSON round trip) did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A check on what the peer returned failed; the message says what was expected and what
    /// came back.
    #[error("{0}")]
    Check(String),
    /// A Flight call failed where it had to succeed.
    #[error("{context}: {source}")]
    Call {
        /// Which call, in the scenario's words.
        context: String,
        /// The error it ended with.
        source: FlightError,
    },
    /// Arrow could not build, read or compare data.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The Arrow error.
        source: ArrowError,
    },
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// Which file, doing what.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command line or set-up was wrong.
    #[error("{0}")]
    Usage(String),
}

/// The result of a scenario's client or of a set-up step.
pub type Outcome<T = ()> = std::result::Result<T, Failure>;

/// Attaches the name of a call to its error.
pub trait CallContext<T> {
    /// Maps a `FlightError` to [`Failure::Call`] named `context`.
    fn call(self, context: &str) -> Outcome<T>;
}

impl<T> CallContext<T> for std::result::Result<T, FlightError> {
    fn call(self, context: &str) -> Outcome<T> {
        self.map_err(|source| Failure::Call {
            context: context.to_string(),
            source,
        })
    }
}

/// Attaches what was being done to an Arrow error.
pub trait ArrowContext<T> {
    /// Maps an `ArrowError` to [`Failure::Arrow`].
    fn arrow(self, context: &str) -> Outcome<T>;
}

impl<T> ArrowContext<T> for std::result::Result<T, ArrowError> {
    fn arrow(self, context: &str) -> Outcome<T> {
        self.map_err(|source| Failure::Arrow {
            context: context.to_string(),
            source,
        })
    }
}

/// Fails with [`Failure::Check`] unless `condition` holds.
pub fn check(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(Failure::Check(message()))
    }
}
