//! Files on the client's side, chosen by extension: [`Source`] reads `.arrow`/`.feather` (Arrow
//! IPC file), `.arrows` (IPC stream), `.parquet` and `.csv` (schema inferred) into record
//! batches; [`Writer`] writes `.arrow`/`.feather`, `.arrows`, `.parquet` and `.csv`, or an IPC
//! stream to stdout.
//!
//! Reading and writing are blocking; the verbs run them on blocking threads beside the transfer.
//! A file being saved is written under a temporary name in its directory and renamed into place
//! when complete, so a failed or interrupted download never leaves a truncated file that looks
//! whole.

use crate::fail::{Failure, Outcome};
use crate::output::type_name;
use arrow_array::RecordBatch;
use arrow_ipc::reader::{FileReader, StreamReader};
use arrow_ipc::writer::{FileWriter, StreamWriter};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use polyflight_dataset::Writeback;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows per batch when reading Parquet and CSV.
const BATCH_ROWS: usize = 64 * 1024;
/// CSV rows read to infer the column types.
const CSV_INFER_ROWS: usize = 100_000;
/// The first bytes of an Arrow IPC file (a stream starts with a message instead).
const ARROW_FILE_MAGIC: &[u8; 6] = b"ARROW1";

/// A file format, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Arrow IPC file format (`.arrow`, `.feather`: Feather v2 is the IPC file format).
    ArrowFile,
    /// Arrow IPC stream format (`.arrows`).
    ArrowStream,
    Parquet,
    Csv,
}

impl Format {
    /// The format a path's extension names, if it names one.
    pub fn of(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "arrow" | "feather" => Some(Format::ArrowFile),
            "arrows" => Some(Format::ArrowStream),
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

fn extension_of(path: &Path) -> String {
    path.extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_else(|| "no extension".to_string())
}

/// A file's size, for the progress of reading it, or its rows when the file says how many.
#[derive(Debug, Clone, Copy)]
pub enum Extent {
    /// The file holds this many rows (Parquet's footer says).
    Rows(u64),
    /// The file is this many bytes long; [`Source::bytes_read`] counts how far reading got.
    Bytes(u64),
    /// A stream of unknown length (stdin).
    Unknown,
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// An input file opened for reading record batches.
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    pub schema: SchemaRef,
    pub extent: Extent,
    bytes_read: Arc<AtomicU64>,
    batches: Batches,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("extent", &self.extent)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens `path`, reading its format from the extension and its schema from the file (a CSV
    /// file's column types are inferred from its first rows). Every failure is a bad input file.
    pub fn open(path: &Path) -> Outcome<Source> {
        let format = Format::of(path).ok_or_else(|| {
            Failure::bad_input(format!(
                "{}: unknown extension ({}); polyflight reads .arrow, .feather, .arrows, \
                 .parquet and .csv",
                path.display(),
                extension_of(path)
            ))
        })?;
        let file = File::open(path)
            .map_err(|err| Failure::bad_input(format!("cannot read {}: {err}", path.display())))?;
        let metadata = file
            .metadata()
            .map_err(|err| Failure::bad_input(format!("cannot read {}: {err}", path.display())))?;
        if metadata.is_dir() {
            return Err(Failure::bad_input(format!(
                "{} is a directory, not a file",
                path.display()
            )));
        }
        let length = metadata.len();
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: file,
            read: bytes_read.clone(),
        };
        let (schema, extent, batches): (SchemaRef, Extent, Batches) = match format {
            Format::ArrowFile | Format::ArrowStream => {
                let (schema, batches) = open_ipc(counted, path)?;
                (schema, Extent::Bytes(length), batches)
            }
            Format::Parquet => {
                let builder = ParquetRecordBatchReaderBuilder::try_new(counted.inner)
                    .map_err(|err| not_a(path, "Parquet file", &err))?;
                let rows = u64::try_from(builder.metadata().file_metadata().num_rows())
                    .unwrap_or_default();
                let schema = builder.schema().clone();
                let reader = builder
                    .with_batch_size(BATCH_ROWS)
                    .build()
                    .map_err(|err| not_a(path, "Parquet file", &err))?;
                (schema, Extent::Rows(rows), Box::new(reader))
            }
            Format::Csv => {
                let (schema, reader) = open_csv(counted, path)?;
                (schema, Extent::Bytes(length), reader)
            }
        };
        Ok(Source {
            path: path.to_path_buf(),
            format,
            schema,
            extent,
            bytes_read,
            batches,
        })
    }

    /// An Arrow IPC stream on stdin (`-`), read as it arrives.
    pub fn stdin() -> Outcome<Source> {
        let path = PathBuf::from("-");
        let bytes_read = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: std::io::stdin(),
            read: bytes_read.clone(),
        };
        let reader = StreamReader::try_new(BufReader::new(counted), None).map_err(|err| {
            Failure::bad_input(format!("stdin is not an Arrow IPC stream: {err}"))
        })?;
        Ok(Source {
            path,
            format: Format::ArrowStream,
            schema: reader.schema(),
            extent: Extent::Unknown,
            bytes_read,
            batches: Box::new(reader),
        })
    }

    /// Bytes of the file read so far (for [`Extent::Bytes`]).
    pub fn bytes_read(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// The next batch; a batch that cannot be read is a bad-input failure naming the file.
    pub fn next_batch(&mut self) -> Option<Outcome<RecordBatch>> {
        let path = &self.path;
        self.batches.next().map(|item| {
            item.map_err(|err| Failure::bad_input(format!("{}: {err}", path.display())))
        })
    }
}

fn not_a(path: &Path, what: &str, err: &dyn std::fmt::Display) -> Failure {
    Failure::bad_input(format!("{} is not a {what}: {err}", path.display()))
}

/// An Arrow IPC file or stream, told apart by its first bytes rather than its extension (files
/// named `.arrow` are often streams).
fn open_ipc(mut file: Counting<File>, path: &Path) -> Outcome<(SchemaRef, Batches)> {
    let mut magic = [0u8; 6];
    let is_file = file.read_exact(&mut magic).is_ok() && &magic == ARROW_FILE_MAGIC;
    file.seek(SeekFrom::Start(0))
        .map_err(|err| Failure::bad_input(format!("cannot read {}: {err}", path.display())))?;
    if is_file {
        let reader = FileReader::try_new(BufReader::new(file), None)
            .map_err(|err| not_a(path, "readable Arrow IPC file", &err))?;
        Ok((reader.schema(), Box::new(reader)))
    } else {
        let reader = StreamReader::try_new(BufReader::new(file), None)
            .map_err(|err| not_a(path, "readable Arrow IPC file or stream", &err))?;
        Ok((reader.schema(), Box::new(reader)))
    }
}

/// A CSV file with a header row; column types inferred from its first rows.
fn open_csv(mut file: Counting<File>, path: &Path) -> Outcome<(SchemaRef, Batches)> {
    let format = arrow_csv::reader::Format::default().with_header(true);
    let (schema, _) = format
        .infer_schema(BufReader::new(&mut file), Some(CSV_INFER_ROWS))
        .map_err(|err| not_a(path, "CSV file", &err))?;
    if schema.fields().is_empty() {
        return Err(Failure::bad_input(format!(
            "{} is not a CSV file: it has no header row",
            path.display()
        )));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|err| Failure::bad_input(format!("cannot read {}: {err}", path.display())))?;
    file.read.store(0, Ordering::Relaxed);
    let schema = Arc::new(schema);
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_format(format)
        .with_batch_size(BATCH_ROWS)
        .build(BufReader::new(file))
        .map_err(|err| not_a(path, "CSV file", &err))?;
    Ok((schema, Box::new(reader)))
}

/// A reader that counts the bytes read through it (the progress of reading a file).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl<R: Seek> Seek for Counting<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Where `get` saves a flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An Arrow IPC stream on stdout.
    Stdout,
    File {
        path: PathBuf,
        format: Format,
    },
}

impl Destination {
    /// `-` or a file whose extension names a format; anything else is a usage error.
    pub fn parse(text: &str) -> Outcome<Destination> {
        if text == "-" {
            return Ok(Destination::Stdout);
        }
        let path = PathBuf::from(text);
        let format = Format::of(&path).ok_or_else(|| {
            Failure::usage(format!(
                "-o {text}: unknown extension ({}); save as .arrow, .feather, .arrows, .parquet \
                 or .csv, or - for an IPC stream on stdout",
                extension_of(&path)
            ))
        })?;
        Ok(Destination::File { path, format })
    }

    /// What the summary calls it.
    pub fn describe(&self) -> String {
        match self {
            Destination::Stdout => "stdout".to_string(),
            Destination::File { path, .. } => path.display().to_string(),
        }
    }

    /// Whether batches of `schema` can be saved here: CSV holds no nested columns.
    pub fn check_schema(&self, schema: &Schema) -> Outcome<()> {
        if let Destination::File {
            format: Format::Csv,
            path,
        } = self
        {
            if let Some(field) = schema.fields().iter().find(|f| f.data_type().is_nested()) {
                return Err(Failure::usage(format!(
                    "{}: CSV cannot hold column {:?} of type {}; save as .arrow, .arrows or \
                     .parquet",
                    path.display(),
                    field.name(),
                    type_name(field.data_type())
                )));
            }
        }
        Ok(())
    }
}

enum Sink {
    ArrowFile(FileWriter<BufWriter<Writeback>>),
    ArrowStream(StreamWriter<BufWriter<Writeback>>),
    Stdout(StreamWriter<BufWriter<std::io::Stdout>>),
    Parquet(Box<ArrowWriter<Writeback>>),
    Csv(arrow_csv::Writer<BufWriter<Writeback>>),
}

/// A file being written under a temporary name, removed unless [`Partial::keep`] renames it.
struct Partial {
    temp: PathBuf,
    path: PathBuf,
    kept: bool,
}

impl Partial {
    fn new(path: &Path) -> Partial {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
        Partial {
            temp,
            path: path.to_path_buf(),
            kept: false,
        }
    }

    fn keep(mut self) -> std::io::Result<()> {
        std::fs::rename(&self.temp, &self.path)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes record batches to a [`Destination`].
pub struct Writer {
    sink: Sink,
    schema: SchemaRef,
    partial: Option<Partial>,
    name: String,
}

impl Writer {
    /// Starts writing batches of `schema` to `destination`.
    pub fn create(destination: &Destination, schema: SchemaRef) -> Outcome<Writer> {
        destination.check_schema(&schema)?;
        let name = destination.describe();
        let failed = |err: &dyn std::fmt::Display| Failure::other(format!("writing {name}: {err}"));
        let (sink, partial) = match destination {
            Destination::Stdout => {
                let out = BufWriter::new(std::io::stdout());
                let writer = StreamWriter::try_new(out, &schema).map_err(|e| failed(&e))?;
                (Sink::Stdout(writer), None)
            }
            Destination::File { path, format } => {
                let partial = Partial::new(path);
                let file = Writeback::new(File::create(&partial.temp).map_err(|e| failed(&e))?);
                let sink = match format {
                    Format::ArrowFile => Sink::ArrowFile(
                        FileWriter::try_new(BufWriter::new(file), &schema)
                            .map_err(|e| failed(&e))?,
                    ),
                    Format::ArrowStream => Sink::ArrowStream(
                        StreamWriter::try_new(BufWriter::new(file), &schema)
                            .map_err(|e| failed(&e))?,
                    ),
                    Format::Parquet => {
                        let properties = WriterProperties::builder()
                            .set_compression(Compression::SNAPPY)
                            .build();
                        Sink::Parquet(Box::new(
                            ArrowWriter::try_new(file, schema.clone(), Some(properties))
                                .map_err(|e| failed(&e))?,
                        ))
                    }
                    Format::Csv => Sink::Csv(
                        arrow_csv::WriterBuilder::new()
                            .with_header(true)
                            .build(BufWriter::new(file)),
                    ),
                };
                (sink, Some(partial))
            }
        };
        Ok(Writer {
            sink,
            schema,
            partial,
            name,
        })
    }

    fn failed(&self, err: &dyn std::fmt::Display) -> Failure {
        Failure::other(format!("writing {}: {err}", self.name))
    }

    /// Writes one batch. A batch whose schema differs from the first one only in metadata (two
    /// files of one flight, say) is written under the first one's schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Outcome<()> {
        let adjusted;
        let batch = if batch.schema_ref() == &self.schema {
            batch
        } else {
            adjusted = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())
                .map_err(|err| {
                    Failure::other(format!(
                        "the server sent batches of different schemas, which one {} cannot hold: \
                         {err}",
                        self.name
                    ))
                })?;
            &adjusted
        };
        let written = match &mut self.sink {
            Sink::ArrowFile(w) => w.write(batch),
            Sink::ArrowStream(w) => w.write(batch),
            Sink::Stdout(w) => w.write(batch),
            Sink::Parquet(w) => w
                .write(batch)
                .map_err(|e| ArrowError::ExternalError(e.into())),
            Sink::Csv(w) => w.write(batch),
        };
        written.map_err(|err| self.failed(&err))
    }

    /// Completes the file (footer, flush, rename into place).
    pub fn finish(self) -> Outcome<()> {
        let failed =
            |err: &dyn std::fmt::Display| Failure::other(format!("writing {}: {err}", self.name));
        let file = match self.sink {
            Sink::ArrowFile(mut w) => {
                w.finish().map_err(|e| failed(&e))?;
                Some(flushed(w.into_inner().map_err(|e| failed(&e))?).map_err(|e| failed(&e))?)
            }
            Sink::ArrowStream(mut w) => {
                w.finish().map_err(|e| failed(&e))?;
                Some(flushed(w.into_inner().map_err(|e| failed(&e))?).map_err(|e| failed(&e))?)
            }
            Sink::Stdout(mut w) => {
                w.finish().map_err(|e| failed(&e))?;
                w.into_inner()
                    .map_err(|e| failed(&e))?
                    .flush()
                    .map_err(|e| failed(&e))?;
                None
            }
            Sink::Parquet(w) => Some(w.into_inner().map_err(|e| failed(&e))?.into_inner()),
            Sink::Csv(w) => Some(flushed(w.into_inner()).map_err(|e| failed(&e))?),
        };
        if let Some(file) = file {
            file.sync_all().map_err(|e| failed(&e))?;
        }
        if let Some(partial) = self.partial {
            partial.keep().map_err(|e| failed(&e))?;
        }
        Ok(())
    }
}

fn flushed(writer: BufWriter<Writeback>) -> std::io::Result<File> {
    writer
        .into_inner()
        .map(Writeback::into_inner)
        .map_err(|err| err.into_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail::Exit;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn every_format_round_trips_and_leaves_no_partial_file() {
        let scratch = tempfile::TempDir::new().unwrap();
        let dir = scratch.path();
        let batch = batch();
        for name in ["t.arrow", "t.feather", "t.arrows", "t.parquet", "t.csv"] {
            let path = dir.join(name);
            let destination = Destination::parse(path.to_str().unwrap()).unwrap();
            let mut writer = Writer::create(&destination, batch.schema()).unwrap();
            writer.write(&batch).unwrap();
            writer.finish().unwrap();
            let mut source = Source::open(&path).unwrap();
            let mut rows = 0;
            while let Some(read) = source.next_batch() {
                let read = read.unwrap();
                assert_eq!(read.column(0).as_ref(), batch.column(0).as_ref(), "{name}");
                rows += read.num_rows();
            }
            assert_eq!(rows, 3, "{name}");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["t.arrow", "t.arrows", "t.csv", "t.feather", "t.parquet"]
        );
    }

    #[test]
    fn bad_files_are_bad_input() {
        let scratch = tempfile::TempDir::new().unwrap();
        let dir = scratch.path();
        let text = dir.join("x.parquet");
        std::fs::write(&text, "not parquet at all").unwrap();
        let err = Source::open(&text).unwrap_err();
        assert_eq!(err.exit, Exit::BadInput);
        assert!(err.message.contains("is not a Parquet file"), "{err}");
        let arrow = dir.join("x.arrow");
        std::fs::write(&arrow, "neither").unwrap();
        assert_eq!(Source::open(&arrow).unwrap_err().exit, Exit::BadInput);
        let unknown = dir.join("x.txt");
        std::fs::write(&unknown, "a,b\n1,2\n").unwrap();
        let err = Source::open(&unknown).unwrap_err();
        assert!(err.message.contains("unknown extension (.txt)"), "{err}");
        assert_eq!(
            Source::open(&dir.join("missing.csv")).unwrap_err().exit,
            Exit::BadInput
        );
        assert_eq!(Destination::parse("x.json").unwrap_err().exit, Exit::Usage);
    }
}
