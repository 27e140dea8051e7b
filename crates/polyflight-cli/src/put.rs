//! `polyflight put URI FILE…`: each file read by its extension (Arrow IPC file or stream,
//! Parquet, CSV with inferred types) on a blocking thread and streamed to the server with DoPut
//! as the flight at `--path` or at the file's name. Every file is opened before anything is sent,
//! so a bad file fails the command before the server sees a byte.

use crate::args::PutArgs;
use crate::connect::{connect, Server};
use crate::fail::{Failure, Outcome};
use crate::files::{Extent, Format, Source};
use crate::get::path_segments;
use crate::output::{bytes, count};
use crate::progress::{self, Progress, Total};
use futures::TryStreamExt;
use polyflight::codec::FlightDataEncoderBuilder;
use polyflight::proto::{FlightDescriptor, PutResult};
use polyflight::{FlightCode, FlightError};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// One file to upload and where to.
struct Upload {
    source: Source,
    path: Vec<String>,
}

pub async fn put(args: PutArgs) -> Outcome {
    let targets = targets(&args)?;
    let mut uploads = Vec::with_capacity(targets.len());
    for (file, path) in targets {
        let source = tokio::task::spawn_blocking(move || {
            if file.as_os_str() == "-" {
                Source::stdin()
            } else {
                Source::open(&file)
            }
        })
        .await
        .map_err(|err| Failure::other(format!("the reading thread failed: {err}")))??;
        uploads.push(Upload { source, path });
    }
    let server = connect(&args.uri, &args.client).await?;
    let mut summaries = Vec::new();
    for upload in uploads {
        let summary = send(&server, upload, args.overwrite, args.output.quiet).await?;
        if !args.output.json && !args.output.quiet {
            println!(
                "uploaded {} to {}: {} rows ({}) in {:.2} s",
                summary.file,
                summary.path,
                count(summary.rows),
                bytes(summary.bytes),
                summary.seconds,
            );
        }
        summaries.push(summary);
    }
    if args.output.json {
        println!(
            "{}",
            Value::Array(summaries.iter().map(Uploaded::json).collect())
        );
    }
    Ok(())
}

/// What one upload did.
struct Uploaded {
    file: String,
    path: String,
    rows: u64,
    /// What the server says it stored, or else the bytes of the batches sent.
    bytes: u64,
    seconds: f64,
}

impl Uploaded {
    fn json(&self) -> Value {
        json!({
            "file": self.file,
            "path": self.path,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": self.seconds,
        })
    }
}

/// Each file and the path it goes to: `--path P` for one file, `--path DIR/` (ending in `/`)
/// puts every file under DIR, else the file's name. A CSV file's default name ends in `.arrow`
/// instead (servers store Arrow IPC or Parquet, not CSV).
fn targets(args: &PutArgs) -> Outcome<Vec<(std::path::PathBuf, Vec<String>)>> {
    let prefix = match &args.path {
        Some(path) if path.ends_with('/') => Some(path_segments(path)?),
        Some(path) => {
            if args.files.len() != 1 {
                return Err(Failure::usage(format!(
                    "--path {path} names one flight, and {} files were given; pass one file, \
                     or a directory path ending in '/'",
                    args.files.len()
                )));
            }
            let file = args.files[0].clone();
            return Ok(vec![(file, path_segments(path)?)]);
        }
        None => None,
    };
    if args.files.iter().any(|file| file.as_os_str() == "-") {
        return Err(Failure::usage(
            "reading stdin (`-`) needs --path NAME, the flight to store it as",
        ));
    }
    args.files
        .iter()
        .map(|file| {
            let mut path = prefix.clone().unwrap_or_default();
            path.push(default_name(file)?);
            Ok((file.clone(), path))
        })
        .collect()
}

/// The flight name a file is uploaded as by default.
fn default_name(file: &Path) -> Outcome<String> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure::bad_input(format!("{} has no file name", file.display())))?;
    Ok(match Format::of(file) {
        Some(Format::Csv) => {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or(name);
            format!("{stem}.arrow")
        }
        _ => name.to_string(),
    })
}

/// Uploads one file.
async fn send(server: &Server, upload: Upload, overwrite: bool, quiet: bool) -> Outcome<Uploaded> {
    let Upload { mut source, path } = upload;
    let file = source.path.display().to_string();
    let shown = path.join("/");
    let descriptor = if overwrite {
        let segments: Vec<&str> = path.iter().map(String::as_str).collect();
        polyflight_dataset::overwrite_descriptor(&segments)
    } else {
        FlightDescriptor::new_path(path.clone())
    };
    let schema = source.schema.clone();
    let total = match source.extent {
        Extent::Rows(rows) => Total::Rows(rows),
        Extent::Bytes(length) => Total::Bytes(length),
        Extent::Unknown => Total::Unknown,
    };
    let read_failure: Arc<Mutex<Option<Failure>>> = Arc::default();
    let (tx, rx) = tokio::sync::mpsc::channel::<polyflight::Result<arrow_array::RecordBatch>>(4);
    let slot = read_failure.clone();
    let name = source
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let label = if name == shown {
        format!("put {shown}")
    } else {
        format!("put {name} → {shown}")
    };
    let reading = tokio::task::spawn_blocking(move || {
        let mut progress = Progress::new(progress::wanted(quiet), &label, total);
        let position = source.bytes_read();
        while let Some(item) = source.next_batch() {
            match item {
                Ok(batch) => {
                    progress.add(
                        batch.num_rows() as u64,
                        progress::batch_bytes(&batch),
                        Some(position.load(Ordering::Relaxed)),
                    );
                    if tx.blocking_send(Ok(batch)).is_err() {
                        break;
                    }
                }
                Err(failure) => {
                    let err = FlightError::invalid_argument(failure.message.clone());
                    if let Ok(mut slot) = slot.lock() {
                        *slot = Some(failure);
                    }
                    let _ = tx.blocking_send(Err(err));
                    break;
                }
            }
        }
        progress.finish();
        (progress.rows(), progress.bytes(), progress.elapsed())
    });
    let batches = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let data = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(descriptor)
        .with_schema(schema)
        .build(batches);
    let result: polyflight::Result<Vec<PutResult>> = async {
        let response = server.client.do_put_data(Box::pin(data)).await?;
        response.body.try_collect().await
    }
    .await;
    let taken = read_failure.lock().ok().and_then(|mut slot| slot.take());
    if let Some(failure) = taken {
        return Err(failure);
    }
    let results = match result {
        Ok(results) => results,
        Err(err) => {
            return Err(match err.code() {
                FlightCode::AlreadyExists => Failure::other(format!(
                    "{shown} already exists on {}; pass --overwrite to replace it",
                    server.uri
                )),
                _ => server
                    .fail(&err)
                    .with_context(&format!("uploading {file} to {shown}")),
            })
        }
    };
    let (rows, sent, elapsed) = reading
        .await
        .map_err(|err| Failure::other(format!("the reading thread failed: {err}")))?;
    // A server may say what it stored (the dataset service answers with JSON app_metadata
    // holding the bytes it wrote); else the size of the batches sent.
    let stored = results
        .last()
        .and_then(|r| serde_json::from_slice::<Value>(&r.app_metadata).ok())
        .and_then(|v| v["bytes"].as_u64());
    Ok(Uploaded {
        file,
        path: shown,
        rows,
        bytes: stored.unwrap_or(sent),
        seconds: elapsed.as_secs_f64(),
    })
}
