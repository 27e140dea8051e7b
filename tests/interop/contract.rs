//! The interop contract on the Rust side: the datasets of `contract.py`, generated identically,
//! and [`InteropService`], our implementation of the contract that `flight_client.py` checks.
//! `contract.py` is the specification; keep the two in step.
//!
//! The service is the project's [`MemoryService`] (uploads, ListFlights, GetFlightInfo, echo
//! exchange, standard actions) with the contract's additions around it (generated datasets,
//! errors on request, sleeps, header values); [`interop_server`] serves it with the framework's
//! own [`BasicAuthenticator`] (through [`InteropAuth`], which admits anonymous calls) and an
//! [`EchoHeader`] middleware.

use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array};
use arrow_array::{RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use polyflight::auth::{AUTHORIZATION_HEADER, AUTH_TOKEN_HEADER};
use polyflight::codec::{EncodeOptions, FlightDataEncoderBuilder};
use polyflight::memory::MemoryService;
use polyflight::proto::{
    flight_descriptor::DescriptorType, Action, ActionType, Criteria, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult,
    Ticket,
};
use polyflight::{
    BasicAuthenticator, CallContext, FlightCode, FlightData, FlightError, FlightService,
    FlightStream, Result, ServerAuthHandler, ServerBuilder, ServerMiddleware,
};
use std::sync::Arc;
use std::time::Duration;

pub const MANY_BATCHES: usize = 500;
pub const MANY_ROWS: usize = 100;
/// 9 000 000 int64 values: 72 000 000 bytes in one buffer, above 64 MiB.
pub const LARGE_ROWS: usize = 9_000_000;
pub const DICT_BATCHES: usize = 3;
pub const DICT_ROWS: usize = 10;
pub const DICT_VALUES: [&str; 3] = ["red", "green", "blue"];
pub const SLOW_BATCHES: usize = 10;
pub const SLOW_INTERVAL: Duration = Duration::from_millis(200);

pub const INFO_APP_METADATA: &[u8] = b"info-metadata";
pub const ENDPOINT_APP_METADATA: &[u8] = b"endpoint-metadata";

pub const AUTH_USER: &str = "alice";
pub const AUTH_PASSWORD: &str = "wonderland";

/// The contract's own actions and their descriptions.
pub const ACTION_TYPES: [(&str, &str); 6] = [
    ("echo", "Return the body"),
    ("stream", "Return N results"),
    ("sleep", "Sleep for N milliseconds"),
    ("header", "Return the values of a request header"),
    ("error", "Fail with the named code"),
    ("whoami", "Return the caller's identity"),
];

/// The datasets served under a ticket (and a CMD descriptor) of the same name.
pub const GENERATED: [&str; 4] = ["many", "large", "dict", "empty"];

pub fn numbers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("value", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

pub fn large_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

pub fn dict_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new(
            "color",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]))
}

/// Rows start..start+count: id, value = id / 2 (null when id % 7 == 3), name = "row-<id>".
pub fn numbers(start: usize, count: usize) -> RecordBatch {
    let ids = start as i64..(start + count) as i64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.clone())),
        Arc::new(Float64Array::from_iter(
            ids.clone().map(|i| (i % 7 != 3).then_some(i as f64 / 2.0)),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.map(|i| format!("row-{i}")),
        )),
    ];
    RecordBatch::try_new(numbers_schema(), columns).expect("numbers batch")
}

pub fn many() -> Vec<RecordBatch> {
    (0..MANY_BATCHES)
        .map(|i| numbers(i * MANY_ROWS, MANY_ROWS))
        .collect()
}

pub fn large() -> Vec<RecordBatch> {
    let column: ArrayRef = Arc::new(Int64Array::from_iter_values(0..LARGE_ROWS as i64));
    vec![RecordBatch::try_new(large_schema(), vec![column]).expect("large batch")]
}

/// Batch `index` of the dict dataset: id, color = DICT_VALUES[id % 3] (null when id % 5 == 4).
pub fn dict_batch(index: usize) -> RecordBatch {
    dict_batch_with(index, &DICT_VALUES)
}

/// Batch `index` of the dict dataset with another dictionary: color = values[id % len].
pub fn dict_batch_with(index: usize, dictionary: &[&str]) -> RecordBatch {
    let ids = (index * DICT_ROWS) as i64..((index + 1) * DICT_ROWS) as i64;
    let len = dictionary.len() as i64;
    let keys = Int32Array::from_iter(
        ids.clone()
            .map(|i| (i % 5 != 4).then_some((i % len) as i32)),
    );
    let values: ArrayRef = Arc::new(StringArray::from_iter_values(dictionary.iter().copied()));
    let colors = DictionaryArray::<Int32Type>::try_new(keys, values).expect("dictionary column");
    RecordBatch::try_new(
        dict_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(colors),
        ],
    )
    .expect("dict batch")
}

pub fn dicts() -> Vec<RecordBatch> {
    (0..DICT_BATCHES).map(dict_batch).collect()
}

/// The schema and batches of a generated dataset.
pub fn generated(name: &str) -> Option<(SchemaRef, Vec<RecordBatch>)> {
    Some(match name {
        "many" => (numbers_schema(), many()),
        "large" => (large_schema(), large()),
        "dict" => (dict_schema(), dicts()),
        "empty" => (numbers_schema(), Vec::new()),
        _ => return None,
    })
}

/// Row counts of the generated datasets, without generating them.
pub fn generated_rows(name: &str) -> Option<i64> {
    Some(match name {
        "many" => (MANY_BATCHES * MANY_ROWS) as i64,
        "large" => LARGE_ROWS as i64,
        "dict" => (DICT_BATCHES * DICT_ROWS) as i64,
        "empty" => 0,
        _ => return None,
    })
}

fn generated_schema(name: &str) -> Option<SchemaRef> {
    Some(match name {
        "many" | "empty" => numbers_schema(),
        "large" => large_schema(),
        "dict" => dict_schema(),
        _ => return None,
    })
}

/// The FlightCode whose name is `name` (`NOT_FOUND` …).
pub fn code_named(name: &str) -> Option<FlightCode> {
    FlightCode::ALL
        .into_iter()
        .find(|c| *c != FlightCode::Ok && c.name() == name)
}

/// The error the `error` action fails with. Extra info is attached as an Arrow C++ server can
/// attach it: only to the codes that have a Flight status detail in Arrow C++ (a C++ server
/// cannot send extra info with INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS or UNIMPLEMENTED, and
/// a C++ client turns such an error into `FlightInternalError`; see docs/transports/grpc.md).
pub fn requested_error(code: FlightCode) -> FlightError {
    let err = FlightError::new(code, format!("requested {}", code.name()));
    match code {
        FlightCode::InvalidArgument
        | FlightCode::NotFound
        | FlightCode::AlreadyExists
        | FlightCode::Unimplemented => err,
        _ => err.with_extra_info(Bytes::from(format!("detail:{}", code.name()))),
    }
}

/// `authorization: Basic …` for a user.
pub fn basic_header(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// The framework's [`BasicAuthenticator`] for the contract's user, except that a call with no
/// credentials at all is admitted as anonymous (identity `""`), as the contract asks.
pub struct InteropAuth {
    inner: Arc<BasicAuthenticator>,
}

impl InteropAuth {
    pub fn new() -> Arc<InteropAuth> {
        Arc::new(InteropAuth {
            inner: BasicAuthenticator::with_users([(AUTH_USER, AUTH_PASSWORD)]),
        })
    }
}

#[polyflight::async_trait]
impl ServerAuthHandler for InteropAuth {
    async fn handshake(
        &self,
        ctx: &CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        self.inner.handshake(ctx, requests).await
    }

    async fn authenticate(&self, ctx: &CallContext) -> Result<String> {
        let headers = ctx.headers();
        if headers.get(AUTH_TOKEN_HEADER).is_none() && headers.get(AUTHORIZATION_HEADER).is_none() {
            return Ok(String::new());
        }
        self.inner.authenticate(ctx).await
    }
}

/// Sends a request's `x-echo` header back as a response header, decided at call start.
pub struct EchoHeader;

#[polyflight::async_trait]
impl ServerMiddleware for EchoHeader {
    async fn call_started(&self, ctx: &CallContext) -> Result<()> {
        if let Some(value) = ctx.headers().get("x-echo") {
            ctx.append_response_header("x-echo", value.clone());
        }
        Ok(())
    }
}

/// Our server for the contract: [`InteropService`] with [`InteropAuth`] and [`EchoHeader`].
pub fn interop_server() -> ServerBuilder {
    polyflight::server(InteropService::default())
        .auth(InteropAuth::new())
        .middleware(EchoHeader)
}

fn results(bodies: impl IntoIterator<Item = Bytes>) -> FlightStream<ActionResult> {
    let items: Vec<Result<ActionResult>> = bodies
        .into_iter()
        .map(|body| Ok(ActionResult { body }))
        .collect();
    futures::stream::iter(items).boxed()
}

fn parse_number(body: &[u8], what: &str) -> Result<u64> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| FlightError::invalid_argument(format!("{what}: body must be a number")))
}

/// Adds the contract's app metadata to a FlightInfo and its endpoints.
fn decorate(mut info: FlightInfo) -> FlightInfo {
    info.app_metadata = Bytes::from_static(INFO_APP_METADATA);
    info.ordered = true;
    for endpoint in &mut info.endpoint {
        endpoint.app_metadata = Bytes::from_static(ENDPOINT_APP_METADATA);
    }
    info
}

/// Options that keep each batch one message, so a peer sees batches as they were made (the
/// `large` dataset must arrive as one >= 64 MiB message).
fn whole_batches() -> EncodeOptions {
    EncodeOptions {
        max_message_size: usize::MAX,
        ..EncodeOptions::default()
    }
}

/// Encodes a generated stream of batches for DoGet.
fn encode(schema: SchemaRef, batches: FlightStream<RecordBatch>) -> FlightStream<FlightData> {
    FlightDataEncoderBuilder::new()
        .with_options(whole_batches())
        .with_schema(schema)
        .build(batches)
        .boxed()
}

/// Our implementation of the interop contract (see `contract.py`); authentication and the
/// header echo are the server's ([`interop_server`]).
#[derive(Clone, Default)]
pub struct InteropService {
    store: MemoryService,
}

impl InteropService {
    fn generated_info(name: &str, descriptor: FlightDescriptor) -> Option<FlightInfo> {
        let schema = generated_schema(name)?;
        let rows = generated_rows(name)?;
        Some(decorate(
            FlightInfo::new()
                .with_schema(&schema)
                .with_descriptor(descriptor)
                .with_endpoint(polyflight::proto::FlightEndpoint::new(Ticket::new(
                    Bytes::copy_from_slice(name.as_bytes()),
                )))
                .with_totals(rows, -1),
        ))
    }
}

fn command_name(descriptor: &FlightDescriptor) -> Option<&str> {
    (descriptor.r#type == DescriptorType::Cmd as i32)
        .then(|| std::str::from_utf8(&descriptor.cmd).ok())
        .flatten()
}

#[polyflight::async_trait]
impl FlightService for InteropService {
    async fn list_flights(
        &self,
        ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let infos = self.store.list_flights(ctx, criteria).await?;
        Ok(infos.map(|info| info.map(decorate)).boxed())
    }

    async fn get_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        if let Some(name) = command_name(&descriptor) {
            if let Some(info) = Self::generated_info(name, descriptor.clone()) {
                return Ok(info);
            }
        }
        self.store
            .get_flight_info(ctx, descriptor)
            .await
            .map(decorate)
    }

    async fn poll_flight_info(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        self.store.poll_flight_info(ctx, descriptor).await
    }

    async fn get_schema(
        &self,
        ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        if let Some(schema) = command_name(&descriptor).and_then(generated_schema) {
            return Ok(SchemaResult::from_schema(&schema));
        }
        self.store.get_schema(ctx, descriptor).await
    }

    async fn do_get(&self, ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let name = std::str::from_utf8(&ticket.ticket).unwrap_or("");
        if let Some((schema, batches)) = generated(name) {
            return Ok(encode(
                schema,
                futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
            ));
        }
        if let Some(code) = name.strip_prefix("error:") {
            let code = code_named(code).ok_or_else(|| {
                FlightError::invalid_argument(format!("cannot fail with code {code:?}"))
            })?;
            let items = futures::stream::iter([Err(requested_error(code))]);
            return Ok(encode(numbers_schema(), items.boxed()));
        }
        match name {
            "error" => {
                let items = [
                    Ok(numbers(0, 10)),
                    Err(FlightError::unavailable("midstream failure")),
                ];
                Ok(encode(
                    numbers_schema(),
                    futures::stream::iter(items).boxed(),
                ))
            }
            "slow" => {
                let batches = futures::stream::unfold(0usize, |i| async move {
                    if i >= SLOW_BATCHES {
                        return None;
                    }
                    if i > 0 {
                        tokio::time::sleep(SLOW_INTERVAL).await;
                    }
                    Some((Ok(numbers(i, 1)), i + 1))
                });
                Ok(encode(numbers_schema(), batches.boxed()))
            }
            _ => self.store.do_get(ctx, ticket).await,
        }
    }

    async fn do_put(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<PutResult>> {
        self.store.do_put(ctx, data).await
    }

    async fn do_exchange(
        &self,
        ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        // The command is on the first message; checking it there (rather than waiting for it
        // before answering) keeps a client that waits for our response headers from stalling.
        let mut first = true;
        let checked = data.map(move |message| {
            let message = message?;
            if std::mem::take(&mut first) {
                let command = message.flight_descriptor.as_ref().and_then(command_name);
                if command != Some("echo") {
                    return Err(FlightError::invalid_argument(format!(
                        "unknown exchange command {command:?}"
                    )));
                }
            }
            Ok(message)
        });
        self.store.do_exchange(ctx, checked.boxed()).await
    }

    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        match action.r#type.as_str() {
            "echo" => Ok(results([action.body])),
            "stream" => {
                let n = parse_number(&action.body, "stream")?;
                Ok(results((0..n).map(|i| Bytes::from(i.to_string()))))
            }
            "sleep" => {
                let ms = parse_number(&action.body, "sleep")?;
                // A cancelled or timed-out call drops this future, ending the sleep early.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(results([Bytes::from_static(b"slept")]))
            }
            "header" => {
                let name = String::from_utf8_lossy(&action.body).to_ascii_lowercase();
                let values: Vec<Bytes> = ctx.headers().get_all(&name).cloned().collect();
                Ok(results(values))
            }
            "error" => {
                let name = String::from_utf8_lossy(&action.body);
                let code = code_named(&name).ok_or_else(|| {
                    FlightError::invalid_argument(format!("cannot fail with code {name:?}"))
                })?;
                Err(requested_error(code))
            }
            "whoami" => Ok(results([Bytes::from(ctx.identity().unwrap_or_default())])),
            _ => self.store.do_action(ctx, action).await,
        }
    }

    async fn list_actions(&self, ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let ours = ACTION_TYPES.map(|(kind, description)| {
            Ok(ActionType {
                r#type: kind.to_string(),
                description: description.to_string(),
            })
        });
        let theirs = self.store.list_actions(ctx).await?;
        Ok(futures::stream::iter(ours).chain(theirs).boxed())
    }
}
