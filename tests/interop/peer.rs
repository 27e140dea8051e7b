//! The Python side of the interop tests: finding an interpreter with pyarrow, running
//! `flight_server.py` as a child process, running `flight_client.py` (or a snippet) against a URI,
//! and the transports both sides are set up for.
//!
//! Every child is started with `kill_on_drop`, so a failing test cannot leave one behind, and with
//! its stdin piped: the Python server exits when stdin closes, which also happens when this test
//! process dies abruptly. Python is told not to write `__pycache__` into the source tree.
//! Certificates and socket files live in a per-test scratch directory ([`Setup`]) removed when
//! the test ends, whether it passes or not.

use polyflight::transports::{ClientTlsConfig, LoopbackPki, ServerTlsConfig};
use polyflight::{ConnectOptions, FlightClient, ListenOptions, Location, Scheme, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
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
/// How long a Python snippet may take (its calls carry their own, shorter timeouts).
const SNIPPET_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to exit after its stdin closed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// A transport both sides of the interop tests are set up for. Each test gets a [`Setup`] for its
/// transport (certificates, socket paths) from [`Transport::setup`]; the test bodies do not
/// depend on which transport it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plaintext gRPC over TCP (`grpc://`).
    Grpc,
    /// gRPC over TLS (`grpc+tls://`): the server presents a certificate the client verifies.
    Tls,
    /// gRPC over mutual TLS: as [`Transport::Tls`], and the client presents a certificate the
    /// server requires.
    MutualTls,
    /// gRPC over a Unix domain socket (`grpc+unix://`); pyarrow's clients use default options.
    Unix,
}

impl Transport {
    /// The transport's row name, as in the test names.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Tls => "tls",
            Transport::MutualTls => "mtls",
            Transport::Unix => "unix",
        }
    }

    /// The URI scheme both sides use.
    pub fn scheme(self) -> Scheme {
        match self {
            Transport::Grpc => Scheme::Grpc,
            Transport::Tls | Transport::MutualTls => Scheme::GrpcTls,
            Transport::Unix => Scheme::GrpcUnix,
        }
    }

    /// Sets the transport up for one test: a scratch directory (removed when the [`Setup`] is
    /// dropped) and, for TLS, freshly minted certificates written into it.
    pub fn setup(self) -> Setup {
        let scratch = Scratch::new(self.name());
        let pki = match self {
            Transport::Tls | Transport::MutualTls => Some(Pki::mint(&scratch)),
            Transport::Grpc | Transport::Unix => None,
        };
        Setup {
            transport: self,
            scratch,
            pki,
        }
    }
}

/// A private temporary directory, removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        use std::os::unix::fs::DirBuilderExt;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // Short, so socket paths stay well under the platform's limit (107 bytes on Linux).
        let dir = std::env::temp_dir().join(format!(
            "polyflight-interop-{tag}-{}-{n}",
            std::process::id()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("removing {}: {err}", self.0.display());
        }
    }
}

/// A CA with a server and a client certificate it issued (see [`LoopbackPki`]), in memory for our
/// side and as PEM files for pyarrow's.
pub struct Pki {
    /// The certificates and keys.
    pub certs: LoopbackPki,
    /// The CA certificate, which both sides trust.
    pub ca: PathBuf,
    /// The server certificate (for `localhost`, `127.0.0.1` and `::1`).
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// The client certificate (`CN=polyflight loopback client`, `DNS:client.localhost`).
    pub client_cert: PathBuf,
    /// The client's private key.
    pub client_key: PathBuf,
}

impl Pki {
    fn mint(scratch: &Scratch) -> Pki {
        let certs = LoopbackPki::generate().expect("minting certificates");
        Pki {
            ca: scratch.write("ca.pem", &certs.ca_pem),
            server_cert: scratch.write("server.pem", &certs.server_cert_pem),
            server_key: scratch.write("server.key", &certs.server_key_pem),
            client_cert: scratch.write("client.pem", &certs.client_cert_pem),
            client_key: scratch.write("client.key", &certs.client_key_pem),
            certs,
        }
    }

    /// Our server's TLS settings; with `mutual`, a client certificate from the CA is required.
    pub fn server_config(&self, mutual: bool) -> ServerTlsConfig {
        self.certs
            .server_config(mutual)
            .expect("server TLS configuration")
    }

    /// Our client's TLS settings; with `mutual`, it presents the client certificate.
    pub fn client_config(&self, mutual: bool) -> ClientTlsConfig {
        self.certs
            .client_config(mutual)
            .expect("client TLS configuration")
    }
}

/// A path argument for a Python peer.
pub fn arg(path: &Path) -> String {
    path.display().to_string()
}

/// Listen options carrying our server's TLS settings.
pub fn tls_listen_options(config: ServerTlsConfig) -> ListenOptions {
    let mut options = ListenOptions::default();
    options.extensions.insert(config);
    options
}

/// Connect options carrying our client's TLS settings.
pub fn tls_connect_options(config: ClientTlsConfig) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    options.extensions.insert(config);
    options
}

/// A [`Transport`] set up for one test: where each side listens and how each side connects. The
/// scratch directory holding certificates and sockets is removed when this is dropped, so keep it
/// alive until the servers have stopped.
pub struct Setup {
    /// The transport.
    pub transport: Transport,
    scratch: Scratch,
    pki: Option<Pki>,
}

impl Setup {
    /// The certificates, for TLS transports.
    pub fn pki(&self) -> &Pki {
        self.pki.as_ref().unwrap_or_else(|| {
            panic!(
                "{} has no certificates: only TLS transports do",
                self.transport.name()
            )
        })
    }

    /// A path in the test's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.scratch.0.join(name)
    }

    /// The scratch directory.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch.0
    }

    /// The `grpc+unix://` URI of a socket in the scratch directory.
    fn socket_uri(&self, name: &str) -> String {
        let path = self.path(name);
        Location::for_unix_path(&path)
            .unwrap_or_else(|e| panic!("socket path {}: {e}", path.display()))
            .uri()
            .to_string()
    }

    /// The arguments that make `flight_server.py` serve this transport.
    pub fn python_server_args(&self) -> Vec<String> {
        match self.transport {
            Transport::Grpc => vec!["--uri".into(), "grpc://127.0.0.1:0".into()],
            Transport::Tls | Transport::MutualTls => {
                let pki = self.pki();
                let mut args = vec![
                    "--uri".into(),
                    "grpc+tls://127.0.0.1:0".into(),
                    "--tls-cert".into(),
                    arg(&pki.server_cert),
                    "--tls-key".into(),
                    arg(&pki.server_key),
                ];
                if self.transport == Transport::MutualTls {
                    args.extend(["--client-ca".into(), arg(&pki.ca)]);
                }
                args
            }
            Transport::Unix => vec!["--uri".into(), self.socket_uri("pyarrow.sock")],
        }
    }

    /// The arguments that make `flight_client.py` (or a snippet, see [`run_python_snippet`])
    /// reach a server of this transport at `uri`: the URI, then its options.
    pub fn python_client_args(&self, uri: &str) -> Vec<String> {
        let mut args = vec![uri.to_string()];
        match self.transport {
            Transport::Grpc | Transport::Unix => {}
            Transport::Tls => args.extend(["--tls-root".into(), arg(&self.pki().ca)]),
            Transport::MutualTls => {
                let pki = self.pki();
                args.extend([
                    "--tls-root".into(),
                    arg(&pki.ca),
                    "--cert".into(),
                    arg(&pki.client_cert),
                    "--key".into(),
                    arg(&pki.client_key),
                ]);
            }
        }
        args
    }

    /// Where our server listens.
    pub fn listen_uri(&self) -> String {
        match self.transport {
            Transport::Grpc => "grpc://127.0.0.1:0".into(),
            Transport::Tls | Transport::MutualTls => "grpc+tls://127.0.0.1:0".into(),
            Transport::Unix => self.socket_uri("flight.sock"),
        }
    }

    /// How our server listens.
    pub fn listen_options(&self) -> ListenOptions {
        match self.transport {
            Transport::Grpc | Transport::Unix => ListenOptions::default(),
            Transport::Tls => tls_listen_options(self.pki().server_config(false)),
            Transport::MutualTls => tls_listen_options(self.pki().server_config(true)),
        }
    }

    /// How our client connects.
    pub fn connect_options(&self) -> ConnectOptions {
        match self.transport {
            Transport::Grpc | Transport::Unix => ConnectOptions::default(),
            Transport::Tls => tls_connect_options(self.pki().client_config(false)),
            Transport::MutualTls => tls_connect_options(self.pki().client_config(true)),
        }
    }

    /// Connects our client to `uri`.
    pub async fn connect(&self, uri: &str) -> FlightClient {
        polyflight::connect_with_options(uri, self.connect_options())
            .await
            .unwrap_or_else(|e| panic!("connecting to {uri}: {e}"))
    }

    /// Starts our server from `builder` (service, authentication, middleware).
    pub async fn serve(&self, builder: polyflight::ServerBuilder) -> Server {
        let uri = self.listen_uri();
        builder
            .listen_with(&uri, self.listen_options())
            .start()
            .await
            .unwrap_or_else(|e| panic!("listening on {uri}: {e}"))
    }

    /// Checks a URI `flight_server.py` announced: this transport's scheme, and a bound port.
    fn check_announced(&self, announced: &str) -> Result<String, String> {
        let location = Location::parse(announced).map_err(|e| e.to_string())?;
        if location.scheme() != self.transport.scheme() {
            return Err(format!("expected a {} URI", self.transport.scheme()));
        }
        if location.scheme() != Scheme::GrpcUnix && location.port().unwrap_or(0) == 0 {
            return Err("no bound port".into());
        }
        Ok(announced.to_string())
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
        // Straight to stderr: the test harness shows captured output only for failing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: pyarrow interop test ({SKIP_ENV}=1)"
        );
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

/// Python in the scripts' directory, killed if dropped while running.
fn python_in_scripts_dir(python: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .current_dir(scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    command
}

/// One of the Python peers, run by [`python_in_scripts_dir`].
fn python_command(python: &Path, script: &str) -> Command {
    let mut command = python_in_scripts_dir(python);
    command.arg(scripts_dir().join(script));
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
    /// The URI it announced, which both our client and pyarrow's reach it at.
    pub uri: String,
}

impl PythonServer {
    /// Starts `flight_server.py` for the test's transport and waits for its
    /// `Server listening on <uri>` line.
    pub async fn start(python: &Path, setup: &Setup) -> PythonServer {
        let args = setup.python_server_args();
        let mut child = python_command(python, "flight_server.py")
            .args(&args)
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
                .map(|uri| setup.check_announced(uri)),
            _ => None,
        };
        let uri = match announced {
            Some(Ok(uri)) => uri,
            problem => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!(
                    "flight_server.py {args:?} did not announce where it listens (first line \
                     {first:?}{}); stderr:\n{}",
                    match problem {
                        Some(Err(why)) => format!(": {why}"),
                        _ => String::new(),
                    },
                    text(&stderr)
                );
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        let _ = capture(stdout);
        PythonServer {
            child,
            stdin,
            stderr,
            uri,
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

/// Runs `flight_client.py` against `uri` over the test's transport, skipping the named checks.
pub async fn run_python_client(
    python: &Path,
    setup: &Setup,
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
        .args(setup.python_client_args(uri))
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

/// What a Python snippet run by [`run_python_snippet`] did.
#[derive(Debug)]
pub struct SnippetRun {
    /// Its process id.
    pub pid: u32,
    /// Whether it exited successfully.
    pub success: bool,
    /// Its stdout, line by line.
    pub lines: Vec<String>,
    /// Its stderr.
    pub stderr: String,
}

/// Runs a Python snippet with `sys` and `pyarrow.flight as flight` imported, the arguments in
/// `sys.argv[1:]` and `connect()` defined: `connect()` opens a `flight.FlightClient` the way
/// `flight_client.py` does, from [`Setup::python_client_args`]-style arguments (`URI
/// [--tls-root CA] [--cert CERT --key KEY]`).
pub async fn run_python_snippet(python: &Path, code: &str, args: &[String]) -> SnippetRun {
    let script = format!("{SNIPPET_PRELUDE}{code}");
    let child = python_in_scripts_dir(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
    let pid = child.id().expect("a running child has a pid");
    let output = tokio::time::timeout(SNIPPET_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("Python snippet did not finish within {SNIPPET_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running Python snippet: {e}"));
    SnippetRun {
        pid,
        success: output.status.success(),
        lines: String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What every snippet starts with (see [`run_python_snippet`]).
const SNIPPET_PRELUDE: &str = "\
import argparse
import sys
import pyarrow.flight as flight

_parser = argparse.ArgumentParser()
_parser.add_argument('uri')
_parser.add_argument('--tls-root')
_parser.add_argument('--cert')
_parser.add_argument('--key')
ARGS = _parser.parse_args(sys.argv[1:])


def connect():
    kwargs = {}
    if ARGS.tls_root:
        kwargs['tls_root_certs'] = open(ARGS.tls_root, 'rb').read()
    if ARGS.cert:
        kwargs['cert_chain'] = open(ARGS.cert, 'rb').read()
        kwargs['private_key'] = open(ARGS.key, 'rb').read()
    return flight.FlightClient(ARGS.uri, **kwargs)


";
