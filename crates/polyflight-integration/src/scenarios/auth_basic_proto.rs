//! `auth:basic_proto`: authentication by Handshake with a serialized `BasicAuth` payload.
//!
//! The server accepts user `arrow` with password `flight` and answers the Handshake with the
//! token `arrow`; every other call must carry that token in `auth-token-bin`, and its peer
//! identity is then `arrow`. DoAction answers with one result: the caller's identity. The client
//! checks that an unauthenticated DoAction fails with `UNAUTHENTICATED`, then authenticates and
//! expects exactly `["arrow"]`.

use super::{action_results, Scenario, ServerParts};
use crate::failure::{check, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use polyflight::auth::AUTH_TOKEN_HEADER;
use polyflight::proto::Result as ActionResult;
use polyflight::proto::{Action, BasicAuth, HandshakeRequest, HandshakeResponse};
use polyflight::{
    CallContext, FlightCode, FlightError, FlightService, FlightStream, Result, ServerAuthHandler,
};
use prost::Message;
use std::sync::Arc;

const USERNAME: &str = "arrow";
const PASSWORD: &str = "flight";

/// The scenario.
pub struct AuthBasicProto;

/// Accepts one user; the token is the user name, as in Arrow's test handler.
struct SingleUserAuth;

#[async_trait]
impl ServerAuthHandler for SingleUserAuth {
    async fn handshake(
        &self,
        ctx: &CallContext,
        mut requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        // Answer the first message at once: the client waits for the reply before it closes
        // its side of the stream.
        let request = requests
            .try_next()
            .await?
            .ok_or_else(|| FlightError::unauthenticated("the handshake carried no payload"))?;
        let basic = BasicAuth::decode(request.payload.clone()).map_err(|e| {
            FlightError::unauthenticated(format!("handshake payload is not a BasicAuth: {e}"))
        })?;
        if basic.username != USERNAME || basic.password != PASSWORD {
            return Err(FlightError::unauthenticated(format!(
                "invalid user name or password for {:?}",
                basic.username
            )));
        }
        ctx.set_identity(basic.username.clone());
        let reply = HandshakeResponse {
            protocol_version: request.protocol_version,
            payload: Bytes::from(basic.username),
        };
        Ok(Box::pin(futures::stream::iter([Ok(reply)])))
    }

    async fn authenticate(&self, ctx: &CallContext) -> Result<String> {
        match ctx.headers().get(AUTH_TOKEN_HEADER) {
            Some(token) if token.as_ref() == USERNAME.as_bytes() => Ok(USERNAME.to_string()),
            Some(_) => Err(FlightError::unauthenticated("invalid token")),
            None => Err(FlightError::unauthenticated(
                "no token: authenticate with Handshake first",
            )),
        }
    }
}

/// DoAction answers with the caller's identity.
struct IdentityService;

#[async_trait]
impl FlightService for IdentityService {
    async fn do_action(
        &self,
        ctx: CallContext,
        _action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let identity = ctx.identity().unwrap_or_default();
        Ok(action_results(vec![Bytes::from(identity)]))
    }
}

#[async_trait]
impl Scenario for AuthBasicProto {
    fn name(&self) -> &'static str {
        "auth:basic_proto"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(IdentityService).configure(|b| b.auth(Arc::new(SingleUserAuth)))
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let unauthenticated: Result<Vec<Bytes>> = async {
            client
                .do_action(Action::default())
                .await?
                .try_collect()
                .await
        }
        .await;
        match unauthenticated {
            Err(err) if err.code() == FlightCode::Unauthenticated => {}
            Err(err) => {
                return Err(Failure::Check(format!(
                    "DoAction without authentication: expected UNAUTHENTICATED, got {err}"
                )))
            }
            Ok(results) => {
                return Err(Failure::Check(format!(
                    "DoAction without authentication: expected UNAUTHENTICATED, got results {results:?}"
                )))
            }
        }
        let authenticated = client
            .authenticate_basic_proto(USERNAME, PASSWORD)
            .await
            .call("Handshake")?;
        let results: Vec<Bytes> = authenticated
            .do_action(Action::default())
            .await
            .call("DoAction after Handshake")?
            .try_collect()
            .await
            .call("DoAction after Handshake")?;
        check(results == [Bytes::from_static(USERNAME.as_bytes())], || {
            format!("DoAction after Handshake: expected [\"arrow\"], got {results:?}")
        })
    }
}
