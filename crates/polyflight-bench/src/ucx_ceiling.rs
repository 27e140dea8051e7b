//! The UCX the `ucx` row runs on, measured without polyflight: UCX's own `ucx_perftest` between
//! two processes on this machine, so the table shows how far the `ucx` row is from its ceiling.
//!
//! Three rows, each one stream (one `ucx_perftest` client) of messages of each batch size:
//! - `raw ucx am`: active-message bandwidth (`-t ucp_am_bw`), the operation polyflight's frames
//!   use;
//! - `raw ucx am, peer errors`: the same with error handling on the endpoints (`-e`), as
//!   polyflight's endpoints are — the `ucx` row's ceiling;
//! - `raw ucx put`: RMA put bandwidth (`-t ucp_put_bw`), what one-sided zero-copy can reach.
//!
//! Both processes run with the UCX settings polyflight applies to its own contexts
//! ([`polyflight::transports::ucx_context_defaults`]) unless the environment sets them. The
//! program is `$POLYFLIGHT_UCX_PERFTEST`, else the `ucx_perftest` that building `ucx1-sys` leaves
//! beside the executable (`target/<profile>/build/ucx1-sys-*/out/bin/`); without one the rows
//! are skipped and say so. `ucx_perftest` reports MiB/s; the rows give MB/s (10^6) like every
//! other row. They report no CPU figures: each run is two fresh processes whose UCX start-up
//! would outweigh the transfer.

use crate::BenchError;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable naming a `ucx_perftest` to use.
pub const PERFTEST_ENV: &str = "POLYFLIGHT_UCX_PERFTEST";

/// How long one measurement may take.
const DEADLINE: Duration = Duration::from_secs(120);

/// One raw UCX measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UcxTest {
    /// `ucp_am_bw`.
    ActiveMessages,
    /// `ucp_am_bw -e`.
    ActiveMessagesPeerErrors,
    /// `ucp_put_bw`.
    Put,
}

impl UcxTest {
    /// Every raw UCX row, in table order.
    pub const ALL: [UcxTest; 3] = [
        UcxTest::ActiveMessages,
        UcxTest::ActiveMessagesPeerErrors,
        UcxTest::Put,
    ];

    /// The row's name.
    pub fn row_name(self) -> &'static str {
        match self {
            UcxTest::ActiveMessages => "raw ucx am",
            UcxTest::ActiveMessagesPeerErrors => UCX_CEILING_ROW,
            UcxTest::Put => "raw ucx put",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            UcxTest::ActiveMessages => &["-t", "ucp_am_bw"],
            UcxTest::ActiveMessagesPeerErrors => &["-t", "ucp_am_bw", "-e"],
            UcxTest::Put => &["-t", "ucp_put_bw"],
        }
    }
}

/// The row the `ucx` transport row is compared with.
pub const UCX_CEILING_ROW: &str = "raw ucx am, peer errors";

/// The `ucx_perftest` to run, or why there is none.
pub fn find_perftest() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(PERFTEST_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{PERFTEST_ENV}={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    // target/<profile>/polyflight, or target/<profile>/deps/<test> for tests.
    let mut dirs: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(Path::to_path_buf)
        .collect();
    dirs.dedup();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir.join("build")) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ucx1-sys-"))
            .map(|e| e.path().join("out/bin/ucx_perftest"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(path) = found.pop() {
            return Ok(path);
        }
    }
    Err(format!(
        "no ucx_perftest beside {} (set {PERFTEST_ENV})",
        exe.display()
    ))
}

/// A measurement: bytes moved and the time they took.
#[derive(Debug, Clone, Copy)]
pub struct RawRun {
    /// Bytes moved (messages × size).
    pub bytes: u64,
    /// Time the messages took, from `ucx_perftest`'s overall rate.
    pub elapsed: Duration,
}

/// Runs `test` with `message`-byte messages, about `bytes` in all, between two `ucx_perftest`
/// processes on loopback.
pub fn measure(
    perftest: &Path,
    test: UcxTest,
    message: usize,
    bytes: u64,
) -> Result<RawRun, BenchError> {
    let iterations = (bytes / message.max(1) as u64).max(100);
    let port = free_port()?;
    let server = Reaped(spawn(perftest, &["-p", &port.to_string()], Stdio::null())?);
    // The server opens its port once its UCX context is up; the client retries meanwhile.
    let started = Instant::now();
    let client_out = loop {
        let mut client = Reaped(spawn(
            perftest,
            &[
                &["127.0.0.1", "-p", &port.to_string()][..],
                test.args(),
                &[
                    "-s",
                    &message.to_string(),
                    "-n",
                    &iterations.to_string(),
                    "-w",
                    "10",
                    "-f",
                ],
            ]
            .concat(),
            Stdio::piped(),
        )?);
        let status = wait(&mut client.0, started)?;
        let mut out = String::new();
        if let Some(mut pipe) = client.0.stdout.take() {
            let _ = pipe.read_to_string(&mut out);
        }
        if status.success() {
            break out;
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(BenchError::Other(format!(
                "ucx_perftest {} failed ({status}): {}",
                test.row_name(),
                out.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut server = server;
    wait(&mut server.0, started)?;
    let mib_per_s = parse_final_bandwidth(&client_out).ok_or_else(|| {
        BenchError::Other(format!(
            "no bandwidth in ucx_perftest's output: {}",
            client_out.trim()
        ))
    })?;
    let moved = iterations * message as u64;
    let seconds = moved as f64 / (mib_per_s * 1_048_576.0);
    Ok(RawRun {
        bytes: moved,
        elapsed: Duration::from_secs_f64(seconds.max(1e-9)),
    })
}

/// Kills the child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(perftest: &Path, args: &[&str], stdout: Stdio) -> Result<Child, BenchError> {
    let mut command = Command::new(perftest);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null());
    #[cfg(target_os = "linux")]
    for (name, value) in polyflight::transports::ucx_context_defaults() {
        command.env(name, value);
    }
    Ok(command.spawn()?)
}

fn wait(child: &mut Child, started: Instant) -> Result<std::process::ExitStatus, BenchError> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > DEADLINE {
            return Err(BenchError::Other(format!(
                "ucx_perftest did not finish within {DEADLINE:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// The overall bandwidth (MiB/s) of `ucx_perftest -f`'s final line: eight numbers — iterations,
/// latency percentile, average and overall, bandwidth average and overall, message rate average
/// and overall.
fn parse_final_bandwidth(output: &str) -> Option<f64> {
    output.lines().rev().find_map(|line| {
        let numbers: Vec<f64> = line
            .split_whitespace()
            .map(str::parse::<f64>)
            .collect::<Result<_, _>>()
            .ok()?;
        (numbers.len() == 8)
            .then(|| numbers[5])
            .filter(|bw| *bw > 0.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_line_gives_the_bandwidth() {
        let output = "\
+--------------+--------------+----------+---------+---------+----------+----------+-----------+-----------+
|     Test     | # iterations | 50.0%ile | average | overall |  average |  overall |  average  |  overall  |
+--------------+--------------+----------+---------+---------+----------+----------+-----------+-----------+
                         500      0.060   256.428   256.428     3899.73    3899.73        3900        3900
| Message size: 1048576                                                                                    |
";
        assert_eq!(parse_final_bandwidth(output), Some(3899.73));
        assert_eq!(parse_final_bandwidth("nothing here\n1 2 3\n"), None);
    }
}
