//! [`DatasetService`]: the Flight methods over the catalog, the IPC and Parquet readers and the
//! put path.

use crate::catalog::{self, FileIndex, IndexCache};
use crate::io::{Io, IoBackend, IoFile, IoMode};
use crate::paths::{parse_descriptor, resolve_existing, DatasetPath, FileFormat};
use crate::ticket::{DatasetTicket, FileVersion};
use futures::StreamExt;
use polyflight_core::proto::{
    ActionType, Criteria, FlightDescriptor, FlightEndpoint, FlightInfo, PollInfo, PutResult,
    SchemaResult, Ticket,
};
use polyflight_core::{CallContext, FlightData, FlightError, FlightService, FlightStream, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How many files ListFlights describes at once.
const LIST_CONCURRENCY: usize = 4;

/// Options of a [`DatasetService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetOptions {
    /// The I/O backend. Default [`IoMode::Auto`].
    pub io: IoMode,
    /// Bytes of file data the DoGet streams of IPC files read ahead of what they have sent, all
    /// of them together, so the memory read-ahead takes does not grow with the number of
    /// streams; each stream always has one block under way. Idle read buffers kept for later
    /// reads are bounded by the same figure. Default 16 MiB.
    pub read_ahead: usize,
    /// Split IPC files into endpoints of about this many rows (whole record batches), and group
    /// Parquet row groups to about this many rows per endpoint. Default `None`: IPC files split
    /// by [`endpoint_bytes`](Self::endpoint_bytes), Parquet files one endpoint per row group.
    pub endpoint_rows: Option<u64>,
    /// When `endpoint_rows` is `None`, IPC files split into endpoints of about this many bytes
    /// of record batches. Default 64 MiB.
    pub endpoint_bytes: u64,
    /// Whether DoPut stores files. Default `true`; when `false` DoPut is `UNAUTHORIZED`.
    pub allow_put: bool,
    /// Threads running an io_uring each (the io_uring backend only). Default 1.
    pub io_threads: usize,
    /// Rows per record batch decoded from Parquet. Default 65,536.
    pub parquet_batch_rows: usize,
    /// A DoPut that receives nothing for this long fails with TIMED_OUT and its partial file is
    /// removed, so a stalled client does not hold a file open for ever. Default 5 minutes;
    /// `None` waits as long as the connection lives.
    pub put_idle_timeout: Option<std::time::Duration>,
}

/// Read-ahead of a [`DatasetService`] ([`DatasetService::read_ahead_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Bytes being read or read and not yet sent, by all DoGet streams.
    pub in_use: usize,
    /// The most `in_use` has been. It passes `limit` only by the one block each stream may
    /// always have under way.
    pub peak: usize,
    /// [`DatasetOptions::read_ahead`].
    pub limit: usize,
}

impl Default for DatasetOptions {
    fn default() -> Self {
        DatasetOptions {
            io: IoMode::Auto,
            read_ahead: 16 << 20,
            endpoint_rows: None,
            endpoint_bytes: 64 << 20,
            allow_put: true,
            io_threads: 1,
            parquet_batch_rows: 65_536,
            put_idle_timeout: Some(std::time::Duration::from_secs(300)),
        }
    }
}

/// A Flight service over a directory of Arrow IPC and Parquet files (see the crate docs).
/// Cheap to clone; clones share the I/O threads and the metadata cache.
#[derive(Clone)]
pub struct DatasetService {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    options: DatasetOptions,
    io: Io,
    cache: IndexCache,
}

/// An open file of the dataset with its index.
struct Opened {
    file: IoFile,
    index: Arc<FileIndex>,
    version: FileVersion,
}

impl std::fmt::Debug for DatasetService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetService")
            .field("root", &self.inner.root)
            .field("io", &self.inner.io.backend())
            .field("options", &self.inner.options)
            .finish()
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FlightError::internal(format!("a file system task failed: {e}")))?
}

impl DatasetService {
    /// Serves the files under `root`, which must be an existing directory (it is
    /// canonicalized). Starts the I/O backend; with [`IoMode::Uring`] fails (UNAVAILABLE) when
    /// io_uring cannot be used.
    pub fn new(root: impl Into<PathBuf>, options: DatasetOptions) -> Result<DatasetService> {
        let root = root.into();
        let canonical = std::fs::canonicalize(&root).map_err(|e| {
            FlightError::invalid_argument(format!("dataset root {}: {e}", root.display()))
        })?;
        if !canonical.is_dir() {
            return Err(FlightError::invalid_argument(format!(
                "dataset root {} is not a directory",
                root.display()
            )));
        }
        let io = Io::start(options.io, options.io_threads, options.read_ahead)?;
        Ok(DatasetService {
            inner: Arc::new(Inner {
                root: canonical,
                options,
                io,
                cache: IndexCache::default(),
            }),
        })
    }

    /// The I/O backend in use.
    pub fn io_backend(&self) -> IoBackend {
        self.inner.io.backend()
    }

    /// How much file data the DoGet streams hold read ahead, now and at most so far.
    pub fn read_ahead_stats(&self) -> ReadAheadStats {
        let budget = self.inner.io.budget();
        ReadAheadStats {
            in_use: budget.used(),
            peak: budget.peak(),
            limit: budget.limit(),
        }
    }

    /// The dataset's root directory (canonical).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options the service was made with.
    pub fn options(&self) -> &DatasetOptions {
        &self.inner.options
    }

    /// Opens a file of the dataset and its index (cached per version of the file).
    async fn open(&self, path: &DatasetPath) -> Result<Opened> {
        let format = path.format()?;
        let root = self.inner.root.clone();
        let lookup = path.clone();
        let resolved = blocking(move || resolve_existing(&root, &lookup)).await?;
        let file = self.inner.io.open(&resolved, &path.to_string()).await?;
        let version = FileVersion::of(file.metadata());
        if let Some(index) = self.inner.cache.get(&resolved, version) {
            return Ok(Opened {
                file,
                index,
                version,
            });
        }
        let index = Arc::new(match format {
            FileFormat::IpcFile => FileIndex::Ipc(crate::ipc::index_file(&file).await?),
            FileFormat::IpcStream => FileIndex::Ipc(crate::ipc::index_stream(&file).await?),
            FileFormat::Parquet => FileIndex::Parquet(crate::parquet::index(&file).await?),
        });
        self.inner
            .cache
            .insert(resolved, version, Arc::clone(&index));
        Ok(Opened {
            file,
            index,
            version,
        })
    }

    /// The FlightInfo of a file: one endpoint per part, totals, the schema.
    async fn flight_info(&self, path: &DatasetPath) -> Result<FlightInfo> {
        let opened = self.open(path).await?;
        let options = &self.inner.options;
        let mut info = FlightInfo::new()
            .with_schema(opened.index.schema())
            .with_descriptor(path.descriptor())
            .with_totals(
                i64::try_from(opened.index.total_rows()).unwrap_or(i64::MAX),
                i64::try_from(opened.version.len).unwrap_or(i64::MAX),
            )
            .with_ordered(true);
        for part in opened
            .index
            .parts(options.endpoint_rows, options.endpoint_bytes)
        {
            let ticket = DatasetTicket {
                path: path.clone(),
                start: part.start,
                end: part.end,
                version: opened.version,
            };
            info = info.with_endpoint(FlightEndpoint::new(Ticket::new(ticket.encode())));
        }
        Ok(info)
    }
}

#[polyflight_core::async_trait]
impl FlightService for DatasetService {
    async fn list_flights(
        &self,
        _ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let prefix = String::from_utf8(criteria.expression.to_vec()).map_err(|_| {
            FlightError::invalid_argument("the ListFlights criteria must be a UTF-8 path prefix")
        })?;
        let root = self.inner.root.clone();
        let paths = blocking(move || Ok(catalog::list(&root))).await?;
        let service = self.clone();
        let infos = futures::stream::iter(
            paths
                .into_iter()
                .filter(move |path| path.to_string().starts_with(&prefix)),
        )
        .map(move |path| {
            let service = service.clone();
            async move { (service.flight_info(&path).await, path) }
        })
        .buffered(LIST_CONCURRENCY)
        .filter_map(|(info, path)| async move {
            match info {
                Ok(info) => Some(Ok(info)),
                Err(err) => {
                    // One unreadable file must not hide the others.
                    tracing::warn!(%path, error = %err, "ListFlights skips a file it cannot read");
                    None
                }
            }
        });
        Ok(infos.boxed())
    }

    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let (path, _) = parse_descriptor(&descriptor)?;
        self.flight_info(&path).await
    }

    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        // Files are complete: the answer is final.
        let info = self.get_flight_info(ctx, descriptor).await?;
        Ok(PollInfo::finished(info))
    }

    async fn get_schema(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let (path, _) = parse_descriptor(&descriptor)?;
        let opened = self.open(&path).await?;
        Ok(SchemaResult::from_schema(opened.index.schema()))
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let ticket = DatasetTicket::decode(&ticket.ticket)?;
        let opened = self.open(&ticket.path).await?;
        if opened.version != ticket.version {
            return Err(FlightError::not_found(format!(
                "{} has changed since this ticket was issued; get a new FlightInfo",
                ticket.path
            )));
        }
        opened
            .index
            .check_part(&ticket.path, ticket.start, ticket.end)?;
        let options = &self.inner.options;
        match opened.index.as_ref() {
            FileIndex::Ipc(index) => Ok(crate::ipc::stream_part(
                index,
                opened.file,
                ticket.start,
                ticket.end,
                &self.inner.io,
            )),
            FileIndex::Parquet(index) => crate::parquet::stream_part(
                index,
                opened.file,
                ticket.start,
                ticket.end,
                options.parquet_batch_rows,
            ),
        }
    }

    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        if !self.inner.options.allow_put {
            return Err(FlightError::unauthorized(
                "this dataset is read-only (DoPut is disabled)",
            ));
        }
        Ok(crate::put::do_put(
            self.inner.root.clone(),
            ctx,
            data,
            self.inner.options.put_idle_timeout,
        ))
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        Ok(futures::stream::empty().boxed())
    }
}
