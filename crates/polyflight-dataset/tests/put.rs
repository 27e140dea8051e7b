//! DoPut semantics and path checks: escapes, duplicates and overwrite, aborted uploads that
//! leave nothing behind, read-only datasets, stale tickets, error codes.

mod common;

use arrow_array::RecordBatch;
use common::*;
use futures::{StreamExt, TryStreamExt};
use polyflight::proto::{FlightDescriptor, PutResult, Ticket};
use polyflight::{FlightClient, FlightCode, FlightError};
use polyflight_dataset::{overwrite_descriptor, DatasetOptions};
use std::path::Path;
use std::time::Duration;

async fn put(
    client: &FlightClient,
    descriptor: FlightDescriptor,
    batches: Vec<RecordBatch>,
) -> Result<Vec<PutResult>, FlightError> {
    client
        .do_put(
            descriptor,
            futures::stream::iter(batches.into_iter().map(Ok)),
        )
        .await?
        .try_collect()
        .await
}

fn path(components: &[&str]) -> FlightDescriptor {
    FlightDescriptor::new_path(components.iter().copied())
}

/// Waits up to five seconds for `done` to hold.
fn visible_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_escape_the_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let batches = sample_batches(1, 10);
    write_ipc_file(&outside.join("secret.arrow"), &batches);
    std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.arrow"), root.join("evil.arrow")).unwrap();
    let (server, client) = serve(&root, DatasetOptions::default(), "grpc://127.0.0.1:0").await;

    let refused: [&[&str]; 8] = [
        &["..", "x.arrow"],
        &["/tmp", "x.arrow"],
        &["/tmp/x.arrow"],
        &["a/b.arrow"],
        &[".hidden.arrow"],
        &["", "x.arrow"],
        &["out", "x.arrow"],
        &["out", "deeper", "x.arrow"],
    ];
    for components in refused {
        let err = put(&client, path(components), batches.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            FlightCode::InvalidArgument,
            "{components:?}: {err}"
        );
    }
    let overwrite = put(
        &client,
        overwrite_descriptor(&["..", "x.arrow"]),
        batches.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(overwrite.code(), FlightCode::InvalidArgument);
    for components in [
        &["out", "secret.arrow"][..],
        &["evil.arrow"],
        &["..", "outside", "secret.arrow"],
    ] {
        let err = client.get_flight_info(path(components)).await.unwrap_err();
        assert_eq!(
            err.code(),
            FlightCode::InvalidArgument,
            "{components:?}: {err}"
        );
    }
    let err = put(&client, path(&["x.csv"]), batches.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument);

    // Nothing was written anywhere, and the escaping links are not listed.
    assert_eq!(visible_files(&outside), ["secret.arrow"]);
    assert_eq!(visible_files(&root), ["evil.arrow", "out"]);
    assert!(listed(&client).await.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_put_needs_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    let schema = sample_schema();
    let first = sample_batches(2, 100);
    let second = sample_batches(3, 50);

    put(&client, path(&["d", "e", "x.arrow"]), first.clone())
        .await
        .unwrap();
    let info = client
        .get_flight_info(path(&["d", "e", "x.arrow"]))
        .await
        .unwrap();
    let err = put(&client, path(&["d", "e", "x.arrow"]), second.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::AlreadyExists, "{err}");
    let (_, got) = read_all(&client, &["d", "e", "x.arrow"]).await;
    assert_eq!(concat(&schema, &got), concat(&schema, &first));

    put(
        &client,
        overwrite_descriptor(&["d", "e", "x.arrow"]),
        second.clone(),
    )
    .await
    .unwrap();
    let (_, got) = read_all(&client, &["d", "e", "x.arrow"]).await;
    assert_eq!(concat(&schema, &got), concat(&schema, &second));

    // A ticket of the replaced file is refused, not served from the new one.
    let stale = info.endpoint[0].ticket.clone().unwrap();
    let err = match client.do_get(stale).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(err.code(), FlightCode::NotFound, "{err}");

    // Overwrite also creates.
    put(
        &client,
        overwrite_descriptor(&["new.parquet"]),
        first.clone(),
    )
    .await
    .unwrap();
    assert!(dir.path().join("new.parquet").is_file());
    assert!(hidden_entries(dir.path()).is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_puts_store_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    let calls = (0..4).map(|i| {
        let client = client.clone();
        async move { put(&client, path(&["race.arrows"]), sample_batches(2, 100 + i)).await }
    });
    let results = futures::future::join_all(calls).await;
    let stored = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(stored, 1, "{results:?}");
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code(), FlightCode::AlreadyExists, "{err}");
    }
    assert!(hidden_entries(dir.path()).is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    for name in ["x.arrow", "x.parquet"] {
        // The error comes once the server has started writing the file.
        let batches = sample_batches(3, 100);
        let root = dir.path().to_path_buf();
        let failing = futures::stream::iter(batches.into_iter().map(Ok)).chain(
            futures::stream::once(async move {
                eventually("the temporary file", || hidden_entries(&root).len() == 1).await;
                Err(FlightError::internal("the client gave up"))
            }),
        );
        let result = match client.do_put(path(&["sub", name]), failing.boxed()).await {
            Ok(results) => results.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(err) => Err(err),
        };
        assert!(result.is_err(), "an upload ending in an error must fail");
        eventually("the temporary file's removal", || {
            hidden_entries(dir.path()).is_empty()
        })
        .await;
        // Nor the directory the put made.
        assert!(!dir.path().join("sub").exists());
    }

    // An upload whose schema changes halfway is refused, and leaves nothing either.
    let mut mixed = sample_batches(1, 10);
    mixed.push(arrow_array::record_batch!(("n", Int32, [1, 2])).unwrap());
    let err = client
        .do_put_data(Box::pin(
            futures::stream::iter([
                polyflight::codec::FlightDataEncoderBuilder::new()
                    .with_flight_descriptor(path(&["mixed.arrow"]))
                    .build(futures::stream::iter([Ok(mixed[0].clone())])),
                polyflight::codec::FlightDataEncoderBuilder::new()
                    .build(futures::stream::iter([Ok(mixed[1].clone())])),
            ])
            .flatten(),
        ))
        .await;
    let err = match err {
        Ok(results) => results.body.try_collect::<Vec<_>>().await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    assert!(!dir.path().join("mixed.arrow").exists());

    // No descriptor, no schema.
    let err = put(&client, path(&["empty.arrow"]), Vec::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    eventually("the temporary file's removal", || {
        hidden_entries(dir.path()).is_empty()
    })
    .await;
    assert!(
        visible_files(dir.path()).is_empty(),
        "{:?}",
        visible_files(dir.path())
    );
    server.shutdown().await.unwrap();
}

/// A client that dies mid-upload: it runs on a runtime of its own, which is dropped with
/// everything on it (calls, connections) once the upload is under way, as when its process
/// exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_upload_leaves_nothing() {
    for uri in ["grpc://127.0.0.1:0", "ucx://127.0.0.1:0"] {
        let dir = tempfile::tempdir().unwrap();
        let (server, _client) = serve(dir.path(), DatasetOptions::default(), uri).await;
        let address = server.location().uri().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = polyflight::connect(&address).await.unwrap();
                // Two batches, then the upload stalls without ending.
                let batches = sample_batches(2, 1000);
                let stalled = futures::stream::iter(batches.into_iter().map(Ok))
                    .chain(futures::stream::pending());
                let upload = tokio::spawn(async move {
                    let results = client.do_put(path(&["big.arrow"]), stalled.boxed()).await?;
                    results.try_collect::<Vec<_>>().await
                });
                let _ = stopped.await;
                drop(upload);
            });
            drop(runtime);
        });
        eventually("the temporary file", || {
            hidden_entries(dir.path()).len() == 1
        })
        .await;
        stop.send(()).unwrap();
        client.join().unwrap();
        eventually("the temporary file's removal", || {
            hidden_entries(dir.path()).is_empty()
        })
        .await;
        assert!(visible_files(dir.path()).is_empty(), "{uri}");
        server.shutdown().await.unwrap();
    }
}

/// A client that stays connected but stops sending: the put fails TIMED_OUT after the idle
/// timeout and its partial file goes, on a connection that is still alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_and_leaves_nothing() {
    for uri in ["grpc://127.0.0.1:0", "ucx://127.0.0.1:0"] {
        let dir = tempfile::tempdir().unwrap();
        let options = DatasetOptions {
            put_idle_timeout: Some(Duration::from_millis(500)),
            ..DatasetOptions::default()
        };
        let (server, client) = serve(dir.path(), options, uri).await;
        let batches = sample_batches(2, 1000);
        let stalled =
            futures::stream::iter(batches.into_iter().map(Ok)).chain(futures::stream::pending());
        let started = std::time::Instant::now();
        let err = match client.do_put(path(&["slow.arrow"]), stalled.boxed()).await {
            Ok(results) => results.try_collect::<Vec<_>>().await.unwrap_err(),
            Err(err) => err,
        };
        assert_eq!(err.code(), FlightCode::TimedOut, "{uri}: {err}");
        assert!(err.message().contains("sent nothing"), "{uri}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{uri}");
        eventually("the temporary file's removal", || {
            hidden_entries(dir.path()).is_empty()
        })
        .await;
        assert!(visible_files(dir.path()).is_empty(), "{uri}");
        // The connection still serves calls.
        let (_, read) = put_and_read(&client).await;
        assert_eq!(read, 1000, "{uri}");
        server.shutdown().await.unwrap();
    }
}

/// Stores a small flight and reads back its row count.
async fn put_and_read(client: &FlightClient) -> (Vec<PutResult>, usize) {
    let results = put(client, path(&["ok.arrow"]), sample_batches(1, 1000))
        .await
        .unwrap();
    let (_, batches) = read_all(client, &["ok.arrow"]).await;
    (results, batches.iter().map(RecordBatch::num_rows).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_only_uploads_and_read_only_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    // A stream with a schema and no batches stores an empty file, which reads as its schema.
    let data = polyflight::codec::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(path(&["none.arrow"]))
        .with_schema(sample_schema())
        .build(futures::stream::empty());
    let results: Vec<PutResult> = client
        .do_put_data(Box::pin(data))
        .await
        .unwrap()
        .body
        .try_collect()
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
    let (info, got) = read_all(&client, &["none.arrow"]).await;
    assert_eq!(info.total_records, 0);
    assert_eq!(info.endpoint.len(), 1);
    assert!(got.is_empty());
    let schema = client.get_schema(path(&["none.arrow"])).await.unwrap();
    assert_eq!(schema, sample_schema());
    server.shutdown().await.unwrap();

    let read_only = DatasetOptions {
        allow_put: false,
        ..DatasetOptions::default()
    };
    let (server, client) = serve(dir.path(), read_only, "grpc://127.0.0.1:0").await;
    let err = put(&client, path(&["y.arrow"]), sample_batches(1, 5))
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::Unauthorized, "{err}");
    assert_eq!(read_all(&client, &["none.arrow"]).await.0.total_records, 0);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_foreign_tickets() {
    let dir = tempfile::tempdir().unwrap();
    write_ipc_file(&dir.path().join("a.arrow"), &sample_batches(2, 10));
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    let err = client
        .get_flight_info(path(&["nope.arrow"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::NotFound, "{err}");
    let err = client
        .get_schema(path(&["dir", "nope.parquet"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::NotFound, "{err}");
    let err = client.get_flight_info(path(&["a.txt"])).await.unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");

    let info = client.get_flight_info(path(&["a.arrow"])).await.unwrap();
    let good: serde_json::Value =
        serde_json::from_slice(&info.endpoint[0].ticket.as_ref().unwrap().ticket).unwrap();
    let mut out_of_range = good.clone();
    out_of_range["part"] = serde_json::json!([0, 99]);
    let mut escaping = good.clone();
    escaping["path"] = serde_json::json!(["..", "a.arrow"]);
    for ticket in [
        b"garbage".to_vec(),
        serde_json::to_vec(&out_of_range).unwrap(),
        serde_json::to_vec(&escaping).unwrap(),
        vec![b'{'; 100_000],
    ] {
        let err = match client.do_get(Ticket::new(ticket)).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.unwrap_err(),
            Err(err) => err,
        };
        assert_eq!(err.code(), FlightCode::InvalidArgument, "{err}");
    }
    server.shutdown().await.unwrap();
}
