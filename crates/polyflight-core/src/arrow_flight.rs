//! Conversions between polyflight's Flight types and the `arrow-flight` crate's (feature
//! `arrow-flight`), for code that meets the tonic-based Rust Flight ecosystem.
//!
//! Both sides are generated from the same `Flight.proto` with `bytes::Bytes` fields, so every
//! conversion moves fields and copies nothing, with one exception: a polyflight
//! [`FlightData`](crate::FlightData) body made of several segments (as the codec writes a
//! record batch: one segment per buffer) must be gathered into one contiguous `Bytes` for
//! arrow-flight, which has no segmented body. A body of one segment moves as it is.
//!
//! Errors: [`FlightError`] and [`tonic::Status`] convert both ways with the gRPC code mapping of
//! the wire ([`FlightCode::grpc_code`], [`FlightCode::from_grpc_code`]); the extra-info bytes
//! travel as the status details, as Arrow C++ sends them.

use crate::data::{DataBody, FlightData};
use crate::error::{FlightCode, FlightError};
use crate::proto;

/// `From` both ways between a polyflight proto message and arrow-flight's of the same name;
/// fields are listed by how they convert: as they are, `Option` of a message, `Vec` of messages.
macro_rules! both_ways {
    ($name:ident { $($plain:ident),* $(; opt $($opt:ident),*)? $(; vec $($vec:ident),*)? }) => {
        impl From<proto::$name> for arrow_flight::$name {
            fn from(value: proto::$name) -> Self {
                arrow_flight::$name {
                    $($plain: value.$plain,)*
                    $($($opt: value.$opt.map(Into::into),)*)?
                    $($($vec: value.$vec.into_iter().map(Into::into).collect(),)*)?
                }
            }
        }

        impl From<arrow_flight::$name> for proto::$name {
            fn from(value: arrow_flight::$name) -> Self {
                proto::$name {
                    $($plain: value.$plain,)*
                    $($($opt: value.$opt.map(Into::into),)*)?
                    $($($vec: value.$vec.into_iter().map(Into::into).collect(),)*)?
                }
            }
        }
    };
}

both_ways!(HandshakeRequest {
    protocol_version,
    payload
});
both_ways!(HandshakeResponse {
    protocol_version,
    payload
});
both_ways!(BasicAuth { username, password });
both_ways!(ActionType {
    r#type,
    description
});
both_ways!(Criteria { expression });
both_ways!(Action { r#type, body });
both_ways!(SchemaResult { schema });
both_ways!(FlightDescriptor { r#type, cmd, path });
both_ways!(FlightInfo { schema, total_records, total_bytes, ordered, app_metadata;
    opt flight_descriptor; vec endpoint });
both_ways!(PollInfo { progress, expiration_time; opt info, flight_descriptor });
both_ways!(CancelFlightInfoRequest { ; opt info });
both_ways!(CancelFlightInfoResult { status });
both_ways!(Ticket { ticket });
both_ways!(Location { uri });
both_ways!(FlightEndpoint { expiration_time, app_metadata; opt ticket; vec location });
both_ways!(RenewFlightEndpointRequest { ; opt endpoint });
both_ways!(PutResult { app_metadata });

impl From<proto::Empty> for arrow_flight::Empty {
    fn from(_: proto::Empty) -> Self {
        arrow_flight::Empty {}
    }
}

impl From<arrow_flight::Empty> for proto::Empty {
    fn from(_: arrow_flight::Empty) -> Self {
        proto::Empty {}
    }
}

// `Result` names the action result message on both sides.
impl From<proto::Result> for arrow_flight::Result {
    fn from(value: proto::Result) -> Self {
        arrow_flight::Result { body: value.body }
    }
}

impl From<arrow_flight::Result> for proto::Result {
    fn from(value: arrow_flight::Result) -> Self {
        proto::Result { body: value.body }
    }
}

impl From<FlightData> for arrow_flight::FlightData {
    /// Moves every field; a body of several segments is gathered into one buffer (one copy).
    fn from(value: FlightData) -> Self {
        arrow_flight::FlightData {
            flight_descriptor: value.flight_descriptor.map(Into::into),
            data_header: value.data_header,
            app_metadata: value.app_metadata,
            data_body: value.data_body.to_contiguous(),
        }
    }
}

impl From<arrow_flight::FlightData> for FlightData {
    /// Moves every field (the body becomes a body of one segment).
    fn from(value: arrow_flight::FlightData) -> Self {
        let mut data_body = DataBody::new();
        if !value.data_body.is_empty() {
            data_body.push(value.data_body);
        }
        FlightData {
            flight_descriptor: value.flight_descriptor.map(Into::into),
            data_header: value.data_header,
            app_metadata: value.app_metadata,
            data_body,
        }
    }
}

impl From<FlightError> for tonic::Status {
    /// The gRPC code the wire would send, the message, and the extra info as the details.
    fn from(error: FlightError) -> Self {
        let code = tonic::Code::from_i32(i32::from(error.code().grpc_code()));
        if error.extra_info().is_empty() {
            tonic::Status::new(code, error.message())
        } else {
            tonic::Status::with_details(code, error.message(), error.extra_info().clone())
        }
    }
}

impl From<tonic::Status> for FlightError {
    /// The Flight code for the status's gRPC code, its message, and its details as extra info.
    fn from(status: tonic::Status) -> Self {
        let code = FlightCode::from_grpc_code(status.code() as u16);
        // a status always has a code; OK never travels as an error, so it is not one here either
        let code = if code == FlightCode::Ok {
            FlightCode::Unknown
        } else {
            code
        };
        let error = FlightError::new(code, status.message());
        if status.details().is_empty() {
            error
        } else {
            error.with_extra_info(bytes::Bytes::copy_from_slice(status.details()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn flight_info_round_trips_field_for_field() {
        let info = proto::FlightInfo {
            schema: Bytes::from_static(b"schema"),
            flight_descriptor: Some(proto::FlightDescriptor::new_path(["a", "b"])),
            endpoint: vec![proto::FlightEndpoint {
                ticket: Some(proto::Ticket {
                    ticket: Bytes::from_static(b"t"),
                }),
                location: vec![proto::Location {
                    uri: "ucx://h:1".into(),
                }],
                expiration_time: Some(prost_types::Timestamp {
                    seconds: 5,
                    nanos: 6,
                }),
                app_metadata: Bytes::from_static(b"m"),
            }],
            total_records: 7,
            total_bytes: 8,
            ordered: true,
            app_metadata: Bytes::from_static(b"app"),
        };
        let theirs = arrow_flight::FlightInfo::from(info.clone());
        assert_eq!(theirs.endpoint[0].location[0].uri, "ucx://h:1");
        assert_eq!(
            theirs.flight_descriptor.as_ref().map(|d| d.path.len()),
            Some(2)
        );
        assert_eq!(proto::FlightInfo::from(theirs), info);
    }

    #[test]
    fn flight_data_moves_one_segment_and_gathers_several() {
        let body = Bytes::from(vec![7u8; 64]);
        let mut ours = FlightData {
            data_header: Bytes::from_static(b"h"),
            data_body: DataBody::from_segments(vec![body.clone()]),
            ..Default::default()
        };
        let theirs = arrow_flight::FlightData::from(ours.clone());
        assert_eq!(
            theirs.data_body.as_ptr(),
            body.as_ptr(),
            "one segment moves"
        );
        ours.data_body = DataBody::from_segments(vec![body.slice(..32), body.slice(32..)]);
        let theirs = arrow_flight::FlightData::from(ours);
        assert_eq!(theirs.data_body, body);
        let back = FlightData::from(theirs);
        assert_eq!(back.data_body.segments().len(), 1);
        assert_eq!(back.data_header, Bytes::from_static(b"h"));
    }

    #[test]
    fn errors_and_statuses_keep_code_message_and_details() {
        for code in FlightCode::ALL.into_iter().filter(|c| *c != FlightCode::Ok) {
            let error = FlightError::new(code, "why").with_extra_info(&b"\x00detail"[..]);
            let status = tonic::Status::from(error.clone());
            assert_eq!(status.code() as u16, code.grpc_code());
            assert_eq!(status.details(), b"\x00detail");
            assert_eq!(FlightError::from(status), error);
        }
        let status = tonic::Status::resource_exhausted("full");
        assert_eq!(FlightError::from(status).code(), FlightCode::Unknown);
        let status = tonic::Status::out_of_range("far");
        assert_eq!(
            FlightError::from(status).code(),
            FlightCode::InvalidArgument
        );
    }
}
