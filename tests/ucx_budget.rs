//! The UCX receive budget through a real server: a client uploading to a handler that does not
//! read its requests is held back, and once the connection has stayed at its budget for
//! `receive_budget_wait` its call is refused with UNAVAILABLE, while other clients are served
//! throughout. (How much a connection holds meanwhile is checked in `polyflight-ucx`'s
//! `a_connection_not_read_holds_its_sender_back_within_its_receive_budget`.)

#![cfg(target_os = "linux")]

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use polyflight::proto::{ActionType, FlightDescriptor, PutResult};
use polyflight::transport::ListenOptions;
use polyflight::transports::UcxOptions;
use polyflight::{CallContext, FlightCode, FlightData, FlightService, FlightStream, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// DoPut never reads its requests (it holds them until the call ends); ListActions answers.
struct NotReading;

#[polyflight::async_trait]
impl FlightService for NotReading {
    async fn do_put(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        let never = futures::stream::pending::<Result<PutResult>>();
        Ok(never
            .map(move |item| {
                let _held = &data;
                item
            })
            .boxed())
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let action = ActionType {
            r#type: "noop".to_string(),
            description: String::new(),
        };
        Ok(futures::stream::iter([Ok(action)]).boxed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_upload_is_refused_after_the_budget_wait_and_others_are_served() {
    let wait = Duration::from_secs(1);
    let mut listen = ListenOptions::default();
    listen.extensions.insert(UcxOptions {
        receive_budget: 256 * 1024,
        receive_budget_wait: wait,
        ..UcxOptions::default()
    });
    let server = polyflight::server(NotReading)
        .listen_with("ucx://127.0.0.1:0", listen)
        .start()
        .await
        .expect("server starts");
    let uri = server.location().uri().to_string();

    // 1 KiB batches (eager messages, copied as they arrive), without end. (Large bodies travel
    // by rendezvous and stay with the sender until they are read, so they never fill a budget.)
    let batches = futures::stream::unfold(0i64, |i| async move {
        let column: ArrayRef = Arc::new(Int64Array::from(vec![i; 128]));
        let batch = RecordBatch::try_from_iter([("n", column)]).map_err(Into::into);
        Some((batch, i + 1))
    });
    let uploader = polyflight::connect(&uri).await.expect("client connects");
    let started = Instant::now();
    let upload = tokio::spawn(async move {
        let mut acks = uploader
            .do_put(FlightDescriptor::new_path(["flood"]), batches.boxed())
            .await?;
        while acks.try_next().await?.is_some() {}
        Ok::<(), polyflight::FlightError>(())
    });

    // while the upload is held back, another client is served
    tokio::time::sleep(wait / 2).await;
    let other = polyflight::connect(&uri)
        .await
        .expect("other client connects");
    let asked = Instant::now();
    let actions = other.list_actions().await.expect("ListActions");
    let served_in = asked.elapsed();
    assert_eq!(actions.len(), 1);
    assert!(served_in < Duration::from_secs(1), "{served_in:?}");

    let outcome = tokio::time::timeout(Duration::from_secs(20), upload)
        .await
        .expect("the upload ended")
        .expect("upload task");
    let refused_after = started.elapsed();
    let error = outcome.expect_err("an upload nobody reads cannot succeed");
    eprintln!("refused after {refused_after:?}: {error}; other client served in {served_in:?}");
    assert_eq!(error.code(), FlightCode::Unavailable, "{error}");
    assert!(error.message().contains("receive budget"), "{error}");
    assert!(refused_after >= wait, "{refused_after:?}");

    // and the server goes on serving
    let again = other
        .list_actions()
        .await
        .expect("ListActions after the refusal");
    assert_eq!(again.len(), 1);
    drop(other);
    server.shutdown().await.expect("clean shutdown");
}
