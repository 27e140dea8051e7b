//! Conveniences on the generated protocol messages: constructors for descriptors, tickets,
//! endpoints and FlightInfo, and schema encoding for FlightInfo and SchemaResult.

use crate::codec;
use crate::error::Result;
use crate::location::Location;
use crate::proto::{
    flight_descriptor::DescriptorType, FlightDescriptor, FlightEndpoint, FlightInfo, PollInfo,
    SchemaResult, Ticket,
};
use arrow_schema::Schema;
use bytes::Bytes;

impl FlightDescriptor {
    /// A PATH descriptor.
    pub fn new_path<S: Into<String>>(path: impl IntoIterator<Item = S>) -> Self {
        FlightDescriptor {
            r#type: DescriptorType::Path as i32,
            cmd: Bytes::new(),
            path: path.into_iter().map(Into::into).collect(),
        }
    }

    /// A CMD descriptor.
    pub fn new_cmd(cmd: impl Into<Bytes>) -> Self {
        FlightDescriptor {
            r#type: DescriptorType::Cmd as i32,
            cmd: cmd.into(),
            path: Vec::new(),
        }
    }
}

impl Ticket {
    /// A ticket with these bytes.
    pub fn new(ticket: impl Into<Bytes>) -> Self {
        Ticket {
            ticket: ticket.into(),
        }
    }
}

impl From<Bytes> for Ticket {
    fn from(ticket: Bytes) -> Self {
        Ticket::new(ticket)
    }
}

impl From<&'static str> for Ticket {
    fn from(ticket: &'static str) -> Self {
        Ticket::new(Bytes::from_static(ticket.as_bytes()))
    }
}

impl FlightEndpoint {
    /// An endpoint for a ticket, with no location (fetch from the same service).
    pub fn new(ticket: impl Into<Ticket>) -> Self {
        FlightEndpoint {
            ticket: Some(ticket.into()),
            ..Default::default()
        }
    }

    /// Adds a location the ticket can be redeemed at.
    pub fn with_location(mut self, location: &Location) -> Self {
        self.location.push(location.into());
        self
    }

    /// Adds a location by URI.
    pub fn with_location_uri(mut self, uri: impl Into<String>) -> Self {
        self.location
            .push(crate::proto::Location { uri: uri.into() });
        self
    }

    /// Sets the endpoint's app metadata.
    pub fn with_app_metadata(mut self, app_metadata: impl Into<Bytes>) -> Self {
        self.app_metadata = app_metadata.into();
        self
    }
}

impl FlightInfo {
    /// An empty FlightInfo with unknown totals (-1).
    pub fn new() -> Self {
        FlightInfo {
            total_records: -1,
            total_bytes: -1,
            ..Default::default()
        }
    }

    /// Sets the schema (IPC-encapsulated).
    pub fn with_schema(mut self, schema: &Schema) -> Self {
        self.schema = codec::encode_schema(schema);
        self
    }

    /// Sets the descriptor.
    pub fn with_descriptor(mut self, descriptor: FlightDescriptor) -> Self {
        self.flight_descriptor = Some(descriptor);
        self
    }

    /// Adds an endpoint.
    pub fn with_endpoint(mut self, endpoint: FlightEndpoint) -> Self {
        self.endpoint.push(endpoint);
        self
    }

    /// Sets the total record and byte counts (-1: unknown).
    pub fn with_totals(mut self, records: i64, bytes: i64) -> Self {
        self.total_records = records;
        self.total_bytes = bytes;
        self
    }

    /// Marks the endpoints as ordered.
    pub fn with_ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Sets the app metadata.
    pub fn with_app_metadata(mut self, app_metadata: impl Into<Bytes>) -> Self {
        self.app_metadata = app_metadata.into();
        self
    }

    /// Decodes the schema.
    pub fn try_schema(&self) -> Result<Schema> {
        codec::decode_schema(&self.schema)
    }
}

impl PollInfo {
    /// The final answer to a poll: `info` is complete (progress 1.0, nothing left to poll).
    pub fn finished(info: FlightInfo) -> Self {
        PollInfo {
            info: Some(info),
            flight_descriptor: None,
            progress: Some(1.0),
            expiration_time: None,
        }
    }
}

impl SchemaResult {
    /// A SchemaResult for `schema`.
    pub fn from_schema(schema: &Schema) -> Self {
        SchemaResult {
            schema: codec::encode_schema(schema),
        }
    }

    /// Decodes the schema.
    pub fn try_schema(&self) -> Result<Schema> {
        codec::decode_schema(&self.schema)
    }
}
