//! The JSON round trip: what archery runs when it names no scenario.
//!
//! The client reads an Arrow integration JSON file and uploads it with DoPut under the
//! descriptor PATH `[file]`, one batch at a time with app metadata `str(i)`, waiting for the
//! server to echo each one's metadata before it sends the next. The server stores the stream
//! under `path[0]`, answers GetFlightInfo with one endpoint (ticket `path[0]`, at its own
//! location) and serves DoGet with each batch numbered `str(i)` in its app metadata. The client
//! then reads every endpoint, from the same connection when it has no location or from a new
//! connection per location, and checks every batch, its validity, its metadata, and that no
//! batch is missing or extra.

use crate::failure::{check, ArrowContext, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use crate::scenarios::ServerParts;
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::codec::{
    DecodedPayload, EncoderInput, FlightDataEncoderBuilder, FlightRecordBatchStream,
};
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo, PutResult, Ticket};
use polyflight::{
    CallContext, FlightClient, FlightData, FlightError, FlightService, FlightStream, Location,
    Result,
};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A stored upload.
#[derive(Debug, Clone)]
struct Dataset {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

/// The server of the JSON round trip.
#[derive(Default)]
struct StoreService {
    datasets: Arc<Mutex<HashMap<String, Dataset>>>,
    /// Where clients fetch the stored flights: this server's location, set once it runs.
    location: Arc<Mutex<Option<String>>>,
}

fn lock_failed() -> FlightError {
    FlightError::internal("dataset table lock poisoned")
}

fn path_key(descriptor: &FlightDescriptor) -> Result<String> {
    if descriptor.r#type != DescriptorType::Path as i32 {
        return Err(FlightError::invalid_argument("Must specify a path"));
    }
    descriptor
        .path
        .first()
        .cloned()
        .ok_or_else(|| FlightError::invalid_argument("Must specify a path"))
}

/// The location to advertise for a listen location: a wildcard host becomes loopback, as
/// Arrow C++ advertises `127.0.0.1`.
pub fn advertised_location(listening: &Location) -> String {
    match (listening.host(), listening.port()) {
        (Some("0.0.0.0" | "::" | "[::]"), Some(port)) => {
            Location::for_host_port(listening.scheme(), "127.0.0.1", port)
                .map(|l| l.uri().to_string())
                .unwrap_or_else(|_| listening.uri().to_string())
        }
        _ => listening.uri().to_string(),
    }
}

#[async_trait]
impl FlightService for StoreService {
    async fn do_put(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        let mut incoming = FlightRecordBatchStream::new(data);
        let first = match incoming.next_message().await {
            Some(first) => first?,
            None => return Err(FlightError::invalid_argument("Must specify a path")),
        };
        let key = path_key(&first.descriptor.clone().unwrap_or_default())?;
        struct Upload {
            incoming: FlightRecordBatchStream,
            pending: Option<polyflight::codec::DecodedMessage>,
            batches: Vec<RecordBatch>,
            key: String,
            datasets: Arc<Mutex<HashMap<String, Dataset>>>,
            done: bool,
        }
        let upload = Upload {
            incoming,
            pending: Some(first),
            batches: Vec::new(),
            key,
            datasets: self.datasets.clone(),
            done: false,
        };
        // Each batch's metadata is echoed as soon as the batch arrives: the client waits for it
        // before sending the next batch.
        let results = futures::stream::unfold(upload, |mut up| async move {
            loop {
                if up.done {
                    return None;
                }
                let message = match up.pending.take() {
                    Some(message) => Ok(message),
                    None => match up.incoming.next_message().await {
                        Some(message) => message,
                        None => {
                            up.done = true;
                            let Some(schema) = up.incoming.schema().cloned() else {
                                let err = FlightError::invalid_argument("the upload had no schema");
                                return Some((Err(err), up));
                            };
                            let dataset = Dataset {
                                schema,
                                batches: std::mem::take(&mut up.batches),
                            };
                            let stored = match up.datasets.lock() {
                                Ok(mut datasets) => {
                                    datasets.insert(up.key.clone(), dataset);
                                    true
                                }
                                Err(_) => false,
                            };
                            return (!stored).then(|| (Err(lock_failed()), up));
                        }
                    },
                };
                let message = match message {
                    Ok(message) => message,
                    Err(err) => {
                        up.done = true;
                        return Some((Err(err), up));
                    }
                };
                if let DecodedPayload::RecordBatch(batch) = message.payload {
                    if let Err(err) = validate_batch(&batch) {
                        up.done = true;
                        let err = FlightError::invalid_argument(format!("invalid batch: {err}"));
                        return Some((Err(err), up));
                    }
                    up.batches.push(batch);
                    if !message.app_metadata.is_empty() {
                        let result = PutResult {
                            app_metadata: message.app_metadata,
                        };
                        return Some((Ok(result), up));
                    }
                }
            }
        });
        Ok(Box::pin(results))
    }

    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        if descriptor.r#type != DescriptorType::Path as i32 {
            return Err(FlightError::unimplemented(
                "only PATH descriptors name stored flights",
            ));
        }
        let key = descriptor
            .path
            .first()
            .cloned()
            .ok_or_else(|| FlightError::invalid_argument("Invalid path"))?;
        let dataset = self.dataset(&key)?;
        let location = self
            .location
            .lock()
            .map_err(|_| lock_failed())?
            .clone()
            .ok_or_else(|| FlightError::unavailable("the server does not know its location yet"))?;
        let rows: usize = dataset.batches.iter().map(RecordBatch::num_rows).sum();
        let rows = i64::try_from(rows).map_err(|_| FlightError::internal("row count overflow"))?;
        Ok(FlightInfo::new()
            .with_schema(&dataset.schema)
            .with_descriptor(descriptor)
            .with_endpoint(FlightEndpoint::new(Ticket::new(key)).with_location_uri(location))
            .with_totals(rows, -1))
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let key = String::from_utf8_lossy(&ticket.ticket).into_owned();
        let dataset = self.dataset(&key)?;
        let numbered = dataset.batches.into_iter().enumerate().map(|(i, batch)| {
            Ok(EncoderInput::BatchWithMetadata(
                batch,
                Bytes::from(i.to_string()),
            ))
        });
        Ok(Box::pin(
            FlightDataEncoderBuilder::new()
                .with_schema(dataset.schema)
                .build_messages(futures::stream::iter(numbered)),
        ))
    }
}

impl StoreService {
    fn dataset(&self, key: &str) -> Result<Dataset> {
        self.datasets
            .lock()
            .map_err(|_| lock_failed())?
            .get(key)
            .cloned()
            .ok_or_else(|| FlightError::not_found(format!("Could not find flight: {key}")))
    }
}

/// Fully validates every column of `batch` (offsets, UTF-8, dictionary keys, children).
pub fn validate_batch(batch: &RecordBatch) -> std::result::Result<(), arrow_schema::ArrowError> {
    batch
        .columns()
        .iter()
        .try_for_each(|column| column.to_data().validate_full())
}

/// The round trip's server.
pub fn server() -> ServerParts {
    let service = StoreService::default();
    let location = service.location.clone();
    ServerParts::new(service).on_started(move |locations| {
        if let (Some(first), Ok(mut slot)) = (locations.first(), location.lock()) {
            *slot = Some(advertised_location(first));
        }
    })
}

/// An integration JSON file: its schema and batches (dictionaries resolved).
#[derive(Debug, Clone)]
pub struct JsonData {
    /// The schema.
    pub schema: SchemaRef,
    /// The batches, in file order.
    pub batches: Vec<RecordBatch>,
}

/// Reads an integration JSON file. The reader of `arrow-integration-test` panics on some
/// malformed input; such a panic is turned into an error that names the file.
pub fn read_json_file(path: &Path) -> Outcome<JsonData> {
    let text = std::fs::read_to_string(path).map_err(|source| Failure::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let named = |what: String| Failure::Check(format!("{}: {what}", path.display()));
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| named(format!("not JSON: {e}")))?;
    let json: arrow_integration_test::ArrowJson = serde_json::from_value(value.clone())
        .map_err(|e| named(format!("not an integration JSON file: {e}")))?;
    let parsed = std::panic::catch_unwind(move || {
        let schema = arrow_integration_test::schema_from_json(&value["schema"])?;
        let batches = json.get_record_batches()?;
        Ok::<_, arrow_schema::ArrowError>((schema, batches))
    });
    let (schema, batches) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(err)) => return Err(named(format!("cannot read the data: {err}"))),
        Err(_) => return Err(named("malformed column data".to_string())),
    };
    for (i, batch) in batches.iter().enumerate() {
        validate_batch(batch).arrow(&format!("batch {i} of {}", path.display()))?;
    }
    Ok(JsonData {
        schema: Arc::new(schema),
        batches,
    })
}

/// The round trip's client for the file at `path`.
pub async fn run_client(connector: &Connector, path: &Path) -> Outcome {
    let data = read_json_file(path)?;
    let client = connector.connect().await?;
    let descriptor = FlightDescriptor::new_path([path.display().to_string()]);
    upload(&client, descriptor.clone(), &data).await?;
    let info = client
        .get_flight_info(descriptor)
        .await
        .call("GetFlightInfo")?;
    let advertised: Schema = info.try_schema().call("decoding the FlightInfo schema")?;
    check(advertised == *data.schema, || {
        format!(
            "FlightInfo schema differs\nexpected: {:?}\nactual: {advertised:?}",
            data.schema
        )
    })?;
    check(!info.endpoint.is_empty(), || {
        "no endpoints returned from the Flight server".to_string()
    })?;
    for endpoint in &info.endpoint {
        let ticket = endpoint.ticket.clone().unwrap_or_default();
        if endpoint.location.is_empty() {
            consume(&client, ticket, &data.batches).await?;
        } else {
            for location in &endpoint.location {
                let reader = connector.connect_to(&location.uri).await?;
                consume(&reader, ticket.clone(), &data.batches)
                    .await
                    .map_err(|e| Failure::Check(format!("from {}: {e}", location.uri)))?;
            }
        }
    }
    Ok(())
}

async fn upload(client: &FlightClient, descriptor: FlightDescriptor, data: &JsonData) -> Outcome {
    let (writer, inputs) = tokio::sync::mpsc::channel::<Result<EncoderInput>>(1);
    let inputs = futures::stream::unfold(inputs, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let stream = FlightDataEncoderBuilder::new()
        .with_flight_descriptor(descriptor)
        .with_schema(data.schema.clone())
        .build_messages(inputs);
    let response = client.do_put_data(Box::pin(stream)).await.call("DoPut")?;
    let mut acks = response.body;
    for (i, batch) in data.batches.iter().enumerate() {
        let metadata = Bytes::from(i.to_string());
        writer
            .send(Ok(EncoderInput::BatchWithMetadata(
                batch.clone(),
                metadata.clone(),
            )))
            .await
            .map_err(|_| Failure::Check(format!("DoPut ended before batch {i} was written")))?;
        let ack = acks
            .try_next()
            .await
            .call(&format!("DoPut: waiting for the echo of batch {i}"))?
            .ok_or_else(|| {
                Failure::Check(format!("expected metadata value {i:?} but got nothing"))
            })?;
        check(ack.app_metadata == metadata, || {
            format!(
                "expected metadata value {i:?} but got {:?}",
                String::from_utf8_lossy(&ack.app_metadata)
            )
        })?;
    }
    drop(writer);
    match acks.try_next().await.call("DoPut: finishing the upload")? {
        Some(extra) => Err(Failure::Check(format!(
            "unexpected PutResult after the last batch: {:?}",
            String::from_utf8_lossy(&extra.app_metadata)
        ))),
        None => Ok(()),
    }
}

async fn consume(client: &FlightClient, ticket: Ticket, expected: &[RecordBatch]) -> Outcome {
    let mut stream = client.do_get(ticket).await.call("DoGet")?;
    let mut counter = 0usize;
    while let Some(message) = stream.next_message().await {
        let message = message.call("DoGet")?;
        let DecodedPayload::RecordBatch(batch) = message.payload else {
            continue;
        };
        let original = expected.get(counter).ok_or_else(|| {
            Failure::Check(format!(
                "got more batches than the expected {}",
                expected.len()
            ))
        })?;
        check(*original == batch, || {
            format!("batch {counter} does not match\nexpected: {original:?}\nactual: {batch:?}")
        })?;
        validate_batch(&batch).arrow(&format!("batch {counter} is not valid"))?;
        let want = counter.to_string();
        check(message.app_metadata.as_ref() == want.as_bytes(), || {
            format!(
                "expected metadata value {want:?} but got {:?}",
                String::from_utf8_lossy(&message.app_metadata)
            )
        })?;
        counter += 1;
    }
    check(counter == expected.len(), || {
        format!(
            "got fewer batches than expected: received {counter}, expected {}",
            expected.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_are_advertised_as_loopback() {
        let l = Location::parse("grpc+tcp://0.0.0.0:1234").unwrap();
        assert_eq!(advertised_location(&l), "grpc+tcp://127.0.0.1:1234");
        let l = Location::parse("grpc+tls://127.0.0.1:99").unwrap();
        assert_eq!(advertised_location(&l), "grpc+tls://127.0.0.1:99");
        let l = Location::parse("grpc+unix:///tmp/x.sock").unwrap();
        assert_eq!(advertised_location(&l), "grpc+unix:///tmp/x.sock");
    }
}
