//! The Python side of the interop tests: finding an interpreter with pyarrow, running
//! `flight_server.py` as a child process, running `flight_client.py` against a URI, and the
//! transports both sides are set up for.
//!
//! Every child is started with `kill_on_drop`, so a failing test cannot leave one behind, and with
//! its stdin piped: the Python server exits when stdin closes, which also happens when this test
//! process dies abruptly. Python is told not to write `__pycache__` into the source tree.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Set to `1` to skip the pyarrow interop tests (they then pass with a printed notice).
pub const SKIP_ENV: &str = "POLYFLIGHT_SKIP_INTEROP";
/// The Python interpreter to use (`cargo xtask test` sets it to the interop venv's).
pub const PYTHON_ENV: &str = "POLYFLIGHT_PYTHON";

/// How long a Python peer may take to start (importing pyarrow on a loaded 2-core machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the whole `flight_client.py` run may take.
const CLIENT_RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a server may take to exit after its stdin closed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// A transport both sides of the interop tests are set up for. Adding one (TLS, mutual TLS,
/// Unix sockets) is a variant here and an arm in each method; the test bodies do not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plaintext gRPC over TCP (`grpc://`).
    Grpc,
}

impl Transport {
    /// The arguments that make `flight_server.py` serve this transport.
    pub fn python_server_args(self) -> Vec<String> {
        match self {
            Transport::Grpc => vec!["--uri".into(), "grpc://127.0.0.1:0".into()],
        }
    }

    /// The URI our client connects to, from what `flight_server.py` announced after
    /// `Server listening on ` (the URI it serves).
    pub fn uri_for_announced(self, announced: &str) -> String {
        match self {
            Transport::Grpc => {
                let port = polyflight::Location::parse(announced)
                    .ok()
                    .filter(|l| l.scheme() == polyflight::Scheme::Grpc)
                    .and_then(|l| l.port())
                    .filter(|&port| port != 0)
                    .unwrap_or_else(|| panic!("flight_server.py announced {announced:?}"));
                format!("grpc://127.0.0.1:{port}")
            }
        }
    }

    /// Where our server listens.
    pub fn listen_uri(self) -> String {
        match self {
            Transport::Grpc => "grpc://127.0.0.1:0".into(),
        }
    }

    /// The arguments that make `flight_client.py` reach our server at `uri` (after the URI).
    pub fn python_client_args(self, uri: &str) -> Vec<String> {
        match self {
            Transport::Grpc => vec![uri.to_string()],
        }
    }

    /// Connects our client to `uri`.
    pub async fn connect(self, uri: &str) -> polyflight::FlightClient {
        match self {
            Transport::Grpc => polyflight::connect(uri)
                .await
                .unwrap_or_else(|e| panic!("connecting to {uri}: {e}")),
        }
    }

    /// Starts our server from `builder` (service, authentication, middleware).
    pub async fn serve(self, builder: polyflight::ServerBuilder) -> polyflight::Server {
        let uri = self.listen_uri();
        builder
            .listen(&uri)
            .start()
            .await
            .unwrap_or_else(|e| panic!("listening on {uri}: {e}"))
    }
}

/// The directory holding the Python peers.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

fn find_python() -> Result<PathBuf, String> {
    let (python, origin) = match std::env::var_os(PYTHON_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), format!("${PYTHON_ENV}")),
        _ => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".venv-interop")
                .join("bin")
                .join("python"),
            "the default interop venv".to_string(),
        ),
    };
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "import pyarrow, pyarrow.flight; print(pyarrow.__version__)",
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output();
    match output {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            eprintln!("interop: {} (pyarrow {version})", python.display());
            Ok(python)
        }
        Ok(out) => Err(format!(
            "{} ({origin}) cannot import pyarrow.flight: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(err) => Err(format!(
            "{} ({origin}) does not run: {err}",
            python.display()
        )),
    }
}

/// The Python interpreter with pyarrow, or `None` when the interop tests are skipped by
/// `POLYFLIGHT_SKIP_INTEROP=1`. Panics — failing the test — when no usable interpreter exists:
/// a missing peer must not look like a passing test.
pub fn python() -> Option<PathBuf> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: pyarrow interop test ({SKIP_ENV}=1)");
        return None;
    }
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(python) => Some(python.clone()),
        Err(reason) => panic!(
            "the pyarrow interop tests need Python with pyarrow: {reason}\n\
             Run `cargo xtask interop-venv` to create the venv (or point {PYTHON_ENV} at a \
             Python with pyarrow; {SKIP_ENV}=1 skips these tests)."
        ),
    }
}

fn python_command(python: &Path, script: &str) -> Command {
    let mut command = Command::new(python);
    command
        .arg(scripts_dir().join(script))
        .current_dir(scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    command
}

/// Collects a child's stream into a shared buffer, so it can be shown when a test fails.
fn capture(mut stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = buffer.clone();
    tokio::spawn(async move {
        let mut chunk = vec![0u8; 8192];
        while let Ok(n) = stream.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if let Ok(mut sink) = sink.lock() {
                sink.extend_from_slice(&chunk[..n]);
            }
        }
    });
    buffer
}

fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    buffer
        .lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// `flight_server.py`, running. Stop it with [`PythonServer::stop`]; if a test panics first,
/// dropping it kills the process and prints what it wrote to stderr.
pub struct PythonServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// The URI our client reaches it at.
    pub uri: String,
}

impl PythonServer {
    /// Starts `flight_server.py` for `transport` and waits for its `Server listening on` line.
    pub async fn start(python: &Path, transport: Transport) -> PythonServer {
        let mut child = python_command(python, "flight_server.py")
            .args(transport.python_server_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting flight_server.py with {}: {e}", python.display()));
        let stdin = child.stdin.take();
        let stderr = capture(child.stderr.take().expect("stderr is piped"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut first = String::new();
        let read = tokio::time::timeout(STARTUP_TIMEOUT, stdout.read_line(&mut first)).await;
        let announced = match read {
            Ok(Ok(n)) if n > 0 => first
                .trim()
                .strip_prefix("Server listening on ")
                .map(str::to_owned),
            _ => None,
        };
        let Some(announced) = announced else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            panic!(
                "flight_server.py did not announce its port (first line {first:?}); stderr:\n{}",
                text(&stderr)
            );
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        let _ = capture(stdout);
        PythonServer {
            child,
            stdin,
            stderr,
            uri: transport.uri_for_announced(&announced),
        }
    }

    /// Closes the server's stdin, which makes it shut down, and checks that it exits cleanly.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "flight_server.py exited with {status}; stderr:\n{}",
                text(&self.stderr)
            ),
            Ok(Err(err)) => panic!("waiting for flight_server.py: {err}"),
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                panic!(
                    "flight_server.py did not exit within {SHUTDOWN_TIMEOUT:?} of its stdin \
                     closing; stderr:\n{}",
                    text(&self.stderr)
                );
            }
        }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("flight_server.py stderr:\n{}", text(&self.stderr));
        }
        // kill_on_drop ends the process if `stop` was not reached.
    }
}

/// What one `flight_client.py` run reported.
#[derive(Debug)]
pub struct ClientReport {
    /// Every check the script knows (`--list`).
    pub all: Vec<String>,
    /// Checks that printed `ok <name>`.
    pub ok: Vec<String>,
    /// `FAIL <name>: <reason>` lines (with continuation lines).
    pub failures: Vec<String>,
    /// The script's exit status.
    pub success: bool,
    /// Everything it wrote to stdout and stderr, for failure messages.
    pub stdout: String,
    /// See `stdout`.
    pub stderr: String,
}

impl ClientReport {
    /// Checks that neither passed nor were skipped.
    pub fn missing(&self, skipped: &[&str]) -> Vec<String> {
        self.all
            .iter()
            .filter(|name| !self.ok.contains(name) && !skipped.contains(&name.as_str()))
            .cloned()
            .collect()
    }
}

/// Runs `flight_client.py` against `uri` over `transport`, skipping the named checks.
pub async fn run_python_client(
    python: &Path,
    transport: Transport,
    uri: &str,
    skip: &[&str],
    extra_args: &[&str],
) -> ClientReport {
    let list = python_command(python, "flight_client.py")
        .arg("--list")
        .output()
        .await
        .unwrap_or_else(|e| panic!("running flight_client.py --list: {e}"));
    assert!(
        list.status.success(),
        "flight_client.py --list failed: {list:?}"
    );
    let all = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();

    let mut command = python_command(python, "flight_client.py");
    command
        .args(transport.python_client_args(uri))
        .args(extra_args)
        .stdin(Stdio::null());
    if !skip.is_empty() {
        command.arg("--skip").arg(skip.join(","));
    }
    let output = tokio::time::timeout(CLIENT_RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("flight_client.py did not finish within {CLIENT_RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running flight_client.py: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut ok = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for line in stdout.lines() {
        if let Some(name) = line.strip_prefix("ok ") {
            ok.push(name.trim().to_string());
        } else if line.starts_with("FAIL ") {
            failures.push(line.to_string());
        } else if let Some(last) = failures.last_mut() {
            last.push('\n');
            last.push_str(line);
        }
    }
    ClientReport {
        all,
        ok,
        failures,
        success: output.status.success(),
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
