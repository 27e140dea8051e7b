//! `MemoryService`: a complete Flight service that keeps flights in memory. DoPut stores a
//! stream under its descriptor, DoGet returns it, ListFlights / GetFlightInfo / PollFlightInfo /
//! GetSchema describe what is stored, DoExchange echoes, and DoAction serves the standard actions
//! (CancelFlightInfo, RenewFlightEndpoint, and the session options of the calling client's
//! session: [`crate::session`]) plus `drop` and `clear`.
//!
//! It is the example service of the documentation and the reference service the tests and the
//! benchmark run over every transport.

use crate::actions::{self, StandardAction};
use crate::codec::{DecodedPayload, FlightDataEncoderBuilder, FlightRecordBatchStream};
use crate::proto::{
    flight_descriptor::DescriptorType, Action, ActionType, CancelFlightInfoResult, CancelStatus,
    Criteria, FlightDescriptor, FlightEndpoint, FlightInfo, PollInfo, PutResult,
    Result as ActionResult, SchemaResult, Ticket,
};
use crate::session;
use crate::{CallContext, FlightData, FlightError, FlightService, FlightStream, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// A stored flight.
#[derive(Debug, Clone)]
pub struct StoredFlight {
    /// The descriptor it was uploaded under.
    pub descriptor: FlightDescriptor,
    /// Its schema.
    pub schema: SchemaRef,
    /// Its batches, in upload order.
    pub batches: Vec<RecordBatch>,
}

impl StoredFlight {
    fn total_records(&self) -> i64 {
        self.batches.iter().map(|b| b.num_rows() as i64).sum()
    }

    /// The bytes of the data itself: every column's buffers as far as its rows reach. (Not
    /// `get_array_memory_size`, which counts each array's whole allocation: columns decoded
    /// from one received message share its buffer, and each would count all of it.)
    fn total_bytes(&self) -> i64 {
        self.batches
            .iter()
            .flat_map(|batch| batch.columns())
            .map(|column| {
                let data = column.to_data();
                data.get_slice_memory_size()
                    .unwrap_or_else(|_| column.get_array_memory_size()) as i64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array};
    use std::sync::Arc;

    #[test]
    fn total_bytes_counts_the_data_not_shared_allocations() {
        // four columns that are slices of one allocation, as when decoded from one message
        let shared = Int64Array::from_iter_values(0..4000);
        let columns: Vec<(String, ArrayRef)> = (0..4)
            .map(|i| {
                (
                    format!("c{i}"),
                    Arc::new(shared.slice(i * 1000, 1000)) as ArrayRef,
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let flight = StoredFlight {
            descriptor: FlightDescriptor::new_path(["t"]),
            schema: batch.schema(),
            batches: vec![batch],
        };
        assert_eq!(flight.total_bytes(), 4 * 1000 * 8);
    }
}

/// The key a descriptor is stored under (and the ticket that fetches it): the path joined with
/// `/`, or the command bytes.
pub fn descriptor_key(descriptor: &FlightDescriptor) -> Result<Bytes> {
    match DescriptorType::try_from(descriptor.r#type) {
        Ok(DescriptorType::Path) if !descriptor.path.is_empty() => {
            Ok(Bytes::from(descriptor.path.join("/")))
        }
        Ok(DescriptorType::Cmd) => Ok(descriptor.cmd.clone()),
        _ => Err(FlightError::invalid_argument(
            "descriptor must be a non-empty PATH or a CMD",
        )),
    }
}

#[derive(Default)]
struct State {
    flights: BTreeMap<Bytes, StoredFlight>,
}

/// An in-memory Flight service. Cheap to clone; clones share the store.
#[derive(Clone, Default)]
pub struct MemoryService {
    state: Arc<RwLock<State>>,
}

impl MemoryService {
    /// An empty store.
    pub fn new() -> Self {
        MemoryService::default()
    }

    /// Stores a flight directly (without a DoPut).
    pub fn insert(
        &self,
        descriptor: FlightDescriptor,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let key = descriptor_key(&descriptor)?;
        self.write()?.flights.insert(
            key,
            StoredFlight {
                descriptor,
                schema,
                batches,
            },
        );
        Ok(())
    }

    /// The stored flight under a key, if any.
    pub fn get(&self, key: &[u8]) -> Option<StoredFlight> {
        self.state.read().ok()?.flights.get(key).cloned()
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>> {
        self.state
            .write()
            .map_err(|_| FlightError::internal("memory store lock poisoned"))
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>> {
        self.state
            .read()
            .map_err(|_| FlightError::internal("memory store lock poisoned"))
    }

    fn lookup(&self, key: &[u8]) -> Result<StoredFlight> {
        self.read()?.flights.get(key).cloned().ok_or_else(|| {
            FlightError::not_found(format!("no flight {:?}", String::from_utf8_lossy(key)))
        })
    }

    fn flight_info(key: &Bytes, flight: &StoredFlight) -> FlightInfo {
        FlightInfo::new()
            .with_schema(&flight.schema)
            .with_descriptor(flight.descriptor.clone())
            .with_endpoint(FlightEndpoint::new(Ticket::new(key.clone())))
            .with_totals(flight.total_records(), flight.total_bytes())
            .with_ordered(true)
    }

    fn standard_action(
        &self,
        ctx: &CallContext,
        action: StandardAction,
    ) -> Result<FlightStream<ActionResult>> {
        Ok(match action {
            StandardAction::CancelFlightInfo(_) => {
                // Every stored flight is complete, so there is nothing running to cancel; say so
                // the way the protocol asks.
                actions::single_result(&CancelFlightInfoResult {
                    status: CancelStatus::NotCancellable as i32,
                })
            }
            StandardAction::RenewFlightEndpoint(request) => {
                let mut endpoint = request.endpoint.ok_or_else(|| {
                    FlightError::invalid_argument("RenewFlightEndpoint without an endpoint")
                })?;
                let expires = SystemTime::now() + Duration::from_secs(3600);
                endpoint.expiration_time = Some(prost_types::Timestamp::from(expires));
                actions::single_result(&endpoint)
            }
            StandardAction::SetSessionOptions(request) => {
                actions::single_result(&session::set_session_options(ctx, request, |_, _| None)?)
            }
            StandardAction::GetSessionOptions(_) => {
                actions::single_result(&session::get_session_options(ctx)?)
            }
            StandardAction::CloseSession(_) => {
                actions::single_result(&session::close_session(ctx)?)
            }
        })
    }
}

#[crate::async_trait]
impl FlightService for MemoryService {
    async fn list_flights(
        &self,
        _ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let infos: Vec<Result<FlightInfo>> = self
            .read()?
            .flights
            .iter()
            .filter(|(key, _)| key.starts_with(&criteria.expression))
            .map(|(key, flight)| Ok(Self::flight_info(key, flight)))
            .collect();
        Ok(futures::stream::iter(infos).boxed())
    }

    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let key = descriptor_key(&descriptor)?;
        let flight = self.lookup(&key)?;
        Ok(Self::flight_info(&key, &flight))
    }

    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        // Stored flights are complete: the answer is final (no descriptor to poll again).
        let info = self.get_flight_info(ctx, descriptor).await?;
        Ok(PollInfo::finished(info))
    }

    async fn get_schema(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let flight = self.lookup(&descriptor_key(&descriptor)?)?;
        Ok(SchemaResult::from_schema(&flight.schema))
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let flight = self.lookup(&ticket.ticket)?;
        let batches = futures::stream::iter(flight.batches.into_iter().map(Ok));
        Ok(FlightDataEncoderBuilder::new()
            .with_schema(flight.schema)
            .build(batches)
            .boxed())
    }

    async fn do_put(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        // Acknowledge each batch as it is stored (peers may wait for every PutResult before
        // sending more), and store the flight when the upload completes.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<PutResult>>(16);
        let store = self.clone();
        tokio::spawn(async move {
            let result: Result<()> = async {
                let mut stream = FlightRecordBatchStream::new(data);
                let mut descriptor = None;
                let mut batches = Vec::new();
                let mut rows = 0usize;
                while let Some(message) = stream.next_message().await {
                    let message = message?;
                    if descriptor.is_none() {
                        descriptor = message.descriptor.clone();
                    }
                    if let DecodedPayload::RecordBatch(batch) = message.payload {
                        rows += batch.num_rows();
                        batches.push(batch);
                        let ack = PutResult {
                            app_metadata: Bytes::from(format!("{}:{rows}", batches.len())),
                        };
                        if tx.send(Ok(ack)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                let descriptor = descriptor.ok_or_else(|| {
                    FlightError::invalid_argument("DoPut stream carried no FlightDescriptor")
                })?;
                let schema = stream.schema().cloned().ok_or_else(|| {
                    FlightError::invalid_argument("DoPut stream carried no schema")
                })?;
                store.insert(descriptor, schema, batches)
            }
            .await;
            if let Err(err) = result {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(rx).boxed())
    }

    async fn do_exchange(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        // Echo every message with its metadata. A message that carried only the descriptor
        // (how Arrow C++ clients open an exchange) is not echoed: an empty message back would
        // read as end of stream to them.
        Ok(data
            .try_filter_map(|mut message| async move {
                message.flight_descriptor = None;
                let empty = message.data_header.is_empty()
                    && message.app_metadata.is_empty()
                    && message.data_body.is_empty();
                Ok((!empty).then_some(message))
            })
            .boxed())
    }

    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        if let Some(standard) = StandardAction::decode(&action)? {
            return self.standard_action(&ctx, standard);
        }
        match action.r#type.as_str() {
            "drop" => {
                let removed = self.write()?.flights.remove(&action.body);
                if removed.is_none() {
                    return Err(FlightError::not_found(format!(
                        "no flight {:?}",
                        String::from_utf8_lossy(&action.body)
                    )));
                }
                Ok(futures::stream::empty().boxed())
            }
            "clear" => {
                let n = {
                    let mut state = self.write()?;
                    let n = state.flights.len();
                    state.flights.clear();
                    n
                };
                Ok(futures::stream::iter([Ok(ActionResult {
                    body: Bytes::from(n.to_string()),
                })])
                .boxed())
            }
            other => Err(FlightError::unimplemented(format!(
                "unknown action {other:?}"
            ))),
        }
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let mut types = actions::standard_action_types();
        types.push(ActionType {
            r#type: "drop".into(),
            description: "Remove the flight whose key is the body".into(),
        });
        types.push(ActionType {
            r#type: "clear".into(),
            description: "Remove every flight; answers with how many there were".into(),
        });
        Ok(futures::stream::iter(types.into_iter().map(Ok)).boxed())
    }
}
