//! polyflight-dataset: a [`FlightService`](polyflight_core::FlightService) over a directory of
//! Arrow IPC and Parquet files.
//!
//! ```no_run
//! # async fn demo() -> polyflight_core::Result<()> {
//! use polyflight_dataset::{DatasetOptions, DatasetService};
//!
//! let service = DatasetService::new("/srv/data", DatasetOptions::default())?;
//! println!("file I/O: {}", service.io_backend());
//! // then serve it like any service, e.g.
//! // polyflight::server(service).listen("grpc://0.0.0.0:8815").start().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Every file under the root whose extension the service knows is a flight:
//!
//! | extension | format | read as |
//! |---|---|---|
//! | `.arrow`, `.feather` | Arrow IPC file (Feather v2) | its own IPC messages, uncopied |
//! | `.arrows` | Arrow IPC stream | its own IPC messages, uncopied |
//! | `.parquet` | Parquet | decoded by the `parquet` crate's async reader |
//!
//! A flight's descriptor is a PATH descriptor with one component per directory level:
//! `ROOT/sub/x.parquet` is `["sub", "x.parquet"]`. ListFlights lists the files recursively, in
//! name order; its criteria expression, when not empty, is a prefix of the `/`-joined path
//! (`sub/` lists that directory). Names starting with `.` are skipped (hidden files, and the
//! temporary files of puts), as are names that are not UTF-8 and files that cannot be read
//! (logged). Symbolic links to files under the root are served; links to directories are not
//! followed when listing. Every path a client sends is checked: no empty, `.`, `..` or hidden
//! components, no `/` inside a component, and it must resolve (links followed) to a place under
//! the root; otherwise INVALID_ARGUMENT. A path that names no file is NOT_FOUND.
//!
//! # FlightInfo, endpoints and tickets
//!
//! GetFlightInfo gives the file's schema (for Parquet, the Arrow schema stored in the file when
//! there is one), `total_records`, `total_bytes` (the file's size), `ordered = true`, and one
//! endpoint per part of the file, without locations (fetch from the same service), so
//! `FlightClient::read_flight` reads the parts in parallel:
//!
//! - an IPC file splits into ranges of whole record batches: about
//!   [`DatasetOptions::endpoint_rows`] rows each when set, else about
//!   [`DatasetOptions::endpoint_bytes`] (64 MiB) of batches each;
//! - a Parquet file has one endpoint per row group (grouped to about `endpoint_rows` rows when
//!   that is set);
//! - an IPC stream is one endpoint (its dictionaries may change between batches);
//! - a file with no batches still has one endpoint, which carries the schema.
//!
//! Tickets are opaque to clients. Inside they name the path, the part and the version of the
//! file (length, modification time, inode) the FlightInfo described; DoGet checks all of it
//! again, and a file replaced since the FlightInfo fails with NOT_FOUND ("get a new
//! FlightInfo") rather than mixing two versions. The metadata of each version of a file is read
//! once and cached.
//!
//! # DoGet
//!
//! An IPC file's DoGet sends the file's own messages as FlightData, neither decoded nor
//! re-encoded: the Schema message (encoded from the footer's schema by polyflight's codec),
//! every dictionary batch of the file (each part needs them), then the part's record batches.
//! Each block is read whole with its body 64-byte aligned, so a polyflight client decodes it
//! without a copy; up to [`DatasetOptions::read_ahead`] bytes are read ahead of the transport,
//! by all DoGet streams together, into read buffers that are used again once sent.
//! A Parquet part is decoded row group by row group into batches of
//! [`DatasetOptions::parquet_batch_rows`] rows, which polyflight's encoder sends. Everything
//! read from a file is validated first (lengths against the file size, flatbuffers with
//! arrow-ipc's verifier, message kinds and body lengths against the footer); a corrupt file is
//! an INTERNAL error naming the file and the problem, never a panic, and the service goes on
//! serving.
//!
//! # DoPut, durability and overwrite
//!
//! DoPut stores the uploaded stream as the file its descriptor names, by extension: `.arrow`
//! and `.feather` as an IPC file, `.arrows` as an IPC stream, `.parquet` as Parquet compressed
//! with zstd (level 1); anything else is INVALID_ARGUMENT. Missing directories are created
//! (under the root). The upload is written, batch by batch with a bounded queue between the
//! decoder and the writer, to a hidden temporary file beside the target
//! (`.NAME.put-RANDOM`), which is fsynced, renamed into place, and its directory fsynced;
//! only then is the single PutResult sent, whose app_metadata is JSON:
//! `{"path":"sub/x.arrow","rows":…,"batches":…,"bytes":…}`. A put that fails, is cancelled,
//! or whose client goes away leaves nothing visible: the temporary file is removed when the
//! call is dropped.
//!
//! A put to a path that exists fails with ALREADY_EXISTS (also when two puts race: exactly one
//! wins), unless its descriptor asks to overwrite. That descriptor is a CMD descriptor whose
//! command is the JSON `{"path": ["sub", "x.arrow"], "overwrite": true}`; build it with
//! [`overwrite_descriptor`]. The same JSON (with `"overwrite"` false or absent) also works as
//! a descriptor for GetFlightInfo and GetSchema. [`DatasetOptions::allow_put`] = `false` makes
//! the service read-only (DoPut is UNAUTHORIZED).
//!
//! # I/O backends
//!
//! File reads go through one internal API with three backends ([`IoMode`]):
//!
//! - `Uring`: io_uring through `tokio-uring`, on [`DatasetOptions::io_threads`] dedicated
//!   threads that each run a tokio-uring runtime, reached from the service's runtime through
//!   bounded channels (as the UCX transport's worker threads are);
//! - `Plain`: `pread` on tokio's blocking thread pool;
//! - `Mmap` (Unix, only when asked for): each range mapped (at once when the page cache holds
//!   it, else with `MAP_POPULATE` on the blocking pool) and sent from the page cache without a
//!   copy. A file truncated in place while a range
//!   of it is mapped makes the process fault (SIGBUS), so it suits files that are written once
//!   or replaced by rename, as DoPut does.
//!
//! `Auto` (the default) starts io_uring and falls back to `Plain` when the kernel or a seccomp
//! policy refuses it, logging why (`tracing::info!`); [`DatasetService::io_backend`] says which
//! backend runs and [`IoBackend::reason`] why io_uring was not used. Puts write with std on the
//! blocking pool whichever backend reads, through [`Writeback`].

#![warn(missing_docs)]

mod catalog;
mod io;
mod ipc;
mod parquet;
mod paths;
mod put;
mod service;
mod ticket;
mod writeback;

pub use io::{IoBackend, IoMode};
pub use paths::overwrite_descriptor;
pub use service::{DatasetOptions, DatasetService, ReadAheadStats};
pub use writeback::Writeback;
