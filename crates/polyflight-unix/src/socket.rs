//! The socket file of a `grpc+unix` listener: binding without clobbering a live server,
//! replacing a stale file, permissions set before anyone can connect, and removal when the
//! listener goes away.

use polyflight_core::{FlightError, Result};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Backlog of the listening socket.
const BACKLOG: i32 = 1024;

/// How long probing an existing socket file may take. A live server accepts (or at least
/// queues) a connection at once; a file nobody listens on refuses at once.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket file this process created, removed when dropped (or by [`SocketFile::remove`]) —
/// but only while the path still names the very file we bound, so a server that started on
/// the same path after us keeps its socket.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file we bound.
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file if it is still ours. Idempotent.
    pub fn remove(&mut self) {
        let Some(identity) = self.identity.take() else {
            return;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == identity => {
                if let Err(err) = std::fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %err, "cannot remove socket file");
                }
            }
            Ok(_) => tracing::debug!(
                path = %self.path.display(),
                "socket file was replaced by another; leaving it"
            ),
            Err(_) => {}
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Binds a listening Unix socket at `path` with file mode `mode`.
///
/// An existing file at `path` is handled as follows: a socket some process listens on is left
/// alone and binding fails with `ALREADY_EXISTS`; a socket nobody listens on (left behind by a
/// server that died) is removed and replaced; anything else (a regular file, a directory) is
/// left alone and binding fails with `ALREADY_EXISTS`.
///
/// The permissions are set between `bind` and `listen`: until `listen`, connecting is refused,
/// so nobody can connect through wider permissions the process umask may have given the file.
pub async fn bind(path: &Path, mode: u32) -> Result<(tokio::net::UnixListener, SocketFile)> {
    let shown = path.display();
    let address = SockAddr::unix(path).map_err(|e| {
        FlightError::invalid_argument(format!(
            "{shown} cannot be a socket address: {e} (a Unix socket path has at most {} bytes)",
            max_path_len()
        ))
    })?;
    clear_stale(path).await?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)
        .map_err(|e| FlightError::unavailable(format!("cannot create a Unix socket: {e}")))?;
    socket.bind(&address).map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => FlightError::already_exists(format!(
            "{shown} appeared while binding (another server starting?)"
        )),
        io::ErrorKind::NotFound => FlightError::invalid_argument(format!(
            "cannot listen on {shown}: its directory does not exist"
        )),
        _ => FlightError::unavailable(format!("cannot listen on {shown}: {e}")),
    })?;
    // From here on the file is ours: the guard removes it again on any failure below.
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| FlightError::unavailable(format!("bound {shown} but cannot stat it: {e}")))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: Some((meta.dev(), meta.ino())),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        FlightError::unavailable(format!("cannot set permissions {mode:o} on {shown}: {e}"))
    })?;
    socket
        .listen(BACKLOG)
        .map_err(|e| FlightError::unavailable(format!("cannot listen on {shown}: {e}")))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| FlightError::unavailable(format!("cannot listen on {shown}: {e}")))?;
    let std_listener: std::os::unix::net::UnixListener = std::os::fd::OwnedFd::from(socket).into();
    let listener = tokio::net::UnixListener::from_std(std_listener)
        .map_err(|e| FlightError::unavailable(format!("cannot listen on {shown}: {e}")))?;
    Ok((listener, file))
}

/// Makes way for a new socket at `path`: nothing there, or a stale socket (removed). A live
/// socket, or a file that is not a socket, is an `ALREADY_EXISTS` error.
async fn clear_stale(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(FlightError::unavailable(format!(
                "cannot inspect {shown}: {e}"
            )))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(FlightError::already_exists(format!(
            "{shown} exists and is not a socket; not replacing it"
        )));
    }
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await {
        Ok(Ok(_probe)) => Err(FlightError::already_exists(format!(
            "a server is already listening on {shown}"
        ))),
        Err(_) => Err(FlightError::already_exists(format!(
            "{shown} is busy (a connection attempt did not complete); not replacing it"
        ))),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %shown, "removing stale socket file");
            match std::fs::remove_file(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(FlightError::unavailable(format!(
                    "cannot remove stale socket {shown}: {e}"
                ))),
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(Err(e)) => Err(FlightError::unavailable(format!(
            "cannot tell whether {shown} is in use ({e}); not replacing it"
        ))),
    }
}

/// The longest socket path this platform accepts (bytes, without the terminating NUL).
fn max_path_len() -> usize {
    if cfg!(target_os = "linux") {
        107
    } else {
        103
    }
}
