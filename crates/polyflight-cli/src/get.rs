//! `polyflight get URI PATH`: GetFlightInfo, then every endpoint read in parallel
//! ([`FlightClient::read_flight`](polyflight::FlightClient::read_flight)), and the batches saved
//! to a file by its extension (`-o FILE`), written to stdout as an IPC stream (`-o -`), shown as
//! a table (`--head N`), or only counted. A ticket (`--ticket`) or a perf flight (`--perf`) can be
//! fetched instead of a path.

use crate::args::{GetArgs, OutputArgs};
use crate::connect::{connect, Server};
use crate::fail::{Failure, Outcome};
use crate::files::{Destination, Writer};
use crate::output::{bytes, count};
use crate::progress::{self, Progress, Total};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::proto::{FlightDescriptor, Ticket};
use polyflight::{FlightCode, FlightError, FlightStream};
use polyflight_bench::{DataSpec, PerfCommand};
use serde_json::json;
use std::sync::Arc;

/// A path as `list` shows it (`a/b/c`) as a path descriptor.
pub fn path_descriptor(path: &str) -> Outcome<FlightDescriptor> {
    let segments = path_segments(path)?;
    Ok(FlightDescriptor::new_path(segments))
}

/// The segments of a `/`-separated path; an empty path is a usage error.
pub fn path_segments(path: &str) -> Outcome<Vec<String>> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if segments.is_empty() {
        return Err(Failure::usage(format!("{path:?} is not a flight path")));
    }
    Ok(segments)
}

/// What is being fetched, for messages.
struct Fetch {
    /// `PATH`, `ticket T` or `perf flight`.
    what: String,
    schema: Option<SchemaRef>,
    total: Total,
    stream: FlightStream<RecordBatch>,
}

pub async fn get(args: GetArgs) -> Outcome {
    let destination = args
        .output_file
        .as_deref()
        .map(Destination::parse)
        .transpose()?;
    let server = connect(&args.uri, &args.client).await?;
    let fetch = open(&server, &args, destination.as_ref()).await?;
    if let Some(rows) = args.head {
        return head(&server, fetch, rows, args.output.json).await;
    }
    match destination {
        Some(destination) => save(&server, fetch, destination, args.output).await,
        None => summarise(&server, fetch, args.output).await,
    }
}

/// A flight's batches, by path, ticket or perf command.
async fn open(
    server: &Server,
    args: &GetArgs,
    destination: Option<&Destination>,
) -> Outcome<Fetch> {
    let client = &server.client;
    if let Some(ticket) = &args.ticket {
        let what = format!("ticket {ticket:?}");
        let stream = client
            .do_get(Ticket::new(Bytes::from(ticket.clone().into_bytes())))
            .await
            .map_err(|err| missing(server, &what, &err))?;
        return Ok(Fetch {
            what,
            schema: None,
            total: Total::Unknown,
            stream: Box::pin(stream),
        });
    }
    let (what, descriptor) = match (&args.path, args.perf) {
        (Some(path), _) => (path.clone(), path_descriptor(path)?),
        (None, Some(rows)) => (
            format!("perf flight of {rows} rows"),
            FlightDescriptor::new_cmd(
                PerfCommand::new(DataSpec::default(), 1, rows, 32_768).encode_bytes(),
            ),
        ),
        (None, None) => return Err(Failure::usage("give a PATH, --ticket or --perf")),
    };
    let info = client
        .get_flight_info(descriptor)
        .await
        .map_err(|err| missing(server, &what, &err))?;
    let schema = info.try_schema().ok().map(Arc::new);
    if let (Some(schema), Some(destination)) = (&schema, destination) {
        destination.check_schema(schema)?;
    }
    let total = crate::output::known(info.total_records)
        .map(Total::Rows)
        .unwrap_or(Total::Unknown);
    let stream = client
        .read_flight(&info)
        .await
        .map_err(|err| missing(server, &what, &err))?;
    Ok(Fetch {
        what,
        schema,
        total,
        stream,
    })
}

/// A failure while fetching `what`: NOT_FOUND says which flight is missing where.
fn missing(server: &Server, what: &str, err: &FlightError) -> Failure {
    if err.code() == FlightCode::NotFound {
        Failure::not_found(format!("no flight at {what} on {}", server.uri))
    } else {
        server.fail(err)
    }
}

/// The next batch, or the failure that ended the stream.
async fn next(server: &Server, fetch: &mut Fetch) -> Outcome<Option<RecordBatch>> {
    match fetch.stream.try_next().await {
        Ok(batch) => Ok(batch),
        Err(err) => Err(missing(server, &fetch.what, &err)),
    }
}

/// `--head N`: the first N rows as a table (or JSON objects); the rest is not fetched.
async fn head(server: &Server, mut fetch: Fetch, limit: usize, json: bool) -> Outcome {
    let mut batches = Vec::new();
    let mut rows = 0;
    while rows < limit {
        let Some(batch) = next(server, &mut fetch).await? else {
            break;
        };
        let take = (limit - rows).min(batch.num_rows());
        rows += take;
        batches.push(batch.slice(0, take));
    }
    // Dropping the stream cancels the endpoints' calls: nothing more is read.
    drop(fetch.stream);
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .or(fetch.schema)
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    if json {
        let mut writer = arrow_json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow_json::writer::JsonArray>(Vec::new());
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        writer
            .write_batches(&refs)
            .and_then(|()| writer.finish())
            .map_err(|err| Failure::other(format!("{}: {err}", fetch.what)))?;
        let text = writer.into_inner();
        if text.is_empty() {
            println!("[]");
        } else {
            println!("{}", String::from_utf8_lossy(&text));
        }
        return Ok(());
    }
    let table = if batches.is_empty() {
        arrow_cast::pretty::pretty_format_batches_with_schema(schema, &batches)
            .map(|t| t.to_string())
    } else {
        let options = arrow_cast::display::FormatOptions::default()
            .with_display_error(true)
            .with_null("null");
        arrow_cast::pretty::pretty_format_batches_with_options(&batches, &options)
            .map(|t| t.to_string())
    };
    let table = table.map_err(|err| Failure::other(format!("{}: {err}", fetch.what)))?;
    println!("{table}");
    let of = match fetch.total {
        Total::Rows(total) => format!(" of {}", count(total)),
        _ => String::new(),
    };
    println!("({} rows{of})", count(rows as u64));
    Ok(())
}

/// One message from the reading side to the writing thread. The thread completes the file only
/// on `Done`: when the reading side fails or goes away, the partial file is removed.
enum ToWriter {
    Batch(RecordBatch),
    Done(Option<SchemaRef>),
}

/// `-o FILE` / `-o -`: every batch to the destination, with progress.
async fn save(
    server: &Server,
    mut fetch: Fetch,
    destination: Destination,
    output: OutputArgs,
) -> Outcome {
    let to_stdout = destination == Destination::Stdout;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ToWriter>(4);
    let target = destination.clone();
    let writing = tokio::task::spawn_blocking(move || -> Outcome<()> {
        let mut writer: Option<Writer> = None;
        while let Some(message) = rx.blocking_recv() {
            match message {
                ToWriter::Batch(batch) => {
                    let writer = match &mut writer {
                        Some(writer) => writer,
                        None => writer.insert(Writer::create(&target, batch.schema())?),
                    };
                    writer.write(&batch)?;
                }
                ToWriter::Done(schema) => {
                    let writer = match writer {
                        Some(writer) => writer,
                        None => Writer::create(
                            &target,
                            schema.unwrap_or_else(|| Arc::new(Schema::empty())),
                        )?,
                    };
                    return writer.finish();
                }
            }
        }
        Ok(())
    });
    let mut progress = Progress::new(
        progress::wanted(output.quiet),
        &format!("get {}", fetch.what),
        fetch.total,
    );
    let mut batches = 0u64;
    let read: Outcome<()> = async {
        while let Some(batch) = next(server, &mut fetch).await? {
            batches += 1;
            progress.add(batch.num_rows() as u64, progress::batch_bytes(&batch), None);
            if tx.send(ToWriter::Batch(batch)).await.is_err() {
                // The writer stopped: its failure is reported below.
                return Ok(());
            }
        }
        let _ = tx.send(ToWriter::Done(fetch.schema.clone())).await;
        Ok(())
    }
    .await;
    drop(tx);
    progress.finish();
    let written = writing
        .await
        .map_err(|err| Failure::other(format!("the writing thread failed: {err}")))?;
    read?;
    written?;
    let seconds = progress.elapsed().as_secs_f64();
    if output.json && !to_stdout {
        let summary = json!({
            "flight": fetch.what,
            "output": destination.describe(),
            "rows": progress.rows(),
            "batches": batches,
            "bytes": progress.bytes(),
            "seconds": seconds,
        });
        println!("{summary}");
        return Ok(());
    }
    if output.quiet {
        return Ok(());
    }
    let line = format!(
        "saved {} rows ({}) of {} to {} in {seconds:.2} s",
        count(progress.rows()),
        bytes(progress.bytes()),
        fetch.what,
        destination.describe()
    );
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(())
}

/// No destination: read everything and say how much came, how fast.
async fn summarise(server: &Server, mut fetch: Fetch, output: OutputArgs) -> Outcome {
    let mut progress = Progress::new(
        progress::wanted(output.quiet),
        &format!("get {}", fetch.what),
        fetch.total,
    );
    let mut batches = 0u64;
    while let Some(batch) = next(server, &mut fetch).await? {
        batches += 1;
        progress.add(batch.num_rows() as u64, progress::batch_bytes(&batch), None);
    }
    progress.finish();
    let seconds = progress.elapsed().as_secs_f64();
    if output.json {
        let summary = json!({
            "flight": fetch.what,
            "rows": progress.rows(),
            "batches": batches,
            "bytes": progress.bytes(),
            "seconds": seconds,
        });
        println!("{summary}");
    } else if !output.quiet {
        println!(
            "received {} rows in {} batches ({}) of {} in {seconds:.3} s",
            count(progress.rows()),
            count(batches),
            bytes(progress.bytes()),
            fetch.what
        );
    }
    Ok(())
}
