//! The standard Flight actions (CancelFlightInfo, RenewFlightEndpoint and the session options):
//! their type strings, and decoding/encoding of their protobuf bodies, for servers (in
//! `do_action`) and clients (the typed helpers of `FlightClient`).

use crate::call::FlightStream;
use crate::error::{FlightError, Result};
use crate::proto::{
    Action, ActionType, CancelFlightInfoRequest, CloseSessionRequest, GetSessionOptionsRequest,
    RenewFlightEndpointRequest, Result as ActionResult, SetSessionOptionsRequest,
};
use prost::Message;

/// `CancelFlightInfo` action type.
pub const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";
/// `RenewFlightEndpoint` action type.
pub const RENEW_FLIGHT_ENDPOINT: &str = "RenewFlightEndpoint";
/// `SetSessionOptions` action type.
pub const SET_SESSION_OPTIONS: &str = "SetSessionOptions";
/// `GetSessionOptions` action type.
pub const GET_SESSION_OPTIONS: &str = "GetSessionOptions";
/// `CloseSession` action type.
pub const CLOSE_SESSION: &str = "CloseSession";

/// A standard action with its decoded request.
#[derive(Debug, Clone, PartialEq)]
pub enum StandardAction {
    /// Cancel the query behind a FlightInfo.
    CancelFlightInfo(CancelFlightInfoRequest),
    /// Extend an endpoint's expiration time.
    RenewFlightEndpoint(RenewFlightEndpointRequest),
    /// Set session options.
    SetSessionOptions(SetSessionOptionsRequest),
    /// Read session options.
    GetSessionOptions(GetSessionOptionsRequest),
    /// Close the session.
    CloseSession(CloseSessionRequest),
}

impl StandardAction {
    /// Decodes `action` if its type is a standard one; `Ok(None)` for any other type; a body that
    /// does not decode is `INVALID_ARGUMENT`.
    pub fn decode(action: &Action) -> Result<Option<StandardAction>> {
        fn body<M: Message + Default>(action: &Action) -> Result<M> {
            M::decode(action.body.clone()).map_err(|e| {
                FlightError::invalid_argument(format!("bad {} body: {e}", action.r#type))
            })
        }
        Ok(Some(match action.r#type.as_str() {
            CANCEL_FLIGHT_INFO => StandardAction::CancelFlightInfo(body(action)?),
            RENEW_FLIGHT_ENDPOINT => StandardAction::RenewFlightEndpoint(body(action)?),
            SET_SESSION_OPTIONS => StandardAction::SetSessionOptions(body(action)?),
            GET_SESSION_OPTIONS => StandardAction::GetSessionOptions(body(action)?),
            CLOSE_SESSION => StandardAction::CloseSession(body(action)?),
            _ => return Ok(None),
        }))
    }

    /// The action type string.
    pub fn name(&self) -> &'static str {
        match self {
            StandardAction::CancelFlightInfo(_) => CANCEL_FLIGHT_INFO,
            StandardAction::RenewFlightEndpoint(_) => RENEW_FLIGHT_ENDPOINT,
            StandardAction::SetSessionOptions(_) => SET_SESSION_OPTIONS,
            StandardAction::GetSessionOptions(_) => GET_SESSION_OPTIONS,
            StandardAction::CloseSession(_) => CLOSE_SESSION,
        }
    }

    /// The wire `Action`.
    pub fn into_action(self) -> Action {
        let name = self.name().to_string();
        let body = match self {
            StandardAction::CancelFlightInfo(m) => m.encode_to_vec(),
            StandardAction::RenewFlightEndpoint(m) => m.encode_to_vec(),
            StandardAction::SetSessionOptions(m) => m.encode_to_vec(),
            StandardAction::GetSessionOptions(m) => m.encode_to_vec(),
            StandardAction::CloseSession(m) => m.encode_to_vec(),
        };
        Action {
            r#type: name,
            body: body.into(),
        }
    }
}

/// The ActionTypes of the standard actions, for a `list_actions` answer.
pub fn standard_action_types() -> Vec<ActionType> {
    [
        (CANCEL_FLIGHT_INFO, "Cancel the query behind a FlightInfo"),
        (
            RENEW_FLIGHT_ENDPOINT,
            "Extend the expiration time of a FlightEndpoint",
        ),
        (SET_SESSION_OPTIONS, "Set session options"),
        (GET_SESSION_OPTIONS, "Get session options"),
        (CLOSE_SESSION, "Close the session"),
    ]
    .into_iter()
    .map(|(t, d)| ActionType {
        r#type: t.to_string(),
        description: d.to_string(),
    })
    .collect()
}

/// A `Result` whose body is `message` encoded.
pub fn result_of(message: &impl Message) -> ActionResult {
    ActionResult {
        body: message.encode_to_vec().into(),
    }
}

/// A one-result DoAction response stream holding `message`.
pub fn single_result(message: &impl Message) -> FlightStream<ActionResult> {
    Box::pin(futures::stream::iter([Ok(result_of(message))]))
}

/// Decodes the result body of a standard action; a body that does not decode is `INTERNAL`
/// (the server broke the protocol).
pub fn decode_result<M: Message + Default>(action: &str, body: &[u8]) -> Result<M> {
    M::decode(body)
        .map_err(|e| FlightError::internal(format!("server sent a malformed {action} result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::FlightEndpoint;

    #[test]
    fn round_trip_and_unknown_types() {
        let renew = StandardAction::RenewFlightEndpoint(RenewFlightEndpointRequest {
            endpoint: Some(FlightEndpoint::default()),
        });
        let action = renew.clone().into_action();
        assert_eq!(action.r#type, RENEW_FLIGHT_ENDPOINT);
        assert_eq!(StandardAction::decode(&action).unwrap(), Some(renew));
        let other = Action {
            r#type: "custom".into(),
            body: Default::default(),
        };
        assert_eq!(StandardAction::decode(&other).unwrap(), None);
        let bad = Action {
            r#type: CANCEL_FLIGHT_INFO.into(),
            body: vec![0xff, 0xff, 0xff].into(),
        };
        let err = StandardAction::decode(&bad).unwrap_err();
        assert_eq!(err.code(), crate::FlightCode::InvalidArgument);
    }
}
