//! Sessions that belong to their client: the `arrow_flight_session_id` cookie, as Arrow C++'s
//! server session middleware and its clients' cookie middleware use it.
//!
//! On the server, [`SessionMiddleware`] reads the cookie of every call and hands the handler the
//! session it names. A handler reaches the call's session through [`Session::current`] or
//! [`Session::get_or_create`]; a session is created only when a handler asks for one (its
//! `set-cookie` goes out with the call's response headers), so one-shot clients cost nothing.
//! [`set_session_options`], [`get_session_options`] and [`close_session`] serve the three
//! standard session actions on top of it, for any service.
//!
//! On the client, [`CookieMiddleware`] keeps the cookies servers set and sends them back on every
//! call. Every [`FlightClient`](crate::FlightClient) has one built in, so it keeps its session
//! without being told to.
//!
//! ```no_run
//! # async fn demo(service: impl polyflight_core::FlightService, registry: polyflight_core::Registry) -> polyflight_core::Result<()> {
//! use polyflight_core::session::SessionMiddleware;
//! let server = polyflight_core::ServerBuilder::new(service, registry)
//!     .middleware(SessionMiddleware::new())
//!     .listen("grpc://127.0.0.1:8815")
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Server-side bounds: at most [`SessionMiddleware::max_sessions`] sessions (the least recently
//! used one gives way to a new one) and an idle timeout after which a session is forgotten. A
//! call that presents an unknown or expired session id gets INVALID_ARGUMENT as soon as its
//! handler asks for the session (its client must not silently lose the options it set), with a
//! `Max-Age=0` cookie so the client's next call starts afresh; calls that never touch the
//! session are served as usual. (Arrow C++ refuses such a call outright, whatever it is.)
//!
//! [`ServerBuilder`](crate::ServerBuilder) installs a [`SessionMiddleware`] unless told not to.

use crate::call::FlightMethod;
use crate::context::CallContext;
use crate::error::{FlightError, Result};
use crate::headers::Headers;
use crate::middleware::{ClientMiddleware, ServerMiddleware};
use crate::proto::{
    close_session_result, set_session_options_result, CloseSessionResult, GetSessionOptionsResult,
    SessionOptionValue, SetSessionOptionsRequest, SetSessionOptionsResult,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "arrow_flight_session_id";

/// Sessions kept at most, by default.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

/// How long an unused session is kept, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// One client's session: its options, shared by every call that presents its id.
#[derive(Clone)]
pub struct Session {
    id: Arc<str>,
    state: Arc<Mutex<SessionState>>,
}

struct SessionState {
    options: HashMap<String, SessionOptionValue>,
    last_used: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the id is a credential: never print it
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Session {
    fn new(id: String) -> Session {
        Session {
            id: id.into(),
            state: Arc::new(Mutex::new(SessionState {
                options: HashMap::new(),
                last_used: Instant::now(),
            })),
        }
    }

    /// The session the call's client presented, or the one created earlier in this call.
    /// `None` without [`SessionMiddleware`] or when the client has no session yet.
    pub fn current(ctx: &CallContext) -> Option<Session> {
        ctx.extension::<CallSession>()?.current()
    }

    /// The call's session, created if its client has none yet; the new session's cookie is
    /// added to the call's response headers. UNIMPLEMENTED if the server runs no
    /// [`SessionMiddleware`].
    pub fn get_or_create(ctx: &CallContext) -> Result<Session> {
        let call = ctx
            .extension::<CallSession>()
            .ok_or_else(|| FlightError::unimplemented("this server keeps no sessions"))?;
        call.get_or_create(ctx)
    }

    /// The session's id (the cookie's value). Treat it as a secret: it is the session's only
    /// credential.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The value of option `name`.
    pub fn get(&self, name: &str) -> Option<SessionOptionValue> {
        self.state.lock().ok()?.options.get(name).cloned()
    }

    /// All options.
    pub fn options(&self) -> HashMap<String, SessionOptionValue> {
        self.state
            .lock()
            .map(|state| state.options.clone())
            .unwrap_or_default()
    }

    /// Sets option `name`; a value without an `option_value` erases the option.
    pub fn set(&self, name: impl Into<String>, value: SessionOptionValue) {
        if let Ok(mut state) = self.state.lock() {
            let name = name.into();
            if value.option_value.is_none() {
                state.options.remove(&name);
            } else {
                state.options.insert(name, value);
            }
        }
    }

    fn touch(&self, now: Instant) {
        if let Ok(mut state) = self.state.lock() {
            state.last_used = now;
        }
    }

    fn last_used(&self) -> Instant {
        self.state
            .lock()
            .map(|state| state.last_used)
            .unwrap_or_else(|_| Instant::now())
    }
}

/// The sessions of one server.
struct Store {
    sessions: Mutex<HashMap<Arc<str>, Session>>,
    max_sessions: usize,
    idle_timeout: Duration,
}

impl Store {
    fn find(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().ok()?;
        let session = sessions.get(id)?.clone();
        if now.duration_since(session.last_used()) > self.idle_timeout {
            sessions.remove(id);
            return None;
        }
        session.touch(now);
        Some(session)
    }

    fn create(&self) -> Result<Session> {
        let now = Instant::now();
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| FlightError::internal("the session store is poisoned"))?;
        if sessions.len() >= self.max_sessions {
            let timeout = self.idle_timeout;
            sessions.retain(|_, s| now.duration_since(s.last_used()) <= timeout);
        }
        if sessions.len() >= self.max_sessions {
            let oldest = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used())
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        loop {
            let session = Session::new(new_session_id()?);
            if !sessions.contains_key(&session.id) {
                sessions.insert(session.id.clone(), session.clone());
                return Ok(session);
            }
        }
    }

    fn remove(&self, id: &str) -> bool {
        self.sessions
            .lock()
            .map(|mut sessions| sessions.remove(id).is_some())
            .unwrap_or(false)
    }
}

/// 128 random bits, in hex: unguessable, so one client cannot take over another's session.
fn new_session_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| FlightError::internal(format!("no randomness for a session id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a call knows of its session, attached to its context by the middleware.
#[derive(Clone)]
struct CallSession {
    store: Arc<Store>,
    session: Arc<Mutex<Option<Session>>>,
    /// The client presented this id, which names no session (unknown, expired or closed).
    stale: Option<Arc<str>>,
}

impl CallSession {
    fn current(&self) -> Option<Session> {
        self.session.lock().ok()?.clone()
    }

    /// INVALID_ARGUMENT if the client presented a stale id; tells it to drop the cookie.
    fn check_stale(&self, ctx: &CallContext) -> Result<()> {
        let Some(id) = &self.stale else {
            return Ok(());
        };
        let dropped = format!("{SESSION_COOKIE}={id}; Max-Age=0");
        let headers = ctx.response_headers();
        if !headers
            .get_all("set-cookie")
            .any(|v| v.as_ref() == dropped.as_bytes())
        {
            ctx.append_response_header("set-cookie", dropped);
        }
        Err(FlightError::invalid_argument(format!(
            "invalid or expired {SESSION_COOKIE} cookie"
        )))
    }

    fn get_or_create(&self, ctx: &CallContext) -> Result<Session> {
        self.check_stale(ctx)?;
        let mut slot = self
            .session
            .lock()
            .map_err(|_| FlightError::internal("the call's session is poisoned"))?;
        if let Some(session) = slot.as_ref() {
            return Ok(session.clone());
        }
        let session = self.store.create()?;
        ctx.append_response_header("set-cookie", format!("{SESSION_COOKIE}={}", session.id));
        *slot = Some(session.clone());
        Ok(session)
    }

    fn close(&self, ctx: &CallContext) -> Result<()> {
        self.check_stale(ctx)?;
        let mut slot = self
            .session
            .lock()
            .map_err(|_| FlightError::internal("the call's session is poisoned"))?;
        let Some(session) = slot.take() else {
            return Err(FlightError::invalid_argument(
                "there is no session to close",
            ));
        };
        self.store.remove(&session.id);
        ctx.append_response_header(
            "set-cookie",
            format!("{SESSION_COOKIE}={}; Max-Age=0", session.id),
        );
        Ok(())
    }
}

/// Server middleware: cookie sessions. Add it with
/// [`ServerBuilder::middleware`](crate::ServerBuilder::middleware); clones share their sessions.
#[derive(Clone)]
pub struct SessionMiddleware {
    store: Arc<Store>,
}

impl Default for SessionMiddleware {
    fn default() -> Self {
        SessionMiddleware::new()
    }
}

impl std::fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("sessions", &self.len())
            .field("max_sessions", &self.store.max_sessions)
            .field("idle_timeout", &self.store.idle_timeout)
            .finish()
    }
}

impl SessionMiddleware {
    /// Sessions with the default bounds ([`DEFAULT_MAX_SESSIONS`], [`DEFAULT_IDLE_TIMEOUT`]).
    pub fn new() -> Self {
        SessionMiddleware::with_limits(DEFAULT_MAX_SESSIONS, DEFAULT_IDLE_TIMEOUT)
    }

    /// Sessions with these bounds: at most `max_sessions` (at least one) at a time, each
    /// forgotten after `idle_timeout` without a call.
    pub fn with_limits(max_sessions: usize, idle_timeout: Duration) -> Self {
        SessionMiddleware {
            store: Arc::new(Store {
                sessions: Mutex::new(HashMap::new()),
                max_sessions: max_sessions.max(1),
                idle_timeout,
            }),
        }
    }

    /// The most sessions kept at a time.
    pub fn max_sessions(&self) -> usize {
        self.store.max_sessions
    }

    /// Sessions currently kept.
    pub fn len(&self) -> usize {
        self.store.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    /// True when no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ServerMiddleware for SessionMiddleware {
    async fn call_started(&self, ctx: &CallContext) -> Result<()> {
        let (session, stale) = match session_cookie(ctx.headers())? {
            None => (None, None),
            Some(id) => match self.store.find(&id) {
                Some(session) => (Some(session), None),
                None => (None, Some(Arc::from(id))),
            },
        };
        ctx.insert_extension(CallSession {
            store: self.store.clone(),
            session: Arc::new(Mutex::new(session)),
            stale,
        });
        Ok(())
    }
}

/// The session id among the request's `cookie` headers; INVALID_ARGUMENT if it is empty.
fn session_cookie(headers: &Headers) -> Result<Option<String>> {
    for header in headers.get_all("cookie") {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for (name, value) in parse_cookies(text) {
            if name == SESSION_COOKIE {
                if value.is_empty() {
                    return Err(FlightError::invalid_argument(format!(
                        "empty {SESSION_COOKIE} cookie"
                    )));
                }
                return Ok(Some(value.to_string()));
            }
        }
    }
    Ok(None)
}

/// `name=value` pairs of a `cookie` header; pairs without `=` or a name are skipped, and one
/// pair of double quotes around a value is removed.
fn parse_cookies(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split(';').filter_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        let name = name.trim();
        if name.is_empty() {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some((name, value))
    })
}

/// Serves SetSessionOptions: each option passes `validate` (which returns the error for a
/// name or value it refuses) and is set in the call's session, created if needed; an option
/// without a value erases it. An empty name is always INVALID_NAME.
pub fn set_session_options(
    ctx: &CallContext,
    request: SetSessionOptionsRequest,
    validate: impl Fn(&str, &SessionOptionValue) -> Option<set_session_options_result::ErrorValue>,
) -> Result<SetSessionOptionsResult> {
    let session = Session::get_or_create(ctx)?;
    let mut errors = HashMap::new();
    for (name, value) in request.session_options {
        let refused = if name.is_empty() {
            Some(set_session_options_result::ErrorValue::InvalidName)
        } else {
            validate(&name, &value)
        };
        match refused {
            Some(error) => {
                errors.insert(
                    name,
                    set_session_options_result::Error {
                        value: error as i32,
                    },
                );
            }
            None => session.set(name, value),
        }
    }
    Ok(SetSessionOptionsResult { errors })
}

/// Serves GetSessionOptions: the options of the call's session (none if it has no session;
/// asking creates none).
pub fn get_session_options(ctx: &CallContext) -> Result<GetSessionOptionsResult> {
    let call = ctx
        .extension::<CallSession>()
        .ok_or_else(|| FlightError::unimplemented("this server keeps no sessions"))?;
    call.check_stale(ctx)?;
    Ok(GetSessionOptionsResult {
        session_options: call.current().map(|s| s.options()).unwrap_or_default(),
    })
}

/// Serves CloseSession: ends the call's session and tells the client to drop its cookie
/// (`Max-Age=0`). INVALID_ARGUMENT if the call has no session.
pub fn close_session(ctx: &CallContext) -> Result<CloseSessionResult> {
    let call = ctx
        .extension::<CallSession>()
        .ok_or_else(|| FlightError::unimplemented("this server keeps no sessions"))?;
    call.close(ctx)?;
    Ok(CloseSessionResult {
        status: close_session_result::Status::Closed as i32,
    })
}

/// Client middleware: keeps the cookies servers set (`set-cookie` in response headers or
/// trailers) and sends them on every call (`cookie`). A cookie with `Max-Age=0` (or a negative
/// one) is dropped. Clones share their cookies; one per server is the intended use.
#[derive(Clone, Default)]
pub struct CookieMiddleware {
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for CookieMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .cookies
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("CookieMiddleware")
            .field("cookies", &names)
            .finish()
    }
}

/// Most cookies a client keeps; a server cannot make it grow beyond that.
const MAX_COOKIES: usize = 64;
/// Longest `set-cookie` value taken.
const MAX_COOKIE_LEN: usize = 4096;

impl CookieMiddleware {
    /// No cookies yet.
    pub fn new() -> Self {
        CookieMiddleware::default()
    }

    /// The value of cookie `name`, if the server set it.
    pub fn get(&self, name: &str) -> Option<String> {
        self.cookies.lock().ok()?.get(name).cloned()
    }

    fn take(&self, headers: &Headers) {
        let Ok(mut cookies) = self.cookies.lock() else {
            return;
        };
        for header in headers.get_all("set-cookie") {
            if header.len() > MAX_COOKIE_LEN {
                continue;
            }
            let Ok(text) = std::str::from_utf8(header) else {
                continue;
            };
            let mut parts = text.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let expired = parts.any(|attribute| {
                let Some((key, value)) = attribute.trim().split_once('=') else {
                    return false;
                };
                key.trim().eq_ignore_ascii_case("max-age")
                    && value.trim().parse::<i64>().is_ok_and(|age| age <= 0)
            });
            if expired {
                cookies.remove(name);
            } else if cookies.len() < MAX_COOKIES || cookies.contains_key(name) {
                cookies.insert(name.to_string(), value.trim().to_string());
            }
        }
    }
}

impl ClientMiddleware for CookieMiddleware {
    fn call_started(&self, _method: FlightMethod, headers: &mut Headers) {
        let Ok(cookies) = self.cookies.lock() else {
            return;
        };
        if cookies.is_empty() {
            return;
        }
        let line: Vec<String> = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        headers.append("cookie", line.join("; "));
    }

    fn received_headers(&self, _method: FlightMethod, headers: &Headers) {
        self.take(headers);
    }

    fn call_ended(
        &self,
        _method: FlightMethod,
        _status: &std::result::Result<(), FlightError>,
        trailers: &Headers,
    ) {
        // a gRPC error before any message comes as trailers only; its headers are there
        self.take(trailers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::PeerInfo;
    use crate::proto::session_option_value::OptionValue;

    fn ctx(headers: Headers) -> CallContext {
        CallContext::new(FlightMethod::DoAction, PeerInfo::default(), headers, None)
    }

    fn value(text: &str) -> SessionOptionValue {
        SessionOptionValue {
            option_value: Some(OptionValue::StringValue(text.into())),
        }
    }

    fn cookie_of(ctx: &CallContext) -> Option<String> {
        ctx.response_headers()
            .get("set-cookie")
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    async fn start(middleware: &SessionMiddleware, headers: Headers) -> Result<CallContext> {
        let ctx = ctx(headers);
        middleware.call_started(&ctx).await?;
        Ok(ctx)
    }

    #[tokio::test]
    async fn a_session_is_created_on_demand_and_found_by_its_cookie() {
        let sessions = SessionMiddleware::new();
        let first = start(&sessions, Headers::new()).await.unwrap();
        assert!(Session::current(&first).is_none());
        assert!(
            sessions.is_empty(),
            "nothing is created for a call that does not ask"
        );
        let session = Session::get_or_create(&first).unwrap();
        session.set("a", value("1"));
        let cookie = cookie_of(&first).unwrap();
        assert_eq!(cookie, format!("{SESSION_COOKIE}={}", session.id()));
        assert_eq!(session.id().len(), 32);

        let headers = Headers::new().with("cookie", format!("other=x; {cookie}"));
        let second = start(&sessions, headers).await.unwrap();
        let again = Session::get_or_create(&second).unwrap();
        assert_eq!(again.get("a"), Some(value("1")));
        assert!(
            cookie_of(&second).is_none(),
            "a known session sets no cookie"
        );

        // another client (no cookie) does not see it
        let stranger = start(&sessions, Headers::new()).await.unwrap();
        assert!(get_session_options(&stranger)
            .unwrap()
            .session_options
            .is_empty());
    }

    #[tokio::test]
    async fn unknown_ids_fail_only_calls_that_use_the_session() {
        let sessions = SessionMiddleware::new();
        let empty = Headers::new().with("cookie", format!("{SESSION_COOKIE}="));
        let error = start(&sessions, empty).await.unwrap_err();
        assert_eq!(error.code(), crate::FlightCode::InvalidArgument);

        let stale = || Headers::new().with("cookie", format!("{SESSION_COOKIE}=0123"));
        // a call that does not touch the session is served
        let ctx = start(&sessions, stale()).await.unwrap();
        assert!(Session::current(&ctx).is_none());
        // one that does is refused, and told to drop the cookie
        for refused in [
            Session::get_or_create(&ctx).map(|_| ()),
            get_session_options(&ctx).map(|_| ()),
            close_session(&ctx).map(|_| ()),
        ] {
            assert_eq!(
                refused.unwrap_err().code(),
                crate::FlightCode::InvalidArgument
            );
        }
        let dropped: Vec<_> = ctx
            .response_headers()
            .get_all("set-cookie")
            .cloned()
            .collect();
        assert_eq!(dropped.len(), 1);
        assert_eq!(
            dropped[0].as_ref(),
            format!("{SESSION_COOKIE}=0123; Max-Age=0").as_bytes()
        );
        assert!(sessions.is_empty());
    }

    #[tokio::test]
    async fn options_are_validated_erased_and_closed() {
        let sessions = SessionMiddleware::new();
        let ctx = start(&sessions, Headers::new()).await.unwrap();
        let request = SetSessionOptionsRequest {
            session_options: HashMap::from([
                ("keep".to_string(), value("1")),
                ("bad".to_string(), value("2")),
                (String::new(), value("3")),
            ]),
        };
        let result = set_session_options(&ctx, request, |name, _| {
            (name == "bad").then_some(set_session_options_result::ErrorValue::InvalidValue)
        })
        .unwrap();
        assert_eq!(result.errors.len(), 2);
        let options = get_session_options(&ctx).unwrap().session_options;
        assert_eq!(options.keys().collect::<Vec<_>>(), vec!["keep"]);
        let erase = SetSessionOptionsRequest {
            session_options: HashMap::from([(
                "keep".to_string(),
                SessionOptionValue { option_value: None },
            )]),
        };
        set_session_options(&ctx, erase, |_, _| None).unwrap();
        assert!(get_session_options(&ctx)
            .unwrap()
            .session_options
            .is_empty());

        let id = Session::current(&ctx).unwrap().id().to_string();
        close_session(&ctx).unwrap();
        let headers = ctx.response_headers();
        let cookies: Vec<_> = headers.get_all("set-cookie").collect();
        assert_eq!(
            cookies.last().map(|v| v.as_ref()),
            Some(format!("{SESSION_COOKIE}={id}; Max-Age=0").as_bytes())
        );
        assert!(sessions.is_empty());
        assert!(close_session(&ctx).is_err(), "nothing left to close");
    }

    #[tokio::test]
    async fn the_store_is_bounded_and_forgets_idle_sessions() {
        let sessions = SessionMiddleware::with_limits(2, Duration::from_secs(3600));
        let mut ids = Vec::new();
        for _ in 0..3 {
            let ctx = start(&sessions, Headers::new()).await.unwrap();
            ids.push(Session::get_or_create(&ctx).unwrap().id().to_string());
        }
        assert_eq!(sessions.len(), 2);
        // the least recently used one gave way
        let oldest = Headers::new().with("cookie", format!("{SESSION_COOKIE}={}", ids[0]));
        let ctx = start(&sessions, oldest).await.unwrap();
        assert!(Session::get_or_create(&ctx).is_err());
        let newest = Headers::new().with("cookie", format!("{SESSION_COOKIE}={}", ids[2]));
        let ctx = start(&sessions, newest).await.unwrap();
        assert_eq!(Session::current(&ctx).unwrap().id(), ids[2]);

        let sessions = SessionMiddleware::with_limits(10, Duration::ZERO);
        let ctx = start(&sessions, Headers::new()).await.unwrap();
        let id = Session::get_or_create(&ctx).unwrap().id().to_string();
        std::thread::sleep(Duration::from_millis(2));
        let cookie = Headers::new().with("cookie", format!("{SESSION_COOKIE}={id}"));
        let ctx = start(&sessions, cookie).await.unwrap();
        assert!(Session::current(&ctx).is_none(), "expired");
        assert!(sessions.is_empty());
    }

    #[test]
    fn without_the_middleware_there_are_no_sessions() {
        let ctx = ctx(Headers::new());
        assert!(Session::current(&ctx).is_none());
        assert_eq!(
            Session::get_or_create(&ctx).unwrap_err().code(),
            crate::FlightCode::Unimplemented
        );
    }

    #[test]
    fn the_cookie_middleware_keeps_and_drops_cookies() {
        let cookies = CookieMiddleware::new();
        let mut headers = Headers::new();
        cookies.call_started(FlightMethod::DoAction, &mut headers);
        assert!(headers.get("cookie").is_none());
        cookies.received_headers(
            FlightMethod::DoAction,
            &Headers::new()
                .with("set-cookie", format!("{SESSION_COOKIE}=abc"))
                .with("set-cookie", "other=\"q\"; Path=/"),
        );
        let mut headers = Headers::new();
        cookies.call_started(FlightMethod::DoGet, &mut headers);
        assert_eq!(
            headers.get("cookie").map(|v| v.as_ref()),
            Some(format!("{SESSION_COOKIE}=abc; other=\"q\"").as_bytes())
        );
        cookies.call_ended(
            FlightMethod::DoAction,
            &Ok(()),
            &Headers::new().with("set-cookie", format!("{SESSION_COOKIE}=abc; Max-Age=0")),
        );
        assert_eq!(cookies.get(SESSION_COOKIE), None);
        assert_eq!(cookies.get("other").as_deref(), Some("\"q\""));
    }

    #[test]
    fn cookie_headers_parse_like_arrow_cpp() {
        let pairs: Vec<_> = parse_cookies("a=1; b=\"2\"; junk; =x; c=").collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "2"), ("c", "")]);
    }
}
