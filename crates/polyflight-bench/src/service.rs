//! The perf service: a Flight service that speaks the [perf protocol](crate::command), served
//! over any polyflight transport. [`PerfData`] and [`PutCounter`] hold what it shares with the
//! arrow-flight reference server, so both rows of a report serve the same bytes the same way.

use crate::command::{PerfCommand, PerfTicket, PutSummary, PING_ACTION};
use crate::data::{encode_options, DataCache, PreparedData};
use crate::BenchError;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight::codec::{DecodedPayload, FlightDataDecoder, FlightDataEncoderBuilder};
use polyflight::memory::MemoryService;
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::{
    Action, ActionType, Criteria, FlightDescriptor, FlightEndpoint, FlightInfo, PutResult,
    Result as ActionResult, SchemaResult, Ticket,
};
use polyflight::{CallContext, FlightData, FlightService, FlightStream, Result};
use std::sync::Arc;

/// The flight a [`PerfCommand`] describes, ready to serve.
#[derive(Debug)]
pub struct PerfFlight {
    /// The prepared batch.
    pub data: Arc<PreparedData>,
    /// One ticket per stream.
    pub tickets: Vec<PerfTicket>,
    /// Rows in the whole flight.
    pub total_records: i64,
    /// IPC bytes of the whole flight's record batches (full batches counted at their encoded
    /// size; an estimate when the last batch of a stream is short).
    pub total_bytes: i64,
}

/// The prepared data of a perf server: batches by layout and size, generated once.
#[derive(Debug, Default, Clone)]
pub struct PerfData {
    cache: Arc<DataCache>,
}

impl PerfData {
    /// A server's data, empty until the first command.
    pub fn new() -> Self {
        PerfData::default()
    }

    /// The flight for a command (already validated), preparing its batch.
    pub fn flight(&self, command: &PerfCommand) -> std::result::Result<PerfFlight, BenchError> {
        let spec = command.spec()?;
        let data = self.cache.get(spec, command.records_per_batch as usize);
        let total_records = command
            .records_per_stream
            .saturating_mul(i64::from(command.stream_count));
        let batches = (total_records as u64).div_ceil(data.rows_per_batch().max(1) as u64);
        let total_bytes = batches.saturating_mul(data.message_bytes);
        Ok(PerfFlight {
            tickets: command.tickets(),
            data,
            total_records,
            total_bytes: i64::try_from(total_bytes).unwrap_or(i64::MAX),
        })
    }

    /// The schema and batches of a DoGet ticket.
    pub fn stream(
        &self,
        ticket: &[u8],
    ) -> std::result::Result<(SchemaRef, impl Iterator<Item = RecordBatch> + Send), BenchError>
    {
        let ticket = PerfTicket::decode_bytes(ticket)?;
        let definition = ticket
            .definition
            .as_ref()
            .ok_or_else(|| BenchError::Protocol("perf ticket without a definition".into()))?;
        let data = self
            .cache
            .get(definition.spec()?, definition.records_per_batch as usize);
        Ok((Arc::clone(&data.schema), data.batches(ticket.rows())))
    }
}

/// Counts an upload: messages, IPC bytes and rows. Rows come from the record batch headers
/// (the flatbuffer's `length`), so counting does not decode the body.
#[derive(Debug, Default, Clone)]
pub struct PutCounter {
    summary: PutSummary,
}

impl PutCounter {
    /// Nothing counted yet.
    pub fn new() -> Self {
        PutCounter::default()
    }

    /// Counts one message by its IPC header and body length.
    pub fn count(&mut self, header: &[u8], body_len: usize) {
        self.summary.messages += 1;
        self.summary.data_bytes += (header.len() + body_len) as u64;
        self.summary.records += record_batch_rows(header);
    }

    /// Counts one message whose rows are already known (it was decoded).
    pub fn count_decoded(&mut self, data_bytes: usize, rows: usize) {
        self.summary.messages += 1;
        self.summary.data_bytes += data_bytes as u64;
        self.summary.records += rows as u64;
    }

    /// The totals so far.
    pub fn summary(&self) -> &PutSummary {
        &self.summary
    }
}

/// Rows of a RecordBatch IPC header; 0 for any other message or a header that does not parse.
pub fn record_batch_rows(header: &[u8]) -> u64 {
    if header.is_empty() {
        return 0;
    }
    arrow_ipc::root_as_message(header)
        .ok()
        .and_then(|m| m.header_as_record_batch())
        .map(|b| b.length().max(0) as u64)
        .unwrap_or(0)
}

/// Whether a DoPut descriptor asks the server to decode: a CMD that is a perf command with
/// `decode` set.
pub fn wants_decode(descriptor: Option<&FlightDescriptor>) -> bool {
    descriptor.is_some_and(|d| wants_decode_cmd(d.r#type, &d.cmd))
}

/// [`wants_decode`] from a descriptor's type number and command bytes (for the arrow-flight
/// server, whose descriptor type is another crate's).
pub fn wants_decode_cmd(descriptor_type: i32, cmd: &[u8]) -> bool {
    descriptor_type == DescriptorType::Cmd as i32
        && PerfCommand::decode_bytes(cmd).is_ok_and(|c| c.decode)
}

/// The command of a GetFlightInfo/GetSchema descriptor.
fn command_of(descriptor: &FlightDescriptor) -> std::result::Result<PerfCommand, BenchError> {
    if descriptor.r#type != DescriptorType::Cmd as i32 {
        return Err(BenchError::Protocol(
            "a perf flight is named by a CMD descriptor holding a PerfCommand".into(),
        ));
    }
    PerfCommand::decode_bytes(&descriptor.cmd)
}

/// The perf service over polyflight: see the [perf protocol](crate::command).
#[derive(Clone, Default)]
pub struct PerfService {
    data: PerfData,
    /// Serves DoExchange (its store stays empty).
    echo: MemoryService,
}

impl std::fmt::Debug for PerfService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfService")
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl PerfService {
    /// A perf service with its own prepared data.
    pub fn new() -> Self {
        PerfService::default()
    }

    fn flight_info(&self, descriptor: FlightDescriptor) -> Result<FlightInfo> {
        let command = command_of(&descriptor)?;
        let flight = self.data.flight(&command)?;
        let mut info = FlightInfo::new()
            .with_schema(&flight.data.schema)
            .with_descriptor(descriptor)
            .with_totals(flight.total_records, flight.total_bytes);
        for ticket in &flight.tickets {
            info = info.with_endpoint(FlightEndpoint::new(Ticket::new(ticket.encode_bytes())));
        }
        Ok(info)
    }
}

#[polyflight::async_trait]
impl FlightService for PerfService {
    async fn list_flights(
        &self,
        _ctx: CallContext,
        _criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        // Perf flights exist for any command; list one example so a client can see the shape.
        let example = PerfCommand::new(Default::default(), 1, 1 << 20, 1 << 15);
        let info = self.flight_info(FlightDescriptor::new_cmd(example.encode_bytes()))?;
        Ok(futures::stream::iter([Ok(info)]).boxed())
    }

    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        self.flight_info(descriptor)
    }

    async fn get_schema(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let command = command_of(&descriptor)?;
        let flight = self.data.flight(&command)?;
        Ok(SchemaResult::from_schema(&flight.data.schema))
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let (schema, batches) = self.data.stream(&ticket.ticket)?;
        Ok(FlightDataEncoderBuilder::new()
            .with_options(encode_options())
            .with_schema(schema)
            .build(futures::stream::iter(batches.map(Ok)))
            .boxed())
    }

    async fn do_put(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        // The upload is consumed as the response stream is polled, which the transport starts
        // doing at once; the single PutResult goes out when the upload ends. Perf clients do
        // not wait for acknowledgements while uploading, so one at the end suffices.
        let consume = async move {
            let mut data = data;
            let mut counter = PutCounter::new();
            let mut decoder: Option<FlightDataDecoder> = None;
            let mut first = true;
            while let Some(message) = data.try_next().await? {
                if first {
                    first = false;
                    if wants_decode(message.flight_descriptor.as_ref()) {
                        decoder = Some(FlightDataDecoder::new());
                    }
                }
                match decoder.as_mut() {
                    Some(decoder) => {
                        let rows = match decoder.decode(&message)? {
                            DecodedPayload::RecordBatch(batch) => batch.num_rows(),
                            _ => 0,
                        };
                        counter.count_decoded(message.data_len(), rows);
                    }
                    None => counter.count(&message.data_header, message.data_body.len()),
                }
            }
            Ok::<_, polyflight::FlightError>(PutResult {
                app_metadata: counter.summary().encode_bytes(),
            })
        };
        Ok(futures::stream::once(consume).boxed())
    }

    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        // The in-memory service's echo: messages pass back as received (bodies not copied),
        // without a descriptor-only opening message.
        self.echo.do_exchange(ctx, data).await
    }

    async fn do_action(
        &self,
        _ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        if action.r#type != PING_ACTION {
            return Err(polyflight::FlightError::unimplemented(format!(
                "unknown action {:?} (a perf server answers {PING_ACTION:?})",
                action.r#type
            )));
        }
        Ok(futures::stream::iter([Ok(ActionResult { body: Bytes::new() })]).boxed())
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        Ok(futures::stream::iter([Ok(ActionType {
            r#type: PING_ACTION.into(),
            description: "Answers with one empty result (round-trip latency)".into(),
        })])
        .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::DataSpec;

    #[test]
    fn the_counter_reads_rows_from_headers() {
        let data = Arc::new(PreparedData::new(DataSpec::default(), 100));
        let mut encoder = polyflight::codec::FlightDataEncoder::new(encode_options());
        let schema = encoder.encode_schema(&data.schema).unwrap();
        let batch = encoder.encode_batch(&data.batch.slice(0, 40)).unwrap();
        let mut counter = PutCounter::new();
        counter.count(&schema.data_header, schema.data_body.len());
        for message in &batch {
            counter.count(&message.data_header, message.data_body.len());
        }
        counter.count(b"not a flatbuffer", 3);
        let summary = counter.summary();
        assert_eq!(summary.messages, 3);
        assert_eq!(summary.records, 40);
        assert_eq!(
            summary.data_bytes,
            (schema.data_len() + batch[0].data_len() + 16 + 3) as u64
        );
    }

    #[test]
    fn flights_have_one_ticket_per_stream() {
        let data = PerfData::new();
        let command = PerfCommand::new(DataSpec::default(), 3, 250, 100);
        let flight = data.flight(&command).unwrap();
        assert_eq!(flight.tickets.len(), 3);
        assert_eq!(flight.total_records, 750);
        let (_, batches) = data.stream(&flight.tickets[2].encode_bytes()).unwrap();
        let rows: Vec<usize> = batches.map(|b| b.num_rows()).collect();
        assert_eq!(rows, vec![100, 100, 50]);
        assert!(data.stream(b"junk").is_err());
    }
}
