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

/// A pyarrow Flight client running one perf workload (`python/perf_client.py`).
pub(crate) const PYARROW_PERF_CLIENT: &str = include_str!("../python/perf_client.py");

/// How long one Python workload may take.
const PYTHON_WORKLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// A script written to a temporary file for Python to run; removed when dropped.
pub(crate) struct PythonScript {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl PythonScript {
    pub(crate) fn write(text: &str) -> Result<PythonScript, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("polyflight-bench-")
            .tempdir()?;
        let path = dir.path().join("script.py");
        std::fs::write(&path, text)?;
        Ok(PythonScript { path, _dir: dir })
    }
}

/// Runs `script` (the pyarrow perf client) for one workload against `uri` and measures it: its
/// own figures from the JSON line it prints, and the CPU time of the watched server process
/// ([`crate::cpu::watch_server_process`]) around it.
pub(crate) fn run_python_workload(
    python: &std::path::Path,
    script: &PythonScript,
    uri: &str,
    workload: &str,
    command: &crate::command::PerfCommand,
    streams: u32,
) -> Result<crate::workload::Measured, BenchError> {
    let hex: String = command
        .encode_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let before = crate::cpu::CpuSnapshot::take(crate::cpu::current_tid());
    let mut child = Command::new(python)
        .arg(&script.path)
        .args([uri, workload, &hex, &streams.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| BenchError::Config(format!("cannot run {}: {err}", python.display())))?;
    let deadline = Instant::now() + PYTHON_WORKLOAD_TIMEOUT;
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Protocol(format!(
                "pyarrow's {workload} ran over {PYTHON_WORKLOAD_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let after = crate::cpu::CpuSnapshot::take(crate::cpu::current_tid());
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let last = said.lines().last().unwrap_or("it said nothing").trim();
        return Err(BenchError::Protocol(format!(
            "pyarrow's {workload}: {last}"
        )));
    }
    let figures: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| {
            BenchError::Protocol(format!("pyarrow's {workload} printed no figures: {stdout}"))
        })?;
    let number = |key: &str| figures.get(key).and_then(serde_json::Value::as_f64);
    let count = |key: &str| figures.get(key).and_then(serde_json::Value::as_u64);
    let (Some(seconds), Some(client_s)) = (number("seconds"), number("cpu_s")) else {
        return Err(BenchError::Protocol(format!(
            "pyarrow's {workload}: no seconds or cpu_s in {figures}"
        )));
    };
    let server_s = before.until(&after).server_s;
    Ok(crate::workload::Measured {
        transfer: crate::workload::Transfer {
            sent_bytes: count("sent_bytes").unwrap_or(0),
            received_bytes: count("received_bytes").unwrap_or(0),
            messages: count("messages").unwrap_or(0),
            rows: 0,
        },
        elapsed: Duration::try_from_secs_f64(seconds).unwrap_or_default(),
        cpu: crate::cpu::CpuUsage {
            process_s: client_s + server_s.unwrap_or(0.0),
            client_s: Some(client_s),
            server_s,
            other_s: Some(0.0),
        },
    })
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
