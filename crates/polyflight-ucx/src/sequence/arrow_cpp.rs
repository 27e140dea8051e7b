//! Frames exchanged with Arrow C++ 19.0.1 over UCX (`vectors/arrow-cpp-19-*.frames`, captured on
//! the Arrow C++ side of real connections; docs/ucx.md says how), replayed through our call
//! state machines:
//!
//! - what Arrow C++ sent must decode, call by call, into the requests and answers it carried;
//! - what our side sent must be exactly what our state machines produce for the same
//!   messages today: frame type, declared size and every byte, the empty-body filler included.
//!
//! `arrow-cpp-19-client.frames`: an Arrow C++ client against our server (memory service).
//! `arrow-cpp-19-server.frames`: our client against an Arrow C++ server (`tests/cpp/ucx_check.cc`).

use super::*;
use crate::frame::{wire_segments, FrameHeader, FRAME_HEADER_LEN};
use polyflight_core::codec::{DecodedPayload, FlightDataDecoder};
use polyflight_core::proto::{FlightDescriptor, FlightInfo, PollInfo, Ticket};

const CPP_CLIENT: &str = include_str!("../../vectors/arrow-cpp-19-client.frames");
const CPP_SERVER: &str = include_str!("../../vectors/arrow-cpp-19-server.frames");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToServer,
    ToClient,
}

/// One captured active message.
#[derive(Debug)]
struct Captured {
    dir: Dir,
    raw_header: Vec<u8>,
    header: FrameHeader,
    data: Bytes,
}

impl Captured {
    fn frame(&self) -> Frame {
        Frame::from_parts(self.header, self.data.clone()).expect("a captured frame")
    }
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn load(text: &str) -> Vec<Captured> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            assert_eq!(fields.len(), 3, "{line}");
            let dir = match fields[0] {
                "c2s" => Dir::ToServer,
                "s2c" => Dir::ToClient,
                other => panic!("direction {other}"),
            };
            let raw_header = unhex(fields[1]);
            assert_eq!(raw_header.len(), FRAME_HEADER_LEN);
            let header = FrameHeader::decode(&raw_header).expect("a frame header");
            Captured {
                dir,
                raw_header,
                header,
                data: Bytes::from(unhex(fields[2])),
            }
        })
        .collect()
}

/// One call as captured: its start frame and the frames that followed, each way.
struct CapturedCall<'a> {
    start_frame: &'a Captured,
    start: CallStart,
    to_server: Vec<&'a Captured>,
    to_client: Vec<&'a Captured>,
    /// The call's client opened a fresh connection for it (counters start again at 0).
    new_connection: bool,
}

/// Splits a capture into calls; checks that each sender numbers its frames 0, 1, 2, … on each
/// connection, and that the client says Disconnect at the end.
fn calls(frames: &[Captured]) -> Vec<CapturedCall<'_>> {
    let mut calls: Vec<CapturedCall<'_>> = Vec::new();
    let (mut next_c2s, mut next_s2c) = (0u32, 0u32);
    let mut disconnected = false;
    for captured in frames {
        let counter = captured.header.counter;
        match captured.dir {
            Dir::ToServer => {
                let new_connection = counter == 0 && next_c2s > 0;
                if new_connection {
                    // the client gave up the connection (see `ClientCall::reusable`)
                    (next_c2s, next_s2c) = (0, 0);
                }
                assert_eq!(counter, next_c2s, "client frame numbering");
                next_c2s += 1;
                match idle_frame(&captured.frame()) {
                    Idle::Call(start) => calls.push(CapturedCall {
                        start_frame: captured,
                        start,
                        to_server: Vec::new(),
                        to_client: Vec::new(),
                        new_connection: new_connection || calls.is_empty(),
                    }),
                    Idle::Close(None) => disconnected = true,
                    _ => calls
                        .last_mut()
                        .expect("frames before the first call")
                        .to_server
                        .push(captured),
                }
            }
            Dir::ToClient => {
                assert_eq!(counter, next_s2c, "server frame numbering");
                next_s2c += 1;
                calls
                    .last_mut()
                    .expect("a server frame before any call")
                    .to_client
                    .push(captured);
            }
        }
    }
    assert!(disconnected, "the client ends with Disconnect");
    calls
}

/// Our frames must be the captured ones: type, declared size and bytes on the wire.
fn assert_same_frames(ours: &[OutFrame], captured: &[&Captured], what: &str) {
    assert_eq!(ours.len(), captured.len(), "{what}: number of frames");
    for (i, (out, cap)) in ours.iter().zip(captured).enumerate() {
        let (size, pieces) = wire_segments(out.body.clone());
        let header = FrameHeader::new(out.frame_type, cap.header.counter, size).unwrap();
        assert_eq!(
            header.encode().to_vec(),
            cap.raw_header,
            "{what}: frame {i} header"
        );
        assert_eq!(
            Bytes::from(pieces.concat()),
            cap.data,
            "{what}: frame {i} data"
        );
    }
}

/// The requests a server reads from the call's frames.
fn read_requests(call: &CapturedCall<'_>) -> Vec<Message> {
    let mut server = ServerCall::new(&call.start);
    for captured in &call.to_server {
        server.handle_frame(captured.frame());
    }
    let mut requests = Vec::new();
    let mut ended = false;
    while let Some(event) = server.poll_event() {
        match event {
            ServerEvent::Request(message) => requests.push(message),
            ServerEvent::RequestsEnd(None) => ended = true,
            other => panic!("{}: {other:?}", call.start.method),
        }
    }
    assert!(ended, "{}: the requests end cleanly", call.start.method);
    requests
}

/// What a client reads from the call's answer frames, and whether it would reuse the connection.
fn read_answers(call: &CapturedCall<'_>) -> (Vec<ClientEvent>, bool) {
    let mut client = ClientCall::new(call.start.method, &CallMetadata::default()).unwrap();
    while client.poll_transmit().is_some() {}
    for captured in &call.to_client {
        assert!(
            client.wants_frames(),
            "{}: frame after the status",
            call.start.method
        );
        client.handle_frame(captured.frame());
    }
    let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
    (events, client.reusable())
}

/// A readable account of messages: protos by what they are, data by what they decode to.
fn describe(method: FlightMethod, dir: Dir, messages: &[Message]) -> Vec<String> {
    let mut decoder = FlightDataDecoder::new();
    messages
        .iter()
        .map(|message| match message {
            Message::Proto(bytes) => describe_proto(method, dir, bytes),
            Message::Data(data) => {
                let mut parts = Vec::new();
                if let Some(descriptor) = &data.flight_descriptor {
                    parts.push(format!("descriptor {}", descriptor.path.join("/")));
                }
                match decoder.decode(data).expect("FlightData decodes") {
                    DecodedPayload::None => {}
                    DecodedPayload::Schema(schema) => {
                        let names: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        parts.push(format!("schema {}", names.join(",")));
                    }
                    DecodedPayload::RecordBatch(batch) => {
                        parts.push(format!("batch {} rows", batch.num_rows()))
                    }
                    DecodedPayload::DictionaryBatch => parts.push("dictionary".into()),
                }
                if !data.app_metadata.is_empty() {
                    parts.push(format!(
                        "metadata {}",
                        String::from_utf8_lossy(&data.app_metadata)
                    ));
                }
                parts.join(", ")
            }
        })
        .collect()
}

fn describe_proto(method: FlightMethod, dir: Dir, bytes: &Bytes) -> String {
    match (method, dir) {
        (FlightMethod::GetFlightInfo | FlightMethod::PollFlightInfo, Dir::ToServer) => {
            let descriptor = FlightDescriptor::decode(bytes.as_ref()).expect("descriptor");
            format!("descriptor {}", descriptor.path.join("/"))
        }
        (FlightMethod::DoGet, Dir::ToServer) => {
            let ticket = Ticket::decode(bytes.as_ref()).expect("ticket");
            format!("ticket {}", String::from_utf8_lossy(&ticket.ticket))
        }
        (FlightMethod::GetFlightInfo, Dir::ToClient) => {
            let info = FlightInfo::decode(bytes.as_ref()).expect("FlightInfo");
            format!(
                "info {} records, {} endpoint",
                info.total_records,
                info.endpoint.len()
            )
        }
        (FlightMethod::PollFlightInfo, Dir::ToClient) => {
            let poll = PollInfo::decode(bytes.as_ref()).expect("PollInfo");
            let records = poll.info.map(|info| info.total_records);
            format!("poll info {records:?}, progress {:?}", poll.progress)
        }
        (FlightMethod::DoPut, Dir::ToClient) => {
            let result = PutResult::decode(bytes.as_ref()).expect("PutResult");
            format!(
                "put result {}",
                String::from_utf8_lossy(&result.app_metadata)
            )
        }
        _ => format!("{} bytes", bytes.len()),
    }
}

fn outcome(events: &[ClientEvent]) -> (Vec<Message>, String) {
    let mut messages = Vec::new();
    let mut end = None;
    for event in events {
        match event {
            ClientEvent::Message(message) => messages.push(message.clone()),
            ClientEvent::End(result, _) => {
                end = Some(match result {
                    Ok(()) => "OK".to_string(),
                    Err(e) => format!("{:?}: {}", e.code(), e.message()),
                })
            }
            ClientEvent::Headers(_) => panic!("Arrow C++ sends no response headers frame"),
        }
    }
    (messages, end.expect("the call ends"))
}

/// Each call: method, requests, answers, status.
type Expected = (
    FlightMethod,
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
);

#[test]
fn an_arrow_cpp_client_against_our_server() {
    let frames = load(CPP_CLIENT);
    let calls = calls(&frames);
    let expected: &[Expected] = &[
        (
            FlightMethod::DoPut,
            &[
                "descriptor cpp/small, schema id,name,val",
                "batch 5 rows, metadata put-meta-0",
            ],
            &["put result 1:5"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor cpp/small"],
            &["info 5 records, 1 endpoint"],
            "OK",
        ),
        (
            FlightMethod::DoGet,
            &["ticket cpp/small"],
            &["schema id,name,val", "batch 5 rows"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor no/such"],
            &[],
            "NotFound: no flight \"no/such\"",
        ),
        (
            FlightMethod::DoExchange,
            // Arrow C++ opens DoExchange with a descriptor-only message, then repeats the
            // descriptor with the schema
            &[
                "descriptor cpp/exchange",
                "descriptor cpp/exchange, schema id,name,val",
                "batch 5 rows",
            ],
            &["schema id,name,val", "batch 5 rows"],
            "OK",
        ),
    ];
    check_calls(&calls, expected);

    for call in &calls {
        // Arrow C++ clients announce nothing of our extensions
        assert!(!call.start.capable);
        let method = call.start.method;
        // our server's frames: what a ServerCall sends for the same answers, byte for byte
        let mut server = ServerCall::new(&call.start);
        for captured in &call.to_server {
            server.handle_frame(captured.frame());
        }
        while server.poll_event().is_some() {}
        let (events, reusable) = read_answers(call);
        assert!(reusable, "{method}");
        for event in events {
            match event {
                ClientEvent::Message(message) => server.send_message(message),
                ClientEvent::End(result, trailers) => server.send_status(result, trailers),
                ClientEvent::Headers(headers) => server.send_headers(headers),
            }
        }
        let ours: Vec<OutFrame> = std::iter::from_fn(|| server.poll_transmit()).collect();
        assert_same_frames(&ours, &call.to_client, &format!("our {method} answer"));
        assert!(server.is_over() && server.reusable(), "{method}");
    }
}

#[test]
fn our_client_against_an_arrow_cpp_server() {
    let frames = load(CPP_SERVER);
    let calls = calls(&frames);
    let not_found = "NotFound: no flight 'no/such'";
    let expected: &[Expected] = &[
        (
            FlightMethod::DoPut,
            &[
                "descriptor rust/small, schema id,name,val",
                "batch 5 rows, metadata m0",
            ],
            &["put result ack:1:5"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor rust/small"],
            &["info 5 records, 1 endpoint"],
            "OK",
        ),
        (
            FlightMethod::PollFlightInfo,
            &["descriptor rust/small"],
            &["poll info Some(5), progress Some(1.0)"],
            "OK",
        ),
        (
            FlightMethod::DoGet,
            &["ticket rust/small"],
            &["schema id,name,val", "batch 5 rows"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor no/such"],
            &[],
            not_found,
        ),
        (
            FlightMethod::DoExchange,
            &[
                "descriptor rust/exchange, schema id,name,val",
                "batch 5 rows, metadata x0",
                "metadata only",
            ],
            &[
                "schema id,name,val",
                "batch 5 rows, metadata x0",
                "metadata only",
            ],
            "OK",
        ),
        // an extension method: Arrow C++ answers from the start frame, then takes our request
        // frame for a new call and answers that too; our client leaves the connection
        (
            FlightMethod::ListFlights,
            &["0 bytes"],
            &[],
            "Unimplemented: ListFlights",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor simple"],
            &["info 201005 records, 1 endpoint"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor simple"],
            &["info 201005 records, 1 endpoint"],
            "OK",
        ),
        (
            FlightMethod::GetFlightInfo,
            &["descriptor simple"],
            &["info 201005 records, 1 endpoint"],
            "OK",
        ),
    ];
    let replies = check_calls(&calls, expected);

    for (i, (call, (requests, reusable))) in calls.iter().zip(replies).enumerate() {
        let method = call.start.method;
        // our client's frames: what a ClientCall sends for the same requests, byte for byte
        let mut client = ClientCall::new(method, &CallMetadata::default()).unwrap();
        for request in requests {
            client.send_request(request);
        }
        client.requests_done();
        let ours: Vec<OutFrame> = std::iter::from_fn(|| client.poll_transmit()).collect();
        let mut captured = vec![call.start_frame];
        captured.extend(call.to_server.iter().copied());
        assert_same_frames(&ours, &captured, &format!("our {method} call"));
        // a call after an UNIMPLEMENTED one runs on a new connection
        let next_is_fresh = calls.get(i + 1).is_none_or(|next| next.new_connection);
        assert!(reusable || next_is_fresh, "{method}");
        assert_eq!(reusable, method != FlightMethod::ListFlights, "{method}");
    }
}

/// Checks each call's requests, answers and status against `expected`; returns each call's
/// requests and whether our client would reuse its connection. A call whose connection is not
/// reused may have stray answers after its status: they went to a connection the client left.
fn check_calls(calls: &[CapturedCall<'_>], expected: &[Expected]) -> Vec<(Vec<Message>, bool)> {
    assert_eq!(calls.len(), expected.len(), "number of calls");
    let mut replies = Vec::new();
    for (call, (method, requests, answers, status)) in calls.iter().zip(expected) {
        assert_eq!(call.start.method, *method);
        let sent = read_requests(call);
        assert_eq!(
            describe(*method, Dir::ToServer, &sent),
            *requests,
            "{method}"
        );
        let mut client = ClientCall::new(*method, &CallMetadata::default()).unwrap();
        while client.poll_transmit().is_some() {}
        let mut stray = 0;
        for captured in &call.to_client {
            if client.wants_frames() {
                client.handle_frame(captured.frame());
            } else {
                stray += 1;
            }
        }
        let events: Vec<ClientEvent> = std::iter::from_fn(|| client.poll_event()).collect();
        let (messages, end) = outcome(&events);
        assert_eq!(
            describe(*method, Dir::ToClient, &messages),
            *answers,
            "{method}"
        );
        assert_eq!(end, *status, "{method}");
        assert!(
            stray == 0 || !client.reusable(),
            "{method}: {stray} stray frames"
        );
        replies.push((sent, client.reusable()));
    }
    replies
}
