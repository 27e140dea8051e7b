//! The four `expiration_time:*` scenarios, one server for all of them.
//!
//! GetFlightInfo forgets earlier endpoints and returns three: `0: No expiration time` (readable
//! once), `1: 5 seconds` and `2: 6 seconds` (readable until they expire). DoGet reads the index
//! before the `:` and returns a uint32 column `number` = [index], or an error for an endpoint
//! that was cancelled, has expired, or (without expiration) was already read. The actions
//! `CancelFlightInfo` (marks each endpoint cancelled; `CANCELLED`, or `NOT_CANCELLABLE` for an
//! endpoint already cancelled or unknown) and `RenewFlightEndpoint` (ticket +
//! `: renewed (+ 10 seconds)`, expiration now + 10 s) are the only ones ListActions lists.

use super::{
    action_results, batch_stream, concat, read_ticket, timestamp_in, Scenario, ServerParts,
};
use crate::failure::{check, ArrowContext, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::actions::{self, StandardAction};
use polyflight::proto::{
    Action, ActionType, CancelFlightInfoResult, CancelStatus, FlightDescriptor, FlightEndpoint,
    FlightInfo, Result as ActionResult, Ticket,
};
use polyflight::{CallContext, FlightData, FlightError, FlightService, FlightStream, Result};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Which of the four scenarios.
#[derive(Debug, Clone, Copy)]
pub enum ExpirationTime {
    /// `expiration_time:do_get`
    DoGet,
    /// `expiration_time:list_actions`
    ListActions,
    /// `expiration_time:cancel_flight_info`
    CancelFlightInfo,
    /// `expiration_time:renew_flight_endpoint`
    RenewFlightEndpoint,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "number",
        DataType::UInt32,
        false,
    )]))
}

fn numbers(values: Vec<u32>) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    RecordBatch::try_new(schema(), vec![Arc::new(UInt32Array::from(values))])
}

#[derive(Debug)]
struct EndpointStatus {
    expiration_time: Option<prost_types::Timestamp>,
    gets: u32,
    cancelled: bool,
}

#[derive(Default)]
struct ExpiringService {
    statuses: Mutex<Vec<EndpointStatus>>,
}

fn lock_failed() -> FlightError {
    FlightError::internal("endpoint table lock poisoned")
}

fn is_past(timestamp: &prost_types::Timestamp) -> bool {
    SystemTime::try_from(*timestamp).is_ok_and(|t| t < SystemTime::now())
}

/// The index before the first `:` of a ticket, checked against the endpoint table.
fn index_of(ticket: &[u8], known: usize) -> Result<usize> {
    let text = String::from_utf8_lossy(ticket);
    let head = text.split(':').next().unwrap_or_default();
    let index: usize = head
        .parse()
        .map_err(|_| FlightError::not_found(format!("Invalid flight: no index: {text}")))?;
    if index >= known {
        return Err(FlightError::not_found(format!(
            "Invalid flight: out of index: {text}"
        )));
    }
    Ok(index)
}

#[async_trait]
impl FlightService for ExpiringService {
    async fn get_flight_info(
        &self,
        _ctx: CallContext,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo> {
        let mut statuses = self.statuses.lock().map_err(|_| lock_failed())?;
        statuses.clear();
        let mut info = FlightInfo::new()
            .with_schema(&schema())
            .with_descriptor(descriptor);
        for (name, expires_in) in [
            ("No expiration time", None),
            ("5 seconds", Some(Duration::from_secs(5))),
            ("6 seconds", Some(Duration::from_secs(6))),
        ] {
            let expiration_time = expires_in.map(timestamp_in);
            let mut endpoint =
                FlightEndpoint::new(Ticket::new(format!("{}: {name}", statuses.len())));
            endpoint.expiration_time = expiration_time;
            info = info.with_endpoint(endpoint);
            statuses.push(EndpointStatus {
                expiration_time,
                gets: 0,
                cancelled: false,
            });
        }
        Ok(info)
    }

    async fn do_get(&self, _ctx: CallContext, ticket: Ticket) -> Result<FlightStream<FlightData>> {
        let text = String::from_utf8_lossy(&ticket.ticket).into_owned();
        let index = {
            let mut statuses = self.statuses.lock().map_err(|_| lock_failed())?;
            let index = index_of(&ticket.ticket, statuses.len())?;
            let status = &mut statuses[index];
            if status.cancelled {
                return Err(FlightError::not_found(format!(
                    "Invalid flight: canceled: {text}"
                )));
            }
            match &status.expiration_time {
                Some(expiration) if is_past(expiration) => {
                    return Err(FlightError::not_found(format!(
                        "Invalid flight: expired: {text}"
                    )))
                }
                Some(_) => {}
                None if status.gets > 0 => {
                    return Err(FlightError::not_found(format!(
                        "Invalid flight: can't read multiple times: {text}"
                    )))
                }
                None => {}
            }
            status.gets += 1;
            index
        };
        let value = u32::try_from(index).map_err(|_| FlightError::internal("index too large"))?;
        let batch = numbers(vec![value]).map_err(|e| FlightError::internal(e.to_string()))?;
        Ok(batch_stream(batch))
    }

    async fn do_action(
        &self,
        _ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let body = match StandardAction::decode(&action)? {
            Some(StandardAction::CancelFlightInfo(request)) => {
                let mut statuses = self.statuses.lock().map_err(|_| lock_failed())?;
                let mut status = CancelStatus::Unspecified;
                let endpoints = request.info.map(|i| i.endpoint).unwrap_or_default();
                for endpoint in endpoints {
                    let ticket = endpoint.ticket.unwrap_or_default();
                    match index_of(&ticket.ticket, statuses.len()) {
                        Ok(index) if !statuses[index].cancelled => {
                            statuses[index].cancelled = true;
                            if status == CancelStatus::Unspecified {
                                status = CancelStatus::Cancelled;
                            }
                        }
                        _ => status = CancelStatus::NotCancellable,
                    }
                }
                CancelFlightInfoResult {
                    status: status as i32,
                }
                .encode_to_vec()
            }
            Some(StandardAction::RenewFlightEndpoint(request)) => {
                let mut endpoint = request.endpoint.unwrap_or_default();
                let mut ticket = endpoint.ticket.unwrap_or_default();
                let mut statuses = self.statuses.lock().map_err(|_| lock_failed())?;
                let index = index_of(&ticket.ticket, statuses.len())?;
                if statuses[index].cancelled {
                    return Err(FlightError::invalid_argument(format!(
                        "Invalid flight: canceled: {}",
                        String::from_utf8_lossy(&ticket.ticket)
                    )));
                }
                let mut renewed = ticket.ticket.to_vec();
                renewed.extend_from_slice(b": renewed (+ 10 seconds)");
                ticket.ticket = Bytes::from(renewed);
                endpoint.ticket = Some(ticket);
                let expiration = timestamp_in(Duration::from_secs(10));
                endpoint.expiration_time = Some(expiration);
                statuses[index].expiration_time = Some(expiration);
                endpoint.encode_to_vec()
            }
            _ => {
                return Err(FlightError::invalid_argument(format!(
                    "Unknown action: {}",
                    action.r#type
                )))
            }
        };
        Ok(action_results(vec![Bytes::from(body)]))
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        let offered: Vec<Result<ActionType>> = actions::standard_action_types()
            .into_iter()
            .filter(|a| {
                a.r#type == actions::CANCEL_FLIGHT_INFO
                    || a.r#type == actions::RENEW_FLIGHT_ENDPOINT
            })
            .map(Ok)
            .collect();
        Ok(Box::pin(futures::stream::iter(offered)))
    }
}

fn timestamp_key(t: &prost_types::Timestamp) -> (i64, i32) {
    (t.seconds, t.nanos)
}

impl ExpirationTime {
    async fn do_get(connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("expiration_time"))
            .await
            .call("GetFlightInfo(expiration_time)")?;
        let mut batches = Vec::new();
        for (i, endpoint) in info.endpoint.iter().enumerate() {
            if i == 0 {
                check(endpoint.expiration_time.is_none(), || {
                    "endpoints[0] must not have an expiration time".to_string()
                })?;
            } else {
                check(endpoint.expiration_time.is_some(), || {
                    format!("endpoints[{i}] must have an expiration time")
                })?;
            }
            let ticket = endpoint.ticket.clone().unwrap_or_default();
            batches.extend(read_ticket(&client, ticket).await?);
        }
        let got = concat(&schema(), &batches)?;
        let expected = numbers(vec![0, 1, 2]).arrow("expected data")?;
        check(got == expected, || {
            format!("read data is not the expected data\nexpected: {expected:?}\nactual: {got:?}")
        })
    }

    async fn list_actions(connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let mut types: Vec<String> = client
            .list_actions()
            .await
            .call("ListActions")?
            .into_iter()
            .map(|a| a.r#type)
            .collect();
        types.sort();
        let expected = [actions::CANCEL_FLIGHT_INFO, actions::RENEW_FLIGHT_ENDPOINT];
        check(types == expected, || {
            format!("invalid ListActions response: expected {expected:?}, got {types:?}")
        })
    }

    async fn cancel_flight_info(connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("expiration"))
            .await
            .call("GetFlightInfo(expiration)")?;
        let result = client
            .cancel_flight_info(info.clone())
            .await
            .call("CancelFlightInfo")?;
        check(result.status == CancelStatus::Cancelled as i32, || {
            format!("CancelFlightInfo must return CANCEL_STATUS_CANCELLED, got {result:?}")
        })?;
        for endpoint in &info.endpoint {
            let ticket = endpoint.ticket.clone().unwrap_or_default();
            let read: Result<Vec<RecordBatch>> =
                async { client.do_get(ticket.clone()).await?.try_collect().await }.await;
            if let Ok(batches) = read {
                return Err(Failure::Check(format!(
                    "DoGet {:?} after CancelFlightInfo must fail, got {} batches",
                    String::from_utf8_lossy(&ticket.ticket),
                    batches.len()
                )));
            }
        }
        Ok(())
    }

    async fn renew_flight_endpoint(connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let info = client
            .get_flight_info(FlightDescriptor::new_cmd("expiration"))
            .await
            .call("GetFlightInfo(expiration)")?;
        for endpoint in &info.endpoint {
            let Some(expiration) = endpoint.expiration_time else {
                continue;
            };
            let renewed = client
                .renew_flight_endpoint(endpoint.clone())
                .await
                .call("RenewFlightEndpoint")?;
            let renewed_expiration = renewed.expiration_time.ok_or_else(|| {
                Failure::Check(format!(
                    "the renewed endpoint must have an expiration time: {renewed:?}"
                ))
            })?;
            check(
                timestamp_key(&renewed_expiration) > timestamp_key(&expiration),
                || {
                    format!(
                        "the renewed endpoint must expire later\noriginal: {endpoint:?}\nrenewed: {renewed:?}"
                    )
                },
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl Scenario for ExpirationTime {
    fn name(&self) -> &'static str {
        match self {
            ExpirationTime::DoGet => "expiration_time:do_get",
            ExpirationTime::ListActions => "expiration_time:list_actions",
            ExpirationTime::CancelFlightInfo => "expiration_time:cancel_flight_info",
            ExpirationTime::RenewFlightEndpoint => "expiration_time:renew_flight_endpoint",
        }
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(ExpiringService::default())
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        match self {
            ExpirationTime::DoGet => Self::do_get(connector).await,
            ExpirationTime::ListActions => Self::list_actions(connector).await,
            ExpirationTime::CancelFlightInfo => Self::cancel_flight_info(connector).await,
            ExpirationTime::RenewFlightEndpoint => Self::renew_flight_endpoint(connector).await,
        }
    }
}
