//! On one host, data between two processes moves over shared memory, not TCP.
//!
//! Runs the `ucx_echo` example as a server process and a client process with
//! `UCX_LOG_LEVEL=info`, which makes UCX print each endpoint configuration (`ep_cfg[N]: am(...)`,
//! the transports carrying active messages, best first). The first configuration is the
//! connection-establishment one (TCP); the final one is what carries the data. With `UCX_TLS=tcp`
//! the same check must see TCP, which shows the check can tell the two apart.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `target/<profile>/examples/ucx_echo`, built by `cargo test` with this test.
fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    profile_dir.join("examples").join("ucx_echo")
}

/// Kills the child if the test fails before it exits on its own.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Echoes a few 4 MiB bodies between two processes; returns the client's UCX log.
fn echo_between_processes(ucx_tls: Option<&str>) -> String {
    let binary = echo_binary();
    assert!(binary.exists(), "{} not built", binary.display());
    let configure = |cmd: &mut Command| {
        cmd.env("UCX_LOG_LEVEL", "info");
        match ucx_tls {
            Some(tls) => cmd.env("UCX_TLS", tls),
            None => cmd.env_remove("UCX_TLS"),
        };
    };
    let mut server = Command::new(&binary);
    server
        .args(["server", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut server);
    let mut server = Reaped(server.spawn().expect("server starts"));
    let stdout = server.0.stdout.take().expect("server stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    let address = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        let line = lines
            .next()
            .expect("server printed its address")
            .expect("utf-8");
        if let Some(address) = line.strip_prefix("listening on ") {
            break address.trim().to_string();
        }
    };
    // Keep draining the server's output so it never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());

    let mut client = Command::new(&binary);
    client.args(["client", &address, "4194304", "20"]);
    configure(&mut client);
    let output = client.output().expect("client runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "client failed:\n{log}");
    let _ = server.0.wait();
    let _ = drain.join();
    log
}

/// The transports of the endpoint's final configuration, best first.
fn data_lanes(log: &str) -> Vec<String> {
    let last = log
        .lines()
        .rfind(|l| l.contains("ep_cfg["))
        .unwrap_or_else(|| panic!("no endpoint configuration in the UCX log:\n{log}"));
    let am = last
        .split("am(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no am lanes in {last:?}"));
    am.split_whitespace().map(str::to_string).collect()
}

fn is_shared_memory(lane: &str) -> bool {
    ["posix/", "sysv/", "cma/", "xpmem/", "knem/"]
        .iter()
        .any(|shm| lane.starts_with(shm))
}

#[test]
fn data_moves_over_shared_memory_between_processes_on_one_host() {
    let lanes = data_lanes(&echo_between_processes(None));
    assert!(
        lanes.first().is_some_and(|l| is_shared_memory(l)),
        "the first active-message lane should be shared memory, got {lanes:?}"
    );
}

#[test]
fn the_check_sees_tcp_when_only_tcp_is_allowed() {
    let lanes = data_lanes(&echo_between_processes(Some("tcp")));
    assert!(
        lanes.iter().all(|l| l.starts_with("tcp/")),
        "with UCX_TLS=tcp every lane should be tcp, got {lanes:?}"
    );
}
