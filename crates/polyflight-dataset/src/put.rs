//! DoPut: an uploaded stream stored durably as a file of the dataset, or not at all.
//!
//! The first message names the file (a PATH descriptor, or the CMD descriptor of
//! [`crate::overwrite_descriptor`]). Its directories are created as needed, one level at a time,
//! each checked to resolve under the root (so a symbolic link cannot lead a put outside it).
//! The data goes to a hidden temporary file beside the target, `.NAME.put-RANDOM`, which
//! listings skip. The upload is decoded by polyflight's codec and each batch handed, through a
//! small bounded channel, to a writer on a blocking thread (arrow-ipc's `FileWriter` for
//! `.arrow`/`.feather`, its `StreamWriter` for `.arrows`, parquet's `ArrowWriter` for
//! `.parquet`), so memory holds a few batches, never the upload.
//!
//! At the end of the upload the writer finishes the file, fsyncs it, moves it into place
//! (`rename` when overwriting; otherwise `renameat2(RENAME_NOREPLACE)`, or a hard link, so that
//! of two racing puts to one path exactly one wins and the other gets ALREADY_EXISTS) and fsyncs
//! the directory. Only then is the one PutResult sent. An upload that fails, is cancelled, or
//! whose client goes away leaves nothing: the temporary file is removed when the put's future
//! is dropped, whatever state it was in.

use crate::io::io_error;
use crate::paths::{parse_descriptor, DatasetPath, FileFormat};
use crate::writeback::Writeback;
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use futures::StreamExt;
use polyflight_core::codec::{DecodedMessage, DecodedPayload, FlightRecordBatchStream};
use polyflight_core::proto::PutResult;
use polyflight_core::{CallContext, FlightData, FlightError, FlightStream, Result};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting for the writer.
const WRITE_QUEUE: usize = 2;

/// Buffer of the IPC writers.
const WRITE_BUFFER: usize = 1 << 20;

/// A Parquet row group is closed once its encoded data reaches this size, which bounds what
/// the Parquet writer holds in memory.
const PARQUET_ROW_GROUP_BYTES: usize = 64 << 20;

/// Runs a DoPut: the response stream yields the one PutResult once the file is durable.
pub(crate) fn do_put(
    root: PathBuf,
    ctx: CallContext,
    data: FlightStream<FlightData>,
    idle_timeout: Option<Duration>,
) -> FlightStream<PutResult> {
    futures::stream::once(run(root, ctx, data, idle_timeout)).boxed()
}

/// What the PutResult's app_metadata says (JSON).
#[derive(serde::Serialize)]
struct PutSummary {
    path: String,
    rows: u64,
    batches: u64,
    bytes: u64,
}

async fn run(
    root: PathBuf,
    ctx: CallContext,
    data: FlightStream<FlightData>,
    idle_timeout: Option<Duration>,
) -> Result<PutResult> {
    let mut input = Input {
        stream: FlightRecordBatchStream::new(data),
        ctx,
        idle_timeout,
    };
    let first = input
        .next()
        .await?
        .ok_or_else(|| FlightError::invalid_argument("the DoPut stream carried no message"))?;
    let descriptor = first.descriptor.clone().ok_or_else(|| {
        FlightError::invalid_argument("the first DoPut message carries no FlightDescriptor")
    })?;
    let (path, overwrite) = parse_descriptor(&descriptor)?;
    let format = path.format()?;

    let prepare_path = path.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare(&root, &prepare_path, overwrite))
        .await
        .map_err(|e| FlightError::internal(format!("preparing the put: {e}")))??;
    let Prepared { temp, file, target } = prepared;
    let commit = Commit {
        temp: temp.path.clone(),
        target,
        overwrite,
        shown: path.to_string(),
    };

    let (commands, queue) = mpsc::channel(WRITE_QUEUE);
    let mut writer = tokio::task::spawn_blocking(move || write_file(file, format, queue, commit));
    let mut schema: Option<SchemaRef> = None;
    let (mut rows, mut batches) = (0u64, 0u64);
    let mut message = Some(first);
    loop {
        let current = match message.take() {
            Some(current) => current,
            None => match input.next().await? {
                Some(next) => next,
                None => break,
            },
        };
        let command = match current.payload {
            DecodedPayload::Schema(new) => match &schema {
                None => {
                    schema = Some(new.clone());
                    Command::Start(new)
                }
                Some(old) if old.fields() == new.fields() => continue,
                Some(_) => {
                    return Err(FlightError::invalid_argument(format!(
                        "{path}: the upload changes its schema; a file holds one"
                    )))
                }
            },
            DecodedPayload::RecordBatch(batch) => {
                rows += batch.num_rows() as u64;
                batches += 1;
                Command::Batch(batch)
            }
            DecodedPayload::DictionaryBatch | DecodedPayload::None => continue,
        };
        if commands.send(command).await.is_err() {
            // The writer stopped: its result says why.
            return Err(writer_result(&mut writer).await.err().unwrap_or_else(|| {
                FlightError::internal(format!("{path}: the file writer stopped"))
            }));
        }
    }
    if schema.is_none() {
        return Err(FlightError::invalid_argument(format!(
            "{path}: the upload carried no schema"
        )));
    }
    // A send error here means the writer already failed; its result says how.
    let _ = commands.send(Command::Finish).await;
    let bytes = writer_result(&mut writer).await?;
    temp.disarm();
    let summary = PutSummary {
        path: path.to_string(),
        rows,
        batches,
        bytes,
    };
    tracing::debug!(path = %path, rows, batches, bytes, "stored an uploaded flight");
    Ok(PutResult {
        app_metadata: serde_json::to_vec(&summary).unwrap_or_default().into(),
    })
}

async fn writer_result(writer: &mut tokio::task::JoinHandle<Result<u64>>) -> Result<u64> {
    writer
        .await
        .map_err(|e| FlightError::internal(format!("the file writer failed: {e}")))?
}

/// The uploaded messages, read until the call is cancelled or stalls.
struct Input {
    stream: FlightRecordBatchStream,
    ctx: CallContext,
    idle_timeout: Option<Duration>,
}

impl Input {
    /// The next uploaded message; CANCELLED when the call is, TIMED_OUT when nothing arrives
    /// within the idle timeout.
    async fn next(&mut self) -> Result<Option<DecodedMessage>> {
        let stalled = async {
            match self.idle_timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = self.stream.next_message() => message.transpose(),
            () = self.ctx.cancelled() => Err(FlightError::cancelled("the DoPut was cancelled")),
            () = stalled => Err(FlightError::timed_out(format!(
                "the DoPut sent nothing for {:?}; the upload is abandoned",
                self.idle_timeout.unwrap_or_default()
            ))),
        }
    }
}

/// The temporary file of a put, and the directories the put created; removed when dropped
/// unless disarmed.
struct TempFile {
    path: PathBuf,
    /// In the order they were made.
    created_dirs: Vec<PathBuf>,
    armed: bool,
}

impl TempFile {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // After a successful rename the name is gone and this fails, harmlessly.
            let _ = std::fs::remove_file(&self.path);
            // Only empty directories go: another put may have stored a file in one meanwhile.
            for dir in self.created_dirs.iter().rev() {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

struct Prepared {
    temp: TempFile,
    file: File,
    target: PathBuf,
}

/// Makes the target's directories (under the root), checks the target, creates the temporary
/// file. Blocking.
fn prepare(root: &Path, path: &DatasetPath, overwrite: bool) -> Result<Prepared> {
    let shown = path.to_string();
    // Removes the directories made so far if this fails before the guard exists.
    let mut made = TempFile {
        path: PathBuf::new(),
        created_dirs: Vec::new(),
        armed: true,
    };
    let mut dir = root.to_path_buf();
    for (depth, component) in path.parents().iter().enumerate() {
        let next = dir.join(component);
        let prefix = path.components()[..=depth].join("/");
        match std::fs::symlink_metadata(&next) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&next) {
                    Ok(()) => made.created_dirs.push(next.clone()),
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(io_error(&prefix, "creating the directory", &err)),
                }
            }
            Err(err) => return Err(io_error(&prefix, "looking up", &err)),
        }
        let resolved =
            std::fs::canonicalize(&next).map_err(|err| io_error(&prefix, "resolving", &err))?;
        if !resolved.starts_with(root) {
            return Err(FlightError::invalid_argument(format!(
                "{prefix} resolves to a place outside the dataset root"
            )));
        }
        if !resolved.is_dir() {
            return Err(FlightError::invalid_argument(format!(
                "{prefix} is not a directory"
            )));
        }
        dir = resolved;
    }
    let name = path.file_name();
    let target = dir.join(name);
    match std::fs::symlink_metadata(&target) {
        Ok(metadata) if metadata.is_dir() => {
            return Err(FlightError::invalid_argument(format!(
                "{shown} is a directory"
            )))
        }
        Ok(_) if !overwrite => return Err(already_exists(&shown)),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(io_error(&shown, "looking up", &err)),
    }
    let temp_path = dir.join(temp_name(name));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp_path)
        .map_err(|err| io_error(&shown, "creating a temporary file for", &err))?;
    made.path = temp_path;
    Ok(Prepared {
        temp: made,
        file,
        target,
    })
}

fn already_exists(shown: &str) -> FlightError {
    FlightError::already_exists(format!(
        "{shown} already exists; upload with polyflight_dataset::overwrite_descriptor (the CMD \
         descriptor {{\"path\": [...], \"overwrite\": true}}) to replace it"
    ))
}

/// `.NAME.put-RANDOM`, hidden, and short enough for any file system (long names are cut).
fn temp_name(name: &str) -> String {
    let mut end = name.len().min(200);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let random = getrandom::u64().unwrap_or_else(|_| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
    });
    format!(".{}.put-{random:016x}", &name[..end])
}

enum Command {
    Start(SchemaRef),
    Batch(RecordBatch),
    Finish,
}

/// Where a finished temporary file goes.
struct Commit {
    temp: PathBuf,
    target: PathBuf,
    overwrite: bool,
    shown: String,
}

enum Writer {
    File(arrow_ipc::writer::FileWriter<BufWriter<Writeback>>),
    Stream(arrow_ipc::writer::StreamWriter<BufWriter<Writeback>>),
    Parquet(parquet::arrow::ArrowWriter<Writeback>),
}

impl Writer {
    fn new(format: FileFormat, file: File, schema: &SchemaRef, shown: &str) -> Result<Writer> {
        let file = Writeback::new(file);
        Ok(match format {
            FileFormat::IpcFile => Writer::File(
                arrow_ipc::writer::FileWriter::try_new(
                    BufWriter::with_capacity(WRITE_BUFFER, file),
                    schema,
                )
                .map_err(|e| arrow_error(shown, e))?,
            ),
            FileFormat::IpcStream => Writer::Stream(
                arrow_ipc::writer::StreamWriter::try_new(
                    BufWriter::with_capacity(WRITE_BUFFER, file),
                    schema,
                )
                .map_err(|e| arrow_error(shown, e))?,
            ),
            FileFormat::Parquet => {
                let properties = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                    .build();
                Writer::Parquet(
                    parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(properties))
                        .map_err(|e| parquet_error(shown, e))?,
                )
            }
        })
    }

    fn write(&mut self, batch: &RecordBatch, shown: &str) -> Result<()> {
        match self {
            Writer::File(writer) => writer.write(batch).map_err(|e| arrow_error(shown, e)),
            Writer::Stream(writer) => writer.write(batch).map_err(|e| arrow_error(shown, e)),
            Writer::Parquet(writer) => {
                writer.write(batch).map_err(|e| parquet_error(shown, e))?;
                if writer.in_progress_size() >= PARQUET_ROW_GROUP_BYTES {
                    writer.flush().map_err(|e| parquet_error(shown, e))?;
                }
                Ok(())
            }
        }
    }

    /// Writes the end of the file and hands the file back, all of it written.
    fn finish(self, shown: &str) -> Result<File> {
        let buffered = match self {
            Writer::File(writer) => writer.into_inner().map_err(|e| arrow_error(shown, e))?,
            Writer::Stream(writer) => writer.into_inner().map_err(|e| arrow_error(shown, e))?,
            Writer::Parquet(writer) => {
                return writer
                    .into_inner()
                    .map(Writeback::into_inner)
                    .map_err(|e| parquet_error(shown, e))
            }
        };
        buffered
            .into_inner()
            .map(Writeback::into_inner)
            .map_err(|e| io_error(shown, "writing", e.error()))
    }
}

fn arrow_error(shown: &str, err: ArrowError) -> FlightError {
    match err {
        ArrowError::IoError(_, err) => io_error(shown, "writing", &err),
        ArrowError::ExternalError(err) => FlightError::internal(format!("writing {shown}: {err}")),
        other => {
            FlightError::invalid_argument(format!("{shown}: cannot store the upload: {other}"))
        }
    }
}

fn parquet_error(shown: &str, err: parquet::errors::ParquetError) -> FlightError {
    use parquet::errors::ParquetError;
    match err {
        ParquetError::External(err) => FlightError::internal(format!("writing {shown}: {err}")),
        ParquetError::NYI(what) => FlightError::unimplemented(format!(
            "{shown}: cannot store the upload as Parquet: {what}"
        )),
        other => FlightError::invalid_argument(format!(
            "{shown}: cannot store the upload as Parquet: {other}"
        )),
    }
}

/// The writer thread: writes what arrives, and on `Finish` makes the file durable and visible.
/// A queue closed without `Finish` (the put failed or was dropped) ends it with nothing done.
fn write_file(
    file: File,
    format: FileFormat,
    mut queue: mpsc::Receiver<Command>,
    commit: Commit,
) -> Result<u64> {
    let shown = commit.shown.as_str();
    let mut file = Some(file);
    let mut writer: Option<Writer> = None;
    loop {
        match queue.blocking_recv() {
            None => {
                return Err(FlightError::cancelled(format!(
                    "{shown}: the upload ended early"
                )))
            }
            Some(Command::Start(schema)) => {
                let file = file
                    .take()
                    .ok_or_else(|| FlightError::internal("the writer was started twice"))?;
                writer = Some(Writer::new(format, file, &schema, shown)?);
            }
            Some(Command::Batch(batch)) => writer
                .as_mut()
                .ok_or_else(|| FlightError::invalid_argument("a record batch before the schema"))?
                .write(&batch, shown)?,
            Some(Command::Finish) => {
                let writer = writer
                    .take()
                    .ok_or_else(|| FlightError::invalid_argument("the upload had no schema"))?;
                let file = writer.finish(shown)?;
                file.sync_all()
                    .map_err(|e| io_error(shown, "syncing", &e))?;
                let bytes = file
                    .metadata()
                    .map(|m| m.len())
                    .map_err(|e| io_error(shown, "reading the metadata of", &e))?;
                drop(file);
                publish(&commit)?;
                if let Some(dir) = commit.target.parent() {
                    File::open(dir)
                        .and_then(|dir| dir.sync_all())
                        .map_err(|e| io_error(shown, "syncing the directory of", &e))?;
                }
                return Ok(bytes);
            }
        }
    }
}

/// Moves the finished temporary file to its name: replacing what is there when overwriting,
/// else only if nothing is.
fn publish(commit: &Commit) -> Result<()> {
    let shown = commit.shown.as_str();
    if commit.overwrite {
        return std::fs::rename(&commit.temp, &commit.target)
            .map_err(|e| io_error(shown, "moving into place", &e));
    }
    match rename_no_replace(&commit.temp, &commit.target) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Err(already_exists(shown)),
        Err(err) => Err(io_error(shown, "moving into place", &err)),
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), atomically.
fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (c_from, c_to) = (c_path(from)?, c_path(to)?);
        // SAFETY: two NUL-terminated paths that live across the call.
        let result = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                c_from.as_ptr(),
                libc::AT_FDCWD,
                c_to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if result == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // File systems without RENAME_NOREPLACE say EINVAL; old kernels ENOSYS. A hard link
        // fails the same way when the name is taken.
        if !matches!(
            err.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
        ) {
            return Err(err);
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_hidden_and_bounded() {
        let name = temp_name("x.arrow");
        assert!(name.starts_with(".x.arrow.put-"), "{name}");
        assert_eq!(name.len(), ".x.arrow.put-".len() + 16);
        let long = "é".repeat(127);
        assert!(temp_name(&long).len() <= 1 + 200 + 5 + 16);
        assert_ne!(temp_name("a"), temp_name("a"));
    }

    #[test]
    fn no_replace_rename() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"1").unwrap();
        std::fs::write(&b, b"2").unwrap();
        let err = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        std::fs::remove_file(&b).unwrap();
        rename_no_replace(&a, &b).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&b).unwrap(), b"1");
    }
}
