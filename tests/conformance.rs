//! The conformance suite: one body of cases, run over every transport. Each case is an async
//! function of an [`Env`] (a running server with the test service, and a client); the macro at
//! the bottom instantiates every case for every transport, so a new transport is one line.

mod common;

use bytes::Bytes;
use common::*;
use futures::{StreamExt, TryStreamExt};
use polyflight::codec::{
    DecodedPayload, EncodeOptions, FlightDataEncoder, FlightDataEncoderBuilder,
};
use polyflight::proto::{
    close_session_result, session_option_value::OptionValue, Action, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, SessionOptionValue, Ticket,
};
use polyflight::{CallOptions, FlightCode, FlightData, FlightError, FlightStream};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn ok_stream<T: Send + 'static>(items: Vec<T>) -> FlightStream<T> {
    futures::stream::iter(items.into_iter().map(Ok)).boxed()
}

async fn put(
    client: &polyflight::FlightClient,
    path: &str,
    batches: Vec<arrow_array::RecordBatch>,
) -> usize {
    let results: Vec<_> = client
        .do_put(
            FlightDescriptor::new_path([path]),
            futures::stream::iter(batches.into_iter().map(Ok)),
        )
        .await
        .expect("do_put starts")
        .try_collect()
        .await
        .expect("do_put completes");
    results.len()
}

async fn get(client: &polyflight::FlightClient, ticket: &str) -> Vec<arrow_array::RecordBatch> {
    client
        .do_get(Ticket::new(Bytes::copy_from_slice(ticket.as_bytes())))
        .await
        .expect("do_get starts")
        .try_collect()
        .await
        .expect("do_get completes")
}

fn assert_code<T: std::fmt::Debug>(result: polyflight::Result<T>, code: FlightCode) -> FlightError {
    let err = result.expect_err("call should fail");
    assert_eq!(err.code(), code, "unexpected error: {err}");
    err
}

pub mod cases {
    use super::*;

    pub async fn handshake(env: &Env) {
        let response = env
            .client
            .handshake(Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(response.body, vec![Bytes::from_static(b"hello")]);
        assert_eq!(response.headers.get_str("x-handshake"), Some("yes"));
        // Several messages each way.
        let requests = (0..5u64)
            .map(|i| polyflight::proto::HandshakeRequest {
                protocol_version: i,
                payload: Bytes::from(format!("m{i}")),
            })
            .collect();
        let responses: Vec<_> = env
            .client
            .handshake_stream(ok_stream(requests))
            .await
            .unwrap()
            .body
            .try_collect()
            .await
            .unwrap();
        assert_eq!(responses.len(), 5);
        assert_eq!(responses[4].payload.as_ref(), b"m4");
        assert_eq!(responses[4].protocol_version, 4);
    }

    pub async fn put_get_round_trip(env: &Env) {
        let batches: Vec<_> = (0..3).map(|i| mixed_batch(100 + i, i as i64)).collect();
        assert_eq!(
            put(&env.client, "mixed", batches.clone()).await,
            3,
            "one PutResult per batch"
        );
        let got = get(&env.client, "mixed").await;
        assert_eq!(
            concat(&mixed_schema(), &got),
            concat(&mixed_schema(), &batches)
        );
    }

    pub async fn flight_info_schema_and_poll(env: &Env) {
        put(&env.client, "info", vec![mixed_batch(42, 1)]).await;
        let descriptor = FlightDescriptor::new_path(["info"]);
        let info = env
            .client
            .get_flight_info(descriptor.clone())
            .await
            .unwrap();
        assert_eq!(info.total_records, 42);
        assert_eq!(info.try_schema().unwrap(), *mixed_schema());
        assert_eq!(info.flight_descriptor.as_ref(), Some(&descriptor));
        assert_eq!(info.endpoint.len(), 1);
        let schema = env.client.get_schema(descriptor.clone()).await.unwrap();
        assert_eq!(*schema, *mixed_schema());
        let poll = env
            .client
            .poll_flight_info(descriptor.clone())
            .await
            .unwrap();
        assert_eq!(poll.progress, Some(1.0));
        assert_eq!(poll.info.unwrap().total_records, 42);
        // Reading the whole flight through its endpoints.
        let batches: Vec<_> = env
            .client
            .read_flight(&info)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(concat(&mixed_schema(), &batches), mixed_batch(42, 1));
        let missing = env
            .client
            .get_flight_info(FlightDescriptor::new_path(["nope"]))
            .await;
        assert_code(missing, FlightCode::NotFound);
    }

    pub async fn list_flights(env: &Env) {
        for name in ["list-a", "list-b", "other"] {
            put(&env.client, name, vec![int64_batch(3, 1)]).await;
        }
        let all: Vec<FlightInfo> = env
            .client
            .list_flights(Bytes::new())
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
        let some: Vec<FlightInfo> = env
            .client
            .list_flights(Bytes::from_static(b"list-"))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut paths: Vec<_> = some
            .iter()
            .map(|i| i.flight_descriptor.as_ref().unwrap().path.join("/"))
            .collect();
        paths.sort();
        assert_eq!(paths, ["list-a", "list-b"]);
    }

    pub async fn many_batches(env: &Env) {
        let batches: Vec<_> = (0..2000)
            .map(|i| int64_batch(16, 3).slice(0, 1 + i % 16))
            .collect();
        put(&env.client, "many", batches.clone()).await;
        let got = get(&env.client, "many").await;
        assert_eq!(got.len(), batches.len());
        assert_eq!(
            concat(&int64_schema(3), &got),
            concat(&int64_schema(3), &batches)
        );
    }

    pub async fn large_batch(env: &Env) {
        // 64 MiB and a bit, in a single batch and — on the way up — a single message, as Arrow C++
        // peers send it.
        let batch = int64_batch(8 * 1024 * 1024 + 3, 1);
        let mut encoder = FlightDataEncoder::new(EncodeOptions {
            max_message_size: usize::MAX,
            ..Default::default()
        });
        let mut messages = vec![encoder
            .encode_schema(&batch.schema())
            .unwrap()
            .with_descriptor(FlightDescriptor::new_path(["large"]))];
        messages.extend(encoder.encode_batch(&batch).unwrap());
        assert_eq!(messages.len(), 2, "one schema and one batch message");
        assert!(messages[1].data_body.len() >= 64 * 1024 * 1024);
        let acks: Vec<_> = env
            .client
            .do_put_data(ok_stream(messages))
            .await
            .unwrap()
            .body
            .try_collect()
            .await
            .unwrap();
        assert_eq!(acks.len(), 1);
        let got = get(&env.client, "large").await;
        assert_eq!(concat(&batch.schema(), &got), batch);
    }

    pub async fn dictionaries(env: &Env) {
        let batches = vec![
            dict_batch(50, &["red", "green"]),
            dict_batch(60, &["cat", "dog", "mouse"]),
            dict_batch(10, &["red", "green"]),
        ];
        put(&env.client, "dict", batches.clone()).await;
        let got = get(&env.client, "dict").await;
        assert_eq!(got.len(), 3);
        for (a, b) in got.iter().zip(&batches) {
            assert_eq!(a, b);
        }
    }

    pub async fn empty_stream(env: &Env) {
        env.service
            .store
            .insert(
                FlightDescriptor::new_path(["empty"]),
                mixed_schema(),
                vec![],
            )
            .unwrap();
        let mut stream = env
            .client
            .do_get(Ticket::new(Bytes::from_static(b"empty")))
            .await
            .unwrap();
        assert!(stream.try_next().await.unwrap().is_none());
        assert_eq!(
            stream.schema().map(|s| (**s).clone()),
            Some((*mixed_schema()).clone())
        );
        // A zero-row batch is data too.
        put(&env.client, "zero-rows", vec![mixed_batch(0, 0)]).await;
        let got = get(&env.client, "zero-rows").await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].num_rows(), 0);
    }

    pub async fn exchange_with_metadata(env: &Env) {
        let batch = mixed_batch(20, 3);
        let mut encoder = FlightDataEncoder::new(EncodeOptions::default());
        let mut messages = vec![FlightData::descriptor_only(FlightDescriptor::new_cmd(
            &b"echo"[..],
        ))];
        messages.push(encoder.encode_schema(&batch.schema()).unwrap());
        messages.push(FlightData::metadata_only(&b"first"[..]));
        let mut data = encoder.encode_batch(&batch).unwrap();
        data[0].app_metadata = Bytes::from_static(b"with-batch");
        messages.extend(data);
        messages.push(FlightData::metadata_only(&b"last"[..]));
        let response = env
            .client
            .do_exchange_data(ok_stream(messages))
            .await
            .unwrap();
        let mut stream = polyflight::codec::FlightRecordBatchStream::new(response.body);
        let mut seen = Vec::new();
        while let Some(message) = stream.next_message().await {
            let message = message.unwrap();
            let kind = match &message.payload {
                DecodedPayload::None => "meta",
                DecodedPayload::Schema(_) => "schema",
                DecodedPayload::RecordBatch(b) => {
                    assert_eq!(b, &batch);
                    "batch"
                }
                DecodedPayload::DictionaryBatch => "dict",
            };
            seen.push((
                kind,
                String::from_utf8_lossy(&message.app_metadata).into_owned(),
            ));
        }
        assert_eq!(
            seen,
            [
                ("schema", String::new()),
                ("meta", "first".into()),
                ("batch", "with-batch".into()),
                ("meta", "last".into())
            ]
        );
        // The record-batch level API echoes batches too.
        let echoed: Vec<_> = env
            .client
            .do_exchange(
                FlightDescriptor::new_cmd(&b"echo"[..]),
                futures::stream::iter([Ok(batch.clone()), Ok(batch.clone())]),
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(echoed, vec![batch.clone(), batch]);
    }

    pub async fn errors_carry_code_message_and_extra_info(env: &Env) {
        for code in FlightCode::ALL.into_iter().skip(1) {
            let n = code.as_u8();
            let err = assert_code(
                env.client
                    .do_get(Ticket::new(Bytes::from(format!("error:{n}"))))
                    .await
                    .map(|_| ()),
                code,
            );
            assert!(err.message().contains("ünïcode, 100% sure"), "{err}");
            assert_eq!(err.extra_info().as_ref(), EXTRA_INFO, "{code}");
            let err = assert_code(
                env.client
                    .get_flight_info(FlightDescriptor::new_cmd(Bytes::from(format!("error:{n}"))))
                    .await,
                code,
            );
            assert_eq!(err.extra_info().as_ref(), EXTRA_INFO);
            let err = assert_code(
                env.client
                    .do_action(Action {
                        r#type: "error".into(),
                        body: Bytes::from(n.to_string()),
                    })
                    .await
                    .map(|_| ()),
                code,
            )
            .clone();
            assert_eq!(err.extra_info().as_ref(), EXTRA_INFO);
        }
        // An error in the middle of a stream, after data.
        let mut stream = env
            .client
            .do_get(Ticket::new(Bytes::from_static(b"mid-error")))
            .await
            .unwrap();
        assert_eq!(stream.try_next().await.unwrap().unwrap().num_rows(), 10);
        let err = stream.try_next().await.unwrap_err();
        assert_eq!(err.code(), FlightCode::NotFound);
        assert_eq!(err.extra_info().as_ref(), EXTRA_INFO);
        // Unknown action, and DoPut without a descriptor.
        assert_code(
            env.client
                .do_action(Action {
                    r#type: "no-such-action".into(),
                    body: Bytes::new(),
                })
                .await
                .map(|_| ()),
            FlightCode::Unimplemented,
        );
        let no_descriptor =
            FlightDataEncoderBuilder::new().build(futures::stream::iter([Ok(int64_batch(1, 1))]));
        let result = env.client.do_put_data(no_descriptor.boxed()).await;
        let outcome = match result {
            Ok(r) => r.body.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert_code(outcome, FlightCode::InvalidArgument);
    }

    pub async fn headers_both_ways(env: &Env) {
        let client = env.client.with_call_options(
            CallOptions::new()
                .header("x-test", "value-1")
                .header("x-bin-bin", &b"\x00\x01\xfe"[..]),
        );
        let lines: Vec<Bytes> = client
            .do_action(Action {
                r#type: "echo-headers".into(),
                body: Bytes::new(),
            })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert!(
            lines.contains(&Bytes::from_static(b"x-test=value-1")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&Bytes::from_static(b"x-bin-bin=\x00\x01\xfe")),
            "{lines:?}"
        );
        // Response headers come back with the response.
        let response = env
            .client
            .with_call_options(CallOptions::new().header("x-test", "echo-me"))
            .handshake(Bytes::new())
            .await
            .unwrap();
        assert_eq!(response.headers.get_str("x-handshake"), Some("yes"));
    }

    pub async fn concurrent_calls(env: &Env) {
        let batches: Vec<_> = (0..20).map(|i| mixed_batch(500, i)).collect();
        put(&env.client, "shared", batches.clone()).await;
        let expected = concat(&mixed_schema(), &batches);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let client = env.client.clone();
                tokio::spawn(async move {
                    let got: Vec<_> = client
                        .do_get(Ticket::new(Bytes::from_static(b"shared")))
                        .await?
                        .try_collect()
                        .await?;
                    Ok::<_, FlightError>(got)
                })
            })
            .collect();
        for task in tasks {
            let got = task.await.unwrap().unwrap();
            assert_eq!(concat(&mixed_schema(), &got), expected);
        }
    }

    pub async fn timeout(env: &Env) {
        let started = Instant::now();
        let result = env
            .client
            .with_call_options(CallOptions::new().timeout(Duration::from_millis(300)))
            .do_action(Action {
                r#type: "sleep".into(),
                body: Bytes::from_static(b"10000"),
            })
            .await;
        let outcome = match result {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert_code(outcome, FlightCode::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        // The server saw the deadline and its handler was cancelled.
        wait_for(|| env.service.observed.cancelled.load(Ordering::SeqCst) >= 1).await;
        assert!(env.service.observed.saw_deadline.load(Ordering::SeqCst) >= 1);
        // A streaming call times out mid-stream.
        let mut stream = env
            .client
            .with_call_options(CallOptions::new().timeout(Duration::from_millis(500)))
            .do_get(Ticket::new(Bytes::from_static(b"slow:50")))
            .await
            .unwrap();
        let mut rows = 0;
        let err = loop {
            match stream.try_next().await {
                Ok(Some(batch)) => rows += batch.num_rows(),
                Ok(None) => panic!("slow stream ended before its deadline"),
                Err(err) => break err,
            }
        };
        assert_eq!(err.code(), FlightCode::TimedOut, "{err}");
        assert!(rows > 0);
    }

    pub async fn dropped_upload_cancels_the_call(env: &Env) {
        // An upload whose input waits (the application has nothing more to send yet) and whose
        // call is dropped by the client: the server's handler is cancelled within a second, and
        // nothing is stored.
        let before = env.service.observed.cancelled.load(Ordering::SeqCst);
        let batch = int64_batch(1000, 1);
        let mut encoder = FlightDataEncoder::new(EncodeOptions::default());
        let mut messages = vec![encoder
            .encode_schema(&batch.schema())
            .unwrap()
            .with_descriptor(FlightDescriptor::new_path(["abandoned"]))];
        messages.extend(encoder.encode_batch(&batch).unwrap());
        let waiting = futures::stream::iter(messages.into_iter().map(Ok))
            .chain(futures::stream::pending())
            .boxed();
        let call = env.client.do_put_data(waiting).await.unwrap();
        // the server has the call (and its first messages) before the client gives up
        tokio::time::sleep(Duration::from_millis(200)).await;
        let dropped = Instant::now();
        drop(call);
        wait_for(|| env.service.observed.cancelled.load(Ordering::SeqCst) > before).await;
        assert!(
            dropped.elapsed() < Duration::from_secs(2),
            "the server saw the call end {:?} after the client dropped it",
            dropped.elapsed()
        );
        let error = env
            .client
            .get_flight_info(FlightDescriptor::new_path(["abandoned"]))
            .await
            .unwrap_err();
        assert_eq!(error.code(), FlightCode::NotFound, "{error}");
    }

    pub async fn cancellation(env: &Env) {
        let token = tokio_util::sync::CancellationToken::new();
        let mut stream = env
            .client
            .with_call_options(CallOptions::new().cancel_token(token.clone()))
            .do_get(Ticket::new(Bytes::from_static(b"slow:20")))
            .await
            .unwrap();
        assert!(stream.try_next().await.unwrap().is_some());
        token.cancel();
        let err = stream.try_next().await.unwrap_err();
        assert_eq!(err.code(), FlightCode::Cancelled);
        wait_for(|| env.service.observed.cancelled.load(Ordering::SeqCst) >= 1).await;
        // Dropping a stream cancels too.
        let before = env.service.observed.cancelled.load(Ordering::SeqCst);
        let mut stream = env
            .client
            .do_get(Ticket::new(Bytes::from_static(b"slow:20")))
            .await
            .unwrap();
        assert!(stream.try_next().await.unwrap().is_some());
        drop(stream);
        wait_for(|| env.service.observed.cancelled.load(Ordering::SeqCst) > before).await;
    }

    pub async fn standard_actions(env: &Env) {
        let types: Vec<String> = env
            .client
            .list_actions()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.r#type)
            .collect();
        for t in [
            "CancelFlightInfo",
            "RenewFlightEndpoint",
            "SetSessionOptions",
            "GetSessionOptions",
            "CloseSession",
        ] {
            assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
        }
        let cancel = env
            .client
            .cancel_flight_info(FlightInfo::new())
            .await
            .unwrap();
        assert_eq!(cancel.status, CancelStatus::NotCancellable as i32);
        let renewed = env
            .client
            .renew_flight_endpoint(FlightEndpoint::new(Ticket::new(Bytes::from_static(b"t"))))
            .await
            .unwrap();
        assert!(renewed.expiration_time.is_some());
        assert_eq!(renewed.ticket.unwrap().ticket.as_ref(), b"t");
        let mut options = HashMap::new();
        options.insert(
            "catalog".to_string(),
            SessionOptionValue {
                option_value: Some(OptionValue::StringValue("main".into())),
            },
        );
        options.insert(
            "limit".to_string(),
            SessionOptionValue {
                option_value: Some(OptionValue::Int64Value(7)),
            },
        );
        options.insert(
            String::new(),
            SessionOptionValue {
                option_value: Some(OptionValue::BoolValue(true)),
            },
        );
        let set = env.client.set_session_options(options).await.unwrap();
        assert_eq!(set.errors.len(), 1, "the empty name is refused");
        let got = env.client.get_session_options().await.unwrap();
        assert_eq!(got.session_options.len(), 2);
        assert_eq!(
            got.session_options["limit"].option_value,
            Some(OptionValue::Int64Value(7))
        );
        let closed = env.client.close_session().await.unwrap();
        assert_eq!(closed.status, close_session_result::Status::Closed as i32);
        assert!(env
            .client
            .get_session_options()
            .await
            .unwrap()
            .session_options
            .is_empty());
    }

    pub async fn sessions_belong_to_their_client(env: &Env) {
        fn catalog(name: &str) -> HashMap<String, SessionOptionValue> {
            HashMap::from([(
                "catalog".to_string(),
                SessionOptionValue {
                    option_value: Some(OptionValue::StringValue(name.into())),
                },
            )])
        }
        async fn catalog_of(client: &polyflight::FlightClient) -> Option<OptionValue> {
            let options = client.get_session_options().await.unwrap().session_options;
            options.get("catalog").and_then(|v| v.option_value.clone())
        }
        let text = |s: &str| Some(OptionValue::StringValue(s.into()));
        let other = env.another_client().await;
        env.client
            .set_session_options(catalog("main"))
            .await
            .unwrap();
        assert_eq!(catalog_of(&other).await, None, "another client's session");
        other.set_session_options(catalog("other")).await.unwrap();
        assert_eq!(catalog_of(&env.client).await, text("main"));
        // clients made from one connection share its session
        let derived = env
            .client
            .with_call_options(CallOptions::new().header("x-a", "1"));
        assert_eq!(catalog_of(&derived).await, text("main"));

        let closed = env.client.close_session().await.unwrap();
        assert_eq!(closed.status, close_session_result::Status::Closed as i32);
        assert_eq!(catalog_of(&env.client).await, None, "a fresh session");
        assert_eq!(catalog_of(&other).await, text("other"));

        // an id the server does not know fails the calls that use the session, only those
        // (env.client holds no cookie now: CloseSession told it to drop its own)
        let stale = env.client.with_call_options(
            CallOptions::new().header("cookie", "arrow_flight_session_id=0badc0ffee"),
        );
        let error = stale.get_session_options().await.unwrap_err();
        assert_eq!(error.code(), FlightCode::InvalidArgument, "{error}");
        assert!(
            error.message().contains("arrow_flight_session_id"),
            "{error}"
        );
        assert!(stale.list_actions().await.is_ok());
    }

    pub async fn bad_flight_data_is_invalid_argument(env: &Env) {
        let descriptor = FlightDescriptor::new_path(["bad"]);
        let schema_message = FlightDataEncoder::new(EncodeOptions::default())
            .encode_schema(&int64_schema(1))
            .unwrap();
        let mut batch_messages = FlightDataEncoder::new(EncodeOptions::default());
        batch_messages.encode_schema(&int64_schema(1)).unwrap();
        let good_batch = batch_messages
            .encode_batch(&int64_batch(100, 1))
            .unwrap()
            .remove(0);
        let mut short_body = good_batch.clone();
        short_body.data_body =
            polyflight::DataBody::from(good_batch.data_body.to_contiguous().slice(..8));
        let cases: Vec<(&str, Vec<FlightData>)> = vec![
            (
                "garbage header",
                vec![FlightData {
                    data_header: Bytes::from_static(b"\x01\x02garbage"),
                    ..Default::default()
                }],
            ),
            ("batch before schema", vec![good_batch.clone()]),
            (
                "body shorter than declared",
                vec![schema_message.clone(), short_body],
            ),
        ];
        for (name, mut messages) in cases {
            messages[0].flight_descriptor = Some(descriptor.clone());
            let outcome = match env.client.do_put_data(ok_stream(messages)).await {
                Ok(r) => r.body.try_collect::<Vec<_>>().await.map(|_| ()),
                Err(e) => Err(e),
            };
            let err = outcome.expect_err(name);
            assert_eq!(err.code(), FlightCode::InvalidArgument, "{name}: {err}");
        }
        // The server still serves.
        put(&env.client, "after-bad", vec![int64_batch(5, 1)]).await;
        assert_eq!(get(&env.client, "after-bad").await[0].num_rows(), 5);
    }

    pub async fn read_flight_endpoints(env: &Env) {
        let parts: Vec<_> = (0..4).map(|i| mixed_batch(50 + i, i as i64)).collect();
        for (i, batch) in parts.iter().enumerate() {
            put(&env.client, &format!("part-{i}"), vec![batch.clone()]).await;
        }
        let here = env.server.as_ref().unwrap().location().clone();
        let ticket = |i: usize| Ticket::new(Bytes::from(format!("part-{i}")));
        let info = FlightInfo::new()
            .with_schema(&mixed_schema())
            .with_ordered(true)
            // No location: the same service.
            .with_endpoint(FlightEndpoint::new(ticket(0)))
            // The reuse-connection URI.
            .with_endpoint(
                FlightEndpoint::new(ticket(1))
                    .with_location_uri("arrow-flight-reuse-connection://?"),
            )
            // An explicit location: fetched over a pooled connection.
            .with_endpoint(FlightEndpoint::new(ticket(2)).with_location(&here))
            // An unreachable location first: the next one is tried.
            .with_endpoint(
                FlightEndpoint::new(ticket(3))
                    .with_location_uri("grpc://127.0.0.1:1")
                    .with_location(&here),
            );
        let got: Vec<_> = env
            .client
            .read_flight(&info)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got, parts, "endpoints read in order");
        // An endpoint that fails fails the read.
        let bad = FlightInfo::new().with_endpoint(FlightEndpoint::new(Ticket::new(
            Bytes::from_static(b"error:5"),
        )));
        let result = env
            .client
            .read_flight(&bad)
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await;
        assert_code(result, FlightCode::NotFound);
    }

    pub async fn auth_basic_bearer(env: &Env) {
        let secured = Env::start_with(env.transport, |b| {
            b.auth(polyflight::BasicAuthenticator::with_users([(
                "alice", "s3cret",
            )]))
        })
        .await;
        let whoami = Action {
            r#type: "whoami".into(),
            body: Bytes::new(),
        };
        // No credentials: rejected before the service.
        let err = collect_action(&secured.client, whoami.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::Unauthenticated, "{err}");
        assert_code(
            secured
                .client
                .get_flight_info(FlightDescriptor::new_path(["x"]))
                .await,
            FlightCode::Unauthenticated,
        );
        // Wrong password.
        let err = secured
            .client
            .authenticate_basic("alice", "wrong")
            .await
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::Unauthenticated, "{err}");
        // Basic -> Bearer, then the identity reaches the handler.
        let alice = secured
            .client
            .authenticate_basic("alice", "s3cret")
            .await
            .unwrap();
        assert_eq!(
            collect_action(&alice, whoami.clone()).await.unwrap(),
            vec![Bytes::from_static(b"alice")]
        );
        // A forged token is refused.
        let forged = secured
            .client
            .with_call_options(CallOptions::new().header("authorization", "Bearer 00ff"));
        assert_code(
            collect_action(&forged, whoami).await,
            FlightCode::Unauthenticated,
        );
        secured.stop().await;
    }

    pub async fn auth_handshake_token(env: &Env) {
        let secured = Env::start_with(env.transport, |b| {
            b.auth(polyflight::BasicAuthenticator::with_users([("bob", "pw")]))
        })
        .await;
        let bob = secured
            .client
            .authenticate_basic_proto("bob", "pw")
            .await
            .unwrap();
        let whoami = Action {
            r#type: "whoami".into(),
            body: Bytes::new(),
        };
        assert_eq!(
            collect_action(&bob, whoami).await.unwrap(),
            vec![Bytes::from_static(b"bob")]
        );
        assert!(bob.call_options().headers.get("auth-token-bin").is_some());
        put(&bob, "bobs", vec![int64_batch(2, 1)]).await;
        let err = secured
            .client
            .authenticate_basic_proto("bob", "nope")
            .await
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::Unauthenticated);
        secured.stop().await;
    }

    pub async fn middleware(env: &Env) {
        let server_events = Arc::new(Mutex::new(Vec::new()));
        let events = server_events.clone();
        let secured = Env::start_with(env.transport, move |b| {
            b.middleware(Recorder {
                events,
                name: "first",
            })
            .middleware(Recorder {
                events: Arc::new(Mutex::new(Vec::new())),
                name: "second",
            })
        })
        .await;
        let client_events = Arc::new(Mutex::new(Vec::new()));
        let client = secured.client.with_middleware(ClientRecorder {
            events: client_events.clone(),
        });
        // Client middleware adds a header the handler sees; the server's middleware answers with a
        // response header and a trailer that client middleware sees.
        let lines = collect_action(
            &client,
            Action {
                r#type: "echo-headers".into(),
                body: Bytes::new(),
            },
        )
        .await
        .unwrap();
        assert!(
            lines.contains(&Bytes::from_static(b"x-client-mw=1")),
            "{lines:?}"
        );
        put(&client, "mw-data", vec![int64_batch(3, 1)]).await;
        assert_eq!(get(&client, "mw-data").await.len(), 1);
        // The record-batch streams of DoGet, DoPut and DoExchange keep the response headers and,
        // once read to the end, the trailers.
        let mut batches = client
            .do_get(Ticket::new(Bytes::from_static(b"mw-data")))
            .await
            .unwrap();
        let x_mw = |h: &polyflight::Headers| -> Vec<Bytes> { h.get_all("x-mw").cloned().collect() };
        let x_status =
            |h: &polyflight::Headers| -> Vec<Bytes> { h.get_all("x-mw-status").cloned().collect() };
        assert_eq!(x_mw(batches.headers()), [&b"first"[..], b"second"]);
        while batches.try_next().await.unwrap().is_some() {}
        assert_eq!(x_status(&batches.trailers()), [&b"second"[..], b"first"]);
        let mut results = client
            .do_put(
                FlightDescriptor::new_path(["mw-put"]),
                futures::stream::iter([Ok(int64_batch(2, 1))]),
            )
            .await
            .unwrap();
        assert_eq!(x_mw(results.headers()), [&b"first"[..], b"second"]);
        while results.try_next().await.unwrap().is_some() {}
        assert_eq!(x_status(&results.trailers()), [&b"second"[..], b"first"]);
        let mut exchanged = client
            .do_exchange(
                FlightDescriptor::new_path(["echo"]),
                futures::stream::iter([Ok(int64_batch(2, 1))]),
            )
            .await
            .unwrap();
        assert_eq!(x_mw(exchanged.headers()), [&b"first"[..], b"second"]);
        while exchanged.try_next().await.unwrap().is_some() {}
        assert_eq!(x_status(&exchanged.trailers()), [&b"second"[..], b"first"]);
        let events = client_events.lock().unwrap().clone();
        assert!(
            events.contains(&"headers DoAction x-mw=first,second".to_string()),
            "{events:?}"
        );
        assert!(
            events.contains(&"end DoAction OK trailer=second,first".to_string()),
            "{events:?}"
        );
        // Errors reach both sides' middleware with their code.
        let _ = collect_action(
            &client,
            Action {
                r#type: "error".into(),
                body: Bytes::from_static(b"5"),
            },
        )
        .await;
        wait_for(|| {
            server_events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e == "first end DoAction NOT_FOUND")
        })
        .await;
        assert!(client_events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("end DoAction NOT_FOUND")));
        // Middleware can reject a call before the service sees it.
        let rejected = client.with_call_options(CallOptions::new().header("x-reject", "please"));
        let outcome = rejected
            .do_put(
                FlightDescriptor::new_path(["never"]),
                futures::stream::iter([Ok(int64_batch(1, 1))]),
            )
            .await;
        let outcome = match outcome {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        assert_code(outcome, FlightCode::Unauthorized);
        assert!(
            secured.service.store.get(b"never").is_none(),
            "a rejected call reached the service"
        );
        // Streams end in middleware too.
        wait_for(|| {
            server_events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.starts_with("first end DoGet"))
        })
        .await;
        secured.stop().await;
    }

    pub async fn progress_timeout(env: &Env) {
        let started = Instant::now();
        let mut stream = env
            .client
            .with_call_options(CallOptions::new().progress_timeout(Duration::from_millis(300)))
            .do_get(Ticket::new(Bytes::from_static(b"slow:3000")))
            .await
            .unwrap();
        assert!(
            stream.try_next().await.unwrap().is_some(),
            "first batch comes at once"
        );
        let err = stream.try_next().await.unwrap_err();
        assert_eq!(err.code(), FlightCode::TimedOut, "{err}");
        assert!(err.message().contains("progress timeout"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    pub async fn write_size_limit(env: &Env) {
        let limited = env
            .client
            .with_call_options(CallOptions::new().max_write_size(64 * 1024));
        // 1.6 MB: one message under the encoder's 2 MiB split size, far over the limit.
        let big = int64_batch(100_000, 2);
        let outcome = match limited
            .do_put(
                FlightDescriptor::new_path(["too-big"]),
                futures::stream::iter([Ok(big)]),
            )
            .await
        {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = assert_code(outcome, FlightCode::InvalidArgument);
        assert!(err.message().contains("write size limit"), "{err}");
        assert!(env.service.store.get(b"too-big").is_none());
        // Small batches pass.
        let ok: Vec<_> = limited
            .do_put(
                FlightDescriptor::new_path(["small"]),
                futures::stream::iter([Ok(int64_batch(100, 2))]),
            )
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(ok.len(), 1);
    }

    pub async fn peer_info(env: &Env) {
        let lines: Vec<Bytes> = env
            .client
            .do_action(Action {
                r#type: "peer".into(),
                body: Bytes::new(),
            })
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&lines[0]).into_owned();
        assert!(
            !text.contains("address=-"),
            "transport reported no peer address: {text}"
        );
    }
}

async fn collect_action(
    client: &polyflight::FlightClient,
    action: Action,
) -> polyflight::Result<Vec<Bytes>> {
    client.do_action(action).await?.try_collect().await
}

/// Server middleware that records call ends, adds a response header and a trailer, and rejects
/// calls carrying `x-reject`.
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    name: &'static str,
}

#[polyflight::async_trait]
impl polyflight::ServerMiddleware for Recorder {
    async fn call_started(&self, ctx: &polyflight::CallContext) -> polyflight::Result<()> {
        if ctx.headers().get("x-reject").is_some() {
            return Err(FlightError::unauthorized("rejected by middleware"));
        }
        ctx.append_response_header("x-mw", self.name);
        Ok(())
    }

    fn call_ended(&self, ctx: &polyflight::CallContext, status: &Result<(), FlightError>) {
        let code = status
            .as_ref()
            .err()
            .map(|e| e.code())
            .unwrap_or(FlightCode::Ok);
        ctx.append_response_trailer("x-mw-status", self.name);
        self.events
            .lock()
            .unwrap()
            .push(format!("{} end {} {code}", self.name, ctx.method()));
    }
}

/// Client middleware that adds a header and records response headers and call ends.
struct ClientRecorder {
    events: Arc<Mutex<Vec<String>>>,
}

impl polyflight::ClientMiddleware for ClientRecorder {
    fn call_started(&self, _method: polyflight::FlightMethod, headers: &mut polyflight::Headers) {
        headers.append("x-client-mw", "1");
    }

    fn received_headers(&self, method: polyflight::FlightMethod, headers: &polyflight::Headers) {
        let values: Vec<String> = headers
            .get_all("x-mw")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        self.events
            .lock()
            .unwrap()
            .push(format!("headers {method} x-mw={}", values.join(",")));
    }

    fn call_ended(
        &self,
        method: polyflight::FlightMethod,
        status: &Result<(), FlightError>,
        trailers: &polyflight::Headers,
    ) {
        let code = status
            .as_ref()
            .err()
            .map(|e| e.code())
            .unwrap_or(FlightCode::Ok);
        let values: Vec<String> = trailers
            .get_all("x-mw-status")
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        self.events
            .lock()
            .unwrap()
            .push(format!("end {method} {code} trailer={}", values.join(",")));
    }
}

async fn wait_for(condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "condition not reached in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

macro_rules! cases_for_transport {
    ($transport:expr; ($($case:ident),* $(,)?)) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let env = super::Env::start($transport).await;
                super::cases::$case(&env).await;
                env.stop().await;
            }
        )*
    };
}

macro_rules! conformance {
    ($($module:ident => $transport:expr),* $(,)? ; $cases:tt) => {
        $(
            mod $module {
                cases_for_transport!($transport; $cases);
            }
        )*
    };
}

conformance! {
    grpc => "grpc",
    grpc_tcp => "grpc+tcp",
    grpc_ipv6 => "grpc/ipv6",
    grpc_tls => "grpc+tls",
    grpc_mtls => "grpc+tls/mtls",
    grpc_unix => "grpc+unix",
    ucx => "ucx",
    ucx_small_budget => "ucx/small-budget",
    // A transport of the suite's own (tests/common/mem.rs) under a scheme the core does not know.
    mem => "mem";
    (
        handshake,
        put_get_round_trip,
        flight_info_schema_and_poll,
        list_flights,
        many_batches,
        large_batch,
        dictionaries,
        empty_stream,
        exchange_with_metadata,
        errors_carry_code_message_and_extra_info,
        headers_both_ways,
        concurrent_calls,
        timeout,
        cancellation,
        dropped_upload_cancels_the_call,
        standard_actions,
        sessions_belong_to_their_client,
        bad_flight_data_is_invalid_argument,
        read_flight_endpoints,
        auth_basic_bearer,
        auth_handshake_token,
        middleware,
        progress_timeout,
        write_size_limit,
        peer_info,
    )
}
