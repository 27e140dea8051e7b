//! A cluster across hosts: five network namespaces joined by a bridge — a coordinator, two data
//! nodes and a client on hosts of their own, and the switch — every program a separate process
//! in its own namespace, over `ucx://` and `grpc://`.
//!
//! - The nodes serve directories with one part each of a table (`polyflight serve DIR`); the
//!   client uploads a file to a node across the network (`polyflight put`).
//! - The coordinator (`polyflight serve --service coordinator --node …`) answers GetFlightInfo
//!   with the endpoints of both nodes; the client reads them all in parallel from the nodes
//!   (`polyflight get … -o`) and the values are compared with what was written.
//! - Arrow's integration scenarios (the conformance subset that runs as separate server and
//!   client programs) pass with the server on a node and the client on the client's host.
//! - `polyflight bench --target COORDINATOR --workloads doget` measures a read of both nodes'
//!   perf flights through the coordinator and prints the cluster's figures.
//!
//! UCX runs over TCP only (`UCX_TLS=tcp`, on the hosts' own interface): namespaces do not
//! separate shared memory, over which processes on one machine would otherwise talk, so that
//! nothing would cross the network. Needs root and iproute2 (`ip netns`); without them the test
//! says so and checks nothing. `POLYFLIGHT_CLUSTER_MB` sets the size of the bench read per node
//! (default 16 MB) for figures worth reading (docs/ucx.md, "Across hosts").

use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_polyflight");

/// How long one client command may run.
const DEADLINE: Duration = Duration::from_secs(120);

/// UCX between namespaces: TCP on the host's interface, nothing through shared memory.
const UCX_ENV: &[(&str, &str)] = &[("UCX_TLS", "tcp"), ("UCX_NET_DEVICES", "eth0")];

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn can_make_namespaces() -> bool {
    let probe = format!("pfprobe{}", std::process::id() % 100_000);
    let ok = ip(&["netns", "add", &probe]);
    if ok {
        ip(&["netns", "del", &probe]);
    }
    ok
}

/// A host: a namespace with one interface, `eth0`, on the cluster's bridge.
struct Host {
    ns: String,
    ip: String,
}

/// The switch namespace with its bridge, and the hosts on it; all removed when dropped.
struct Cluster {
    switch: String,
    hosts: Vec<Host>,
}

impl Cluster {
    fn create(names: &[&str]) -> Cluster {
        let id = std::process::id() % 10_000;
        let switch = format!("pfsw{id}");
        let mut cluster = Cluster {
            switch: switch.clone(),
            hosts: Vec::new(),
        };
        assert!(
            ip(&["netns", "add", &switch])
                && ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])
                && ip(&["-n", &switch, "link", "set", "br0", "up"]),
            "the switch namespace and its bridge"
        );
        for (i, name) in names.iter().enumerate() {
            let ns = format!("pf{name}{id}");
            let outside = format!("pfv{id}h{i}");
            let inside = format!("pfv{id}e{i}");
            let host_ip = format!("10.232.0.{}", 10 + i);
            let ok = ip(&["netns", "add", &ns])
                && ip(&[
                    "link", "add", &inside, "type", "veth", "peer", "name", &outside,
                ])
                && ip(&["link", "set", &inside, "netns", &ns])
                && ip(&["link", "set", &outside, "netns", &switch])
                && ip(&["-n", &ns, "link", "set", &inside, "name", "eth0"])
                && ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{host_ip}/24"),
                    "dev",
                    "eth0",
                ])
                && ip(&["-n", &ns, "link", "set", "eth0", "up"])
                && ip(&["-n", &ns, "link", "set", "lo", "up"])
                && ip(&["-n", &switch, "link", "set", &outside, "master", "br0"])
                && ip(&["-n", &switch, "link", "set", &outside, "up"]);
            cluster.hosts.push(Host { ns, ip: host_ip });
            assert!(ok, "host {name} on the bridge");
        }
        cluster
    }

    fn host(&self, index: usize) -> &Host {
        &self.hosts[index]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for host in &self.hosts {
            ip(&["netns", "del", &host.ns]);
        }
        ip(&["netns", "del", &self.switch]);
    }
}

fn in_host(host: &Host, program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &host.ns])
        .arg(program)
        .args(args)
        .envs(UCX_ENV.iter().copied())
        .env("NO_COLOR", "1");
    command
}

/// A server process, killed when dropped.
struct Served {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(mut command: Command) -> Served {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ip netns exec");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served { child, lines }
    }

    /// The rest of the first line that starts with `prefix`, within 60 s.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no {prefix:?} line within 60 s"));
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(_) => panic!("the server ended or said nothing starting {prefix:?}"),
            }
        }
    }

    /// The locations of `polyflight serve`, by scheme, from its `listening on` lines.
    fn locations(&self, count: usize) -> Vec<String> {
        (0..count).map(|_| self.line("listening on ")).collect()
    }
}

fn of_scheme<'a>(locations: &'a [String], scheme: &str) -> &'a str {
    locations
        .iter()
        .find(|l| l.starts_with(&format!("{scheme}://")))
        .unwrap_or_else(|| panic!("no {scheme} location in {locations:?}"))
}

/// `polyflight serve --service coordinator` on `host` for two nodes (their locations).
fn coordinator_of(
    bin: &Path,
    host: &Host,
    node1: &[String],
    node2: &[String],
    listen: [&str; 2],
) -> Served {
    let (node1, node2) = (node1.join(","), node2.join(","));
    Served::start(in_host(
        host,
        bin,
        &[
            "serve",
            "--service",
            "coordinator",
            "--node",
            &node1,
            "--node",
            &node2,
            listen[0],
            listen[1],
        ],
    ))
}

/// Runs a client command to its end, within [`DEADLINE`].
fn finish(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip netns exec");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("status").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{command:?} still ran after {DEADLINE:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn succeed(command: Command, what: &str) -> String {
    let output = finish(command);
    assert!(
        output.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ---- data -----------------------------------------------------------------------------------

fn trips(from: i64, rows: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("fare", DataType::Float64, false),
        Field::new("zone", DataType::Utf8, true),
    ]));
    let ids: Vec<i64> = (from..from + rows).collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(Float64Array::from(
                ids.iter().map(|i| *i as f64 * 0.25).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| (i % 7 != 0).then(|| format!("zone-{}", i % 13)))
                    .collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("batch")
}

fn write_arrow(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        arrow_ipc::writer::FileWriter::try_new(file, &batches[0].schema()).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.finish().expect("finish");
}

fn read_arrow(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    arrow_ipc::reader::FileReader::try_new(file, None)
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("batches")
}

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64 ids")
                .values()
                .to_vec()
        })
        .collect()
}

fn sibling(name: &str) -> PathBuf {
    let path = Path::new(BIN).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build -p \
         polyflight-integration --bins`)",
        path.display()
    );
    path
}

/// Arrow's integration scenarios that run as a server and a client program (the Flight SQL
/// ones need the SQL peers of `tests/flight_sql.rs` and stay local).
const SCENARIOS: &[&str] = &[
    "auth:basic_proto",
    "middleware",
    "ordered",
    "expiration_time:do_get",
    "expiration_time:list_actions",
    "expiration_time:cancel_flight_info",
    "expiration_time:renew_flight_endpoint",
    "location:reuse_connection",
    "session_options",
    "poll_flight_info",
    "app_metadata_flight_info_endpoint",
    "do_exchange:echo",
];

#[test]
fn a_coordinator_and_two_nodes_across_namespaces_over_ucx_and_grpc() {
    if !can_make_namespaces() {
        eprintln!("skipped: making network namespaces needs root and iproute2 (`ip netns`)");
        return;
    }
    let work = TempDir::new().expect("temp dir");
    let cluster = Cluster::create(&["coord", "node1", "node2", "client"]);
    let (coord, node1, node2, client) = (
        cluster.host(0),
        cluster.host(1),
        cluster.host(2),
        cluster.host(3),
    );
    let bin = Path::new(BIN);

    // ---- two data nodes, each with one part of `trips.arrow` ---------------------------------
    let (dir1, dir2) = (work.path().join("node1"), work.path().join("node2"));
    std::fs::create_dir_all(&dir1).expect("dir");
    std::fs::create_dir_all(&dir2).expect("dir");
    let part1 = vec![trips(0, 20_000), trips(20_000, 10_000)];
    let part2 = vec![trips(30_000, 25_000)];
    write_arrow(&dir1.join("trips.arrow"), &part1);
    write_arrow(&dir2.join("trips.arrow"), &part2);
    let listen = |host: &Host| {
        [
            format!("grpc://{}:0", host.ip),
            format!("ucx://{}:0", host.ip),
        ]
    };
    let [g1, u1] = listen(node1);
    let [g2, u2] = listen(node2);
    let serve1 = Served::start(in_host(
        node1,
        bin,
        &["serve", dir1.to_str().expect("utf-8"), &g1, &u1],
    ));
    let serve2 = Served::start(in_host(
        node2,
        bin,
        &["serve", dir2.to_str().expect("utf-8"), &g2, &u2],
    ));
    let at1 = serve1.locations(2);
    let at2 = serve2.locations(2);

    // An upload from the client's host to a node, across the network.
    let upload = work.path().join("upload.arrow");
    write_arrow(&upload, &[trips(100_000, 5_000)]);
    succeed(
        in_host(
            client,
            bin,
            &[
                "put",
                of_scheme(&at1, "ucx"),
                upload.to_str().expect("utf-8"),
                "--path",
                "uploaded.arrow",
                "-q",
            ],
        ),
        "put over ucx to node 1",
    );
    assert_eq!(
        ids(&read_arrow(&dir1.join("uploaded.arrow"))),
        (100_000..105_000).collect::<Vec<_>>()
    );

    // ---- the coordinator -----------------------------------------------------------------------
    let [gc, uc] = listen(coord);
    let coordinator = coordinator_of(bin, coord, &at1, &at2, [&gc, &uc]);
    let at_coord = coordinator.locations(2);

    let want: Vec<i64> = ids(&part1).into_iter().chain(ids(&part2)).collect();
    for scheme in ["ucx", "grpc"] {
        let coord_uri = of_scheme(&at_coord, scheme);
        let info: serde_json::Value = serde_json::from_str(&succeed(
            in_host(client, bin, &["info", coord_uri, "trips.arrow", "--json"]),
            "info from the coordinator",
        ))
        .expect("JSON");
        assert_eq!(info["total_records"], 55_000, "{info:#}");
        let endpoints = info["endpoints"].as_array().expect("endpoints");
        let on = |node: &Host| {
            endpoints
                .iter()
                .filter(|e| {
                    e["locations"].as_array().is_some_and(|ls| {
                        ls.iter()
                            .any(|l| l.as_str().is_some_and(|l| l.contains(&node.ip)))
                    })
                })
                .count()
        };
        assert!(on(node1) >= 1 && on(node2) >= 1, "{info:#}");
        assert_eq!(on(node1) + on(node2), endpoints.len(), "{info:#}");

        let out = work.path().join(format!("read-{scheme}.arrow"));
        succeed(
            in_host(
                client,
                bin,
                &[
                    "get",
                    coord_uri,
                    "trips.arrow",
                    "-o",
                    out.to_str().expect("utf-8"),
                    "-q",
                ],
            ),
            &format!("get through the coordinator over {scheme}"),
        );
        let got = read_arrow(&out);
        assert_eq!(
            ids(&got),
            want,
            "{scheme}: every row of both nodes, in order"
        );
        let fares: f64 = got
            .iter()
            .flat_map(|b| {
                b.column(1)
                    .as_any()
                    .downcast_ref::<Float64Array>()
                    .expect("fares")
                    .values()
                    .to_vec()
            })
            .sum();
        assert_eq!(fares, want.iter().map(|i| *i as f64 * 0.25).sum::<f64>());
    }
    let listed = succeed(
        in_host(
            client,
            bin,
            &["list", of_scheme(&at_coord, "ucx"), "--json"],
        ),
        "list through the coordinator",
    );
    assert!(
        listed.contains("trips.arrow") && listed.contains("uploaded.arrow"),
        "{listed}"
    );
    drop(coordinator);
    drop((serve1, serve2));

    // ---- Arrow's integration scenarios, server on a node, client on the client's host ---------
    let (server_bin, client_bin) = (
        sibling("flight-test-integration-server"),
        sibling("flight-test-integration-client"),
    );
    for scheme in ["ucx", "grpc"] {
        for scenario in SCENARIOS {
            let listen = format!("{scheme}://{}:0", node1.ip);
            let server = Served::start(in_host(
                node1,
                &server_bin,
                &["-uri", &listen, "-scenario", scenario],
            ));
            let location = server.line("Server location: ");
            succeed(
                in_host(
                    client,
                    &client_bin,
                    &["-uri", &location, "-scenario", scenario],
                ),
                &format!("scenario {scenario} over {scheme} across hosts"),
            );
        }
    }

    // ---- the cluster's figures: both nodes' perf flights read through the coordinator --------
    let mb: u64 = std::env::var("POLYFLIGHT_CLUSTER_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let perf1 = Served::start(in_host(
        node1,
        bin,
        &["serve", "--service", "perf", &g1, &u1],
    ));
    let perf2 = Served::start(in_host(
        node2,
        bin,
        &["serve", "--service", "perf", &g2, &u2],
    ));
    let (at1, at2) = (perf1.locations(2), perf2.locations(2));
    let coordinator = coordinator_of(bin, coord, &at1, &at2, [&gc, &uc]);
    let at_coord = coordinator.locations(2);
    for scheme in ["ucx", "grpc"] {
        let report = work.path().join(format!("bench-{scheme}.json"));
        let svg = work.path().join(format!("bench-{scheme}.svg"));
        let stdout = succeed(
            in_host(
                client,
                bin,
                &[
                    "bench",
                    "--target",
                    of_scheme(&at_coord, scheme),
                    "--workloads",
                    "doget",
                    "--streams",
                    "2",
                    "--batch-rows",
                    "32768",
                    "--doget-mb",
                    &mb.to_string(),
                    "--json",
                    report.to_str().expect("utf-8"),
                    "--svg",
                    svg.to_str().expect("utf-8"),
                ],
            ),
            &format!("bench through the coordinator over {scheme}"),
        );
        eprintln!("cluster over {scheme}:\n{stdout}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
        let row = &report["rows"][0];
        assert_eq!(row["errors"].as_array().map(Vec::len), Some(0), "{row:#}");
        let doget = &row["throughput"][0];
        assert!(doget["mb_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{row:#}");
        // Two streams from each node: both nodes' data.
        let bytes = doget["data_bytes"].as_u64().unwrap_or(0);
        assert!(bytes >= 2 * mb * 1_000_000, "{bytes} bytes: {row:#}");
    }
    drop(coordinator);
    drop((perf1, perf2));
    drop(cluster);
}
