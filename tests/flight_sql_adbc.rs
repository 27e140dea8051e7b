//! The Flight SQL example server (`examples/flight_sql_server`) against ADBC's Flight SQL driver,
//! over `grpc` and `grpc+tls`.
//!
//! Each test starts the example as a child process on port 0, reads the URI it prints, and runs
//! `tests/interop/adbc_flightsql.py` against it: the ADBC driver manager's DB-API with the Flight
//! SQL driver (Go's Flight SQL client, not Arrow C++) lists the catalog, reads a table's schema,
//! runs queries and compares their rows with the server's generation rule, and prints `ok NAME`
//! per check and a JSON summary, which the test checks too. Then it closes the server's standard
//! input, which stops the server, and expects a clean exit.
//!
//! The Python environment is the interop venv (`cargo xtask interop-venv` installs the ADBC
//! packages beside pyarrow), found through `POLYFLIGHT_PYTHON` or at `.venv-interop/bin/python`;
//! `POLYFLIGHT_SKIP_INTEROP=1` skips the tests. The example must be built (`cargo test` builds
//! the examples; so does `cargo build --examples`).

mod common;

use common::process::{example, Reaped};
use common::tls::PkiFiles;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Set to `1` to skip the tests (they then pass with a printed notice).
const SKIP_ENV: &str = "POLYFLIGHT_SKIP_INTEROP";
/// The Python interpreter to use (`cargo xtask test` sets it to the interop venv's).
const PYTHON_ENV: &str = "POLYFLIGHT_PYTHON";
/// How long the server may take to print its URI.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the whole script may take (importing pyarrow and loading the Go driver on a loaded
/// 2-core machine is most of it).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the server may take to exit once its standard input is closed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
/// The checks the script runs; its summary says how many ran.
const CHECKS: u64 = 8;

#[tokio::test]
async fn adbc_driver_against_flight_sql_server_over_grpc() {
    let Some(python) = python() else { return };
    let server = SqlServer::start(&[], "grpc://127.0.0.1:0");
    run_script(&python, &server.uri, &[]).await;
    server.stop();
}

#[tokio::test]
async fn adbc_driver_against_flight_sql_server_over_grpc_tls() {
    let Some(python) = python() else { return };
    let pki = PkiFiles::generate();
    let server = SqlServer::start(
        &[
            "--tls-cert".to_string(),
            pki.server_cert().display().to_string(),
            "--tls-key".to_string(),
            pki.server_key().display().to_string(),
        ],
        "grpc+tls://127.0.0.1:0",
    );
    assert!(
        server.uri.starts_with("grpc+tls://127.0.0.1:"),
        "{}",
        server.uri
    );
    let ca = pki.ca().display().to_string();
    run_script(&python, &server.uri, &["--tls-root", &ca]).await;
    server.stop();
}

/// The example server running as a child, with the URI it announced.
struct SqlServer {
    child: Reaped,
    uri: String,
}

impl SqlServer {
    /// Starts `flight_sql_server ARGS… URI` and waits for its `listening on` line.
    fn start(args: &[String], uri: &str) -> SqlServer {
        let mut child = Reaped(
            Command::new(example("flight_sql_server"))
                .arg("--stop-on-eof")
                .args(args)
                .arg(uri)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("flight_sql_server starts"),
        );
        let stdout = child.0.stdout.take().expect("stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(uri) = line.strip_prefix("listening on ") {
                    let _ = tx.send(uri.to_string());
                }
            }
        });
        let uri = rx
            .recv_timeout(STARTUP_TIMEOUT)
            .unwrap_or_else(|_| panic!("flight_sql_server {args:?} {uri} printed no URI"));
        assert!(
            !uri.ends_with(":0"),
            "the announced URI has the bound port: {uri}"
        );
        SqlServer { child, uri }
    }

    /// Closes the server's standard input, which stops it, and expects it to exit cleanly.
    fn stop(mut self) {
        drop(self.child.0.stdin.take());
        let deadline = std::time::Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            match self
                .child
                .0
                .try_wait()
                .expect("waiting for flight_sql_server")
            {
                Some(status) => {
                    assert!(status.success(), "flight_sql_server exited with {status}");
                    return;
                }
                None if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                // Dropping `self.child` kills it.
                None => panic!("flight_sql_server did not exit when its stdin closed"),
            }
        }
    }
}

/// Runs the ADBC script against `uri` and checks its output: an `ok` line per check, then the
/// summary.
async fn run_script(python: &Path, uri: &str, extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join("adbc_flightsql.py");
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .arg(uri)
        .args(extra)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let mut out = child.stdout.take().expect("stdout is piped");
    let mut err = child.stderr.take().expect("stderr is piped");
    let run = async {
        let (read_out, read_err) = tokio::join!(
            out.read_to_string(&mut stdout),
            err.read_to_string(&mut stderr)
        );
        read_out.expect("script stdout");
        read_err.expect("script stderr");
        child.wait().await.expect("script exit status")
    };
    let status = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("adbc_flightsql.py {uri} took over {SCRIPT_TIMEOUT:?}"));
    let report = format!("adbc_flightsql.py {uri}: {status}\n{stdout}\nstderr:\n{stderr}");
    // The harness shows captured output for failing tests only.
    println!("{report}");
    assert!(status.success(), "{report}");

    let lines: Vec<&str> = stdout.lines().collect();
    let (summary, checks) = lines.split_last().expect("the script printed nothing");
    assert!(
        checks.iter().all(|line| line.starts_with("ok ")),
        "{report}"
    );
    assert_eq!(checks.len() as u64, CHECKS, "{report}");
    let summary: serde_json::Value =
        serde_json::from_str(summary).unwrap_or_else(|e| panic!("summary: {e}\n{report}"));
    assert_eq!(summary["checks"], CHECKS, "{report}");
    assert_eq!(summary["uri"], uri, "{report}");
    assert_eq!(
        summary["vendor_name"], "polyflight flight_sql_server",
        "{report}"
    );
    assert_eq!(
        summary["vendor_version"],
        env!("CARGO_PKG_VERSION"),
        "{report}"
    );
    assert_eq!(
        summary["tables"],
        serde_json::json!(["cities", "trips"]),
        "{report}"
    );
    assert_eq!(summary["query_rows"], 50, "{report}");
    assert_eq!(summary["error"], "ProgrammingError", "{report}");
}

/// The interop venv's interpreter, or `None` (with a notice) when the tests are skipped. Panics
/// when there is no interpreter with the ADBC Flight SQL driver: a missing peer must not look
/// like a passing test.
fn python() -> Option<PathBuf> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        // Straight to stderr: the harness shows captured output only for failing tests.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: ADBC Flight SQL interop test ({SKIP_ENV}=1)"
        );
        return None;
    }
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(python) => Some(python.clone()),
        Err(reason) => panic!(
            "{reason}\nRun `cargo xtask interop-venv` to create the venv (or point {PYTHON_ENV} \
             at a Python with adbc-driver-flightsql; {SKIP_ENV}=1 skips these tests)."
        ),
    }
}

fn find_python() -> Result<PathBuf, String> {
    let python = match std::env::var_os(PYTHON_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv-interop")
            .join("bin")
            .join("python"),
    };
    let output = Command::new(&python)
        .args([
            "-c",
            "import adbc_driver_flightsql.dbapi, pyarrow; \
             print(adbc_driver_flightsql.__version__)",
        ])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .map_err(|e| format!("{} does not run: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} cannot import adbc_driver_flightsql: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    eprintln!(
        "adbc interop: {} (adbc-driver-flightsql {})",
        python.display(),
        String::from_utf8_lossy(&output.stdout).trim()
    );
    Ok(python)
}
