//! The integration matrix: our server binary against our client binary, for every scenario and
//! every data set of the JSON round trip, over every transport. The crate's tests and
//! `cargo xtask integration` (through the `flight-test-integration-matrix` binary) both run it.
//!
//! Each scenario gets a server process of its own; the JSON round trip shares one server per
//! transport across all data files (each file is stored under its own path). Servers are
//! stopped with SIGTERM after their cases and waited for; their Unix sockets and certificates
//! live in a directory the caller owns.

use crate::scenarios;
use polyflight::transports::LoopbackPki;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take to print its listening lines.
const STARTUP: Duration = Duration::from_secs(30);
/// How long one client run may take.
const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

/// A program to run with leading arguments (a binary, or an interpreter and its script).
#[derive(Debug, Clone)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Arguments that come before the case's flags.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Program {
    /// A binary with no leading arguments.
    pub fn binary(path: impl Into<PathBuf>) -> Program {
        Program {
            path: path.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.path);
        command.args(&self.args).args(args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn display(&self) -> String {
        std::iter::once(self.path.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Why one side of an implementation (its server or its client) cannot play a case, if it
/// cannot.
pub type Limits = fn(&Case) -> Option<String>;

/// One implementation of the integration binaries: its server, its client, and what it can play.
#[derive(Debug, Clone)]
pub struct Implementation {
    /// Its name in the table.
    pub name: &'static str,
    /// `flight-test-integration-server` or its equivalent.
    pub server: Program,
    /// `flight-test-integration-client` or its equivalent.
    pub client: Program,
    /// The transports it speaks.
    pub transports: &'static [Transport],
    /// The cases its server cannot serve, with the reason; they are reported as skipped.
    pub server_limits: Limits,
    /// The cases its client cannot play, with the reason; they are reported as skipped.
    pub client_limits: Limits,
}

impl Implementation {
    /// polyflight's two binaries.
    pub fn polyflight(server: impl Into<PathBuf>, client: impl Into<PathBuf>) -> Implementation {
        Implementation {
            name: "polyflight",
            server: Program::binary(server),
            client: Program::binary(client),
            transports: &Transport::ALL,
            server_limits: |_| None,
            client_limits: |_| None,
        }
    }

    /// Whether it speaks `transport`.
    pub fn speaks(&self, transport: Transport) -> bool {
        self.transports.contains(&transport)
    }
}

/// A transport of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `grpc+tcp`, with Arrow's own command lines (`-port`, `-host`).
    Grpc,
    /// `grpc+tls`, certificates minted by the server.
    GrpcTls,
    /// `grpc+unix`, a socket in the work directory.
    GrpcUnix,
    /// `ucx`.
    Ucx,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Transport; 4] = [
        Transport::Grpc,
        Transport::GrpcTls,
        Transport::GrpcUnix,
        Transport::Ucx,
    ];

    /// The scheme name.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::GrpcTls => "grpc+tls",
            Transport::GrpcUnix => "grpc+unix",
            Transport::Ucx => "ucx",
        }
    }

    /// Parses a scheme name.
    pub fn parse(name: &str) -> Option<Transport> {
        Transport::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One case: a named scenario or the JSON round trip of one file.
#[derive(Debug, Clone)]
pub enum Case {
    /// `-scenario NAME`.
    Scenario(&'static str),
    /// `-path FILE`.
    Json(PathBuf),
}

impl Case {
    /// How the case is named in the table.
    pub fn label(&self) -> String {
        match self {
            Case::Scenario(name) => name.to_string(),
            Case::Json(path) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string()),
        }
    }
}

/// What one case did.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The implementation that served.
    pub server: &'static str,
    /// The implementation that was the client.
    pub client: &'static str,
    /// The transport.
    pub transport: Transport,
    /// The case.
    pub case: String,
    /// Whether the client exited 0 (false when skipped).
    pub passed: bool,
    /// Why the case was not run, when one side cannot play it.
    pub skipped: Option<String>,
    /// The client's last line of output, or why the case could not run.
    pub detail: String,
}

impl CaseResult {
    /// `server × client`, as the table's first column names the pair.
    pub fn pair(&self) -> String {
        format!("{} × {}", self.server, self.client)
    }
}

/// A running server process; dropping it stops it (SIGTERM, then kill after a grace period).
pub struct ServerProcess {
    child: Child,
    /// The location the server printed (`Server location: …`).
    pub location: String,
    /// The port of its listening line.
    pub port: u16,
}

impl ServerProcess {
    /// Starts the server binary with `args` and waits for its two listening lines.
    pub fn start(server: &Program, args: &[String]) -> Result<ServerProcess, String> {
        let mut child = server
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout was not captured".to_string());
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads on until the server exits, so it never blocks writing to stdout.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once nobody listens any more, lines are simply dropped.
                let _ = tx.send(line);
            }
        });
        let mut process = ServerProcess {
            child,
            location: String::new(),
            port: 0,
        };
        let deadline = Instant::now() + STARTUP;
        let mut lines = Vec::new();
        while lines.len() < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => {
                    return Err(format!(
                        "the server printed {lines:?} and then nothing within {STARTUP:?}"
                    ))
                }
            }
        }
        let port = lines[0]
            .strip_prefix("Server listening on localhost:")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("unexpected first line {:?}", lines[0]))?;
        let location = lines[1]
            .strip_prefix("Server location: ")
            .ok_or_else(|| format!("unexpected second line {:?}", lines[1]))?
            .trim()
            .to_string();
        process.port = port;
        process.location = location;
        Ok(process)
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited within five seconds.
    /// Returns whether it exited cleanly on SIGTERM.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    fn terminate(&mut self) -> bool {
        if let Ok(Some(_)) = self.child.try_wait() {
            return false;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// Runs the client binary with `args`, killing it after [`CLIENT_DEADLINE`]; returns whether it
/// exited 0 and its last line of output.
pub fn run_client(client: &Program, args: &[String]) -> (bool, String) {
    let mut child = match client
        .command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return (false, format!("cannot start {}: {e}", client.display())),
    };
    let deadline = Instant::now() + CLIENT_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    false,
                    format!("the client ran longer than {CLIENT_DEADLINE:?}"),
                );
            }
        }
    }
    match child.wait_with_output() {
        Ok(output) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            let last = text.lines().last().unwrap_or_default().to_string();
            (output.status.success(), last)
        }
        Err(e) => (false, format!("cannot read the client's output: {e}")),
    }
}

/// The certificate, key and CA files of `grpc+tls` cases, minted once into `dir`.
struct TlsFiles {
    cert: String,
    key: String,
    ca: String,
}

fn tls_files(dir: &Path) -> Result<TlsFiles, String> {
    let files = TlsFiles {
        cert: dir.join("server.pem").display().to_string(),
        key: dir.join("server.key").display().to_string(),
        ca: dir.join("ca.pem").display().to_string(),
    };
    if Path::new(&files.ca).exists() {
        return Ok(files);
    }
    let pki = LoopbackPki::generate().map_err(|e| format!("minting certificates: {e}"))?;
    for (path, pem) in [
        (&files.cert, &pki.server_cert_pem),
        (&files.key, &pki.server_key_pem),
        (&files.ca, &pki.ca_pem),
    ] {
        std::fs::write(path, pem).map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(files)
}

/// The server and client flags of `transport`, with its files in `dir`.
fn transport_args(transport: Transport, dir: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    Ok(match transport {
        Transport::Grpc => (
            vec!["-port=0".into()],
            vec!["-host".into(), "localhost".into()],
        ),
        Transport::GrpcTls => {
            let tls = tls_files(dir)?;
            (
                vec![
                    "-uri".into(),
                    "grpc+tls://127.0.0.1:0".into(),
                    "-tls_cert".into(),
                    tls.cert,
                    "-tls_key".into(),
                    tls.key,
                ],
                vec!["-tls_root_ca".into(), tls.ca],
            )
        }
        Transport::GrpcUnix => (
            vec![
                "-uri".into(),
                format!("grpc+unix://{}", dir.join("flight.sock").display()),
            ],
            Vec::new(),
        ),
        Transport::Ucx => (vec!["-uri".into(), "ucx://127.0.0.1:0".into()], Vec::new()),
    })
}

fn client_args(transport: Transport, base: &[String], server: &ServerProcess) -> Vec<String> {
    let mut args = base.to_vec();
    if transport == Transport::Grpc {
        args.push(format!("-port={}", server.port));
    } else {
        args.push("-uri".into());
        args.push(server.location.clone());
    }
    args
}

/// Runs `cases` with `server`'s server and `client`'s client over `transport`, with the
/// transport's files (socket, certificates) in `dir`. Both must speak the transport.
pub fn run_pair(
    server: &Implementation,
    client: &Implementation,
    transport: Transport,
    cases: &[Case],
    dir: &Path,
) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(cases.len());
    let record = |results: &mut Vec<CaseResult>, case: &Case, passed: bool, detail: String| {
        results.push(CaseResult {
            server: server.name,
            client: client.name,
            transport,
            case: case.label(),
            passed,
            skipped: None,
            detail,
        })
    };
    let (server_base, client_base) = match transport_args(transport, dir) {
        Ok(args) => args,
        Err(e) => {
            for case in cases {
                record(&mut results, case, false, e.clone());
            }
            return results;
        }
    };
    let mut playable = Vec::with_capacity(cases.len());
    for case in cases {
        let limit = (server.server_limits)(case).or_else(|| (client.client_limits)(case));
        match limit {
            Some(why) => results.push(CaseResult {
                server: server.name,
                client: client.name,
                transport,
                case: case.label(),
                passed: false,
                skipped: Some(why),
                detail: String::new(),
            }),
            None => playable.push(case),
        }
    }
    let (scenario_cases, json_cases): (Vec<&Case>, Vec<&Case>) = playable
        .into_iter()
        .partition(|c| matches!(c, Case::Scenario(_)));
    for case in scenario_cases {
        let Case::Scenario(name) = case else { continue };
        let mut args = server_base.clone();
        args.extend(["-scenario".to_string(), name.to_string()]);
        let process = match ServerProcess::start(&server.server, &args) {
            Ok(process) => process,
            Err(e) => {
                record(&mut results, case, false, format!("server: {e}"));
                continue;
            }
        };
        let mut args = client_args(transport, &client_base, &process);
        args.extend(["-scenario".to_string(), name.to_string()]);
        let (passed, detail) = run_client(&client.client, &args);
        let clean = process.stop();
        let detail = if clean {
            detail
        } else {
            format!("{detail} (the server did not exit cleanly on SIGTERM)")
        };
        record(&mut results, case, passed && clean, detail);
    }
    if !json_cases.is_empty() {
        match ServerProcess::start(&server.server, &server_base) {
            Ok(process) => {
                let first = results.len();
                for case in &json_cases {
                    let Case::Json(path) = case else { continue };
                    let mut args = client_args(transport, &client_base, &process);
                    args.extend(["-path".to_string(), path.display().to_string()]);
                    let (passed, detail) = run_client(&client.client, &args);
                    record(&mut results, case, passed, detail);
                }
                if !process.stop() {
                    for result in &mut results[first..] {
                        result.passed = false;
                        result
                            .detail
                            .push_str(" (the server did not exit cleanly on SIGTERM)");
                    }
                }
            }
            Err(e) => {
                for case in &json_cases {
                    record(&mut results, case, false, format!("server: {e}"));
                }
            }
        }
    }
    results
}

/// Cases known to fail today, with the reason; the matrix reports them apart, and a known gap
/// that starts passing is reported too, so this list is kept true.
pub const KNOWN_GAPS: &[(&str, &str)] = &[];

/// The reason `case` is a known gap, if it is one.
pub fn known_gap(case: &str) -> Option<&'static str> {
    KNOWN_GAPS
        .iter()
        .find(|(name, _)| *name == case)
        .map(|(_, why)| *why)
}

/// What the results say against [`KNOWN_GAPS`]: unexpected failures, and known gaps that
/// passed. Both empty means the matrix is as documented.
pub fn surprises(results: &[CaseResult]) -> (Vec<&CaseResult>, Vec<&CaseResult>) {
    let failed = results
        .iter()
        .filter(|r| !r.passed && r.skipped.is_none() && known_gap(&r.case).is_none())
        .collect();
    let fixed = results
        .iter()
        .filter(|r| r.passed && known_gap(&r.case).is_some())
        .collect();
    (failed, fixed)
}

/// Every named scenario as a case.
pub fn scenario_cases() -> Vec<Case> {
    scenarios::names().into_iter().map(Case::Scenario).collect()
}

/// A Markdown table of `results`: one row per (server × client, case), one column per
/// transport.
pub fn table(results: &[CaseResult], transports: &[Transport]) -> String {
    let mut rows: Vec<(String, &str)> = Vec::new();
    for r in results {
        let row = (r.pair(), r.case.as_str());
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let mut out = String::from("| server × client | case |");
    for t in transports {
        out.push_str(&format!(" {t} |"));
    }
    out.push_str("\n|---|---|");
    for _ in transports {
        out.push_str("---|");
    }
    out.push('\n');
    for (pair, case) in rows {
        out.push_str(&format!("| {pair} | {case} |"));
        for t in transports {
            let cell = results
                .iter()
                .find(|r| r.transport == *t && r.case == case && r.pair() == pair)
                .map(|r| match (r.passed, &r.skipped, known_gap(&r.case)) {
                    (_, Some(_), _) => "skip",
                    (true, None, _) => "pass",
                    (false, None, Some(_)) => "FAIL (known)",
                    (false, None, None) => "FAIL",
                })
                .unwrap_or("–");
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}
