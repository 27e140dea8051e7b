//! The per-method typing of Flight, done once for every transport: which message type each
//! method sends and receives ([`Rpc`]), how a typed message becomes a seam [`Message`] and back
//! ([`WireMessage`]), and the typed client calls the [`FlightClient`](crate::FlightClient) and the
//! dispatcher are written with. Transports only ever see [`Message`]s.

use crate::call::{CallMetadata, FlightMethod, FlightStream, Message, MessageStream, Response};
use crate::data::FlightData;
use crate::error::{FlightError, Result};
use crate::proto::{
    Action, ActionType, Criteria, Empty, FlightDescriptor, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, Result as ActionResult, SchemaResult, Ticket,
};
use crate::transport::ClientTransport;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

/// A message type that crosses the seam: every protobuf message of the protocol as
/// [`Message::Proto`], FlightData as [`Message::Data`].
pub trait WireMessage: Sized + Send + 'static {
    /// The protocol's name for the type, for error messages.
    const NAME: &'static str;

    /// The message as it crosses the seam.
    fn into_message(self) -> Message;

    /// The message from what crossed the seam; a malformed or misplaced message is
    /// `INVALID_ARGUMENT`.
    fn from_message(message: Message) -> Result<Self>;
}

macro_rules! proto_wire_messages {
    ($($ty:ty => $name:literal),* $(,)?) => {$(
        impl WireMessage for $ty {
            const NAME: &'static str = $name;

            fn into_message(self) -> Message {
                Message::Proto(Bytes::from(prost::Message::encode_to_vec(&self)))
            }

            fn from_message(message: Message) -> Result<Self> {
                match message {
                    Message::Proto(bytes) => <$ty as prost::Message>::decode(bytes).map_err(|e| {
                        FlightError::invalid_argument(format!("malformed {}: {e}", $name))
                    }),
                    Message::Data(_) => Err(FlightError::invalid_argument(format!(
                        "FlightData where {} was expected",
                        $name
                    ))),
                }
            }
        }
    )*};
}

proto_wire_messages! {
    HandshakeRequest => "HandshakeRequest",
    HandshakeResponse => "HandshakeResponse",
    Criteria => "Criteria",
    FlightDescriptor => "FlightDescriptor",
    FlightInfo => "FlightInfo",
    PollInfo => "PollInfo",
    SchemaResult => "SchemaResult",
    Ticket => "Ticket",
    PutResult => "PutResult",
    Action => "Action",
    ActionResult => "Result",
    ActionType => "ActionType",
    Empty => "Empty",
}

impl WireMessage for FlightData {
    const NAME: &'static str = "FlightData";

    fn into_message(self) -> Message {
        Message::Data(self)
    }

    fn from_message(message: Message) -> Result<Self> {
        match message {
            Message::Data(data) => Ok(data),
            Message::Proto(_) => Err(FlightError::invalid_argument(
                "a protobuf message where FlightData was expected",
            )),
        }
    }
}

/// One Flight method with its request and response types.
pub trait Rpc {
    /// The method.
    const METHOD: FlightMethod;
    /// What the client sends (one, or a stream for client-streaming methods).
    type Request: WireMessage;
    /// What the server answers (one, or a stream for server-streaming methods).
    type Response: WireMessage;
}

macro_rules! rpcs {
    ($($method:ident: $req:ty => $resp:ty),* $(,)?) => {
        /// The Flight methods as types, for the typed calls of [`crate::rpc`].
        pub mod method {
            use super::*;
            $(
                #[doc = concat!("`", stringify!($method), "`.")]
                #[derive(Debug, Clone, Copy)]
                pub struct $method;

                impl Rpc for $method {
                    const METHOD: FlightMethod = FlightMethod::$method;
                    type Request = $req;
                    type Response = $resp;
                }
            )*
        }
    };
}

rpcs! {
    Handshake: HandshakeRequest => HandshakeResponse,
    ListFlights: Criteria => FlightInfo,
    GetFlightInfo: FlightDescriptor => FlightInfo,
    PollFlightInfo: FlightDescriptor => PollInfo,
    GetSchema: FlightDescriptor => SchemaResult,
    DoGet: Ticket => FlightData,
    DoPut: FlightData => PutResult,
    DoExchange: FlightData => FlightData,
    DoAction: Action => ActionResult,
    ListActions: Empty => ActionType,
}

/// Typed messages as seam messages.
pub fn encode<T: WireMessage>(stream: FlightStream<T>) -> MessageStream {
    stream.map_ok(T::into_message).boxed()
}

/// Seam messages as typed messages.
pub fn decode<T: WireMessage>(stream: MessageStream) -> FlightStream<T> {
    stream
        .and_then(|m| async move { T::from_message(m) })
        .boxed()
}

/// The one request message of a call that is not client-streaming.
pub async fn single_request<T: WireMessage>(mut requests: MessageStream) -> Result<T> {
    match requests.try_next().await? {
        Some(message) => T::from_message(message),
        None => Err(FlightError::invalid_argument(format!(
            "request carried no {} message",
            T::NAME
        ))),
    }
}

/// A client-streaming or server-streaming call of `R` over `transport`.
pub async fn call_streaming<R: Rpc>(
    transport: &dyn ClientTransport,
    meta: CallMetadata,
    requests: FlightStream<R::Request>,
) -> Result<Response<FlightStream<R::Response>>> {
    let response = transport.call(R::METHOD, meta, encode(requests)).await?;
    Ok(response.map(decode))
}

/// A call of `R` with one request message and a stream of responses.
pub async fn call_server_streaming<R: Rpc>(
    transport: &dyn ClientTransport,
    meta: CallMetadata,
    request: R::Request,
) -> Result<Response<FlightStream<R::Response>>> {
    call_streaming::<R>(
        transport,
        meta,
        futures::stream::iter([Ok(request)]).boxed(),
    )
    .await
}

/// A unary call of `R`: one request, one response. The response stream is read to its end, so
/// the call's status and trailers are seen.
pub async fn call_unary<R: Rpc>(
    transport: &dyn ClientTransport,
    meta: CallMetadata,
    request: R::Request,
) -> Result<Response<R::Response>> {
    let response = call_server_streaming::<R>(transport, meta, request).await?;
    let mut messages = response.body;
    let first = messages.try_next().await?.ok_or_else(|| {
        FlightError::internal(format!(
            "{}: server sent no {} and no error",
            R::METHOD,
            <R::Response as WireMessage>::NAME
        ))
    })?;
    while messages.try_next().await?.is_some() {}
    Ok(Response {
        headers: response.headers,
        body: first,
        trailers: response.trailers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FlightCode;

    #[test]
    fn messages_cross_the_seam_and_back() {
        let ticket = Ticket::new(Bytes::from_static(b"t"));
        let message = ticket.clone().into_message();
        assert!(matches!(message, Message::Proto(_)));
        assert_eq!(Ticket::from_message(message).unwrap(), ticket);
        let data = FlightData::metadata_only(Bytes::from_static(b"m"));
        assert_eq!(
            FlightData::from_message(data.clone().into_message()).unwrap(),
            data
        );
    }

    #[test]
    fn misplaced_and_malformed_messages_are_invalid_argument() {
        let err = Ticket::from_message(Message::Data(FlightData::default())).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        assert!(err.message().contains("Ticket"), "{err}");
        let err = FlightData::from_message(Message::Proto(Bytes::new())).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        let err =
            FlightInfo::from_message(Message::Proto(Bytes::from_static(b"\xff\xff"))).unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        assert!(err.message().starts_with("malformed FlightInfo"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_single_request_is_invalid_argument() {
        let err = single_request::<Ticket>(futures::stream::empty().boxed())
            .await
            .unwrap_err();
        assert_eq!(err.code(), FlightCode::InvalidArgument);
        assert_eq!(err.message(), "request carried no Ticket message");
    }

    #[test]
    fn method_types_match_the_method_shapes() {
        use method::*;
        assert_eq!(<DoGet as Rpc>::METHOD, FlightMethod::DoGet);
        assert!(FlightMethod::DoPut.request_is_data() && !FlightMethod::DoPut.response_is_data());
        assert!(!FlightMethod::GetSchema.server_streaming());
        assert!(FlightMethod::Handshake.client_streaming());
        assert_eq!(<ListActions as Rpc>::Request::NAME, "Empty");
    }
}
