//! Killed peers, in separate processes, on grpc, grpc+tls, grpc+unix and ucx: a client
//! SIGKILLed in the middle of a DoGet or a DoPut frees the server's side of the call within a
//! second and leaves no partial flight; a server SIGKILLed in the middle of a call fails its
//! client within two seconds. On grpc+tls the child processes get the test's certificates as
//! PEM files (`common::tls::PkiFiles`).

mod common;

use common::process::{example, Reaped};
use common::tls::PkiFiles;
use common::*;
use futures::TryStreamExt;
use polyflight::proto::FlightDescriptor;
use polyflight::{FlightClient, LoopbackEndpoint, ServerBuilder};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const TRANSPORTS: &[&str] = &["grpc", "grpc+tls", "grpc+unix", "ucx"];

/// A transport's loopback endpoint, and what its child processes need to use it: on grpc+tls,
/// certificate files (the client's CA in `FAULT_TLS_CA`, the server's `--tls-cert`/`--tls-key`).
struct Setup {
    endpoint: LoopbackEndpoint,
    pki: Option<PkiFiles>,
}

impl Setup {
    fn new(transport: &str) -> Setup {
        if transport == "grpc+tls" {
            let pki = PkiFiles::generate();
            Setup {
                endpoint: pki.endpoint(),
                pki: Some(pki),
            }
        } else {
            Setup {
                endpoint: endpoint_for(transport),
                pki: None,
            }
        }
    }

    /// The environment of a `fault_client`.
    fn client_env(&self) -> Vec<(&'static str, String)> {
        self.pki
            .iter()
            .map(|pki| ("FAULT_TLS_CA", pki.ca().display().to_string()))
            .collect()
    }

    /// The arguments of a `memory_server` before its URIs.
    fn server_args(&self) -> Vec<String> {
        self.pki
            .iter()
            .flat_map(|pki| {
                [
                    "--tls-cert".to_string(),
                    pki.server_cert().display().to_string(),
                    "--tls-key".to_string(),
                    pki.server_key().display().to_string(),
                ]
            })
            .collect()
    }

    fn cleanup(self) {
        self.endpoint.cleanup();
    }
}

/// Starts `example args…` with `env` and waits (up to 30 s) for a stdout line starting with
/// `wanted`; returns the child and that line.
fn start_child(
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    wanted: &str,
) -> (Reaped, String) {
    let mut child = Reaped(
        Command::new(example(name))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}")),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = wanted.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(&prefix) {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name} {args:?} did not print {wanted:?}"));
    (child, line)
}

/// Polls `check` until it holds or `limit` passes; returns how long it took.
async fn within(limit: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_frees_its_call_and_leaves_no_partial_flight() {
    for transport in TRANSPORTS {
        let setup = Setup::new(transport);
        let endpoint = &setup.endpoint;
        let env = setup.client_env();
        let service = TestService::default();
        let server = ServerBuilder::new(service.clone(), registry())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
            .start()
            .await
            .expect("server starts");
        let uri = server.location().uri().to_string();

        // mid-DoGet: the server's handler sees its call cancelled
        let (mut reader, _) =
            start_child("fault_client", &["get", &uri, "slow:20"], &env, "started");
        let before = service.observed.cancelled.load(Ordering::SeqCst);
        reader.0.kill().expect("SIGKILL");
        let freed = within(Duration::from_secs(1), || {
            service.observed.cancelled.load(Ordering::SeqCst) > before
        })
        .await;
        let Some(freed) = freed else {
            panic!("{transport}: DoGet handler not cancelled within 1 s");
        };
        eprintln!("{transport}: DoGet handler cancelled {freed:?} after the kill");
        drop(reader);

        // mid-DoPut: the upload is dropped, not stored in part
        let (mut uploader, _) =
            start_child("fault_client", &["put", &uri, "partial"], &env, "started");
        uploader.0.kill().expect("SIGKILL");
        drop(uploader);
        let client = FlightClient::connect_with_options(registry(), &uri, endpoint.connect.clone())
            .await
            .expect("client connects");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let flights: Vec<_> = client
            .list_flights(Vec::<u8>::new())
            .await
            .expect("ListFlights")
            .try_collect()
            .await
            .expect("flights");
        let partial = FlightDescriptor::new_path(["partial"]);
        assert!(
            flights
                .iter()
                .all(|info| info.flight_descriptor.as_ref() != Some(&partial)),
            "{transport}: a killed upload left a flight"
        );
        server.shutdown().await.expect("clean shutdown");
        setup.cleanup();
    }
}

/// Starts a `memory_server` process listening on `uri` and connects a client to it; returns the
/// process, the URI it listens on, and the client.
async fn server_process_and_client(setup: &Setup, uri: &str) -> (Reaped, String, FlightClient) {
    let (server, line) = server_process(setup, uri);
    let uri = line.trim_start_matches("listening on ").to_string();
    let client =
        FlightClient::connect_with_options(registry(), &uri, setup.endpoint.connect.clone())
            .await
            .expect("client connects");
    (server, uri, client)
}

/// Starts a `memory_server` process listening on `uri` (with the set-up's certificates).
fn server_process(setup: &Setup, uri: &str) -> (Reaped, String) {
    let mut args = setup.server_args();
    args.push(uri.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_child("memory_server", &args, &[], "listening on ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_its_client_within_two_seconds() {
    for transport in TRANSPORTS {
        let setup = Setup::new(transport);
        let (mut server, _, client) =
            server_process_and_client(&setup, &setup.endpoint.listen_uri).await;
        // a DoExchange the server keeps open: one batch echoed, then the client waits
        let (tx, rx) = futures::channel::mpsc::unbounded();
        tx.unbounded_send(Ok(int64_batch(10, 1))).expect("queued");
        let mut echoed = client
            .do_exchange(FlightDescriptor::new_path(["echo"]), rx)
            .await
            .expect("DoExchange starts");
        let first = echoed.try_next().await.expect("echo").expect("a batch");
        assert_eq!(first.num_rows(), 10);

        server.0.kill().expect("SIGKILL");
        let killed = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(2), echoed.try_next()).await;
        match outcome {
            Ok(Err(error)) => {
                eprintln!(
                    "{transport}: client failed {:?} after the kill: {error}",
                    killed.elapsed()
                )
            }
            Ok(Ok(other)) => {
                panic!("{transport}: the call went on after the server died: {other:?}")
            }
            Err(_) => panic!("{transport}: no error within 2 s of the server's death"),
        }
        drop(tx);
        drop(server);
        setup.cleanup();
    }
}

/// A client whose pooled connection outlived its server reaches the server that replaced it on
/// the same address: the dead connection is noticed (or the call, having reached nobody, is
/// sent again on a new one), not handed to the next call as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaches_a_server_restarted_on_the_same_address() {
    for transport in TRANSPORTS {
        let setup = Setup::new(transport);
        let (mut server, uri, client) =
            server_process_and_client(&setup, &setup.endpoint.listen_uri).await;
        client.list_actions().await.expect("first call");
        server.0.kill().expect("SIGKILL");
        let _ = server.0.wait();
        drop(server);
        // the same address again (a fixed port, or the same socket path)
        let (restarted, _) = server_process(&setup, &uri);
        let started = Instant::now();
        let result = client.list_actions().await;
        eprintln!(
            "{transport}: call after the restart: {:?} in {:?}",
            result.as_ref().map(|_| ()),
            started.elapsed()
        );
        result.unwrap_or_else(|e| panic!("{transport}: the call after the restart failed: {e}"));
        drop(restarted);
        setup.cleanup();
    }
}
