//! Interop with pyarrow (gRPC C++ and BoringSSL underneath) over `grpc+tls`, mutual TLS and
//! `grpc+unix`, both ways:
//!
//! - `pyarrow_client_*`: `tests/interop/flight_client.py` against our server running the
//!   contract's `InteropService`, on the checks where the transport matters (streams of many and
//!   of very large messages both ways, concurrency, cancellation, headers, deadlines). Error
//!   semantics are the gRPC layer's, shared with `grpc://` and checked in
//!   `tests/interop_pyarrow.rs`. Over `grpc+unix` the client runs with pyarrow's default options,
//!   which send the socket path as `:authority` (see `docs/transports/grpc-unix.md`).
//! - `pyarrow_server_*`: our client against `tests/interop/flight_server.py` serving the same
//!   transport: DoGet, DoPut, DoExchange and DoAction, results compared exactly.
//! - `*_identity_*` / `*_credentials_*`: a pyarrow client's certificate subject and its process
//!   credentials as our service sees them in the `CallContext`.
//! - Refusals: a pyarrow client without a certificate against our mutual-TLS server, and our
//!   client without one against pyarrow's.
//!
//! Certificates are minted per test (a CA and separate server and client certificates) and
//! written, with any socket, to a temporary directory removed at the end. Python is found as in
//! `tests/interop_pyarrow.rs` (`POLYFLIGHT_PYTHON`, else `.venv-interop`;
//! `POLYFLIGHT_SKIP_INTEROP=1` skips).

#[path = "interop/contract.rs"]
#[allow(dead_code)] // shared with tests/interop_pyarrow.rs; this file uses part of it
mod contract;
#[path = "interop/peer.rs"]
#[allow(dead_code)] // shared with tests/interop_pyarrow.rs; this file uses part of it
mod peer;

use arrow_array::RecordBatch;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight::proto::{Action, ActionType, FlightDescriptor, Result as ActionResult, Ticket};
use polyflight::transports::{ClientTlsConfig, ServerTlsConfig, UnixListenOptions};
use polyflight::{
    CallContext, ConnectOptions, FlightClient, FlightCode, FlightService, FlightStream,
    ListenOptions, Result, Server,
};
use polyflight_grpc::tls::{LoopbackPki, LOOPBACK_CLIENT_NAME};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a Python peer may take to start or to run a snippet (importing pyarrow on a loaded
/// 2-core machine is slow).
const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a `flight_client.py` run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

/// The `flight_client.py` checks run over each transport (see the module docs).
const TRANSPORT_CHECKS: &[&str] = &[
    "list_actions",
    "do_get_many",
    "do_get_large",
    "do_get_dict",
    "do_get_empty",
    "do_get_cancel",
    "do_get_concurrent",
    "get_flight_info_cmd",
    "do_put_round_trip",
    "do_put_lockstep",
    "do_put_large",
    "do_put_many",
    "do_exchange_echo",
    "do_exchange_metadata_only",
    "do_exchange_large_and_many",
    "do_action_echo_and_stream",
    "headers",
    "timeout_stream",
];

// ---- scratch space ---------------------------------------------------------------------------

/// A private temporary directory, removed (with everything in it) when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        use std::os::unix::fs::DirBuilderExt;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "polyflight-interop-{test}-{}-{n}",
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
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The PEM files pyarrow reads, in a scratch directory.
struct PemFiles {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pem_files(pki: &LoopbackPki, scratch: &Scratch) -> PemFiles {
    PemFiles {
        ca: scratch.write("ca.pem", &pki.ca_pem),
        server_cert: scratch.write("server.pem", &pki.server_cert_pem),
        server_key: scratch.write("server.key", &pki.server_key_pem),
        client_cert: scratch.write("client.pem", &pki.client_cert_pem),
        client_key: scratch.write("client.key", &pki.client_key_pem),
    }
}

fn arg(path: &Path) -> String {
    path.display().to_string()
}

// ---- Python processes --------------------------------------------------------------------------

fn python_command(python: &Path) -> Command {
    let mut command = Command::new(python);
    command
        .current_dir(peer::scripts_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    command
}

/// `flight_server.py` with the given arguments, running until dropped or stopped. Its stdin is
/// a pipe: when it closes (also if this process dies), the server exits.
struct PyServer {
    child: Child,
    announced: String,
}

impl PyServer {
    async fn start(python: &Path, args: &[String]) -> PyServer {
        let mut child = python_command(python)
            .arg("flight_server.py")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("starting flight_server.py: {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        let read = tokio::time::timeout(PYTHON_TIMEOUT, stdout.read_line(&mut line)).await;
        let announced = match read {
            Ok(Ok(n)) if n > 0 => line
                .trim()
                .strip_prefix("Server listening on ")
                .map(str::to_owned),
            _ => None,
        };
        let Some(announced) = announced else {
            panic!("flight_server.py {args:?} did not start (first line {line:?})");
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = String::new();
            while matches!(stdout.read_line(&mut sink).await, Ok(n) if n > 0) {
                sink.clear();
            }
        });
        PyServer { child, announced }
    }

    /// The port from `Server listening on <scheme>://<host>:<port>`.
    fn port(&self) -> u16 {
        polyflight::Location::parse(&self.announced)
            .ok()
            .and_then(|l| l.port())
            .unwrap_or_else(|| panic!("flight_server.py announced {:?}", self.announced))
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(Ok(status)) => assert!(status.success(), "flight_server.py exited with {status}"),
            _ => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                panic!("flight_server.py did not stop when its stdin closed");
            }
        }
    }
}

/// Runs `flight_client.py` with `args` and the transport checks; returns its stdout and whether
/// every check printed `ok`.
async fn run_flight_client(python: &Path, args: &[String], only: &[&str]) -> (bool, String) {
    let mut command = python_command(python);
    command
        .arg("flight_client.py")
        .args(args)
        .arg("--only")
        .arg(only.join(","))
        .stdin(Stdio::null());
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("flight_client.py did not finish in {CLIENT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running flight_client.py: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let passed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .collect();
    let all_ok = output.status.success() && only.iter().all(|c| passed.contains(c));
    (
        all_ok,
        format!("--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"),
    )
}

/// Runs a Python snippet (with pyarrow.flight imported as `flight`, the arguments in
/// `sys.argv[1:]`); returns its stdout lines, its pid, and whether it succeeded.
async fn run_snippet(python: &Path, code: &str, args: &[String]) -> (Vec<String>, u32, bool) {
    let script = format!("import sys\nimport pyarrow.flight as flight\n{code}");
    let child = python_command(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting python: {e}"));
    let pid = child.id().unwrap_or_default();
    let output = tokio::time::timeout(PYTHON_TIMEOUT, child.wait_with_output())
        .await
        .expect("python snippet finishes")
        .expect("python snippet runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    if !output.status.success() {
        lines.push(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    (lines, pid, output.status.success())
}

// ---- our side ----------------------------------------------------------------------------------

async fn serve_interop(uri: &str, options: ListenOptions) -> Server {
    contract::interop_server()
        .listen_with(uri, options)
        .start()
        .await
        .unwrap_or_else(|e| panic!("listening on {uri}: {e}"))
}

fn tls_listen(config: ServerTlsConfig) -> ListenOptions {
    let mut options = ListenOptions::default();
    options.extensions.insert(config);
    options
}

fn tls_connect(config: ClientTlsConfig) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    options.extensions.insert(config);
    options
}

/// Answers `peer` with the caller's TLS identity and process credentials.
struct WhoService;

#[polyflight::async_trait]
impl FlightService for WhoService {
    async fn do_action(
        &self,
        ctx: CallContext,
        _action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let peer = ctx.peer();
        let tls = peer
            .tls
            .as_ref()
            .map(|t| format!("{} [{}]", t.subject, t.subject_alt_names.join(", ")))
            .unwrap_or_else(|| "none".into());
        let credentials = peer
            .credentials
            .map(|c| format!("{} {} {}", c.uid, c.gid, c.pid.unwrap_or(-1)))
            .unwrap_or_else(|| "none".into());
        let lines = [format!("tls={tls}"), format!("credentials={credentials}")];
        Ok(futures::stream::iter(lines.map(|l| Ok(ActionResult { body: l.into() }))).boxed())
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        Ok(futures::stream::empty().boxed())
    }
}

async fn serve_who(uri: &str, options: ListenOptions) -> Server {
    polyflight::server(WhoService)
        .listen_with(uri, options)
        .start()
        .await
        .unwrap_or_else(|e| panic!("listening on {uri}: {e}"))
}

/// The snippet that calls `peer` and prints each result.
const CALL_PEER: &str = "\
kwargs = {}
if len(sys.argv) > 2:
    kwargs['tls_root_certs'] = open(sys.argv[2], 'rb').read()
if len(sys.argv) > 3:
    kwargs['cert_chain'] = open(sys.argv[3], 'rb').read()
    kwargs['private_key'] = open(sys.argv[4], 'rb').read()
client = flight.FlightClient(sys.argv[1], **kwargs)
options = flight.FlightCallOptions(timeout=60)
for result in client.do_action(flight.Action('peer', b''), options=options):
    print(result.body.to_pybytes().decode())
";

// ---- checks with our client --------------------------------------------------------------------

fn ticket(name: &str) -> Ticket {
    Ticket::new(Bytes::copy_from_slice(name.as_bytes()))
}

async fn get(client: &FlightClient, name: &str) -> Vec<RecordBatch> {
    client
        .do_get(ticket(name))
        .await
        .unwrap_or_else(|e| panic!("DoGet {name}: {e}"))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading DoGet {name}: {e}"))
}

/// DoGet (many and large), DoPut then DoGet of the upload, DoExchange echo and DoAction echo
/// against a pyarrow server.
async fn exercise_pyarrow_server(client: &FlightClient) {
    assert!(get(client, "many").await == contract::many(), "many");
    let large = get(client, "large").await;
    assert!(large == contract::large(), "large");

    let uploaded = vec![contract::numbers(0, 1000), contract::numbers(1000, 10)];
    let acks: Vec<_> = client
        .do_put(
            FlightDescriptor::new_path(["tls-unix", "upload"]),
            futures::stream::iter(uploaded.clone().into_iter().map(Ok)),
        )
        .await
        .expect("DoPut starts")
        .try_collect()
        .await
        .expect("DoPut completes");
    assert_eq!(acks.len(), 2, "one PutResult per batch");
    let back = get(client, "tls-unix/upload").await;
    let rows: usize = back.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 1010);
    assert!(back[0].slice(0, 10) == uploaded[0].slice(0, 10));

    let echoed: Vec<RecordBatch> = client
        .do_exchange(
            FlightDescriptor::new_cmd("echo"),
            futures::stream::iter(uploaded.clone().into_iter().map(Ok)),
        )
        .await
        .expect("DoExchange starts")
        .try_collect()
        .await
        .expect("DoExchange completes");
    assert!(echoed == uploaded, "echo");

    let echo: Vec<Bytes> = client
        .do_action(Action {
            r#type: "echo".into(),
            body: Bytes::from_static(b"\x00over the wire\xff"),
        })
        .await
        .expect("DoAction")
        .try_collect()
        .await
        .expect("DoAction results");
    assert_eq!(echo, vec![Bytes::from_static(b"\x00over the wire\xff")]);
}

// ---- pyarrow client, our server ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_client_over_tls() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("tls-client");
    let pki = LoopbackPki::generate().unwrap();
    let files = pem_files(&pki, &scratch);
    let server = serve_interop(
        "grpc+tls://127.0.0.1:0",
        tls_listen(pki.server_config(false).unwrap()),
    )
    .await;
    let uri = format!("grpc+tls://localhost:{}", server.location().port().unwrap());
    let (ok, output) = run_flight_client(
        &python,
        &[uri.clone(), "--tls-root".into(), arg(&files.ca)],
        TRANSPORT_CHECKS,
    )
    .await;
    server.shutdown().await.unwrap();
    assert!(
        ok,
        "flight_client.py against our server at {uri}:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_client_over_mutual_tls() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("mtls-client");
    let pki = LoopbackPki::generate().unwrap();
    let files = pem_files(&pki, &scratch);
    let server = serve_interop(
        "grpc+tls://127.0.0.1:0",
        tls_listen(pki.server_config(true).unwrap()),
    )
    .await;
    let uri = format!("grpc+tls://localhost:{}", server.location().port().unwrap());
    let with_cert = [
        uri.clone(),
        "--tls-root".into(),
        arg(&files.ca),
        "--cert".into(),
        arg(&files.client_cert),
        "--key".into(),
        arg(&files.client_key),
    ];
    let (ok, output) = run_flight_client(&python, &with_cert, TRANSPORT_CHECKS).await;
    assert!(ok, "flight_client.py with a client certificate:\n{output}");
    // Without a certificate pyarrow cannot get in.
    let (ok, output) = run_flight_client(
        &python,
        &[uri.clone(), "--tls-root".into(), arg(&files.ca)],
        &["list_actions"],
    )
    .await;
    assert!(!ok, "a client without a certificate got in:\n{output}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_client_over_unix_with_default_options() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("unix-client");
    let socket = scratch.path("flight.sock");
    let uri = polyflight::Location::for_unix_path(&socket)
        .unwrap()
        .uri()
        .to_string();
    let server = serve_interop(&uri, ListenOptions::default()).await;
    // No client options at all: pyarrow sends the socket path as :authority.
    let (ok, output) =
        run_flight_client(&python, std::slice::from_ref(&uri), TRANSPORT_CHECKS).await;
    server.shutdown().await.unwrap();
    assert!(
        ok,
        "flight_client.py (default options) against {uri}:\n{output}"
    );
    assert!(!socket.exists(), "socket removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_client_identity_over_mutual_tls() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("mtls-identity");
    let pki = LoopbackPki::generate().unwrap();
    let files = pem_files(&pki, &scratch);
    let server = serve_who(
        "grpc+tls://127.0.0.1:0",
        tls_listen(pki.server_config(true).unwrap()),
    )
    .await;
    let uri = format!("grpc+tls://localhost:{}", server.location().port().unwrap());
    let args = [
        uri,
        arg(&files.ca),
        arg(&files.client_cert),
        arg(&files.client_key),
    ];
    let (lines, _, ok) = run_snippet(&python, CALL_PEER, &args).await;
    server.shutdown().await.unwrap();
    assert!(ok, "{lines:?}");
    assert_eq!(
        lines[0],
        format!("tls=CN={LOOPBACK_CLIENT_NAME} [DNS:client.localhost]")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_client_credentials_over_unix() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("unix-credentials");
    let socket = scratch.path("who.sock");
    let uri = polyflight::Location::for_unix_path(&socket)
        .unwrap()
        .uri()
        .to_string();
    let mut options = ListenOptions::default();
    options
        .extensions
        .insert(UnixListenOptions::with_mode(0o600));
    let server = serve_who(&uri, options).await;
    let (lines, pid, ok) = run_snippet(&python, CALL_PEER, std::slice::from_ref(&uri)).await;
    server.shutdown().await.unwrap();
    assert!(ok, "{lines:?}");
    // The Python process runs as this process's user.
    let owner = std::fs::metadata(&scratch.0).unwrap();
    assert_eq!(lines[0], "tls=none");
    assert_eq!(
        lines[1],
        format!("credentials={} {} {pid}", owner.uid(), owner.gid())
    );
}

// ---- our client, pyarrow server ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_server_over_tls() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("tls-server");
    let pki = LoopbackPki::generate().unwrap();
    let files = pem_files(&pki, &scratch);
    let server = PyServer::start(
        &python,
        &[
            "--uri".into(),
            "grpc+tls://127.0.0.1:0".into(),
            "--tls-cert".into(),
            arg(&files.server_cert),
            "--tls-key".into(),
            arg(&files.server_key),
        ],
    )
    .await;
    let uri = format!("grpc+tls://127.0.0.1:{}", server.port());
    let client =
        polyflight::connect_with_options(&uri, tls_connect(pki.client_config(false).unwrap()))
            .await
            .unwrap_or_else(|e| panic!("connecting to {uri}: {e}"));
    exercise_pyarrow_server(&client).await;
    // A client that does not trust the CA is refused, and says why.
    let stranger = LoopbackPki::generate().unwrap();
    let err =
        polyflight::connect_with_options(&uri, tls_connect(stranger.client_config(false).unwrap()))
            .await
            .expect_err("untrusted server certificate");
    assert_eq!(err.code(), FlightCode::Unavailable, "{err}");
    assert!(
        err.message().contains("not issued by a trusted CA"),
        "{err}"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_server_over_mutual_tls() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("mtls-server");
    let pki = LoopbackPki::generate().unwrap();
    let files = pem_files(&pki, &scratch);
    let server = PyServer::start(
        &python,
        &[
            "--uri".into(),
            "grpc+tls://127.0.0.1:0".into(),
            "--tls-cert".into(),
            arg(&files.server_cert),
            "--tls-key".into(),
            arg(&files.server_key),
            "--client-ca".into(),
            arg(&files.ca),
        ],
    )
    .await;
    let uri = format!("grpc+tls://127.0.0.1:{}", server.port());
    let client =
        polyflight::connect_with_options(&uri, tls_connect(pki.client_config(true).unwrap()))
            .await
            .unwrap_or_else(|e| panic!("connecting to {uri}: {e}"));
    exercise_pyarrow_server(&client).await;
    // Without a client certificate: refused at connect time, and the error says why.
    let err =
        polyflight::connect_with_options(&uri, tls_connect(pki.client_config(false).unwrap()))
            .await
            .expect_err("no client certificate");
    assert_eq!(err.code(), FlightCode::Unauthenticated, "{err}");
    assert!(
        err.message().contains("requires a client certificate"),
        "{err}"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_server_over_unix() {
    let Some(python) = peer::python() else { return };
    let scratch = Scratch::new("unix-server");
    let socket = scratch.path("pyarrow.sock");
    let uri = polyflight::Location::for_unix_path(&socket)
        .unwrap()
        .uri()
        .to_string();
    let server = PyServer::start(&python, &["--uri".into(), uri.clone()]).await;
    let client = polyflight::connect(&uri)
        .await
        .unwrap_or_else(|e| panic!("connecting to {uri}: {e}"));
    exercise_pyarrow_server(&client).await;
    drop(client);
    server.stop().await;
}
