//! Killed peers, in separate processes, on grpc, grpc+unix and ucx: a client SIGKILLed in the
//! middle of a DoGet or a DoPut frees the server's side of the call within a second and leaves
//! no partial flight; a server SIGKILLed in the middle of a call fails its client within two
//! seconds. (grpc+tls is left out: its child processes would need the test's certificates.)

mod common;

use common::process::{example, Reaped};
use common::*;
use futures::TryStreamExt;
use polyflight::proto::FlightDescriptor;
use polyflight::{FlightClient, ServerBuilder};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const TRANSPORTS: &[&str] = &["grpc", "grpc+unix", "ucx"];

/// Starts `example args…` and waits (up to 30 s) for a stdout line starting with `wanted`;
/// returns the child and that line.
fn start_child(name: &str, args: &[&str], wanted: &str) -> (Reaped, String) {
    let mut child = Reaped(
        Command::new(example(name))
            .args(args)
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
        let endpoint = endpoint_for(transport);
        let service = TestService::default();
        let server = ServerBuilder::new(service.clone(), registry())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
            .start()
            .await
            .expect("server starts");
        let uri = server.location().uri().to_string();

        // mid-DoGet: the server's handler sees its call cancelled
        let (mut reader, _) = start_child("fault_client", &["get", &uri, "slow:20"], "started");
        let before = service.observed.cancelled.load(Ordering::SeqCst);
        reader.0.kill().expect("SIGKILL");
        let freed = within(Duration::from_secs(1), || {
            service.observed.cancelled.load(Ordering::SeqCst) > before
        })
        .await;
        assert!(
            freed.is_some(),
            "{transport}: DoGet handler not cancelled within 1 s"
        );
        drop(reader);

        // mid-DoPut: the upload is dropped, not stored in part
        let (mut uploader, _) = start_child("fault_client", &["put", &uri, "partial"], "started");
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
        endpoint.cleanup();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_its_client_within_two_seconds() {
    for transport in TRANSPORTS {
        let endpoint = endpoint_for(transport);
        let (mut server, line) =
            start_child("memory_server", &[&endpoint.listen_uri], "listening on ");
        let uri = line.trim_start_matches("listening on ").to_string();
        let client = FlightClient::connect_with_options(registry(), &uri, endpoint.connect.clone())
            .await
            .expect("client connects");
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
        endpoint.cleanup();
    }
}
