//! Authentication, transport-neutral: the server's [`ServerAuthHandler`] runs the Handshake and
//! validates every later call's credentials in the [`Dispatcher`](crate::Dispatcher), before the
//! service sees it; calls without valid credentials end with `UNAUTHENTICATED`.
//!
//! [`BasicAuthenticator`] is a ready handler speaking both conventions existing Flight clients
//! use:
//! - **Basic → Bearer** (pyarrow `authenticate_basic_token`): the Handshake carries
//!   `authorization: Basic base64(user:password)`; the answer carries
//!   `authorization: Bearer <token>`, which the client sends on later calls.
//! - **Handshake tokens** (pyarrow `authenticate(handler)`, Arrow's `auth:basic_proto`): the
//!   Handshake payload is a serialized `BasicAuth`; the answer's payload is a token, which the
//!   client sends on later calls in the binary header `auth-token-bin`.

use crate::call::FlightStream;
use crate::context::CallContext;
use crate::error::{FlightError, Result};
use crate::proto::{BasicAuth, HandshakeRequest, HandshakeResponse};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The binary header Arrow's handshake-token convention carries the token in.
pub const AUTH_TOKEN_HEADER: &str = "auth-token-bin";
/// The HTTP authorization header (Basic on Handshake, Bearer afterwards).
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Server-side authentication.
#[async_trait]
pub trait ServerAuthHandler: Send + Sync + 'static {
    /// Serves the Handshake RPC: reads the client's messages, answers, and may set response
    /// headers on `ctx` (e.g. a bearer token).
    async fn handshake(
        &self,
        ctx: &CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>>;

    /// Validates the credentials of any other call (from `ctx.headers()`) and returns the peer's
    /// identity. An error (normally `UNAUTHENTICATED`) rejects the call before the service.
    async fn authenticate(&self, ctx: &CallContext) -> Result<String>;
}

/// Decides whether a user name and password are valid.
pub trait PasswordCheck: Fn(&str, &str) -> bool + Send + Sync + 'static {}
impl<F: Fn(&str, &str) -> bool + Send + Sync + 'static> PasswordCheck for F {}

/// Username/password authentication issuing random tokens; see the module docs for the two
/// conventions it speaks.
pub struct BasicAuthenticator {
    check: Box<dyn PasswordCheck>,
    tokens: RwLock<HashMap<Bytes, String>>,
}

impl BasicAuthenticator {
    /// An authenticator accepting the users for which `check(user, password)` is true.
    pub fn new(check: impl PasswordCheck) -> Arc<Self> {
        Arc::new(BasicAuthenticator {
            check: Box::new(check),
            tokens: RwLock::new(HashMap::new()),
        })
    }

    /// An authenticator with a fixed table of users and passwords.
    pub fn with_users<I, U, P>(users: I) -> Arc<Self>
    where
        I: IntoIterator<Item = (U, P)>,
        U: Into<String>,
        P: Into<String>,
    {
        let table: HashMap<String, String> = users
            .into_iter()
            .map(|(u, p)| (u.into(), p.into()))
            .collect();
        Self::new(move |user: &str, password: &str| table.get(user).is_some_and(|p| p == password))
    }

    fn issue(&self, user: &str) -> Result<Bytes> {
        let token = new_token()?;
        self.tokens
            .write()
            .map_err(|_| FlightError::internal("token table lock poisoned"))?
            .insert(token.clone(), user.to_string());
        Ok(token)
    }

    fn login(&self, user: &str, password: &str) -> Result<Bytes> {
        if !(self.check)(user, password) {
            return Err(FlightError::unauthenticated(format!(
                "invalid user name or password for {user:?}"
            )));
        }
        self.issue(user)
    }
}

/// 32 random bytes, hex-encoded (so the token is also a valid text header value).
fn new_token() -> Result<Bytes> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw)
        .map_err(|e| FlightError::internal(format!("no randomness for a token: {e}")))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Bytes::from(hex))
}

/// Decodes base64 as clients send it: standard or URL-safe alphabet, padded or not.
pub fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let trimmed = text.trim().trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
}

/// `(user, password)` from an `authorization: Basic …` value.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(decode_base64_lenient(rest)?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The token of an `authorization: Bearer …` value.
pub fn parse_bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

#[async_trait]
impl ServerAuthHandler for BasicAuthenticator {
    async fn handshake(
        &self,
        ctx: &CallContext,
        requests: FlightStream<HandshakeRequest>,
    ) -> Result<FlightStream<HandshakeResponse>> {
        if let Some(value) = ctx.headers().get_str(AUTHORIZATION_HEADER) {
            let (user, password) = parse_basic(value).ok_or_else(|| {
                FlightError::unauthenticated("authorization header is not valid Basic credentials")
            })?;
            let token = self.login(&user, &password)?;
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(&token);
            ctx.append_response_header(AUTHORIZATION_HEADER, bearer);
            ctx.set_identity(user);
            // Drain the client's messages so the call completes cleanly.
            let _: Vec<HandshakeRequest> = requests.try_collect().await?;
            return Ok(Box::pin(futures::stream::empty()));
        }
        // Answer the first message at once: Arrow C++ clients write their payload and wait for
        // the reply before closing their side, so waiting for the end of the request stream
        // would deadlock. Later messages, if any, are read (and ignored) after the reply.
        let mut requests = requests;
        let request = requests.try_next().await?.ok_or_else(|| {
            FlightError::unauthenticated("handshake carried neither credentials nor a payload")
        })?;
        let basic = BasicAuth::decode(request.payload.clone()).map_err(|_| {
            FlightError::unauthenticated("handshake payload is not a BasicAuth message")
        })?;
        let token = self.login(&basic.username, &basic.password)?;
        ctx.set_identity(basic.username);
        let reply = HandshakeResponse {
            protocol_version: request.protocol_version,
            payload: token,
        };
        let drain = futures::stream::unfold(requests, |mut rest| async move {
            match rest.try_next().await {
                Ok(Some(_)) => Some((None, rest)),
                Ok(None) => None,
                Err(err) => Some((Some(Err(err)), rest)),
            }
        })
        .filter_map(|item| async move { item });
        Ok(Box::pin(futures::stream::iter([Ok(reply)]).chain(drain)))
    }

    async fn authenticate(&self, ctx: &CallContext) -> Result<String> {
        let headers = ctx.headers();
        let token = headers
            .get(AUTH_TOKEN_HEADER)
            .cloned()
            .or_else(|| {
                headers
                    .get_str(AUTHORIZATION_HEADER)
                    .and_then(parse_bearer)
                    .map(|t| Bytes::copy_from_slice(t.as_bytes()))
            })
            .ok_or_else(|| {
                FlightError::unauthenticated(
                    "no credentials: authenticate with Handshake first, then send the token",
                )
            })?;
        self.tokens
            .read()
            .map_err(|_| FlightError::internal("token table lock poisoned"))?
            .get(&token)
            .cloned()
            .ok_or_else(|| FlightError::unauthenticated("invalid or expired token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_values_decode_leniently() {
        // "user:pa:ss" with and without padding, and the URL-safe alphabet.
        for value in [
            "Basic dXNlcjpwYTpzcw==",
            "basic dXNlcjpwYTpzcw",
            "Basic  dXNlcjpwYTpzcw= ",
        ] {
            assert_eq!(
                parse_basic(value),
                Some(("user".to_string(), "pa:ss".to_string())),
                "{value}"
            );
        }
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_bearer("Bearer  tok "), Some("tok"));
        assert_eq!(parse_bearer("Basic tok"), None);
    }
}
