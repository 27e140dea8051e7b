//! The perf protocol: how a benchmark client asks a perf server for data, and what the server
//! answers.
//!
//! - **GetFlightInfo** with a CMD descriptor whose bytes are a protobuf [`PerfCommand`]: the
//!   server answers with `stream_count` endpoints (no locations: fetch from the same server),
//!   each ticket a protobuf [`PerfTicket`] naming rows `[start, end)` of the flight.
//! - **DoGet** of such a ticket: a Schema message, then `end - start` rows in record batches of
//!   `records_per_batch` rows (the last one shorter), one IPC message per batch.
//! - **DoPut** (any descriptor; a CMD [`PerfCommand`] with `decode` set asks the server to decode
//!   the batches rather than only count them): the server reads the whole upload and answers
//!   with one `PutResult` whose app_metadata is a protobuf [`PutSummary`].
//! - **DoExchange**: every message is echoed back as it arrives (a first message carrying only
//!   the descriptor is not).
//! - **DoAction** `ping` ([`PING_ACTION`]): one empty result, the cheapest round trip.
//!
//! Fields 1–4 of `PerfCommand` and 1–3 of `PerfTicket` have the numbers and types of the `Perf`
//! and `Token` messages of Arrow C++'s `perf.proto`, so that GetFlightInfo and DoGet can be aimed
//! at Arrow C++'s perf server too; fields from 16 on are polyflight's own, and a server that does
//! not know them ignores them (protobuf skips unknown fields).

use crate::BenchError;
use bytes::Bytes;
use polyflight::FlightError;
use prost::Message;

/// The action type a perf server answers with one empty result.
pub const PING_ACTION: &str = "ping";

/// Most streams one command may ask for.
pub const MAX_STREAMS: i32 = 1024;

/// Most rows in one batch.
pub const MAX_RECORDS_PER_BATCH: i32 = 1 << 24;

/// Most columns.
pub const MAX_COLUMNS: u32 = 10_000;

/// Most cells (rows × columns, a nested cell counting as eight) in one prepared batch. The
/// server allocates a batch of this size when asked, so the bound keeps a peer from making it
/// allocate without limit (64 Mi cells of int64 is 512 MiB).
pub const MAX_BATCH_CELLS: u64 = 1 << 26;

/// Columns when a command leaves `columns` at 0.
pub const DEFAULT_COLUMNS: u32 = 4;

/// What the columns of a perf flight hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DataKind {
    /// Int64 columns without nulls: the classic Flight throughput payload.
    Int64 = 0,
    /// A typical table: int64, float64 and utf8 columns in turn, utf8 values ~14 bytes.
    Mixed = 1,
    /// `list<struct<id: int64, score: float64, tag: utf8>>` columns, 0–4 entries per row.
    Nested = 2,
}

impl DataKind {
    /// Every kind.
    pub const ALL: [DataKind; 3] = [DataKind::Int64, DataKind::Mixed, DataKind::Nested];

    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Int64 => "int64",
            DataKind::Mixed => "mixed",
            DataKind::Nested => "nested",
        }
    }

    /// The kind named `name` (as [`DataKind::as_str`] writes it).
    pub fn parse(name: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The command of a perf flight (GetFlightInfo CMD bytes, DoPut descriptor).
#[derive(Clone, PartialEq, Message)]
pub struct PerfCommand {
    /// An IPC-encapsulated schema (Arrow C++ field; polyflight servers ignore it and derive the
    /// schema from `kind` and `columns`).
    #[prost(bytes = "bytes", tag = "1")]
    pub schema: Bytes,
    /// How many endpoints (parallel streams) the flight has.
    #[prost(int32, tag = "2")]
    pub stream_count: i32,
    /// Rows in each stream.
    #[prost(int64, tag = "3")]
    pub records_per_stream: i64,
    /// Rows in each record batch.
    #[prost(int32, tag = "4")]
    pub records_per_batch: i32,
    /// What the columns hold ([`DataKind`]).
    #[prost(enumeration = "DataKind", tag = "16")]
    pub kind: i32,
    /// How many columns (0: [`DEFAULT_COLUMNS`]).
    #[prost(uint32, tag = "17")]
    pub columns: u32,
    /// DoPut: decode the uploaded batches instead of only counting them.
    #[prost(bool, tag = "18")]
    pub decode: bool,
}

/// The ticket of one perf stream: rows `[start, end)` of the flight `definition` describes.
#[derive(Clone, PartialEq, Message)]
pub struct PerfTicket {
    /// The flight.
    #[prost(message, optional, tag = "1")]
    pub definition: Option<PerfCommand>,
    /// First row of this stream.
    #[prost(int64, tag = "2")]
    pub start: i64,
    /// One past the last row of this stream.
    #[prost(int64, tag = "3")]
    pub end: i64,
}

/// What a perf server counted of an upload: the app_metadata of its one DoPut `PutResult`.
#[derive(Clone, PartialEq, Eq, Message)]
pub struct PutSummary {
    /// FlightData messages received.
    #[prost(uint64, tag = "1")]
    pub messages: u64,
    /// Rows in the record batches received.
    #[prost(uint64, tag = "2")]
    pub records: u64,
    /// IPC bytes received: data_header + data_body of every message.
    #[prost(uint64, tag = "3")]
    pub data_bytes: u64,
}

/// The column layout of a perf flight: a [`DataKind`] and a column count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataSpec {
    /// What the columns hold.
    pub kind: DataKind,
    /// How many columns (≥ 1).
    pub columns: u32,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            kind: DataKind::Int64,
            columns: DEFAULT_COLUMNS,
        }
    }
}

impl std::fmt::Display for DataSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.columns, self.kind)
    }
}

impl PerfCommand {
    /// A command for `streams` streams of `records_per_stream` rows in batches of
    /// `records_per_batch`, with columns as `spec` says.
    pub fn new(
        spec: DataSpec,
        streams: i32,
        records_per_stream: i64,
        records_per_batch: i32,
    ) -> Self {
        PerfCommand {
            schema: Bytes::new(),
            stream_count: streams,
            records_per_stream,
            records_per_batch,
            kind: spec.kind as i32,
            columns: spec.columns,
            decode: false,
        }
    }

    /// The protobuf bytes.
    pub fn encode_bytes(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// Decodes and [validates](Self::validate) a command from a peer.
    pub fn decode_bytes(bytes: &[u8]) -> Result<PerfCommand, BenchError> {
        let command = PerfCommand::decode(bytes)
            .map_err(|e| BenchError::Protocol(format!("not a perf command: {e}")))?;
        command.validate()?;
        Ok(command)
    }

    /// The column layout (columns 0 read as [`DEFAULT_COLUMNS`]; an unknown kind is an error).
    pub fn spec(&self) -> Result<DataSpec, BenchError> {
        let kind = DataKind::try_from(self.kind)
            .map_err(|_| BenchError::Protocol(format!("unknown data kind {}", self.kind)))?;
        let columns = if self.columns == 0 {
            DEFAULT_COLUMNS
        } else {
            self.columns
        };
        Ok(DataSpec { kind, columns })
    }

    /// Checks every field is within what a server is willing to produce.
    pub fn validate(&self) -> Result<(), BenchError> {
        let spec = self.spec()?;
        let bad = |what: String| Err(BenchError::Protocol(what));
        if !(1..=MAX_STREAMS).contains(&self.stream_count) {
            return bad(format!(
                "stream_count {} is not in 1..={MAX_STREAMS}",
                self.stream_count
            ));
        }
        if self.records_per_stream < 0 {
            return bad(format!(
                "records_per_stream {} is negative",
                self.records_per_stream
            ));
        }
        if self
            .records_per_stream
            .checked_mul(i64::from(self.stream_count))
            .is_none()
        {
            return bad("stream_count × records_per_stream overflows".to_string());
        }
        if !(1..=MAX_RECORDS_PER_BATCH).contains(&self.records_per_batch) {
            return bad(format!(
                "records_per_batch {} is not in 1..={MAX_RECORDS_PER_BATCH}",
                self.records_per_batch
            ));
        }
        if spec.columns > MAX_COLUMNS {
            return bad(format!(
                "{} columns is more than {MAX_COLUMNS}",
                spec.columns
            ));
        }
        // A nested cell holds up to four structs of three values, a string among them: it
        // weighs as eight flat ones.
        let weight = if spec.kind == DataKind::Nested { 8 } else { 1 };
        let cells = u64::from(spec.columns) * self.records_per_batch as u64 * weight;
        if cells > MAX_BATCH_CELLS {
            return bad(format!(
                "a batch of {} rows × {} columns is more than {MAX_BATCH_CELLS} cells",
                self.records_per_batch, spec.columns
            ));
        }
        Ok(())
    }

    /// The tickets of the flight's streams: stream `i` has rows
    /// `[i × records_per_stream, (i + 1) × records_per_stream)`.
    pub fn tickets(&self) -> Vec<PerfTicket> {
        (0..i64::from(self.stream_count.max(0)))
            .map(|i| PerfTicket {
                definition: Some(self.clone()),
                start: i * self.records_per_stream,
                end: (i + 1) * self.records_per_stream,
            })
            .collect()
    }
}

impl PerfTicket {
    /// The protobuf bytes.
    pub fn encode_bytes(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// Decodes a ticket from a peer and validates its definition and row range.
    pub fn decode_bytes(bytes: &[u8]) -> Result<PerfTicket, BenchError> {
        let ticket = PerfTicket::decode(bytes)
            .map_err(|e| BenchError::Protocol(format!("not a perf ticket: {e}")))?;
        let definition = ticket
            .definition
            .as_ref()
            .ok_or_else(|| BenchError::Protocol("perf ticket without a definition".into()))?;
        definition.validate()?;
        if ticket.start < 0 || ticket.end < ticket.start {
            return Err(BenchError::Protocol(format!(
                "perf ticket rows [{}, {}) are not a range",
                ticket.start, ticket.end
            )));
        }
        Ok(ticket)
    }

    /// Rows in this stream.
    pub fn rows(&self) -> u64 {
        self.end.saturating_sub(self.start).max(0) as u64
    }
}

impl PutSummary {
    /// The protobuf bytes.
    pub fn encode_bytes(&self) -> Bytes {
        Bytes::from(self.encode_to_vec())
    }

    /// Decodes a summary a server sent.
    pub fn decode_bytes(bytes: &[u8]) -> Result<PutSummary, BenchError> {
        PutSummary::decode(bytes)
            .map_err(|e| BenchError::Protocol(format!("not a perf put summary: {e}")))
    }
}

impl From<BenchError> for FlightError {
    fn from(err: BenchError) -> FlightError {
        match err {
            BenchError::Protocol(message) => FlightError::invalid_argument(message),
            BenchError::Flight(err) => err,
            other => FlightError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> PerfCommand {
        PerfCommand::new(
            DataSpec {
                kind: DataKind::Mixed,
                columns: 6,
            },
            3,
            1000,
            256,
        )
    }

    #[test]
    fn commands_and_tickets_round_trip() {
        let cmd = command();
        let decoded = PerfCommand::decode_bytes(&cmd.encode_bytes()).unwrap();
        assert_eq!(decoded, cmd);
        assert_eq!(
            decoded.spec().unwrap(),
            DataSpec {
                kind: DataKind::Mixed,
                columns: 6
            }
        );

        let tickets = cmd.tickets();
        assert_eq!(tickets.len(), 3);
        assert_eq!((tickets[2].start, tickets[2].end), (2000, 3000));
        let bytes = tickets[1].encode_bytes();
        let ticket = PerfTicket::decode_bytes(&bytes).unwrap();
        assert_eq!(ticket, tickets[1]);
        assert_eq!(ticket.rows(), 1000);

        let summary = PutSummary {
            messages: 5,
            records: 1024,
            data_bytes: 1 << 20,
        };
        assert_eq!(
            PutSummary::decode_bytes(&summary.encode_bytes()).unwrap(),
            summary
        );
    }

    /// The first four fields are Arrow C++'s `Perf` message: field 2 varint stream_count, 3
    /// varint records_per_stream, 4 varint records_per_batch (tag bytes 0x10, 0x18, 0x20).
    #[test]
    fn the_first_fields_have_arrow_cpp_perf_numbers() {
        let cmd = PerfCommand::new(DataSpec::default(), 2, 300, 7);
        assert_eq!(
            cmd.encode_to_vec(),
            vec![0x10, 2, 0x18, 0xac, 0x02, 0x20, 7, 0x88, 0x01, 4]
        );
        // A command as Arrow C++ writes it (no extension fields) reads with the defaults.
        let cpp = PerfCommand::decode_bytes(&[0x10, 1, 0x18, 10, 0x20, 5]).unwrap();
        assert_eq!(cpp.spec().unwrap(), DataSpec::default());
        assert_eq!(cpp.records_per_batch, 5);
    }

    #[test]
    fn unreasonable_commands_are_refused() {
        let check = |f: &dyn Fn(&mut PerfCommand)| {
            let mut cmd = command();
            f(&mut cmd);
            let err = PerfCommand::decode_bytes(&cmd.encode_bytes()).unwrap_err();
            assert!(matches!(err, BenchError::Protocol(_)), "{err}");
            assert_eq!(
                FlightError::from(err).code(),
                polyflight::FlightCode::InvalidArgument
            );
        };
        check(&|c| c.stream_count = 0);
        check(&|c| c.stream_count = MAX_STREAMS + 1);
        check(&|c| c.records_per_stream = -1);
        check(&|c| c.records_per_batch = 0);
        check(&|c| c.kind = 99);
        check(&|c| c.columns = MAX_COLUMNS + 1);
        check(&|c| {
            c.columns = 1000;
            c.records_per_batch = 1 << 20;
        });
        check(&|c| {
            c.kind = DataKind::Nested as i32;
            c.columns = 64;
            c.records_per_batch = 1 << 20;
        });
        check(&|c| {
            c.stream_count = 1000;
            c.records_per_stream = i64::MAX / 10;
        });
        assert!(PerfCommand::decode_bytes(b"\xff\xff").is_err());

        let backwards = PerfTicket {
            definition: Some(command()),
            start: 10,
            end: 5,
        };
        assert!(PerfTicket::decode_bytes(&backwards.encode_bytes()).is_err());
        let orphan = PerfTicket {
            definition: None,
            start: 0,
            end: 5,
        };
        assert!(PerfTicket::decode_bytes(&orphan.encode_bytes()).is_err());
    }
}
