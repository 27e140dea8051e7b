//! Load on every real transport: 100 concurrent streams (DoGet, DoPut and DoExchange at once)
//! from one client, through the server's default limits, with zero errors.

mod common;

use bytes::Bytes;
use common::*;
use futures::TryStreamExt;
use polyflight::proto::{FlightDescriptor, Ticket};
use polyflight::FlightError;

const TRANSPORTS: &[&str] = &["grpc", "grpc+tls", "grpc+unix", "ucx"];
const STREAMS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_streams_on_every_transport() {
    for transport in TRANSPORTS {
        let env = Env::start(transport).await;
        let client = &env.client;
        let batches: Vec<_> = (0..4).map(|i| mixed_batch(200, i)).collect();
        let expected = concat(&mixed_schema(), &batches);
        client
            .do_put(
                FlightDescriptor::new_path(["shared"]),
                futures::stream::iter(batches.clone().into_iter().map(Ok)),
            )
            .await
            .expect("upload")
            .try_collect::<Vec<_>>()
            .await
            .expect("upload acknowledged");

        let tasks: Vec<_> = (0..STREAMS)
            .map(|i| {
                let client = client.clone();
                let batches = batches.clone();
                tokio::spawn(async move {
                    let got: Vec<_> = match i % 3 {
                        0 => {
                            client
                                .do_get(Ticket::new(Bytes::from_static(b"shared")))
                                .await?
                                .try_collect()
                                .await?
                        }
                        1 => {
                            let path = format!("upload-{i}");
                            client
                                .do_put(
                                    FlightDescriptor::new_path([path.clone()]),
                                    futures::stream::iter(batches.into_iter().map(Ok)),
                                )
                                .await?
                                .try_collect::<Vec<_>>()
                                .await?;
                            client
                                .do_get(Ticket::new(Bytes::from(path)))
                                .await?
                                .try_collect()
                                .await?
                        }
                        _ => {
                            client
                                .do_exchange(
                                    FlightDescriptor::new_path(["echo"]),
                                    futures::stream::iter(batches.into_iter().map(Ok)),
                                )
                                .await?
                                .try_collect()
                                .await?
                        }
                    };
                    Ok::<_, FlightError>(got)
                })
            })
            .collect();
        let mut errors = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.expect("task") {
                Ok(got) => assert_eq!(
                    concat(&mixed_schema(), &got),
                    expected,
                    "{transport}: stream {i}"
                ),
                Err(e) => errors.push(format!("stream {i}: {e}")),
            }
        }
        assert!(errors.is_empty(), "{transport}: {errors:#?}");
        env.stop().await;
    }
}
