//! polyflight's UCX client against an Arrow C++ Flight server: the counterpart of
//! `tests/cpp/ucx_check.cc` (`ucx_check server ucx://127.0.0.1:PORT`), whose flights and
//! semantics it expects; `docs/ucx.md` ("Checked against Arrow C++") has the commands.
//!
//! ```text
//! cargo run --release --example ucx_cpp_peer -- ucx://127.0.0.1:PORT [steps...]
//! ```
//!
//! Steps: `info_simple get_simple poll_simple get_dict put info get poll exchange exchange_meta
//! errors dict reuse` (the default), and `small` (one small call of each kind, for frame
//! captures), `desync` and `unimpl_list unimpl_schema unimpl_action` (an extension RPC the
//! Arrow C++ server does not know, then ordinary calls on the same client). Each step uses a
//! fresh client and prints PASS or FAIL; the exit code is 1 if any failed.
use anyhow::{anyhow, bail, ensure, Result};
use arrow_array::builder::{
    Float64Builder, Int32Builder, Int64Builder, StringBuilder, StringDictionaryBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::codec::{
    DecodedPayload, EncoderInput, FlightDataEncoderBuilder, FlightRecordBatchStream,
};
use polyflight::proto::{FlightDescriptor, Ticket};
use polyflight::{FlightClient, FlightCode};
use std::sync::Arc;
use std::time::Instant;

fn simple_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("val", DataType::Float64, true),
    ]))
}

fn simple_batch(offset: i64, rows: i64) -> RecordBatch {
    let mut ids = Int64Builder::new();
    let mut names = StringBuilder::new();
    let mut vals = Float64Builder::new();
    for i in 0..rows {
        let v = offset + i;
        ids.append_value(v);
        names.append_value(format!("row-{v}"));
        if v % 7 == 3 {
            vals.append_null();
        } else {
            vals.append_value(v as f64 * 0.5);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(names.finish()),
        Arc::new(vals.finish()),
    ];
    RecordBatch::try_new(simple_schema(), cols).unwrap()
}

fn simple_batches() -> Vec<RecordBatch> {
    let mut out = vec![];
    let mut offset = 0;
    for rows in [5, 1000, 200000] {
        out.push(simple_batch(offset, rows));
        offset += rows;
    }
    out
}

fn dict_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new(
            "cat",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]))
}

fn dict_batches() -> Vec<RecordBatch> {
    let cats = ["red", "green", "blue"];
    (0..2)
        .map(|b| {
            let mut ids = Int32Builder::new();
            let mut c = StringDictionaryBuilder::<Int32Type>::new();
            for i in 0..100 {
                ids.append_value(b * 100 + i);
                c.append_value(cats[(i % 3) as usize]);
            }
            let cols: Vec<ArrayRef> = vec![Arc::new(ids.finish()), Arc::new(c.finish())];
            RecordBatch::try_new(dict_schema(), cols).unwrap()
        })
        .collect()
}

fn path(p: &str) -> FlightDescriptor {
    FlightDescriptor::new_path(p.split('/').map(|s| s.to_string()))
}

fn same_rows(schema: &SchemaRef, want: &[RecordBatch], got: &[RecordBatch]) -> Result<()> {
    let want = arrow_select::concat::concat_batches(schema, want)?;
    let got_schema = got
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| schema.clone());
    ensure!(
        got_schema.fields() == schema.fields(),
        "schema differs: got {got_schema:?}, want {schema:?}"
    );
    let got = arrow_select::concat::concat_batches(&got_schema, got)?;
    ensure!(
        got.num_rows() == want.num_rows(),
        "got {} rows, want {}",
        got.num_rows(),
        want.num_rows()
    );
    ensure!(got.columns() == want.columns(), "column contents differ");
    Ok(())
}

async fn connect(uri: &str) -> Result<FlightClient> {
    Ok(polyflight::connect(uri).await?)
}

async fn step_info(uri: &str, p: &str, records: i64) -> Result<()> {
    let client = connect(uri).await?;
    let info = client.get_flight_info(path(p)).await?;
    let schema = info.try_schema()?;
    println!(
        "  FlightInfo: records={} bytes={} endpoints={} ordered={} app_metadata={:?} schema={:?}",
        info.total_records,
        info.total_bytes,
        info.endpoint.len(),
        info.ordered,
        String::from_utf8_lossy(&info.app_metadata),
        schema
            .fields()
            .iter()
            .map(|f| format!("{}:{}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
    );
    ensure!(info.total_records == records, "total_records");
    ensure!(info.endpoint.len() == 1, "one endpoint");
    let ticket = info.endpoint[0]
        .ticket
        .as_ref()
        .ok_or_else(|| anyhow!("no ticket"))?;
    ensure!(ticket.ticket.as_ref() == p.as_bytes(), "ticket == path");
    Ok(())
}

async fn step_poll(uri: &str, p: &str, records: i64) -> Result<()> {
    let client = connect(uri).await?;
    let poll = client.poll_flight_info(path(p)).await?;
    println!(
        "  PollInfo: info={} descriptor={:?} progress={:?}",
        poll.info.is_some(),
        poll.flight_descriptor,
        poll.progress
    );
    let info = poll.info.ok_or_else(|| anyhow!("no info"))?;
    ensure!(info.total_records == records, "records");
    ensure!(poll.flight_descriptor.is_none(), "complete");
    Ok(())
}

async fn step_get(uri: &str, ticket: &str, schema: &SchemaRef, want: &[RecordBatch]) -> Result<()> {
    let client = connect(uri).await?;
    let stream = client
        .do_get(Ticket::new(Bytes::from(ticket.to_string().into_bytes())))
        .await?;
    let got: Vec<RecordBatch> = stream.try_collect().await?;
    println!(
        "  DoGet '{ticket}': {} rows in {} batches",
        got.iter().map(|b| b.num_rows()).sum::<usize>(),
        got.len()
    );
    same_rows(schema, want, &got)
}

async fn put(
    uri: &str,
    p: &str,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
) -> Result<Vec<String>> {
    let client = connect(uri).await?;
    let input = batches.into_iter().enumerate().map(|(i, b)| {
        Ok(EncoderInput::BatchWithMetadata(
            b,
            Bytes::from(format!("put-meta-{i}")),
        ))
    });
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(path(p))
        .with_schema(schema)
        .build_messages(futures::stream::iter(input));
    let response = client.do_put_data(Box::pin(data)).await?;
    let acks: Vec<String> = response
        .body
        .map_ok(|r| String::from_utf8_lossy(&r.app_metadata).into_owned())
        .try_collect()
        .await?;
    Ok(acks)
}

async fn step_put(uri: &str) -> Result<()> {
    let acks = put(uri, "rust/put", simple_batches(), simple_schema()).await?;
    println!("  DoPut acks: {acks:?}");
    ensure!(!acks.is_empty(), "at least one ack");
    Ok(())
}

async fn step_exchange(uri: &str, with_meta_only: bool) -> Result<()> {
    let client = connect(uri).await?;
    let batches = simple_batches();
    let mut input = vec![];
    for (i, b) in batches.iter().enumerate() {
        input.push(Ok(EncoderInput::BatchWithMetadata(
            b.clone(),
            Bytes::from(format!("ex-meta-{i}")),
        )));
        if with_meta_only {
            input.push(Ok(EncoderInput::Metadata(Bytes::from(format!("only-{i}")))));
        }
    }
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(path("rust/exchange"))
        .with_schema(simple_schema())
        .build_messages(futures::stream::iter(input));
    let response = client.do_exchange_data(Box::pin(data)).await?;
    let mut stream = FlightRecordBatchStream::new(response.body);
    let (mut got, mut metas) = (vec![], vec![]);
    while let Some(message) = stream.next_message().await {
        let message = message?;
        if !message.app_metadata.is_empty() {
            metas.push(String::from_utf8_lossy(&message.app_metadata).into_owned());
        }
        if let DecodedPayload::RecordBatch(b) = message.payload {
            got.push(b);
        }
    }
    println!(
        "  DoExchange echoed {} batches; metadata: {metas:?}",
        got.len()
    );
    same_rows(&simple_schema(), &batches, &got)?;
    let want_meta = batches.len() * if with_meta_only { 2 } else { 1 };
    ensure!(
        metas.len() == want_meta,
        "every app_metadata echoed ({} of {want_meta})",
        metas.len()
    );
    Ok(())
}

async fn step_errors(uri: &str) -> Result<()> {
    let client = connect(uri).await?;
    let err = match client.get_flight_info(path("no/such")).await {
        Ok(_) => bail!("GetFlightInfo(no/such) succeeded"),
        Err(e) => e,
    };
    println!(
        "  GetFlightInfo(no/such): {:?}: {}",
        err.code(),
        err.message()
    );
    ensure!(err.code() == FlightCode::NotFound, "NOT_FOUND");
    let result = async {
        let s = client
            .do_get(Ticket::new(Bytes::from_static(b"no/such")))
            .await?;
        s.try_collect::<Vec<_>>().await
    }
    .await;
    let err = match result {
        Ok(_) => bail!("DoGet(no/such) succeeded"),
        Err(e) => e,
    };
    println!("  DoGet(no/such): {:?}: {}", err.code(), err.message());
    ensure!(err.code() == FlightCode::NotFound, "NOT_FOUND");
    Ok(())
}

/// An extension call the C++ server does not know, then a normal call on the SAME client
/// (so on the same pooled connection).
async fn step_unimpl_then_info(uri: &str, which: &str) -> Result<()> {
    let client = connect(uri).await?;
    let first = match which {
        "schema" => client.get_schema(path("simple")).await.map(|_| ()),
        "action" => match client
            .do_action(polyflight::proto::Action {
                r#type: "x".into(),
                body: Bytes::new(),
            })
            .await
        {
            Ok(s) => s.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        },
        _ => match client.list_flights(Vec::<u8>::new()).await {
            Ok(s) => s.try_collect::<Vec<_>>().await.map(|_| ()),
            Err(e) => Err(e),
        },
    };
    match &first {
        Ok(()) => println!("  {which}: ok"),
        Err(e) => println!("  {which}: {:?}: {}", e.code(), e.message()),
    }
    for i in 0..3 {
        match client.get_flight_info(path("simple")).await {
            Ok(info) => println!(
                "  then GetFlightInfo #{i}: ok, records={}",
                info.total_records
            ),
            Err(e) => {
                println!("  then GetFlightInfo #{i}: {:?}: {}", e.code(), e.message());
                bail!(
                    "GetFlightInfo after {which} failed: {:?}: {}",
                    e.code(),
                    e.message()
                );
            }
        }
    }
    Ok(())
}

/// After an extension call, three different GetFlightInfo calls on the same client: shows which
/// answer each one gets.
async fn step_desync(uri: &str) -> Result<()> {
    let client = connect(uri).await?;
    let first = match client.list_flights(Vec::<u8>::new()).await {
        Ok(s) => s.try_collect::<Vec<_>>().await.map(|_| ()),
        Err(e) => Err(e),
    };
    println!(
        "  ListFlights: {:?}",
        first
            .err()
            .map(|e| format!("{:?}: {}", e.code(), e.message()))
    );
    let mut wrong = 0;
    for (p, want) in [
        ("no/such", -1i64),
        ("dict", 200),
        ("simple", 201005),
        ("dict", 200),
    ] {
        match client.get_flight_info(path(p)).await {
            Ok(info) => {
                let got_path = info
                    .flight_descriptor
                    .as_ref()
                    .map(|d| d.path.join("/"))
                    .unwrap_or_default();
                println!(
                    "  GetFlightInfo({p}) -> ok: descriptor={got_path} records={}",
                    info.total_records
                );
                if info.total_records != want {
                    wrong += 1;
                }
            }
            Err(e) => {
                println!("  GetFlightInfo({p}) -> {:?}: {}", e.code(), e.message());
                if want != -1 || e.code() != FlightCode::NotFound {
                    wrong += 1;
                }
            }
        }
    }
    ensure!(
        wrong == 0,
        "{wrong} of 4 calls got another call's answer or a stale error"
    );
    Ok(())
}

/// Small versions of every call, for frame captures (test vectors).
async fn step_small(uri: &str) -> Result<()> {
    let client = connect(uri).await?;
    let small = vec![simple_batch(0, 5)];
    let input = vec![Ok(EncoderInput::BatchWithMetadata(
        small[0].clone(),
        Bytes::from_static(b"m0"),
    ))];
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(path("rust/small"))
        .with_schema(simple_schema())
        .build_messages(futures::stream::iter(input));
    let acks: Vec<_> = client
        .do_put_data(Box::pin(data))
        .await?
        .body
        .try_collect()
        .await?;
    ensure!(acks.len() == 1, "one ack");
    let info = client.get_flight_info(path("rust/small")).await?;
    ensure!(info.total_records == 5, "5 records");
    let poll = client.poll_flight_info(path("rust/small")).await?;
    ensure!(poll.info.is_some(), "poll info");
    let got: Vec<RecordBatch> = client
        .do_get(Ticket::new(Bytes::from_static(b"rust/small")))
        .await?
        .try_collect()
        .await?;
    same_rows(&simple_schema(), &small, &got)?;
    let err = client
        .get_flight_info(path("no/such"))
        .await
        .err()
        .ok_or_else(|| anyhow!("no error"))?;
    ensure!(err.code() == FlightCode::NotFound, "NOT_FOUND");
    let input = vec![
        Ok(EncoderInput::BatchWithMetadata(
            small[0].clone(),
            Bytes::from_static(b"x0"),
        )),
        Ok(EncoderInput::Metadata(Bytes::from_static(b"only"))),
    ];
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(path("rust/exchange"))
        .with_schema(simple_schema())
        .build_messages(futures::stream::iter(input));
    let echoed: Vec<_> = client
        .do_exchange_data(Box::pin(data))
        .await?
        .body
        .try_collect()
        .await?;
    println!("  small: DoExchange echoed {} messages", echoed.len());
    Ok(())
}

/// Many calls on ONE client (pooled connections).
async fn step_reuse(uri: &str, iterations: usize) -> Result<()> {
    let client = connect(uri).await?;
    let small = vec![simple_batch(0, 5)];
    for _ in 0..iterations {
        let data = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(path("rust/small"))
            .build(futures::stream::iter(small.clone().into_iter().map(Ok)));
        let acks: Vec<_> = client
            .do_put_data(Box::pin(data))
            .await?
            .body
            .try_collect()
            .await?;
        ensure!(acks.len() == 1, "one ack");
        let info = client.get_flight_info(path("rust/small")).await?;
        ensure!(info.total_records == 5, "5 records");
        let got: Vec<RecordBatch> = client
            .do_get(Ticket::new(Bytes::from_static(b"rust/small")))
            .await?
            .try_collect()
            .await?;
        same_rows(&simple_schema(), &small, &got)?;
        let err = client
            .get_flight_info(path("no/such"))
            .await
            .err()
            .ok_or_else(|| anyhow!("no error"))?;
        ensure!(err.code() == FlightCode::NotFound, "NOT_FOUND");
        let echoed: Vec<RecordBatch> = client
            .do_exchange(
                path("rust/exchange"),
                futures::stream::iter(small.clone().into_iter().map(Ok)),
            )
            .await?
            .try_collect()
            .await?;
        same_rows(&simple_schema(), &small, &echoed)?;
    }
    println!("  {iterations} x (DoPut, GetFlightInfo, DoGet, error, DoExchange) on one client");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let uri = args
        .first()
        .ok_or_else(|| anyhow!("usage: ucx_cpp_peer URI [steps...]"))?
        .clone();
    let mut steps: Vec<String> = args[1..].to_vec();
    if steps.is_empty() {
        steps = [
            "info_simple",
            "get_simple",
            "poll_simple",
            "get_dict",
            "put",
            "info",
            "get",
            "poll",
            "exchange",
            "exchange_meta",
            "errors",
            "dict",
            "reuse",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
    }
    let (mut passed, mut failed) = (0, 0);
    for step in steps {
        let t0 = Instant::now();
        let r = match step.as_str() {
            "info_simple" => step_info(&uri, "simple", 201005).await,
            "get_simple" => step_get(&uri, "simple", &simple_schema(), &simple_batches()).await,
            "poll_simple" => step_poll(&uri, "simple", 201005).await,
            "get_dict" => step_get(&uri, "dict", &dict_schema(), &dict_batches()).await,
            "put" => step_put(&uri).await,
            "info" => step_info(&uri, "rust/put", 201005).await,
            "get" => step_get(&uri, "rust/put", &simple_schema(), &simple_batches()).await,
            "poll" => step_poll(&uri, "rust/put", 201005).await,
            "exchange" => step_exchange(&uri, false).await,
            "exchange_meta" => step_exchange(&uri, true).await,
            "errors" => step_errors(&uri).await,
            "dict" => {
                async {
                    let acks = put(&uri, "rust/dict", dict_batches(), dict_schema()).await?;
                    println!("  DoPut(dict) acks: {acks:?}");
                    step_get(&uri, "rust/dict", &dict_schema(), &dict_batches()).await
                }
                .await
            }
            "reuse" => step_reuse(&uri, 100).await,
            "small" => step_small(&uri).await,
            "desync" => step_desync(&uri).await,
            "unimpl_list" => step_unimpl_then_info(&uri, "list").await,
            "unimpl_schema" => step_unimpl_then_info(&uri, "schema").await,
            "unimpl_action" => step_unimpl_then_info(&uri, "action").await,
            other => Err(anyhow!("unknown step {other}")),
        };
        let ms = t0.elapsed().as_millis();
        match r {
            Ok(()) => {
                passed += 1;
                println!("PASS {step} ({ms} ms)");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {step} ({ms} ms): {e:#}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
