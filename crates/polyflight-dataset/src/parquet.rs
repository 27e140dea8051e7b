//! Parquet files, decoded by the `parquet` crate's async reader and encoded by polyflight's codec.
//!
//! The reader reads through [`ParquetFile`], an `AsyncFileReader` over the service's I/O
//! backend, which checks every range the file's metadata asks for against the file's length
//! before reading (and so before allocating) anything. The footer metadata is read once per
//! version of a file and kept in the index; each DoGet decodes its part's row groups into
//! record batches. The `parquet` crate is third-party parsing code, so its work runs under
//! `catch_unwind`: a file that makes it panic is an INTERNAL error, not a dead connection.

use crate::io::IoFile;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, MetadataFetch};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use polyflight_core::codec::FlightDataEncoderBuilder;
use polyflight_core::{FlightData, FlightError, FlightStream, Result};
use std::ops::Range;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// Bytes read from the end of the file at first, to catch the footer metadata in one read.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// What DoGet needs to know about a Parquet file: its metadata, read once.
#[derive(Debug)]
pub(crate) struct ParquetIndex {
    metadata: ArrowReaderMetadata,
}

impl ParquetIndex {
    /// The flight's schema (the Arrow schema stored in the file when there is one).
    pub(crate) fn schema(&self) -> &SchemaRef {
        self.metadata.schema()
    }

    /// Rows and compressed bytes of each row group, in order.
    pub(crate) fn row_group_sizes(&self) -> Vec<(u64, u64)> {
        self.metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|group| {
                (
                    u64::try_from(group.num_rows()).unwrap_or(0),
                    u64::try_from(group.compressed_size()).unwrap_or(0),
                )
            })
            .collect()
    }
}

fn corrupt(shown: &str, what: impl std::fmt::Display) -> FlightError {
    FlightError::internal(format!("{shown}: cannot read Parquet: {what}"))
}

fn panicked(shown: &str) -> FlightError {
    corrupt(
        shown,
        "the Parquet reader failed on the file's contents (corrupt file?)",
    )
}

/// Reads the metadata of a Parquet file.
pub(crate) async fn index(file: &IoFile) -> Result<ParquetIndex> {
    let shown = file.shown().to_string();
    let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_PREFETCH));
    let load = reader.load_and_finish(ParquetFile::new(file.clone()), file.len());
    let metadata = AssertUnwindSafe(load)
        .catch_unwind()
        .await
        .map_err(|_| panicked(&shown))?
        .map_err(|e| corrupt(&shown, e))?;
    let metadata = std::panic::catch_unwind(AssertUnwindSafe(|| {
        ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
    }))
    .map_err(|_| panicked(&shown))?
    .map_err(|e| corrupt(&shown, e))?;
    Ok(ParquetIndex { metadata })
}

/// The DoGet stream of row groups `start..end`, in batches of `batch_rows` rows.
pub(crate) fn stream_part(
    index: &ParquetIndex,
    file: IoFile,
    start: usize,
    end: usize,
    batch_rows: usize,
) -> Result<FlightStream<FlightData>> {
    let shown = file.shown().to_string();
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
        ParquetFile::new(file),
        index.metadata.clone(),
    )
    .with_row_groups((start..end).collect())
    .with_batch_size(batch_rows.max(1));
    let schema = Arc::clone(builder.schema());
    let batches = builder.build().map_err(|e| corrupt(&shown, e))?;
    let batches = AssertUnwindSafe(batches)
        .catch_unwind()
        .map(move |item| -> Result<RecordBatch> {
            match item {
                Ok(Ok(batch)) => Ok(batch),
                Ok(Err(err)) => Err(corrupt(&shown, err)),
                Err(_) => Err(panicked(&shown)),
            }
        })
        .scan(false, |failed, item| {
            let item = (!*failed).then(|| {
                *failed = item.is_err();
                item
            });
            std::future::ready(item)
        });
    Ok(FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(batches)
        .boxed())
}

/// A Parquet file read through the service's I/O backend.
struct ParquetFile {
    file: IoFile,
}

impl ParquetFile {
    fn new(file: IoFile) -> ParquetFile {
        ParquetFile { file }
    }

    /// Reads `range`, which the file's metadata asked for: checked against the file first.
    fn read(&self, range: Range<u64>) -> BoxFuture<'static, parquet::errors::Result<Bytes>> {
        let len = self.file.len();
        if range.start > range.end || range.end > len {
            let message = format!(
                "{}: the file's metadata refers to bytes {}..{} of a {len}-byte file",
                self.file.shown(),
                range.start,
                range.end
            );
            return Box::pin(std::future::ready(Err(ParquetError::General(message))));
        }
        // Both ends lie within the file's length, which fits in memory-sized reads.
        let read = self
            .file
            .read_at(range.start, (range.end - range.start) as usize, 0);
        Box::pin(read.map(|result| result.map_err(|e| ParquetError::General(e.to_string()))))
    }
}

impl MetadataFetch for ParquetFile {
    fn fetch(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.read(range)
    }
}

impl AsyncFileReader for ParquetFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.read(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        // Every range starts reading at once; the backend runs them in parallel.
        let reads: Vec<_> = ranges.into_iter().map(|range| self.read(range)).collect();
        Box::pin(futures::future::try_join_all(reads))
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        // The stream is always built with the index's metadata, so this is not called; answer
        // by reading it all the same.
        let len = self.file.len();
        Box::pin(async move {
            let reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(FOOTER_PREFETCH));
            Ok(Arc::new(reader.load_and_finish(self, len).await?))
        })
    }
}
