//! From a URI and the connection flags to a ready [`FlightClient`]: the URI checked against the
//! transports this build has, TLS settings for `grpc+tls`, the connection itself, headers and
//! the timeout on every call, then the login (Basic → Bearer) or the bearer token. Every way this
//! can fail becomes one line that says what to change: an unknown scheme, a server that cannot be
//! reached, a TLS handshake that failed and why, credentials that were refused.

use crate::args::ClientArgs;
use crate::fail::{call_failure, Failure, Outcome};
use polyflight::transports::{read_pem_file, ClientTlsConfig};
use polyflight::{
    CallOptions, ConnectOptions, FlightClient, FlightCode, FlightError, Location, Scheme,
};
use std::io::IsTerminal;
use std::path::Path;

/// A connected, authenticated client and what is needed to explain its failures.
#[derive(Clone)]
pub struct Server {
    pub client: FlightClient,
    /// The URI as the user gave it.
    pub uri: String,
    scheme: Scheme,
    credentials: bool,
}

impl Server {
    /// A failed call as one line naming this server.
    pub fn fail(&self, err: &FlightError) -> Failure {
        let failure = call_failure(err, &self.uri, self.credentials);
        // A plaintext HTTP/2 client talking to a TLS server connects (TCP) and then sees its
        // first call broken: say what is likely.
        let plaintext = matches!(self.scheme, Scheme::Grpc | Scheme::GrpcTcp);
        if plaintext && err.code() == FlightCode::Unavailable && err.message().contains("http2") {
            let message = format!(
                "{}; if the server serves grpc+tls, connect with grpc+tls://",
                failure.message
            );
            return Failure::new(failure.exit, message);
        }
        failure
    }
}

/// The schemes a client of this build can connect to, as the user would type them.
const SCHEMES: &str = "grpc://, grpc+tcp://, grpc+tls://, grpc+unix:// and ucx://";

/// Parses a URI the user gave, in the CLI's words when it is not one polyflight can use.
pub fn parse_uri(uri: &str) -> Outcome<Location> {
    let Some((scheme, _)) = uri.split_once("://") else {
        return Err(Failure::usage(format!(
            "{uri:?} is not a URI: write scheme://host:port, e.g. grpc://127.0.0.1:8815 \
             (schemes: {SCHEMES})"
        )));
    };
    if !scheme.is_empty() && Scheme::parse(scheme).is_none() {
        return Err(Failure::usage(format!(
            "unknown scheme {scheme:?} in {uri}: polyflight speaks {SCHEMES}"
        )));
    }
    let location = Location::parse(uri).map_err(|err| Failure::usage(err.message().to_string()))?;
    if location.is_reuse_connection() {
        return Err(Failure::usage(format!(
            "{uri} names no server: give grpc://, grpc+tls://, grpc+unix:// or ucx://"
        )));
    }
    polyflight::default_registry()
        .factory_for(location.scheme())
        .map_err(|_| {
            Failure::usage(format!(
                "this build of polyflight has no {} transport, needed for {uri}",
                location.scheme()
            ))
        })?;
    Ok(location)
}

/// Connects to `uri` with the flags of `args`, then logs in if asked to.
pub async fn connect(uri: &str, args: &ClientArgs) -> Outcome<Server> {
    let location = parse_uri(uri)?;
    let tls = location.scheme() == Scheme::GrpcTls;
    if !tls {
        let given = [
            ("--tls-ca", args.tls_ca.is_some()),
            ("--tls-cert", args.tls_cert.is_some()),
            ("--tls-server-name", args.tls_server_name.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            return Err(Failure::usage(format!(
                "{flag} is for grpc+tls:// servers, and {uri} is {}://; did you mean grpc+tls://?",
                location.scheme()
            )));
        }
    }
    let mut options = ConnectOptions {
        connect_timeout: args.timeout,
        ..ConnectOptions::default()
    };
    if tls {
        options.extensions.insert(client_tls(args)?);
    }
    let client = polyflight::connect_with_options(uri, options)
        .await
        .map_err(|err| connect_failure(&err, uri, &location))?;

    let mut call = CallOptions::new();
    for (key, value) in &args.headers {
        call = call.header(key, value.clone());
    }
    if let Some(timeout) = args.timeout {
        call = call.timeout(timeout);
    }
    if args.user.is_none() {
        if let Some(token) = &args.token {
            call = call.header("authorization", format!("Bearer {token}"));
        }
    }
    let client = client.with_call_options(call);
    let credentials = args.user.is_some() || args.token.is_some();
    let client = match &args.user {
        None => client,
        Some(user) => {
            let password = password_for(user, args.password.as_deref())?;
            client
                .authenticate_basic(user, &password)
                .await
                .map_err(|err| login_failure(&err, uri, user))?
        }
    };
    Ok(Server {
        client,
        uri: uri.to_string(),
        scheme: location.scheme(),
        credentials,
    })
}

/// The TLS settings of a grpc+tls client from the flags.
fn client_tls(args: &ClientArgs) -> Outcome<ClientTlsConfig> {
    let mut config = match &args.tls_ca {
        Some(ca) => ClientTlsConfig::new()
            .with_root_ca_pem(read_pem(ca, "--tls-ca")?)
            .map_err(|err| pem_failure(ca, "--tls-ca", &err))?,
        None => ClientTlsConfig::default(),
    };
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config = config
            .with_client_identity_pem(read_pem(cert, "--tls-cert")?, read_pem(key, "--tls-key")?)
            .map_err(|err| pem_failure(cert, "--tls-cert/--tls-key", &err))?;
    }
    if let Some(name) = &args.tls_server_name {
        config = config.with_server_name(name.clone());
    }
    Ok(config)
}

/// A PEM file named by `flag`, or a bad-input failure that names both.
pub fn read_pem(path: &Path, flag: &str) -> Outcome<Vec<u8>> {
    read_pem_file(path).map_err(|err| pem_failure(path, flag, &err))
}

fn pem_failure(path: &Path, flag: &str, err: &FlightError) -> Failure {
    Failure::bad_input(format!("{flag} {}: {}", path.display(), err.message()))
}

/// The password for `user`: the flag or `POLYFLIGHT_PASSWORD`, else asked on the terminal.
fn password_for(user: &str, given: Option<&str>) -> Outcome<String> {
    if let Some(password) = given {
        return Ok(password.to_string());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Failure::usage(format!(
            "--user {user} needs a password: pass --password or set POLYFLIGHT_PASSWORD"
        )));
    }
    let term = console::Term::stderr();
    term.write_str(&format!("password for {user}: "))
        .and_then(|()| term.read_secure_line())
        .map_err(|err| Failure::usage(format!("cannot read the password: {err}")))
}

/// A failed connection attempt, in the CLI's words.
fn connect_failure(err: &FlightError, uri: &str, location: &Location) -> Failure {
    let message = err.message();
    let host = location
        .authority()
        .unwrap_or_else(|| location.uri().to_string());
    if message.starts_with("TLS") {
        return tls_failure(message, &host);
    }
    match err.code() {
        FlightCode::InvalidArgument => Failure::usage(format!("{uri}: {message}")),
        FlightCode::Unauthenticated => Failure::connection(format!("{uri}: {message}")),
        _ => Failure::connection(format!(
            "cannot reach {uri}: {}",
            unreachable_reason(message)
        )),
    }
}

/// The interesting part of a transport's connect error: the OS's reason when there is one.
fn unreachable_reason(message: &str) -> String {
    match message.rsplit_once(": ") {
        Some((_, reason)) if !reason.is_empty() => reason.to_string(),
        _ => message.to_string(),
    }
}

/// A failed TLS handshake with `host`, with the flag that fixes it where there is one.
fn tls_failure(message: &str, host: &str) -> Failure {
    let lower = message.to_ascii_lowercase();
    let line = if lower.contains("not issued by a trusted ca")
        || lower.contains("unknown issuer")
        || lower.contains("not signed by a ca this client trusts")
    {
        format!(
            "TLS handshake with {host} failed: the server's certificate is not issued by a \
             trusted CA; pass --tls-ca FILE with the server's CA"
        )
    } else if lower.contains("is not valid for the name") {
        let valid_for = message
            .split_once("(it is valid for: ")
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(names, _)| format!(" (it is valid for {names})"))
            .unwrap_or_default();
        format!(
            "TLS handshake with {host} failed: the server's certificate is not valid for this \
             host{valid_for}; connect with a name it lists or pass --tls-server-name NAME"
        )
    } else if lower.contains("requires a client certificate") {
        format!(
            "TLS handshake with {host} failed: the server requires a client certificate; pass \
             --tls-cert FILE and --tls-key FILE"
        )
    } else if lower.contains("rejected the client certificate") {
        format!(
            "TLS handshake with {host} failed: the server rejected the client certificate; it \
             must be issued by a CA the server trusts"
        )
    } else if lower.contains("is the server speaking tls") {
        let detail = message
            .split_once(" failed: ")
            .map(|(_, rest)| rest.trim_end_matches(" (is the server speaking TLS?)"))
            .unwrap_or(message);
        format!(
            "TLS handshake with {host} failed: {detail}; is the server serving grpc+tls? \
             (a plaintext server is grpc://)"
        )
    } else if lower.contains("expired") {
        format!("TLS handshake with {host} failed: the server's certificate has expired")
    } else {
        let detail = message.trim_start_matches("TLS:").trim();
        format!("TLS handshake with {host} failed: {detail}")
    };
    Failure::connection(line)
}

/// A refused login.
fn login_failure(err: &FlightError, uri: &str, user: &str) -> Failure {
    match err.code() {
        FlightCode::Unauthenticated | FlightCode::Unauthorized => Failure::connection(format!(
            "{uri} refused the login of {user:?}: wrong user name or password"
        )),
        FlightCode::Unimplemented => Failure::connection(format!(
            "{uri} does not take logins (its Handshake is not implemented); drop --user"
        )),
        _ => call_failure(err, uri, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail::Exit;

    #[test]
    fn uris_are_checked_in_the_cli_words() {
        let failure = parse_uri("http://h:1").err().map(|f| (f.exit, f.message));
        assert_eq!(
            failure,
            Some((
                Exit::Usage,
                format!("unknown scheme \"http\" in http://h:1: polyflight speaks {SCHEMES}")
            ))
        );
        assert!(parse_uri("localhost:8815").is_err());
        assert!(parse_uri("grpc://127.0.0.1:8815").is_ok());
        assert!(parse_uri("grpc+unix:///tmp/x.sock").is_ok());
    }

    #[test]
    fn tls_failures_name_the_flag_that_fixes_them() {
        let unknown = tls_failure(
            "TLS: the certificate of h:1 is not issued by a trusted CA (unknown issuer); add \
             the CA that issued it with ClientTlsConfig::with_root_ca_pem",
            "h:1",
        );
        assert_eq!(
            unknown.message,
            "TLS handshake with h:1 failed: the server's certificate is not issued by a trusted \
             CA; pass --tls-ca FILE with the server's CA"
        );
        let plain = tls_failure(
            "TLS handshake with h:1 failed: received corrupt message of type InvalidContentType \
             (is the server speaking TLS?)",
            "h:1",
        );
        assert!(
            plain.message.starts_with(
                "TLS handshake with h:1 failed: received corrupt message of type \
                 InvalidContentType; is the server serving grpc+tls?"
            ),
            "{}",
            plain.message
        );
        assert_eq!(plain.exit, Exit::Connection);
    }
}
