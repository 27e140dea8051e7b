//! `session_options`: the session actions over the `arrow_flight_session_id` cookie.
//!
//! The server keeps sessions with the core's [`SessionMiddleware`] (the server builder installs
//! it; the scenario names it explicitly) and serves `SetSessionOptions`, `GetSessionOptions` and
//! `CloseSession` with their plain protobuf bodies. It refuses the option name `lol_invalid`
//! (INVALID_NAME) and the string value `lol_invalid` (INVALID_VALUE), erases an option sent
//! without a value, and, as Arrow C++ does, fails GetSessionOptions for a client with no
//! session. The client (whose cookie middleware is built into `FlightClient`) sets five options
//! and expects exactly the two refusals, reads back the other three, erases one and replaces
//! another, and reads back the result.

use super::{Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use async_trait::async_trait;
use polyflight::actions::{self, StandardAction};
use polyflight::proto::session_option_value::{OptionValue, StringListValue};
use polyflight::proto::set_session_options_result::{Error as SetError, ErrorValue};
use polyflight::proto::{Action, Result as ActionResult, SessionOptionValue};
use polyflight::session::{self, Session, SessionMiddleware};
use polyflight::{CallContext, FlightError, FlightService, FlightStream, Result};
use std::collections::HashMap;

const INVALID: &str = "lol_invalid";

/// The scenario.
pub struct SessionOptions;

struct SessionService;

fn refusal(name: &str, value: &SessionOptionValue) -> Option<ErrorValue> {
    if name == INVALID {
        return Some(ErrorValue::InvalidName);
    }
    match &value.option_value {
        Some(OptionValue::StringValue(s)) if s == INVALID => Some(ErrorValue::InvalidValue),
        _ => None,
    }
}

#[async_trait]
impl FlightService for SessionService {
    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        match StandardAction::decode(&action)? {
            Some(StandardAction::SetSessionOptions(request)) => Ok(actions::single_result(
                &session::set_session_options(&ctx, request, refusal)?,
            )),
            Some(StandardAction::GetSessionOptions(_)) => {
                if Session::current(&ctx).is_none() {
                    return Err(FlightError::invalid_argument(
                        "no existing session to get options from",
                    ));
                }
                Ok(actions::single_result(&session::get_session_options(&ctx)?))
            }
            Some(StandardAction::CloseSession(_)) => {
                Ok(actions::single_result(&session::close_session(&ctx)?))
            }
            _ => Err(FlightError::invalid_argument(format!(
                "Unknown action: {}",
                action.r#type
            ))),
        }
    }
}

fn value(v: OptionValue) -> SessionOptionValue {
    SessionOptionValue {
        option_value: Some(v),
    }
}

fn unset() -> SessionOptionValue {
    SessionOptionValue { option_value: None }
}

fn string_list() -> Vec<String> {
    ["a", "b", "sea", "dee", " ", "  ", "geee", "(づ｡◕‿‿◕｡)づ"]
        .map(String::from)
        .to_vec()
}

fn options(pairs: Vec<(&str, SessionOptionValue)>) -> HashMap<String, SessionOptionValue> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[async_trait]
impl Scenario for SessionOptions {
    fn name(&self) -> &'static str {
        "session_options"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(SessionService).configure(|b| b.sessions(SessionMiddleware::new()))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let list = || {
            value(OptionValue::StringListValue(StringListValue {
                values: string_list(),
            }))
        };
        let first = options(vec![
            ("foolong", value(OptionValue::Int64Value(123))),
            ("bardouble", value(OptionValue::DoubleValue(456.0))),
            (
                INVALID,
                value(OptionValue::StringValue("this won't get set".into())),
            ),
            (
                "key_with_invalid_value",
                value(OptionValue::StringValue(INVALID.into())),
            ),
            ("big_ol_string_list", list()),
        ]);
        let res1 = client
            .set_session_options(first)
            .await
            .call("SetSessionOptions (first)")?;
        let expected_errors: HashMap<String, SetError> = [
            (INVALID, ErrorValue::InvalidName),
            ("key_with_invalid_value", ErrorValue::InvalidValue),
        ]
        .into_iter()
        .map(|(k, e)| (k.to_string(), SetError { value: e as i32 }))
        .collect();
        check(res1.errors == expected_errors, || {
            format!(
                "res1 incorrect: expected errors {expected_errors:?}, got {:?}",
                res1.errors
            )
        })?;
        let res2 = client
            .get_session_options()
            .await
            .call("GetSessionOptions (first)")?;
        let expected = options(vec![
            ("foolong", value(OptionValue::Int64Value(123))),
            ("bardouble", value(OptionValue::DoubleValue(456.0))),
            ("big_ol_string_list", list()),
        ]);
        check(res2.session_options == expected, || {
            format!(
                "res2 incorrect: expected {expected:?}, got {:?}",
                res2.session_options
            )
        })?;
        let joined = string_list().join(",");
        let second = options(vec![
            ("foolong", unset()),
            (
                "big_ol_string_list",
                value(OptionValue::StringValue(joined.clone())),
            ),
        ]);
        let res3 = client
            .set_session_options(second)
            .await
            .call("SetSessionOptions (second)")?;
        if !res3.errors.is_empty() {
            return Err(Failure::Check(format!(
                "res3 incorrect: expected no errors, got {:?}",
                res3.errors
            )));
        }
        let res4 = client
            .get_session_options()
            .await
            .call("GetSessionOptions (second)")?;
        let expected = options(vec![
            ("bardouble", value(OptionValue::DoubleValue(456.0))),
            (
                "big_ol_string_list",
                value(OptionValue::StringValue(joined)),
            ),
        ]);
        check(res4.session_options == expected, || {
            format!(
                "res4 incorrect: expected {expected:?}, got {:?}",
                res4.session_options
            )
        })
    }
}
