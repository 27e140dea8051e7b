//! The call sequencing, frame by frame: each side alone against hand-made frames, and both sides
//! wired to each other for every method shape.

use super::*;
use crate::frame::{decode_headers, encode_headers, FrameHeader, PayloadHeader};
use arrow_array::{ArrayRef, Int32Array, RecordBatch};
use polyflight_core::codec::{EncodeOptions, FlightDataEncoder};
use polyflight_core::proto::{Action, FlightDescriptor, Ticket};
use polyflight_core::{FlightCode, FlightData};
use std::sync::Arc;

// ---- helpers -----------------------------------------------------------------------------------

fn frame(frame_type: FrameType, body: Bytes) -> Frame {
    let header = FrameHeader::new(frame_type, 0, body.len()).unwrap();
    Frame::from_parts(header, body).unwrap()
}

fn headers_frame(list: &[(&str, &str)]) -> Frame {
    frame(FrameType::Headers, encode_headers(list).unwrap())
}

fn empty_headers() -> Frame {
    headers_frame(&[])
}

fn cancel() -> Frame {
    headers_frame(&[(CANCEL_KEY, "")])
}

fn buffer(bytes: &'static [u8]) -> Frame {
    frame(FrameType::Buffer, Bytes::from_static(bytes))
}

fn status(result: Result<()>) -> Frame {
    frame(
        FrameType::Headers,
        wire::status_frame(&result, &Headers::new()).unwrap(),
    )
}

/// A sent frame's body as one buffer.
trait BodyBytes {
    fn body_bytes(&self) -> Bytes;
}

impl BodyBytes for OutFrame {
    fn body_bytes(&self) -> Bytes {
        Bytes::from(self.body.concat())
    }
}

/// What a sent frame looks like on arrival.
fn arrived(out: &OutFrame) -> Frame {
    frame(out.frame_type, out.body_bytes())
}

fn pairs(out: &OutFrame) -> Vec<(String, Vec<u8>)> {
    assert_eq!(out.frame_type, FrameType::Headers);
    decode_headers(&out.body_bytes())
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), v.to_vec()))
        .collect()
}

fn keys(out: &OutFrame) -> Vec<String> {
    pairs(out).into_iter().map(|(k, _)| k).collect()
}

/// The Flight code and message of a status frame.
fn status_of(out: &OutFrame) -> (FlightCode, String) {
    let list = decode_headers(&out.body_bytes()).unwrap();
    match wire::status_from_headers(&list).expect("a status frame").0 {
        Ok(()) => (FlightCode::Ok, String::new()),
        Err(error) => (error.code(), error.message().to_string()),
    }
}

fn proto(bytes: &'static [u8]) -> Message {
    Message::Proto(Bytes::from_static(bytes))
}

fn encoded(message: &impl prost::Message) -> Message {
    Message::Proto(Bytes::from(message.encode_to_vec()))
}

/// A schema message and a record batch message (which has a body) of a small batch.
fn schema_and_batch() -> (FlightData, FlightData) {
    let column: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
    let batch = RecordBatch::try_from_iter([("x", column)]).unwrap();
    let mut encoder = FlightDataEncoder::new(EncodeOptions::default());
    let schema = encoder.encode_schema(&batch.schema()).unwrap();
    let mut messages = encoder.encode_batch(&batch).unwrap();
    assert_eq!(messages.len(), 1);
    (schema, messages.remove(0))
}

fn transmits_of_client(call: &mut ClientCall) -> Vec<OutFrame> {
    std::iter::from_fn(|| call.poll_transmit()).collect()
}

fn events_of_client(call: &mut ClientCall) -> Vec<ClientEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn transmits_of_server(call: &mut ServerCall) -> Vec<OutFrame> {
    std::iter::from_fn(|| call.poll_transmit()).collect()
}

fn events_of_server(call: &mut ServerCall) -> Vec<ServerEvent> {
    std::iter::from_fn(|| call.poll_event()).collect()
}

fn client(method: FlightMethod) -> ClientCall {
    let mut call = ClientCall::new(method, &CallMetadata::default()).unwrap();
    let start = transmits_of_client(&mut call);
    assert_eq!(start.len(), 1);
    call
}

fn start(method: FlightMethod, capable: bool) -> CallStart {
    CallStart {
        method,
        headers: Headers::new(),
        timeout: None,
        capable,
    }
}

fn server(method: FlightMethod) -> ServerCall {
    ServerCall::new(&start(method, true))
}

fn end_event(events: &[ClientEvent]) -> (FlightCode, String) {
    match events.last() {
        Some(ClientEvent::End(Ok(()), _)) => (FlightCode::Ok, String::new()),
        Some(ClientEvent::End(Err(e), _)) => (e.code(), e.message().to_string()),
        other => panic!("no end event: {other:?}"),
    }
}

// ---- the start frame ---------------------------------------------------------------------------

#[test]
fn start_frame_has_method_capability_timeout_then_call_headers() {
    let meta = CallMetadata {
        headers: Headers::new().with("authorization", "Bearer t"),
        timeout: Some(Duration::from_millis(1500)),
    };
    let mut call = ClientCall::new(FlightMethod::DoGet, &meta).unwrap();
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        pairs(&sent[0]),
        vec![
            (":method:".to_string(), b"DoGet".to_vec()),
            (":polyflight:".to_string(), b"1".to_vec()),
            (":timeout-ms:".to_string(), b"1500".to_vec()),
            ("authorization".to_string(), b"Bearer t".to_vec()),
        ]
    );
    // byte level: count 4, then `:method:` = `DoGet`
    let body = sent[0].body_bytes();
    assert_eq!(&body[..4], &[0, 0, 0, 4]);
    assert_eq!(&body[4..12], &[0, 0, 0, 8, 0, 0, 0, 5]);
    assert_eq!(&body[12..25], b":method:DoGet");
}

#[test]
fn idle_frames_start_calls_or_are_skipped() {
    let start = headers_frame(&[
        (METHOD_KEY, "DoPut"),
        (CAPABILITIES_KEY, "1"),
        (TIMEOUT_KEY, "250"),
        ("x-app", "v"),
    ]);
    match idle_frame(&start) {
        Idle::Call(call) => {
            assert_eq!(call.method, FlightMethod::DoPut);
            assert!(call.capable);
            assert_eq!(call.timeout, Some(Duration::from_millis(250)));
            assert_eq!(call.headers.get_str("x-app"), Some("v"));
            assert_eq!(
                call.headers.len(),
                1,
                "our `:` keys stay out of the call headers"
            );
        }
        other => panic!("{other:?}"),
    }
    // an Arrow C++ client sends only `:method:`
    match idle_frame(&headers_frame(&[(METHOD_KEY, "GetFlightInfo")])) {
        Idle::Call(call) => assert!(!call.capable && call.timeout.is_none()),
        other => panic!("{other:?}"),
    }
    // leftovers of an ended call
    assert_eq!(idle_frame(&cancel()), Idle::Skip);
    assert_eq!(idle_frame(&empty_headers()), Idle::Skip);
    assert_eq!(idle_frame(&buffer(b"late")), Idle::Skip);
    assert_eq!(
        idle_frame(&frame(FrameType::PayloadBody, Bytes::from_static(b"x"))),
        Idle::Skip
    );
    assert_eq!(
        idle_frame(&frame(FrameType::Disconnect, Bytes::new())),
        Idle::Close(None)
    );
    match idle_frame(&frame(
        FrameType::Headers,
        Bytes::from_static(b"\0\0\0\x09"),
    )) {
        Idle::Close(Some(error)) => assert_eq!(error.code(), FlightCode::InvalidArgument),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_method_is_rejected_with_unimplemented() {
    match idle_frame(&headers_frame(&[(METHOD_KEY, "DoSomething")])) {
        Idle::Reject(out) => {
            assert_eq!(
                keys(&out)[..4],
                [
                    "flight-status",
                    "flight-message",
                    "flight-status-code",
                    "flight-status-message"
                ]
            );
            assert_eq!(pairs(&out)[0].1, b"10");
            let (code, message) = status_of(&out);
            assert_eq!(code, FlightCode::Unimplemented);
            assert!(message.contains("DoSomething"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

// ---- client: request frames --------------------------------------------------------------------

#[test]
fn unary_request_is_one_buffer_frame_and_nothing_ends_the_writes() {
    let mut call = client(FlightMethod::GetFlightInfo);
    assert!(call.wants_requests());
    call.send_request(proto(b"descriptor"));
    call.requests_done();
    let sent = transmits_of_client(&mut call);
    assert_eq!(
        sent,
        vec![OutFrame::new(
            FrameType::Buffer,
            vec![Bytes::from_static(b"descriptor")]
        )]
    );
    assert!(!call.wants_requests());
    assert!(call.wants_frames());
}

#[test]
fn list_actions_sends_no_request_frame() {
    let mut call = client(FlightMethod::ListActions);
    call.send_request(encoded(&polyflight_core::proto::Empty {}));
    call.requests_done();
    assert!(transmits_of_client(&mut call).is_empty());
    call.handle_frame(buffer(b"action type"));
    call.handle_frame(status(Ok(())));
    let events = events_of_client(&mut call);
    assert_eq!(events[0], ClientEvent::Message(proto(b"action type")));
    assert_eq!(end_event(&events).0, FlightCode::Ok);
    assert!(call.is_over() && call.reusable());
}

#[test]
fn client_streaming_requests_end_with_an_empty_headers_frame() {
    let mut call = client(FlightMethod::Handshake);
    call.send_request(proto(b"one"));
    call.send_request(proto(b"two"));
    call.requests_done();
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].body_bytes().as_ref(), b"one");
    assert_eq!(sent[1].body_bytes().as_ref(), b"two");
    assert_eq!(sent[2].frame_type, FrameType::Headers);
    assert_eq!(sent[2].body_bytes().as_ref(), &[0, 0, 0, 0]);
    assert!(!call.wants_requests());
}

#[test]
fn flight_data_goes_as_payload_header_and_body_only_when_the_ipc_type_has_one() {
    let (schema, batch) = schema_and_batch();
    let descriptor = FlightDescriptor::new_path(["p"]);
    let mut call = client(FlightMethod::DoPut);
    call.send_request(Message::Data(
        schema.clone().with_descriptor(descriptor.clone()),
    ));
    call.send_request(Message::Data(batch.clone()));
    call.send_request(Message::Data(FlightData::metadata_only(
        Bytes::from_static(b"m"),
    )));
    call.requests_done();
    let sent = transmits_of_client(&mut call);
    let types: Vec<FrameType> = sent.iter().map(|f| f.frame_type).collect();
    assert_eq!(
        types,
        vec![
            FrameType::PayloadHeader, // schema: no body
            FrameType::PayloadHeader, // record batch …
            FrameType::PayloadBody,   // … and its body
            FrameType::PayloadHeader, // metadata only: no body
            FrameType::Headers,       // end of writes
        ]
    );
    let header = PayloadHeader::decode(&sent[0].body_bytes()).unwrap();
    assert_eq!(
        header.descriptor.unwrap(),
        Bytes::from(descriptor.encode_to_vec())
    );
    assert_eq!(header.app_metadata, None);
    assert_eq!(header.ipc_message.unwrap(), schema.data_header);
    // the body goes out as the batch's own segments, uncopied
    assert_eq!(sent[2].body, batch.data_body.segments().to_vec());
    let metadata = PayloadHeader::decode(&sent[3].body_bytes()).unwrap();
    assert_eq!(metadata.app_metadata.unwrap().as_ref(), b"m");
    assert_eq!(metadata.ipc_message, None);
}

#[test]
fn misplaced_request_messages_abort_the_call() {
    let mut call = client(FlightMethod::DoGet);
    call.send_request(Message::Data(FlightData::default()));
    let sent = transmits_of_client(&mut call);
    assert_eq!(keys(&sent[0]), vec![CANCEL_KEY]);
    call.handle_frame(status(Err(FlightError::cancelled("cancelled"))));
    let (code, message) = end_event(&events_of_client(&mut call));
    assert_eq!(code, FlightCode::InvalidArgument);
    assert!(message.contains("FlightData where a protobuf"), "{message}");
    assert!(!call.reusable());

    let mut call = client(FlightMethod::DoGet);
    call.send_request(proto(b"t1"));
    call.send_request(proto(b"t2"));
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent.len(), 2);
    assert_eq!(keys(&sent[1]), vec![CANCEL_KEY]);

    let mut call = client(FlightMethod::DoGet);
    call.requests_done();
    let sent = transmits_of_client(&mut call);
    assert_eq!(keys(&sent[0]), vec![CANCEL_KEY]);
}

// ---- client: responses and status --------------------------------------------------------------

#[test]
fn response_headers_then_messages_then_status_with_trailers() {
    let mut call = client(FlightMethod::DoGet);
    call.send_request(proto(b"ticket"));
    call.requests_done();
    transmits_of_client(&mut call);
    call.handle_frame(headers_frame(&[(RESPONSE_HEADERS_KEY, ""), ("x-h", "1")]));
    let (schema, batch) = schema_and_batch();
    for data in [&schema, &batch] {
        for out in wire::flight_data_frames(data).unwrap() {
            call.handle_frame(arrived(&out));
        }
    }
    let trailers = Headers::new().with("x-t", "2");
    call.handle_frame(frame(
        FrameType::Headers,
        wire::status_frame(&Ok(()), &trailers).unwrap(),
    ));
    let events = events_of_client(&mut call);
    assert_eq!(events.len(), 4);
    match &events[0] {
        ClientEvent::Headers(h) => {
            assert_eq!(h.get_str("x-h"), Some("1"));
            assert_eq!(h.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    match &events[2] {
        ClientEvent::Message(Message::Data(data)) => {
            assert_eq!(data.data_header, batch.data_header);
            assert_eq!(
                data.data_body.to_contiguous(),
                batch.data_body.to_contiguous()
            );
        }
        other => panic!("{other:?}"),
    }
    match &events[3] {
        ClientEvent::End(Ok(()), t) => assert_eq!(t.get_str("x-t"), Some("2")),
        other => panic!("{other:?}"),
    }
    assert!(call.is_over());
    assert!(call.reusable());
    assert!(transmits_of_client(&mut call).is_empty());
}

#[test]
fn error_before_any_response() {
    let mut call = client(FlightMethod::GetFlightInfo);
    call.send_request(proto(b"d"));
    call.requests_done();
    transmits_of_client(&mut call);
    let error = FlightError::not_found("no such flight").with_extra_info(&b"\x00\x01"[..]);
    call.handle_frame(status(Err(error.clone())));
    let events = events_of_client(&mut call);
    assert_eq!(events, vec![ClientEvent::End(Err(error), Headers::new())]);
    // an error status is a clean end of the call: the connection stays usable
    assert!(call.is_over() && call.reusable());
}

#[test]
fn unimplemented_retires_the_connection() {
    // An Arrow C++ server answers an extension method from its start frame and then takes the
    // request frame that follows for the start of a new call: that connection is out of step.
    for method in [FlightMethod::ListFlights, FlightMethod::GetFlightInfo] {
        let mut call = client(method);
        call.send_request(proto(b"d"));
        call.requests_done();
        transmits_of_client(&mut call);
        call.handle_frame(status(Err(FlightError::unimplemented(method.as_str()))));
        let events = events_of_client(&mut call);
        assert_eq!(end_event(&events).0, FlightCode::Unimplemented, "{method}");
        assert!(call.is_over() && !call.reusable(), "{method}");
    }
}

#[test]
fn do_put_results_arrive_as_raw_app_metadata() {
    let mut call = client(FlightMethod::DoPut);
    call.handle_frame(buffer(b"\x01raw"));
    let events = events_of_client(&mut call);
    let expected = PutResult {
        app_metadata: Bytes::from_static(b"\x01raw"),
    };
    assert_eq!(events, vec![ClientEvent::Message(encoded(&expected))]);
}

#[test]
fn unexpected_frames_are_invalid_argument_and_break_the_connection() {
    let cases: Vec<(FlightMethod, Vec<Frame>, &str)> = vec![
        (
            FlightMethod::DoGet,
            vec![buffer(b"x")],
            "a Buffer frame where FlightData was expected",
        ),
        (
            FlightMethod::ListFlights,
            vec![frame(
                FrameType::PayloadHeader,
                PayloadHeader::default().encode().unwrap(),
            )],
            "unexpected PayloadHeader",
        ),
        (
            FlightMethod::DoGet,
            vec![frame(FrameType::PayloadBody, Bytes::from_static(b"x"))],
            "PayloadBody",
        ),
        (
            FlightMethod::GetSchema,
            vec![buffer(b"a"), buffer(b"b")],
            "unexpected response frame",
        ),
        (
            FlightMethod::DoAction,
            vec![buffer(b"a"), headers_frame(&[(RESPONSE_HEADERS_KEY, "")])],
            "response headers after the first response message",
        ),
        (
            FlightMethod::DoAction,
            vec![headers_frame(&[("x-not-a-status", "1")])],
            "without a status",
        ),
        (
            FlightMethod::DoAction,
            vec![frame(FrameType::Disconnect, Bytes::new())],
            "Disconnect",
        ),
        (
            FlightMethod::DoAction,
            vec![frame(FrameType::Headers, Bytes::from_static(b"\0\0"))],
            "truncated Headers",
        ),
    ];
    for (method, frames, expected) in cases {
        let mut call = client(method);
        for f in frames {
            call.handle_frame(f);
        }
        let events = events_of_client(&mut call);
        let (code, message) = end_event(&events);
        assert_eq!(code, FlightCode::InvalidArgument, "{method}: {message}");
        assert!(message.contains(expected), "{method}: {message}");
        assert!(!call.wants_frames());
        assert!(!call.reusable(), "{method}");
        assert!(call.is_over());
    }

    // a garbled status number still ends the call where it should: the frames stay in step
    let mut call = client(FlightMethod::DoAction);
    call.handle_frame(headers_frame(&[("flight-status", "x")]));
    let (code, message) = end_event(&events_of_client(&mut call));
    assert_eq!(code, FlightCode::InvalidArgument);
    assert!(message.contains("malformed flight-status"), "{message}");
    assert!(call.is_over() && call.reusable());
}

#[test]
fn status_while_still_writing_ends_the_writes() {
    let mut call = client(FlightMethod::DoExchange);
    call.send_request(Message::Data(FlightData::metadata_only(
        Bytes::from_static(b"1"),
    )));
    transmits_of_client(&mut call);
    call.handle_frame(status(Err(FlightError::invalid_argument("bad data"))));
    // the end of writes goes out, so the server's drain ends
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent, vec![end_of_writes()]);
    assert!(!call.wants_requests());
    // later requests are not sent
    call.send_request(Message::Data(FlightData::default()));
    call.requests_done();
    assert!(transmits_of_client(&mut call).is_empty());
    assert_eq!(
        end_event(&events_of_client(&mut call)).0,
        FlightCode::InvalidArgument
    );
    assert!(call.reusable());
}

#[test]
fn dropping_the_call_mid_stream_sends_cancel_and_retires_the_connection() {
    let mut call = client(FlightMethod::DoGet);
    call.send_request(proto(b"t"));
    call.requests_done();
    transmits_of_client(&mut call);
    let (schema, _) = schema_and_batch();
    for out in wire::flight_data_frames(&schema).unwrap() {
        call.handle_frame(arrived(&out));
    }
    call.cancel();
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent.len(), 1);
    assert_eq!(pairs(&sent[0]), vec![(CANCEL_KEY.to_string(), Vec::new())]);
    // byte level: one header, key `:cancel:` (8 bytes), empty value
    assert_eq!(
        sent[0].body_bytes().as_ref(),
        b"\0\0\0\x01\0\0\0\x08\0\0\0\0:cancel:"
    );
    assert!(
        events_of_client(&mut call).is_empty(),
        "nobody listens any more"
    );
    assert!(!call.wants_frames() && !call.wants_requests());
    assert!(call.is_over());
    assert!(!call.reusable());
    // a second cancel sends nothing
    call.cancel();
    assert!(transmits_of_client(&mut call).is_empty());
}

#[test]
fn dropping_the_call_after_its_status_keeps_the_connection() {
    let mut call = client(FlightMethod::DoAction);
    call.send_request(encoded(&Action {
        r#type: "a".into(),
        body: Bytes::new(),
    }));
    call.requests_done();
    transmits_of_client(&mut call);
    call.handle_frame(status(Ok(())));
    call.cancel();
    assert!(
        transmits_of_client(&mut call).is_empty(),
        "no late :cancel:"
    );
    assert!(call.reusable());
}

#[test]
fn request_stream_abort_cancels_and_reports_its_own_error() {
    let mut call = client(FlightMethod::DoPut);
    call.send_request(Message::Data(FlightData::metadata_only(
        Bytes::from_static(b"1"),
    )));
    call.requests_failed(FlightError::internal("the producer failed"));
    let sent = transmits_of_client(&mut call);
    assert_eq!(sent[0].frame_type, FrameType::PayloadHeader);
    assert_eq!(keys(&sent[1]), vec![CANCEL_KEY]);
    assert!(!call.wants_requests());
    // the server answers the :cancel: ...
    assert!(call.wants_frames());
    call.handle_frame(status(Err(FlightError::cancelled("the client cancelled"))));
    // ... but the application sees why it aborted, and no end of writes follows the :cancel:
    let (code, message) = end_event(&events_of_client(&mut call));
    assert_eq!(code, FlightCode::Internal);
    assert_eq!(message, "the producer failed");
    assert!(transmits_of_client(&mut call).is_empty());
    assert!(!call.reusable());
}

#[test]
fn connection_failure_ends_the_call_unavailable() {
    let mut call = client(FlightMethod::DoGet);
    call.connection_failed(FlightError::unavailable("UCX connection lost"));
    let (code, _) = end_event(&events_of_client(&mut call));
    assert_eq!(code, FlightCode::Unavailable);
    assert!(!call.reusable());

    // a failed send after the status still retires the connection
    let mut call = client(FlightMethod::DoPut);
    call.handle_frame(status(Ok(())));
    call.connection_failed(FlightError::unavailable("send failed"));
    assert_eq!(end_event(&events_of_client(&mut call)).0, FlightCode::Ok);
    assert!(!call.reusable());
}

// ---- server ------------------------------------------------------------------------------------

#[test]
fn server_unary_call() {
    let mut call = server(FlightMethod::GetFlightInfo);
    assert!(call.wants_frames());
    call.handle_frame(buffer(b"descriptor"));
    assert_eq!(
        events_of_server(&mut call),
        vec![
            ServerEvent::Request(proto(b"descriptor")),
            ServerEvent::RequestsEnd(None)
        ]
    );
    // still reading, for a :cancel:
    assert!(call.wants_frames());
    call.send_headers(Headers::new().with("x-h", "1"));
    call.send_message(proto(b"info"));
    call.send_status(Ok(()), Headers::new().with("x-t", "2"));
    let sent = transmits_of_server(&mut call);
    assert_eq!(sent.len(), 3);
    assert_eq!(
        pairs(&sent[0]),
        vec![
            (RESPONSE_HEADERS_KEY.to_string(), Vec::new()),
            ("x-h".to_string(), b"1".to_vec())
        ]
    );
    assert_eq!(sent[1].body_bytes().as_ref(), b"info");
    assert_eq!(status_of(&sent[2]).0, FlightCode::Ok);
    assert_eq!(
        keys(&sent[2]),
        vec![
            "flight-status",
            "flight-message",
            "flight-status-code",
            "flight-status-message",
            "x-t"
        ]
    );
    // no drain for a call that is not client-streaming
    assert!(!call.wants_frames());
    assert!(call.is_over() && call.reusable());
}

#[test]
fn response_headers_only_for_clients_that_announced_them() {
    let mut call = ServerCall::new(&start(FlightMethod::DoGet, false));
    call.handle_frame(buffer(b"ticket"));
    call.send_headers(Headers::new().with("x-h", "1"));
    call.send_status(Ok(()), Headers::new());
    let sent = transmits_of_server(&mut call);
    assert_eq!(
        sent.len(),
        1,
        "an Arrow C++ client takes any Headers frame for the status"
    );
    assert_eq!(status_of(&sent[0]).0, FlightCode::Ok);
}

#[test]
fn server_list_actions_needs_no_request_frame() {
    let mut call = server(FlightMethod::ListActions);
    assert_eq!(
        events_of_server(&mut call),
        vec![ServerEvent::RequestsEnd(None)]
    );
    call.send_headers(Headers::new());
    call.send_message(proto(b"t1"));
    call.send_message(proto(b"t2"));
    call.send_status(Ok(()), Headers::new());
    let sent = transmits_of_server(&mut call);
    assert_eq!(sent.len(), 4);
    assert!(call.is_over());
}

#[test]
fn server_do_put_sends_raw_app_metadata_and_drains_after_its_status() {
    let mut call = server(FlightMethod::DoPut);
    let (schema, batch) = schema_and_batch();
    for data in [&schema, &batch] {
        for out in wire::flight_data_frames(data).unwrap() {
            call.handle_frame(arrived(&out));
        }
    }
    let events = events_of_server(&mut call);
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[1], ServerEvent::Request(Message::Data(d)) if d.data_header == batch.data_header)
    );
    call.send_headers(Headers::new());
    call.send_message(encoded(&PutResult {
        app_metadata: Bytes::from_static(b"ack"),
    }));
    // the handler fails while the client is still writing
    call.send_status(Err(FlightError::already_exists("exists")), Headers::new());
    let sent = transmits_of_server(&mut call);
    assert_eq!(
        sent[1],
        OutFrame::new(FrameType::Buffer, vec![Bytes::from_static(b"ack")])
    );
    let (code, _) = status_of(&sent[2]);
    assert_eq!(code, FlightCode::AlreadyExists);
    assert_eq!(
        pairs(&sent[2])[2].1,
        b"45",
        "flight-status-code: Arrow AlreadyExists"
    );
    // draining: the client's further frames are read and dropped until its end of writes
    assert!(call.wants_frames());
    assert!(!call.is_over());
    for out in wire::flight_data_frames(&batch).unwrap() {
        call.handle_frame(arrived(&out));
    }
    call.handle_frame(buffer(b"junk"));
    assert!(events_of_server(&mut call).is_empty());
    call.handle_frame(empty_headers());
    assert!(!call.wants_frames());
    assert!(call.is_over() && call.reusable());
    assert!(transmits_of_server(&mut call).is_empty());
}

#[test]
fn server_exchange_requests_end_with_the_clients_end_of_writes() {
    let mut call = server(FlightMethod::DoExchange);
    let descriptor = FlightData::descriptor_only(FlightDescriptor::new_cmd("c"));
    for out in wire::flight_data_frames(&descriptor).unwrap() {
        call.handle_frame(arrived(&out));
    }
    call.handle_frame(empty_headers());
    let events = events_of_server(&mut call);
    assert_eq!(
        events[1],
        ServerEvent::RequestsEnd(None),
        "a clean end of the request stream"
    );
    assert!(!call.wants_frames());
    // the handler goes on answering after the client's writes ended
    call.send_message(Message::Data(FlightData::metadata_only(
        Bytes::from_static(b"out"),
    )));
    call.send_status(Ok(()), Headers::new());
    assert_eq!(transmits_of_server(&mut call).len(), 2);
    assert!(call.is_over() && call.reusable());
}

#[test]
fn server_cancel_stops_the_handler_and_answers_cancelled() {
    let mut call = server(FlightMethod::DoGet);
    call.handle_frame(buffer(b"ticket"));
    call.send_message(Message::Data(FlightData::metadata_only(
        Bytes::from_static(b"1"),
    )));
    call.handle_frame(cancel());
    let events = events_of_server(&mut call);
    assert_eq!(events.last(), Some(&ServerEvent::StopHandler));
    let sent = transmits_of_server(&mut call);
    let (code, message) = status_of(sent.last().unwrap());
    assert_eq!(code, FlightCode::Cancelled);
    assert_eq!(message, "the client cancelled the call");
    assert_eq!(pairs(sent.last().unwrap())[0].1, b"7");
    assert_eq!(pairs(sent.last().unwrap())[2].1, b"5");
    // the handler's late output is dropped
    call.send_message(proto(b"late"));
    call.send_status(Ok(()), Headers::new());
    assert!(transmits_of_server(&mut call).is_empty());
    assert!(call.is_over());
    assert!(
        call.reusable(),
        "the server keeps serving; the client retires the connection"
    );
}

#[test]
fn server_cancel_of_a_streaming_request_fails_the_request_stream() {
    let mut call = server(FlightMethod::DoPut);
    call.handle_frame(arrived(
        &wire::flight_data_frames(&FlightData::metadata_only(Bytes::from_static(b"1"))).unwrap()[0],
    ));
    call.handle_frame(cancel());
    let events = events_of_server(&mut call);
    match &events[1] {
        ServerEvent::RequestsEnd(Some(error)) => assert_eq!(error.code(), FlightCode::Cancelled),
        other => panic!("the request stream must not end cleanly: {other:?}"),
    }
    assert_eq!(events[2], ServerEvent::StopHandler);
    assert_eq!(
        status_of(&transmits_of_server(&mut call)[0]).0,
        FlightCode::Cancelled
    );
    assert!(call.is_over());
}

#[test]
fn late_cancel_after_status_ends_the_drain() {
    let mut call = server(FlightMethod::DoExchange);
    call.send_status(Ok(()), Headers::new());
    transmits_of_server(&mut call);
    assert!(call.wants_frames(), "draining the client's writes");
    call.handle_frame(cancel());
    assert!(
        transmits_of_server(&mut call).is_empty(),
        "no second status"
    );
    assert!(events_of_server(&mut call).is_empty());
    assert!(call.is_over() && call.reusable());

    // for a call that is not client-streaming the late :cancel: arrives between calls
    let mut call = server(FlightMethod::DoGet);
    call.handle_frame(buffer(b"t"));
    call.send_status(Ok(()), Headers::new());
    assert!(!call.wants_frames());
    assert_eq!(idle_frame(&cancel()), Idle::Skip);
}

#[test]
fn server_request_errors_reach_the_handler_and_the_drain_goes_on() {
    // a Buffer frame in DoPut
    let mut call = server(FlightMethod::DoPut);
    call.handle_frame(buffer(b"x"));
    match &events_of_server(&mut call)[..] {
        [ServerEvent::RequestsEnd(Some(error))] => {
            assert_eq!(error.code(), FlightCode::InvalidArgument);
            assert!(error.message().contains("Buffer frame where FlightData"));
        }
        other => panic!("{other:?}"),
    }
    // still the client's frames to read, dropped, until its end of writes
    assert!(call.wants_frames());
    call.handle_frame(buffer(b"y"));
    call.handle_frame(empty_headers());
    assert!(events_of_server(&mut call).is_empty());
    call.send_status(Err(FlightError::invalid_argument("bad")), Headers::new());
    assert_eq!(transmits_of_server(&mut call).len(), 1);
    assert!(call.is_over() && call.reusable());

    // FlightData in Handshake; a stray PayloadBody; a malformed PayloadHeader
    for (method, bad) in [
        (
            FlightMethod::Handshake,
            frame(
                FrameType::PayloadHeader,
                PayloadHeader::default().encode().unwrap(),
            ),
        ),
        (
            FlightMethod::DoExchange,
            frame(FrameType::PayloadBody, Bytes::from_static(b"body")),
        ),
        (
            FlightMethod::DoPut,
            frame(FrameType::PayloadHeader, Bytes::from_static(b"\0\0")),
        ),
    ] {
        let mut call = server(method);
        call.handle_frame(bad);
        match &events_of_server(&mut call)[..] {
            [ServerEvent::RequestsEnd(Some(error))] => {
                assert_eq!(error.code(), FlightCode::InvalidArgument, "{method}")
            }
            other => panic!("{method}: {other:?}"),
        }
    }

    // the one request of a unary call in the wrong kind of frame
    let mut call = server(FlightMethod::GetSchema);
    call.handle_frame(frame(
        FrameType::PayloadHeader,
        PayloadHeader::default().encode().unwrap(),
    ));
    match &events_of_server(&mut call)[..] {
        [ServerEvent::RequestsEnd(Some(error))] => {
            assert_eq!(error.code(), FlightCode::InvalidArgument);
            assert_eq!(
                error.message(),
                "GetSchema: expected the request as a Buffer frame, got PayloadHeader"
            );
        }
        other => panic!("{other:?}"),
    }

    // an end of writes in the middle of a FlightData
    let mut call = server(FlightMethod::DoPut);
    let (_, batch) = schema_and_batch();
    call.handle_frame(arrived(&wire::flight_data_frames(&batch).unwrap()[0]));
    call.handle_frame(empty_headers());
    match &events_of_server(&mut call)[..] {
        [ServerEvent::RequestsEnd(Some(error))] => {
            assert!(error.message().contains("PayloadBody was expected"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn server_protocol_errors_answer_invalid_argument_and_close() {
    for bad in [
        headers_frame(&[(METHOD_KEY, "DoGet")]),
        frame(FrameType::Headers, Bytes::from_static(b"\0\0\0\x02")),
    ] {
        let mut call = server(FlightMethod::DoExchange);
        call.handle_frame(bad);
        let events = events_of_server(&mut call);
        assert!(
            matches!(&events[0], ServerEvent::RequestsEnd(Some(e)) if e.code() == FlightCode::InvalidArgument)
        );
        assert_eq!(events[1], ServerEvent::StopHandler);
        let sent = transmits_of_server(&mut call);
        assert_eq!(status_of(&sent[0]).0, FlightCode::InvalidArgument);
        assert!(!call.wants_frames());
        assert!(call.is_over());
        assert!(!call.reusable());
    }
}

#[test]
fn server_disconnect_mid_call_stops_the_handler_without_status() {
    let mut call = server(FlightMethod::DoExchange);
    call.handle_frame(frame(FrameType::Disconnect, Bytes::new()));
    let events = events_of_server(&mut call);
    assert!(
        matches!(&events[0], ServerEvent::RequestsEnd(Some(e)) if e.code() == FlightCode::Unavailable)
    );
    assert_eq!(events[1], ServerEvent::StopHandler);
    assert!(transmits_of_server(&mut call).is_empty());
    assert!(call.is_over() && !call.reusable());
}

#[test]
fn server_connection_failure_and_shutdown() {
    let mut call = server(FlightMethod::DoGet);
    call.connection_failed(FlightError::unavailable("lost"));
    assert_eq!(events_of_server(&mut call).len(), 2);
    assert!(transmits_of_server(&mut call).is_empty());
    assert!(call.is_over() && !call.reusable());

    let mut call = server(FlightMethod::DoGet);
    call.handle_frame(buffer(b"t"));
    events_of_server(&mut call);
    call.shutdown();
    assert_eq!(events_of_server(&mut call), vec![ServerEvent::StopHandler]);
    let sent = transmits_of_server(&mut call);
    assert_eq!(
        status_of(&sent[0]),
        (
            FlightCode::Unavailable,
            "the server is shutting down".to_string()
        )
    );
    assert!(call.is_over() && !call.reusable());

    // shutting down while draining: no status again, but no more draining either
    let mut call = server(FlightMethod::DoPut);
    call.send_status(Ok(()), Headers::new());
    transmits_of_server(&mut call);
    call.shutdown();
    assert!(transmits_of_server(&mut call).is_empty());
    assert!(call.is_over() && !call.reusable());
}

#[test]
fn handler_misbehaviour_becomes_an_internal_status() {
    let mut call = server(FlightMethod::GetFlightInfo);
    call.send_message(proto(b"one"));
    call.send_message(proto(b"two"));
    let sent = transmits_of_server(&mut call);
    assert_eq!(sent.len(), 2);
    assert_eq!(status_of(&sent[1]).0, FlightCode::Internal);

    let mut call = server(FlightMethod::DoGet);
    call.send_message(proto(b"not flight data"));
    let sent = transmits_of_server(&mut call);
    assert_eq!(status_of(&sent[0]).0, FlightCode::Internal);

    let mut call = server(FlightMethod::DoAction);
    call.handler_gone();
    let sent = transmits_of_server(&mut call);
    assert_eq!(
        status_of(&sent[0]),
        (
            FlightCode::Internal,
            "the call ended without a status".to_string()
        )
    );
}

// ---- both sides, every method shape ------------------------------------------------------------

/// Runs one call with the client and server machines wired to each other; the handler answers
/// each request with `answer` and ends with `outcome`. Returns the client's events.
fn run_call(
    method: FlightMethod,
    requests: Vec<Message>,
    answer: impl Fn(&Message) -> Vec<Message>,
    outcome: Result<()>,
) -> (Vec<ClientEvent>, bool, bool) {
    let mut client = ClientCall::new(method, &CallMetadata::default()).unwrap();
    for request in requests {
        client.send_request(request);
    }
    client.requests_done();
    let mut server_call: Option<ServerCall> = None;
    let mut received = Vec::new();
    let mut handler_done = false;
    let mut client_events = Vec::new();
    for _ in 0..100 {
        while let Some(out) = client.poll_transmit() {
            let frame = arrived(&out);
            match &mut server_call {
                None => match idle_frame(&frame) {
                    Idle::Call(start) => {
                        let mut call = ServerCall::new(&start);
                        call.send_headers(Headers::new().with("x-h", "h"));
                        server_call = Some(call);
                    }
                    other => panic!("{other:?}"),
                },
                Some(call) if call.wants_frames() => call.handle_frame(frame),
                Some(_) => assert_eq!(idle_frame(&frame), Idle::Skip),
            }
        }
        if let Some(call) = &mut server_call {
            while let Some(event) = call.poll_event() {
                match event {
                    ServerEvent::Request(message) => {
                        for response in answer(&message) {
                            call.send_message(response);
                        }
                        received.push(message);
                    }
                    ServerEvent::RequestsEnd(error) => {
                        assert!(error.is_none(), "{error:?}");
                        handler_done = true;
                    }
                    ServerEvent::StopHandler => panic!("handler stopped"),
                }
            }
            if handler_done && call.wants_responses() {
                call.send_status(outcome.clone(), Headers::new().with("x-t", "t"));
            }
            while let Some(out) = call.poll_transmit() {
                client.handle_frame(arrived(&out));
            }
        }
        client_events.extend(std::iter::from_fn(|| client.poll_event()));
        if client.is_over() && server_call.as_ref().is_some_and(ServerCall::is_over) {
            let server_reusable = server_call.as_ref().is_some_and(ServerCall::reusable);
            return (client_events, client.reusable(), server_reusable);
        }
    }
    panic!("{method}: the call did not end; client events {client_events:?}");
}

fn check_end(events: &[ClientEvent], messages: usize) {
    match &events[0] {
        ClientEvent::Headers(h) => assert_eq!(h.get_str("x-h"), Some("h")),
        other => panic!("{other:?}"),
    }
    assert_eq!(events.len(), messages + 2, "{events:?}");
    match events.last() {
        Some(ClientEvent::End(Ok(()), t)) => assert_eq!(t.get_str("x-t"), Some("t")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_method_shape_end_to_end() {
    let echo = |m: &Message| vec![m.clone()];
    let data = |b: &'static [u8]| Message::Data(FlightData::metadata_only(Bytes::from_static(b)));
    let (schema, batch) = schema_and_batch();

    // unary: one Buffer each way
    for method in [
        FlightMethod::GetFlightInfo,
        FlightMethod::PollFlightInfo,
        FlightMethod::GetSchema,
    ] {
        let (events, client_reuse, server_reuse) =
            run_call(method, vec![proto(b"q")], echo, Ok(()));
        check_end(&events, 1);
        assert_eq!(events[1], ClientEvent::Message(proto(b"q")));
        assert!(client_reuse && server_reuse, "{method}");
    }

    // server-streaming protobuf
    for method in [FlightMethod::ListFlights, FlightMethod::DoAction] {
        let many = |_: &Message| vec![proto(b"r1"), proto(b"r2"), proto(b"r3")];
        let (events, client_reuse, _) = run_call(method, vec![proto(b"q")], many, Ok(()));
        check_end(&events, 3);
        assert!(client_reuse);
    }
    let (events, ..) = run_call(
        FlightMethod::ListActions,
        vec![encoded(&polyflight_core::proto::Empty {})],
        echo,
        Ok(()),
    );
    check_end(&events, 0);

    // client- and server-streaming protobuf
    let (events, client_reuse, server_reuse) = run_call(
        FlightMethod::Handshake,
        vec![proto(b"h1"), proto(b"h2")],
        echo,
        Ok(()),
    );
    check_end(&events, 2);
    assert!(client_reuse && server_reuse);

    // DoGet: a ticket in, FlightData out
    let ticket = encoded(&Ticket::new(Bytes::from_static(b"t")));
    let stream = |_: &Message| {
        vec![
            Message::Data(schema.clone()),
            Message::Data(batch.clone()),
            Message::Data(batch.clone()),
        ]
    };
    let (events, client_reuse, _) = run_call(FlightMethod::DoGet, vec![ticket], stream, Ok(()));
    check_end(&events, 3);
    assert!(
        matches!(&events[2], ClientEvent::Message(Message::Data(d)) if d.data_body.to_contiguous() == batch.data_body.to_contiguous())
    );
    assert!(client_reuse);

    // DoPut: FlightData in, put results (raw app_metadata on the wire) out
    let ack = |_: &Message| {
        vec![encoded(&PutResult {
            app_metadata: Bytes::from_static(b"ack"),
        })]
    };
    let (events, client_reuse, server_reuse) = run_call(
        FlightMethod::DoPut,
        vec![Message::Data(schema.clone()), Message::Data(batch.clone())],
        ack,
        Ok(()),
    );
    check_end(&events, 2);
    assert_eq!(
        events[1],
        ClientEvent::Message(encoded(&PutResult {
            app_metadata: Bytes::from_static(b"ack")
        }))
    );
    assert!(client_reuse && server_reuse);

    // DoExchange: FlightData both ways, metadata-only messages included
    let (events, client_reuse, server_reuse) = run_call(
        FlightMethod::DoExchange,
        vec![data(b"1"), Message::Data(batch.clone()), data(b"3")],
        echo,
        Ok(()),
    );
    check_end(&events, 3);
    assert_eq!(events[1], ClientEvent::Message(data(b"1")));
    assert!(client_reuse && server_reuse);

    // an error status after some messages
    let (events, client_reuse, _) = run_call(
        FlightMethod::DoExchange,
        vec![data(b"1")],
        echo,
        Err(FlightError::unauthorized("no")),
    );
    assert!(
        matches!(events.last(), Some(ClientEvent::End(Err(e), _)) if e.code() == FlightCode::Unauthorized)
    );
    assert!(client_reuse);
}
