//! A network partition during a stream, between two network namespaces joined by a veth pair:
//! the server in one, the client in the other, both separate processes. Mid-DoPut the link goes
//! down; the client's progress timeout must fail the call and the client must exit (nothing
//! hangs), and the server's handler of the call must end too, once the server's keepalive
//! notices the silent peer (HTTP/2 pings on grpc; on ucx UCX's keepalive and TCP's, or TCP's
//! retransmission limit when the peer left data unacknowledged, all set short here), on grpc
//! and ucx. UCX runs with `UCX_TLS=tcp` here: namespaces do not separate shared memory,
//! over which two processes on one host would go on talking. Needs root and iproute2
//! (`ip netns`); without them it says so and checks nothing.

mod common;

use common::process::{example, Reaped};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Two namespaces and the veth pair between them; removed when dropped.
struct Net {
    server_ns: String,
    client_ns: String,
    client_link: String,
    server_ip: String,
}

impl Net {
    fn create(tag: u32) -> Option<Net> {
        let id = std::process::id() % 10_000;
        let net = Net {
            server_ns: format!("pfs{id}{tag}"),
            client_ns: format!("pfc{id}{tag}"),
            client_link: format!("pfc{id}{tag}"),
            server_ip: format!("10.231.{tag}.1"),
        };
        let server_link = format!("pfs{id}{tag}");
        let client_ip = format!("10.231.{tag}.2/24");
        let ok = ip(&["netns", "add", &net.server_ns])
            && ip(&["netns", "add", &net.client_ns])
            && ip(&[
                "link",
                "add",
                &server_link,
                "type",
                "veth",
                "peer",
                "name",
                &net.client_link,
            ])
            && ip(&["link", "set", &server_link, "netns", &net.server_ns])
            && ip(&["link", "set", &net.client_link, "netns", &net.client_ns])
            && ip(&[
                "-n",
                &net.server_ns,
                "addr",
                "add",
                &format!("{}/24", net.server_ip),
                "dev",
                &server_link,
            ])
            && ip(&[
                "-n",
                &net.client_ns,
                "addr",
                "add",
                &client_ip,
                "dev",
                &net.client_link,
            ])
            && ip(&["-n", &net.server_ns, "link", "set", &server_link, "up"])
            && ip(&["-n", &net.client_ns, "link", "set", &net.client_link, "up"])
            && ip(&["-n", &net.server_ns, "link", "set", "lo", "up"])
            && ip(&["-n", &net.client_ns, "link", "set", "lo", "up"]);
        if ok {
            Some(net)
        } else {
            drop(net);
            None
        }
    }

    /// Makes TCP in the server's namespace give up on an unacknowledged segment after 4
    /// retransmissions (about 6 s) instead of Linux's 15 (about 15 min). UCX's keepalive over
    /// TCP only queues a message behind the data the peer never acknowledged, and TCP keepalive
    /// probes only an idle connection, so while the server's last answer is still unacknowledged
    /// it is TCP's retransmission limit that fails the endpoint.
    fn shorten_tcp_retries(&self) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.server_ns])
            .args(["sysctl", "-q", "-w", "net.ipv4.tcp_retries2=4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn spawn(&self, ns: &str, program: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(example(program))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ip netns exec")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // deleting a namespace deletes the veth end in it, and with it the pair
        ip(&["netns", "del", &self.server_ns]);
        ip(&["netns", "del", &self.client_ns]);
    }
}

/// The stdout lines of `child`, as they come, each with when it came.
fn lines_of(child: &mut Child) -> Receiver<(Instant, String)> {
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line from `lines` that starts with `prefix`, within `limit`, and when it came.
fn next_line(
    lines: &Receiver<(Instant, String)>,
    prefix: &str,
    limit: Duration,
) -> Option<(Instant, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok((at, line)) if line.starts_with(prefix) => return Some((at, line)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The first stdout line of `child` that starts with `prefix`, within 30 s.
fn line_of(child: &mut Child, prefix: &str) -> String {
    next_line(&lines_of(child), prefix, Duration::from_secs(30))
        .expect("the expected line")
        .1
}

/// How soon the server's keepalive is to notice a silent peer: HTTP/2 pings after 1 s of
/// silence, the connection closed when one goes unanswered for 1 s; UCX's keepalive every
/// second over TCP, whose own keepalive probes (after 1 s idle, every second, three of them)
/// notice an unreachable peer.
const SERVER_KEEPALIVE_MS: &str = "1000";
const UCX_SERVER_KEEPALIVE: &[(&str, &str)] = &[
    ("UCX_KEEPALIVE_INTERVAL", "1s"),
    ("UCX_TCP_KEEPIDLE", "1s"),
    ("UCX_TCP_KEEPINTVL", "1s"),
    ("UCX_TCP_KEEPCNT", "3"),
];

/// The longest the server's handler may run on after the partition.
const SERVER_NOTICES_WITHIN: Duration = Duration::from_secs(15);

fn can_make_namespaces() -> bool {
    let probe = format!("pfprobe{}", std::process::id() % 100_000);
    let ok = ip(&["netns", "add", &probe]);
    if ok {
        ip(&["netns", "del", &probe]);
    }
    ok
}

#[test]
fn a_partition_mid_stream_fails_the_call_by_its_progress_timeout_and_ends_the_handler() {
    if !can_make_namespaces() {
        eprintln!("skipped: making network namespaces needs root and iproute2 (`ip netns`)");
        return;
    }
    for (tag, scheme) in [(1u32, "grpc"), (2, "ucx")] {
        let net = Net::create(tag).expect("namespaces and veth");
        let listen = format!("{scheme}://{}:0", net.server_ip);
        let tcp_only: &[(&str, &str)] = if scheme == "ucx" {
            &[("UCX_TLS", "tcp")]
        } else {
            &[]
        };
        let server_env = if scheme == "ucx" {
            assert!(
                net.shorten_tcp_retries(),
                "sysctl in the server's namespace"
            );
            [tcp_only, UCX_SERVER_KEEPALIVE].concat()
        } else {
            Vec::new()
        };
        let mut server = Reaped(net.spawn(
            &net.server_ns,
            "memory_server",
            &[
                "--report-calls",
                "--keepalive-ms",
                SERVER_KEEPALIVE_MS,
                &listen,
            ],
            &server_env,
        ));
        let server_lines = lines_of(&mut server.0);
        let (_, location) = next_line(&server_lines, "listening on ", Duration::from_secs(30))
            .expect("the server's location");
        let uri = location.trim_start_matches("listening on ").to_string();

        let mut client = Reaped(net.spawn(
            &net.client_ns,
            "fault_client",
            &["put", &uri, "across"],
            &[tcp_only, &[("FAULT_PROGRESS_TIMEOUT_MS", "2000")]].concat(),
        ));
        line_of(&mut client.0, "started");
        assert!(
            ip(&[
                "-n",
                &net.client_ns,
                "link",
                "set",
                &net.client_link,
                "down"
            ]),
            "link down"
        );
        let cut = Instant::now();
        let status = loop {
            if let Some(status) = client.0.try_wait().expect("client status") {
                break status;
            }
            assert!(
                cut.elapsed() < Duration::from_secs(20),
                "{scheme}: the client still runs 20 s after the partition"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut err) = client.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        assert!(
            !status.success(),
            "{scheme}: the upload cannot have succeeded"
        );
        eprintln!(
            "{scheme}: client ended {:?} after the partition: {}",
            cut.elapsed(),
            stderr.trim()
        );
        assert!(
            stderr.contains("TIMED_OUT") || stderr.to_lowercase().contains("timed out"),
            "{scheme}: the progress timeout ended the call: {stderr}"
        );
        // the server's side: its DoPut handler ends once its keepalive notices the silent peer
        let left = SERVER_NOTICES_WITHIN.saturating_sub(cut.elapsed());
        let (at, ended) = next_line(&server_lines, "ended DoPut", left).unwrap_or_else(|| {
            panic!(
                "{scheme}: the server's DoPut handler still runs {SERVER_NOTICES_WITHIN:?} \
                 after the partition"
            )
        });
        eprintln!(
            "{scheme}: server's handler ended {:?} after the partition: {ended}",
            at.saturating_duration_since(cut)
        );
        assert!(
            !ended.ends_with(": OK"),
            "{scheme}: the cut upload cannot have ended cleanly: {ended}"
        );
        drop(client);
        drop(server);
        drop(net);
    }
}
