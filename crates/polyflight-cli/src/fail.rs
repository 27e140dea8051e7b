//! How a verb fails: a [`Failure`] is one line in the command's own words and an [`Exit`] code
//! scripts can rely on. Errors from the framework are turned into failures where the verb knows
//! what it was doing (connecting, reading a flight, reading a file), so the line names the
//! server, the path or the file, and says what to change.

use polyflight::{FlightCode, FlightError};
use std::fmt;

/// The exit codes, as `--help` prints them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  usage error: bad arguments (also as the server judged them: INVALID_ARGUMENT),
     unknown URI scheme, unknown output extension
  2  connection, TLS, authentication or permission failure, or a timeout
  3  not found: no flight at that path
  4  bad input file: missing, unreadable, not Arrow/Parquet/CSV, unknown extension
  5  server error, or any other failure";

/// What kind of failure ended the command; the number is the process's exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Usage = 1,
    Connection = 2,
    NotFound = 3,
    BadInput = 4,
    Other = 5,
}

/// A failed command: the exit code and the one line printed for it.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

/// What every verb returns.
pub type Outcome<T = ()> = std::result::Result<T, Failure>;

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: one_line(&message.into()),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    pub fn connection(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Connection, message)
    }

    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure::new(Exit::NotFound, message)
    }

    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure::new(Exit::BadInput, message)
    }

    pub fn other(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Other, message)
    }

    /// The same failure, its message prefixed with what was being done.
    pub fn with_context(mut self, context: &str) -> Failure {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<anyhow::Error> for Failure {
    /// The benchmark's errors (it speaks anyhow): another failure, with its whole chain.
    fn from(err: anyhow::Error) -> Failure {
        Failure::other(format!("{err:#}"))
    }
}

/// A message on one line: line breaks inside a server's message would break "one line per
/// failure" for the scripts that read it.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A call to `server` that failed with `err`, when the caller has nothing more specific to say.
/// `credentials` says whether the command sent any (the hint for UNAUTHENTICATED differs).
pub fn call_failure(err: &FlightError, server: &str, credentials: bool) -> Failure {
    let message = err.message();
    match err.code() {
        FlightCode::NotFound => Failure::not_found(format!("{server}: not found: {message}")),
        FlightCode::Unauthenticated if credentials => Failure::connection(format!(
            "{server} did not accept the credentials: {message}"
        )),
        FlightCode::Unauthenticated => Failure::connection(format!(
            "{server} requires a login: pass --user and --password, or --token ({message})"
        )),
        FlightCode::Unauthorized => {
            Failure::connection(format!("{server} denied the call: {message}"))
        }
        FlightCode::Unavailable => {
            Failure::connection(format!("lost the connection to {server}: {message}"))
        }
        FlightCode::TimedOut => Failure::connection(format!(
            "{server} did not answer in time (--timeout): {message}"
        )),
        FlightCode::InvalidArgument => {
            Failure::usage(format!("{server} rejected the request: {message}"))
        }
        FlightCode::Unimplemented => {
            Failure::other(format!("{server} does not support this: {message}"))
        }
        code => Failure::other(format!("{server} failed the call ({code}): {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_codes_map() {
        let failure = call_failure(&FlightError::internal("disk\nfull"), "grpc://h:1", false);
        assert_eq!(failure.exit, Exit::Other);
        assert_eq!(
            failure.message,
            "grpc://h:1 failed the call (INTERNAL): disk full"
        );
        let not_found = call_failure(&FlightError::not_found("x"), "u", false);
        assert_eq!(not_found.exit, Exit::NotFound);
        let login = call_failure(&FlightError::unauthenticated("no token"), "u", false);
        assert_eq!(login.exit, Exit::Connection);
        assert!(login.message.contains("--user"), "{}", login.message);
        assert_eq!(Exit::Other as i32, 5);
    }
}
