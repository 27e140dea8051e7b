//! `Coordinator`: one Flight server in front of several data nodes, so that a client asks one
//! place what there is and reads the data from every node at once, over any transport.
//!
//! The coordinator keeps no data. It asks every node (any Flight server: the dataset service,
//! the in-memory or perf service, a pyarrow server) and answers with what they say together:
//!
//! - **ListFlights**: the nodes' flights, those of one descriptor merged into one FlightInfo.
//! - **GetFlightInfo** / **PollFlightInfo**: one FlightInfo whose endpoints are every node's
//!   endpoints, taken from the nodes in turn (the first of each node, then the second of each…)
//!   so that a client reading a few endpoints ahead reads from every node at once; a single
//!   node's order and `ordered` flag are kept. An endpoint a node gave without a location (meaning "this
//!   server") gets the node's advertised locations, every transport it listens on, so a client
//!   reads it from the node directly; the node's tickets pass through untouched. Row and byte
//!   totals are summed (unknown when any node does not know its own). Nodes answering NOT_FOUND
//!   are left out; when all do, the answer is NOT_FOUND.
//! - **GetSchema**: the schema the nodes agree on.
//!
//! Nodes that hold parts of one flight must agree on its schema (field names, types,
//! nullability); a flight whose parts disagree is an error naming both nodes for
//! GetFlightInfo and GetSchema, and is left out of ListFlights. DoGet, DoPut and DoExchange are
//! refused: data moves between clients and nodes, never through the coordinator.
//!
//! A node that cannot be reached fails the call UNAVAILABLE, naming the node: a partial answer
//! would look like a smaller flight. Calls to a node are metadata calls, so one that fails
//! UNAVAILABLE is retried once on a new connection (a node restarted since the last call).
//! The caller's credentials are not forwarded: the coordinator calls nodes with its own
//! [`ConnectOptions`] and [`CallOptions`] (which may carry headers such as a token).

use crate::proto::{
    Criteria, FlightDescriptor, FlightEndpoint, FlightInfo, Location as ProtoLocation, PollInfo,
    SchemaResult, Ticket,
};
use crate::{
    CallContext, CallOptions, ConnectOptions, FlightClient, FlightCode, FlightData, FlightError,
    FlightService, FlightStream, Location, Registry, Result,
};
use arrow_schema::Schema;
use futures::future::join_all;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a call to a node may take, unless [`Coordinator::node_timeout`] says otherwise.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(30);

/// A data node: the locations it listens on. The coordinator talks to it over the first; all
/// of them are advertised in the endpoints it serves, so each client picks its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    locations: Vec<Location>,
}

impl Node {
    /// A node listening on `uris` (at least one).
    pub fn new<I, S>(uris: I) -> Result<Node>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let locations = uris
            .into_iter()
            .map(|uri| Location::parse(uri.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        if locations.is_empty() {
            return Err(FlightError::invalid_argument(
                "a node needs at least one location",
            ));
        }
        if let Some(reuse) = locations.iter().find(|l| l.is_reuse_connection()) {
            return Err(FlightError::invalid_argument(format!(
                "{} cannot name a node",
                reuse.uri()
            )));
        }
        Ok(Node { locations })
    }

    /// A node from a comma-separated list of URIs (`grpc://a:8815,ucx://a:9000`).
    pub fn parse(list: &str) -> Result<Node> {
        Node::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    /// Its locations, the one the coordinator uses first.
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// What errors and logs call it: the location the coordinator uses.
    pub fn name(&self) -> &str {
        self.locations[0].uri()
    }
}

struct NodeState {
    node: Node,
    advertised: Vec<ProtoLocation>,
    client: Mutex<Option<FlightClient>>,
}

/// A Flight service answering for several data nodes (see the [module](self) documentation).
pub struct Coordinator {
    nodes: Vec<NodeState>,
    registry: Registry,
    connect: ConnectOptions,
    call: CallOptions,
    node_timeout: Duration,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| n.node.name()).collect::<Vec<_>>(),
            )
            .field("node_timeout", &self.node_timeout)
            .finish()
    }
}

impl Coordinator {
    /// A coordinator for `nodes`, reaching them with every compiled-in transport.
    pub fn new(nodes: Vec<Node>) -> Result<Coordinator> {
        Coordinator::with_registry(nodes, crate::default_registry())
    }

    /// A coordinator reaching its nodes with the transports of `registry`.
    pub fn with_registry(nodes: Vec<Node>, registry: Registry) -> Result<Coordinator> {
        if nodes.is_empty() {
            return Err(FlightError::invalid_argument(
                "a coordinator needs at least one node",
            ));
        }
        let nodes = nodes
            .into_iter()
            .map(|node| NodeState {
                advertised: node
                    .locations
                    .iter()
                    .map(|l| ProtoLocation {
                        uri: l.uri().to_string(),
                    })
                    .collect(),
                node,
                client: Mutex::new(None),
            })
            .collect();
        Ok(Coordinator {
            nodes,
            registry,
            connect: ConnectOptions::default(),
            call: CallOptions::new(),
            node_timeout: DEFAULT_NODE_TIMEOUT,
        })
    }

    /// Connection options for reaching nodes (TLS roots, message limits, timeouts).
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.connect = options;
        self
    }

    /// Call options for calls to nodes (headers such as a token). Their timeout is replaced by
    /// [`node_timeout`](Self::node_timeout).
    pub fn call_options(mut self, options: CallOptions) -> Self {
        self.call = options;
        self
    }

    /// How long one call to a node may take, connecting included.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// The nodes, in the order their endpoints are listed.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().map(|n| &n.node)
    }

    async fn client(&self, state: &NodeState) -> Result<FlightClient> {
        let mut slot = state.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let mut options = self.connect.clone();
        options.connect_timeout = Some(
            options
                .connect_timeout
                .map_or(self.node_timeout, |t| t.min(self.node_timeout)),
        );
        let client =
            FlightClient::connect_with_options(self.registry.clone(), state.node.name(), options)
                .await?
                .with_call_options(self.call.clone().timeout(self.node_timeout));
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs `call` against one node, once more on a new connection if it fails UNAVAILABLE;
    /// errors name the node.
    async fn ask<T, F, Fut>(&self, state: &NodeState, call: F) -> Result<T>
    where
        F: Fn(FlightClient) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retried = false;
        loop {
            let outcome = match self.client(state).await {
                Ok(client) => call(client).await,
                Err(err) => Err(err),
            };
            match outcome {
                Err(err) if err.code() == FlightCode::Unavailable && !retried => {
                    retried = true;
                    *state.client.lock().await = None;
                }
                Err(err) => {
                    return Err(FlightError::new(
                        err.code(),
                        format!("node {}: {}", state.node.name(), err.message()),
                    ))
                }
                Ok(value) => return Ok(value),
            }
        }
    }

    /// Asks every node at once; a node's NOT_FOUND is `None`, any other error fails the whole.
    async fn ask_all<T, F, Fut>(&self, call: F) -> Result<Vec<(usize, T)>>
    where
        F: Fn(FlightClient) -> Fut + Clone,
        Fut: Future<Output = Result<T>>,
    {
        let answers = join_all(self.nodes.iter().map(|state| self.ask(state, call.clone()))).await;
        let mut found = Vec::new();
        for (index, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(value) => found.push((index, value)),
                Err(err) if err.code() == FlightCode::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(found)
    }

    /// One FlightInfo from the nodes' parts of one flight (`parts` in node order, not empty).
    fn merge(
        &self,
        descriptor: Option<FlightDescriptor>,
        parts: Vec<(usize, FlightInfo)>,
    ) -> Result<FlightInfo> {
        let single = parts.len() == 1;
        let mut agreed: Option<(usize, Schema)> = None;
        let mut merged = FlightInfo {
            flight_descriptor: descriptor,
            ..FlightInfo::default()
        };
        let (mut records, mut bytes) = (Some(0i64), Some(0i64));
        let mut per_node = Vec::with_capacity(parts.len());
        for (index, info) in parts {
            if !info.schema.is_empty() {
                let schema = crate::codec::decode_schema(&info.schema).map_err(|err| {
                    FlightError::internal(format!(
                        "node {} sent an unreadable schema: {}",
                        self.nodes[index].node.name(),
                        err.message()
                    ))
                })?;
                match &agreed {
                    None => {
                        merged.schema = info.schema.clone();
                        agreed = Some((index, schema));
                    }
                    Some((first, first_schema)) => {
                        self.check_same_schema(*first, first_schema, index, &schema)?
                    }
                }
            }
            records = records
                .zip((info.total_records >= 0).then_some(info.total_records))
                .map(|(a, b)| a.saturating_add(b));
            bytes = bytes
                .zip((info.total_bytes >= 0).then_some(info.total_bytes))
                .map(|(a, b)| a.saturating_add(b));
            if single {
                merged.ordered = info.ordered;
                merged.app_metadata = info.app_metadata;
            }
            let advertised = &self.nodes[index].advertised;
            per_node.push(info.endpoint.into_iter().map(|mut endpoint| {
                let here = endpoint.location.is_empty()
                    || endpoint
                        .location
                        .iter()
                        .all(|l| Location::parse(&l.uri).is_ok_and(|l| l.is_reuse_connection()));
                if here {
                    endpoint.location = advertised.clone();
                }
                endpoint
            }));
        }
        // Endpoints taken from the nodes in turn, so that a reader fetching a few endpoints
        // ahead in order reads from every node at once. (One node's endpoints keep their order.)
        loop {
            let before = merged.endpoint.len();
            merged
                .endpoint
                .extend(per_node.iter_mut().filter_map(|endpoints| endpoints.next()));
            if merged.endpoint.len() == before {
                break;
            }
        }
        merged.total_records = records.unwrap_or(-1);
        merged.total_bytes = bytes.unwrap_or(-1);
        Ok(merged)
    }

    fn check_same_schema(
        &self,
        first: usize,
        first_schema: &Schema,
        index: usize,
        schema: &Schema,
    ) -> Result<()> {
        if first_schema.fields() == schema.fields() {
            return Ok(());
        }
        Err(FlightError::internal(format!(
            "the nodes disagree on the schema: {} has {}, {} has {}",
            self.nodes[first].node.name(),
            first_schema,
            self.nodes[index].node.name(),
            schema
        )))
    }

    async fn flight_info(&self, descriptor: FlightDescriptor) -> Result<FlightInfo> {
        let parts = self
            .ask_all(|client| {
                let descriptor = descriptor.clone();
                async move { client.get_flight_info(descriptor).await }
            })
            .await?;
        if parts.is_empty() {
            return Err(FlightError::not_found(format!(
                "no node has the flight {}",
                describe(&descriptor)
            )));
        }
        self.merge(Some(descriptor), parts)
    }
}

fn describe(descriptor: &FlightDescriptor) -> String {
    if descriptor.path.is_empty() {
        format!("of a {}-byte command", descriptor.cmd.len())
    } else {
        descriptor.path.join("/")
    }
}

fn refuse<T>(method: &str) -> Result<T> {
    Err(FlightError::invalid_argument(format!(
        "{method}: this server is a coordinator and holds no data; read each endpoint of \
         GetFlightInfo from its locations"
    )))
}

#[crate::async_trait]
impl FlightService for Coordinator {
    async fn list_flights(
        &self,
        _ctx: CallContext,
        criteria: Criteria,
    ) -> Result<FlightStream<FlightInfo>> {
        let listings = self
            .ask_all(|client| {
                let expression = criteria.expression.clone();
                async move {
                    client
                        .list_flights(expression)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                }
            })
            .await?;
        // Flights in the order first seen, each with its parts in node order.
        let mut order: Vec<Option<FlightDescriptor>> = Vec::new();
        let mut groups: HashMap<FlightDescriptor, Vec<(usize, FlightInfo)>> = HashMap::new();
        let mut merged = Vec::new();
        for (index, infos) in listings {
            for info in infos {
                match info.flight_descriptor.clone() {
                    Some(descriptor) => {
                        let group = groups.entry(descriptor.clone()).or_default();
                        if group.is_empty() {
                            order.push(Some(descriptor));
                        }
                        group.push((index, info));
                    }
                    // Without a descriptor there is nothing to merge on.
                    None => merged.push(self.merge(None, vec![(index, info)])),
                }
            }
        }
        for descriptor in order.into_iter().flatten() {
            if let Some(parts) = groups.remove(&descriptor) {
                merged.push(self.merge(Some(descriptor), parts));
            }
        }
        // A flight whose parts disagree is left out here; GetFlightInfo names the disagreement.
        let flights: Vec<Result<FlightInfo>> = merged.into_iter().filter(|m| m.is_ok()).collect();
        Ok(futures::stream::iter(flights).boxed())
    }

    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        self.flight_info(descriptor).await
    }

    async fn poll_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<PollInfo> {
        // The nodes' answers are complete ones: nothing is left to poll.
        let info = self.flight_info(descriptor).await?;
        Ok(PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        })
    }

    async fn get_schema(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<SchemaResult> {
        let schemas = self
            .ask_all(|client| {
                let descriptor = descriptor.clone();
                async move { client.get_schema(descriptor).await }
            })
            .await?;
        let mut schemas = schemas.into_iter();
        let Some((first, schema)) = schemas.next() else {
            return Err(FlightError::not_found(format!(
                "no node has the flight {}",
                describe(&descriptor)
            )));
        };
        for (index, other) in schemas {
            self.check_same_schema(first, &schema, index, &other)?;
        }
        Ok(SchemaResult::from_schema(&schema))
    }

    async fn do_get(&self, _ctx: CallContext, _ticket: Ticket) -> Result<FlightStream<FlightData>> {
        refuse("DoGet")
    }

    async fn do_put(
        &self,
        _ctx: CallContext,
        _data: FlightStream<FlightData>,
    ) -> Result<FlightStream<crate::proto::PutResult>> {
        refuse("DoPut")
    }

    async fn do_exchange(
        &self,
        _ctx: CallContext,
        _data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        refuse("DoExchange")
    }

    async fn list_actions(
        &self,
        _ctx: CallContext,
    ) -> Result<FlightStream<crate::proto::ActionType>> {
        Ok(futures::stream::empty().boxed())
    }
}

/// The endpoints of `info` whose locations include one of `node`'s (for tests and tools that
/// check where a flight's parts are).
pub fn endpoints_on<'a>(
    info: &'a FlightInfo,
    node: &'a Node,
) -> impl Iterator<Item = &'a FlightEndpoint> + 'a {
    info.endpoint.iter().filter(move |e| {
        e.location
            .iter()
            .any(|l| Location::parse(&l.uri).is_ok_and(|l| node.locations.contains(&l)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryService;
    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    async fn node_with(path: &str, batches: Vec<RecordBatch>) -> crate::Server {
        let server = crate::server(MemoryService::new())
            .listen("grpc://127.0.0.1:0")
            .start()
            .await
            .expect("node");
        let client = crate::connect(server.location().uri())
            .await
            .expect("connect");
        if !batches.is_empty() {
            let results: Vec<_> = client
                .do_put(
                    FlightDescriptor::new_path([path]),
                    futures::stream::iter(batches.into_iter().map(Ok)),
                )
                .await
                .expect("put")
                .try_collect()
                .await
                .expect("put ends");
            drop(results);
        }
        server
    }

    #[tokio::test]
    async fn a_flight_on_two_nodes_reads_as_one() {
        let a = node_with("t", vec![batch(&[1, 2]), batch(&[3])]).await;
        let b = node_with("t", vec![batch(&[4, 5, 6])]).await;
        let nodes = vec![
            Node::new([a.location().uri()]).expect("node a"),
            Node::new([b.location().uri()]).expect("node b"),
        ];
        let coordinator = crate::server(Coordinator::new(nodes.clone()).expect("coordinator"))
            .listen("grpc://127.0.0.1:0")
            .start()
            .await
            .expect("coordinator starts");
        let client = crate::connect(coordinator.location().uri())
            .await
            .expect("connect");
        let info = client
            .get_flight_info(FlightDescriptor::new_path(["t"]))
            .await
            .expect("info");
        assert_eq!(info.total_records, 6);
        assert_eq!(endpoints_on(&info, &nodes[0]).count(), 1);
        assert_eq!(endpoints_on(&info, &nodes[1]).count(), 1);
        let batches: Vec<RecordBatch> = client
            .read_flight(&info)
            .await
            .expect("read")
            .try_collect()
            .await
            .expect("read ends");
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64")
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, [1, 2, 3, 4, 5, 6]);

        let listed: Vec<FlightInfo> = client
            .list_flights(bytes::Bytes::new())
            .await
            .expect("list")
            .try_collect()
            .await
            .expect("list ends");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].total_records, 6);
        assert_eq!(listed[0].endpoint.len(), 2);
        let schema = client
            .get_schema(FlightDescriptor::new_path(["t"]))
            .await
            .expect("schema");
        assert_eq!(schema.fields().len(), 1);

        let missing = client
            .get_flight_info(FlightDescriptor::new_path(["nothing"]))
            .await
            .expect_err("no node has it");
        assert_eq!(missing.code(), FlightCode::NotFound);
        let refused = client
            .do_get(Ticket::new(bytes::Bytes::from_static(b"x")))
            .await
            .expect_err("no data here");
        assert_eq!(refused.code(), FlightCode::InvalidArgument);
        coordinator.shutdown().await.expect("shutdown");
        a.shutdown().await.expect("shutdown");
        b.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn parts_that_disagree_on_the_schema_are_an_error_naming_the_nodes() {
        let a = node_with("t", vec![batch(&[1])]).await;
        let other = Arc::new(Schema::new(vec![Field::new("w", DataType::Utf8, true)]));
        let b_batch = RecordBatch::try_new(
            other,
            vec![Arc::new(arrow_array::StringArray::from(vec!["x"]))],
        )
        .expect("batch");
        let b = node_with("t", vec![b_batch]).await;
        let coordinator = Coordinator::new(vec![
            Node::new([a.location().uri()]).expect("node"),
            Node::new([b.location().uri()]).expect("node"),
        ])
        .expect("coordinator");
        let err = coordinator
            .flight_info(FlightDescriptor::new_path(["t"]))
            .await
            .expect_err("disagreement");
        assert!(err.message().contains(b.location().uri()), "{err}");
        a.shutdown().await.expect("shutdown");
        b.shutdown().await.expect("shutdown");
    }

    #[tokio::test]
    async fn an_unreachable_node_fails_the_call_naming_it() {
        let a = node_with("t", vec![batch(&[1])]).await;
        let gone = "grpc://127.0.0.1:1";
        let coordinator = Coordinator::new(vec![
            Node::new([a.location().uri()]).expect("node"),
            Node::new([gone]).expect("node"),
        ])
        .expect("coordinator")
        .node_timeout(Duration::from_secs(5));
        let err = coordinator
            .flight_info(FlightDescriptor::new_path(["t"]))
            .await
            .expect_err("unreachable");
        assert_eq!(err.code(), FlightCode::Unavailable, "{err}");
        assert!(err.message().contains(gone), "{err}");
        a.shutdown().await.expect("shutdown");
    }
}
