//! Servers in processes of their own, as users run them.
//!
//! With a [`ServeCommand`], each transport row starts its perf server as a separate process —
//! `PROGRAM serve --service perf --json [--tls-cert C --tls-key K] URI`, the interface of the
//! `polyflight` command — reads the location it listens on from the `{"listening": URI}` line
//! it prints, measures it from this process, and stops it with SIGTERM (SIGKILL after two
//! seconds) before the next row. The server's CPU time is read from `/proc/PID/stat` around
//! each workload, so the CPU columns split as they do in one process.
//!
//! `grpc+tls` rows get a CA and server certificate minted for the run, written to a temporary
//! directory for the child, and trusted by this side's client.

use crate::BenchError;
use polyflight::transports::LoopbackPki;
use polyflight::Scheme;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server process may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopped server may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How to start a perf server in a process of its own: a program with the `polyflight serve`
/// interface (usually the running `polyflight` executable itself).
#[derive(Debug, Clone)]
pub struct ServeCommand {
    /// The program.
    pub program: PathBuf,
}

impl ServeCommand {
    /// The running executable, which must be the `polyflight` command.
    pub fn current_exe() -> Result<ServeCommand, BenchError> {
        Ok(ServeCommand {
            program: std::env::current_exe()?,
        })
    }

    /// Starts a perf server listening on `listen_uri`; with `tls`, on its server certificate.
    pub(crate) fn start(
        &self,
        scheme: Scheme,
        listen_uri: &str,
        tls: Option<&LoopbackPki>,
    ) -> Result<ServerProcess, BenchError> {
        let files = tempfile::Builder::new()
            .prefix("polyflight-bench-")
            .tempdir()?;
        let mut command = Command::new(&self.program);
        command.args(["serve", "--service", "perf", "--json"]);
        if let Some(pki) = tls {
            let cert = files.path().join("server.pem");
            let key = files.path().join("server.key");
            std::fs::write(&cert, &pki.server_cert_pem)?;
            std::fs::write(&key, &pki.server_key_pem)?;
            command
                .arg("--tls-cert")
                .arg(&cert)
                .arg("--tls-key")
                .arg(&key);
        }
        command
            .arg(listen_uri)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().map_err(|err| {
            BenchError::Config(format!(
                "cannot start {} as a {scheme} server: {err}",
                self.program.display()
            ))
        })?;
        let mut server = ServerProcess {
            child,
            uri: String::new(),
            _files: files,
        };
        server.uri = server.wait_for_location(scheme)?;
        Ok(server)
    }
}

/// The perf protocol served by pyarrow (`python/perf_server.py`), written to a file for Python.
const PYARROW_PERF_SERVER: &str = include_str!("../python/perf_server.py");

/// The Python to run pyarrow's server with: `POLYFLIGHT_PYTHON`, else the interop venv of the
/// working directory (`.venv-interop/bin/python`, made by `cargo xtask interop-venv`); it must
/// import `pyarrow.flight`. The error says why there is none.
pub(crate) fn pyarrow_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os("POLYFLIGHT_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(".venv-interop/bin/python"),
    };
    if !python.exists() {
        return Err(format!(
            "no Python with pyarrow: {} does not exist (set POLYFLIGHT_PYTHON, or run `cargo \
             xtask interop-venv` in the workspace)",
            python.display()
        ));
    }
    let imports = Command::new(&python)
        .args(["-c", "import pyarrow.flight"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if imports {
        Ok(python)
    } else {
        Err(format!("{} cannot import pyarrow.flight", python.display()))
    }
}

/// Starts pyarrow's perf server on a free loopback port with `python`.
pub(crate) fn start_pyarrow_server(python: &std::path::Path) -> Result<ServerProcess, BenchError> {
    let files = tempfile::Builder::new()
        .prefix("polyflight-bench-")
        .tempdir()?;
    let script = files.path().join("perf_server.py");
    std::fs::write(&script, PYARROW_PERF_SERVER)?;
    let child = Command::new(python)
        .arg(&script)
        .arg("grpc://127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| {
            BenchError::Config(format!(
                "cannot start pyarrow's server with {}: {err}",
                python.display()
            ))
        })?;
    let mut server = ServerProcess {
        child,
        uri: String::new(),
        _files: files,
    };
    server.uri = server.wait_for_location(Scheme::Grpc)?;
    Ok(server)
}

/// A running server process; stopped when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub uri: String,
    /// Certificates and keys it was given.
    _files: tempfile::TempDir,
}

impl ServerProcess {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_for_location(&mut self, scheme: Scheme) -> Result<String, BenchError> {
        let stderr = self.child.stderr.take().map(|mut pipe| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = self.child.stdout.take() {
            std::thread::spawn(move || {
                // Read to the end even once nobody listens, so the server never blocks on a
                // full pipe.
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let parsed: Option<String> = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v.get("listening")?.as_str().map(str::to_string));
                    if let Some(uri) = parsed {
                        return Ok(uri);
                    }
                }
                Err(_) => {
                    self.stop();
                    let said = stderr
                        .and_then(|t| t.join().ok())
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    return Err(BenchError::Config(format!(
                        "the {scheme} server process did not start: {}",
                        if said.is_empty() {
                            "it said nothing".to_string()
                        } else {
                            said
                        }
                    )));
                }
            }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`STOP_GRACE`].
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: a signal to our own child, which has not been reaped (try_wait above).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
