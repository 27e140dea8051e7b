//! Listing, FlightInfo, DoGet and DoPut through real transports (grpc, grpc+unix, ucx) and both
//! I/O backends.

mod common;

use common::*;
use futures::TryStreamExt;
use polyflight::proto::{FlightDescriptor, PutResult};
use polyflight_dataset::{DatasetOptions, DatasetService, IoMode};

/// The dataset of these tests, with what it should list.
fn make_dataset(root: &std::path::Path) -> Vec<arrow_array::RecordBatch> {
    let batches = sample_batches(8, 1000);
    write_ipc_file(&root.join("a.arrow"), &batches);
    write_ipc_stream(&root.join("sub/b.arrows"), &batches[..3]);
    write_parquet(&root.join("sub/deeper/c.parquet"), &batches[..5], 2000);
    // Not flights: hidden files, a put's temporary file, other extensions.
    write_ipc_file(&root.join(".hidden.arrow"), &batches[..1]);
    write_ipc_file(
        &root.join("sub/.x.arrow.put-0123456789abcdef"),
        &batches[..1],
    );
    std::fs::write(root.join("notes.txt"), "not a flight").unwrap();
    // A link to a file under the root is served under its own name.
    std::os::unix::fs::symlink(root.join("a.arrow"), root.join("link.arrow")).unwrap();
    batches
}

async fn round_trip(uri: &str, io: IoMode) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir(&root).unwrap();
    let batches = make_dataset(&root);
    let schema = sample_schema();
    let options = DatasetOptions {
        io,
        // Several endpoints per IPC file.
        endpoint_bytes: 150_000,
        read_ahead: 256 * 1024,
        ..DatasetOptions::default()
    };
    let (server, client) = serve(&root, options, uri).await;

    assert_eq!(
        listed(&client).await,
        [
            vec!["a.arrow"],
            vec!["link.arrow"],
            vec!["sub", "b.arrows"],
            vec!["sub", "deeper", "c.parquet"],
        ]
    );
    let sub: Vec<_> = client
        .list_flights("sub/")
        .await
        .unwrap()
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    assert_eq!(sub.len(), 2);

    // An IPC file: several endpoints, read in parallel, the same data.
    let (info, got) = read_all(&client, &["a.arrow"]).await;
    assert!(info.endpoint.len() > 1, "{} endpoints", info.endpoint.len());
    assert_eq!(info.total_records, 8000);
    let size = std::fs::metadata(root.join("a.arrow")).unwrap().len();
    assert_eq!(info.total_bytes, size as i64);
    assert_eq!(info.try_schema().unwrap(), *schema);
    assert_eq!(concat(&schema, &got), concat(&schema, &batches));
    let (_, got) = read_all(&client, &["link.arrow"]).await;
    assert_eq!(concat(&schema, &got), concat(&schema, &batches));

    // Each endpoint on its own: its batches, in order.
    let mut rows = 0;
    for endpoint in &info.endpoint {
        let part: Vec<_> = client
            .do_get(endpoint.ticket.clone().unwrap())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let part = concat(&schema, &part);
        assert_eq!(part, concat(&schema, &batches).slice(rows, part.num_rows()));
        rows += part.num_rows();
    }
    assert_eq!(rows, 8000);

    // An IPC stream: one endpoint.
    let (info, got) = read_all(&client, &["sub", "b.arrows"]).await;
    assert_eq!(info.endpoint.len(), 1);
    assert_eq!(info.total_records, 3000);
    assert_eq!(concat(&schema, &got), concat(&schema, &batches[..3]));

    // Parquet: one endpoint per row group.
    let (info, got) = read_all(&client, &["sub", "deeper", "c.parquet"]).await;
    assert_eq!(info.endpoint.len(), 3);
    assert_eq!(info.total_records, 5000);
    assert_eq!(concat(&schema, &got), concat(&schema, &batches[..5]));
    let parquet_schema = client
        .get_schema(FlightDescriptor::new_path(["sub", "deeper", "c.parquet"]))
        .await
        .unwrap();
    assert_eq!(parquet_schema, schema);

    // DoPut in each format, read back through the service.
    for name in ["x.arrow", "x.feather", "x.arrows", "x.parquet"] {
        let upload = batches[2..5].to_vec();
        let results: Vec<PutResult> = client
            .do_put(
                FlightDescriptor::new_path(["up", name]),
                futures::stream::iter(upload.into_iter().map(Ok)),
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("DoPut {name}: {e}"));
        assert_eq!(results.len(), 1);
        let summary: serde_json::Value = serde_json::from_slice(&results[0].app_metadata).unwrap();
        assert_eq!(summary["path"], format!("up/{name}"));
        assert_eq!(summary["rows"], 3000);
        assert_eq!(summary["batches"], 3);
        let (info, got) = read_all(&client, &["up", name]).await;
        assert_eq!(info.total_records, 3000);
        assert_eq!(
            concat(&schema, &got),
            concat(&schema, &batches[2..5]),
            "{name}"
        );
    }
    let hidden = hidden_entries(&root);
    assert_eq!(
        hidden.len(),
        2,
        "only the test's own hidden files: {hidden:?}"
    );

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_plain() {
    round_trip("grpc://127.0.0.1:0", IoMode::Plain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_uring() {
    let probe = tempfile::tempdir().unwrap();
    if let Err(err) = DatasetService::new(
        probe.path(),
        DatasetOptions {
            io: IoMode::Uring,
            ..DatasetOptions::default()
        },
    ) {
        eprintln!("SKIPPED: io_uring round trip, io_uring is unavailable here: {err}");
        return;
    }
    round_trip("grpc://127.0.0.1:0", IoMode::Uring).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_auto() {
    let sockets = tempfile::tempdir().unwrap();
    round_trip(&unix_uri(sockets.path()), IoMode::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_auto() {
    round_trip("ucx://127.0.0.1:0", IoMode::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_mmap() {
    round_trip("grpc://127.0.0.1:0", IoMode::Mmap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_mmap() {
    round_trip("ucx://127.0.0.1:0", IoMode::Mmap).await;
}

/// `endpoint_rows` groups batches and row groups by rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_by_rows() {
    let dir = tempfile::tempdir().unwrap();
    let batches = sample_batches(8, 1000);
    write_ipc_file(&dir.path().join("a.arrow"), &batches);
    write_parquet(&dir.path().join("c.parquet"), &batches, 1000);
    let options = DatasetOptions {
        endpoint_rows: Some(2500),
        ..DatasetOptions::default()
    };
    let (server, client) = serve(dir.path(), options, "grpc://127.0.0.1:0").await;
    for name in ["a.arrow", "c.parquet"] {
        let (info, got) = read_all(&client, &[name]).await;
        // 1000-row units, parts closed at 2500 rows or more: 3 + 3 + 2.
        assert_eq!(info.endpoint.len(), 3, "{name}");
        assert_eq!(
            concat(&sample_schema(), &got),
            concat(&sample_schema(), &batches)
        );
    }
    // Defaults: one endpoint for a small IPC file, one per row group for Parquet.
    drop(client);
    server.shutdown().await.unwrap();
    let (server, client) = serve(dir.path(), DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    assert_eq!(read_all(&client, &["a.arrow"]).await.0.endpoint.len(), 1);
    assert_eq!(read_all(&client, &["c.parquet"]).await.0.endpoint.len(), 8);
    server.shutdown().await.unwrap();
}

/// Many DoGets of one file at once hold no more read-ahead than the service's budget (plus the
/// one block each stream may always have under way), get their data whole, and give the budget
/// back when they end, read to the end or dropped half-way.
async fn readers_share_the_read_ahead(uri: &str, io: IoMode) {
    const BATCHES: usize = 40;
    const READERS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let batches = sample_batches(BATCHES, 2000);
    write_ipc_file(&dir.path().join("a.arrow"), &batches);
    let file_len = std::fs::metadata(dir.path().join("a.arrow")).unwrap().len() as usize;
    // Blocks of nearly equal size: none is larger than a quarter over the average.
    let largest_block = file_len / BATCHES * 5 / 4;
    let limit = 3 * largest_block;
    let options = DatasetOptions {
        io,
        read_ahead: limit,
        // The file whole in one endpoint, ten times the budget and more.
        endpoint_bytes: u64::MAX,
        ..DatasetOptions::default()
    };
    assert!(file_len > 10 * limit);
    let service = DatasetService::new(dir.path(), options).unwrap();
    let (server, client) = serve_service(service.clone(), uri).await;
    let info = client
        .get_flight_info(FlightDescriptor::new_path(["a.arrow"]))
        .await
        .unwrap();
    assert_eq!(info.endpoint.len(), 1);
    let ticket = info.endpoint[0].ticket.clone().unwrap();

    let schema = sample_schema();
    let expected = concat(&schema, &batches);
    let reads = (0..READERS).map(|_| {
        let client = client.clone();
        let ticket = ticket.clone();
        async move {
            let got: Vec<_> = client
                .do_get(ticket)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            got
        }
    });
    for got in futures::future::join_all(reads).await {
        assert_eq!(concat(&schema, &got), expected);
    }
    let stats = service.read_ahead_stats();
    assert_eq!(stats.limit, limit);
    assert!(
        stats.peak <= limit + READERS * largest_block,
        "{READERS} readers held {} bytes read ahead; the budget is {limit}, blocks up to \
         {largest_block}",
        stats.peak
    );
    eventually("the budget is given back", || {
        service.read_ahead_stats().in_use == 0
    })
    .await;

    // A read dropped after its first batch gives its share back too.
    let mut partial = client.do_get(ticket.clone()).await.unwrap();
    assert!(partial.try_next().await.unwrap().is_some());
    drop(partial);
    eventually("a dropped read gives its share back", || {
        service.read_ahead_stats().in_use == 0
    })
    .await;

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_readers_share_the_read_ahead() {
    readers_share_the_read_ahead("grpc://127.0.0.1:0", IoMode::Auto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ucx_readers_share_the_read_ahead() {
    readers_share_the_read_ahead("ucx://127.0.0.1:0", IoMode::Plain).await;
}
