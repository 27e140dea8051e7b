//! From a command line to a listen URI with its options (server) or a connection (client).
//!
//! Without `-uri`, both sides speak `grpc+tcp` on `-port`, as Arrow's binaries do: the server
//! binds every interface, the client dials `-host` (default `localhost`). `-transport` picks
//! another scheme for the same host and port; `-uri` names any location outright
//! (`grpc+unix:///tmp/f.sock`, `ucx://127.0.0.1:0`, `grpc+tls://127.0.0.1:0`).
//!
//! `grpc+tls` needs certificates on both sides. A server given `-tls_cert`/`-tls_key` uses
//! them; otherwise it mints a CA and a certificate for `localhost`, `127.0.0.1` and `::1`, and
//! writes the CA to `-tls_ca_out` for the client's `-tls_root_ca`.

use crate::cli::Args;
use crate::failure::{CallContext, Failure, Outcome};
use polyflight::transports::{ClientTlsConfig, LoopbackPki, ServerTlsConfig};
use polyflight::{ConnectOptions, FlightClient, ListenOptions, Location, Scheme};

/// Where and how a server listens.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    /// The listen URI (port 0: the transport picks one).
    pub uri: String,
    /// Transport options (TLS certificates).
    pub options: ListenOptions,
}

/// The scheme `-transport` names, `grpc+tcp` by default.
fn transport_scheme(args: &Args) -> Outcome<Scheme> {
    let name = args.transport.as_deref().unwrap_or("grpc+tcp");
    Scheme::parse(name).ok_or_else(|| Failure::Usage(format!("unknown -transport {name:?}")))
}

/// `scheme://host:port`, or an error for schemes that are not addressed by host and port.
fn host_port_uri(scheme: Scheme, host: &str, port: u16) -> Outcome<String> {
    match scheme {
        Scheme::Grpc | Scheme::GrpcTcp | Scheme::GrpcTls | Scheme::Ucx => {
            Location::for_host_port(scheme, host, port)
                .map(|l| l.uri().to_string())
                .call("building the location")
        }
        other => Err(Failure::Usage(format!(
            "-transport {other} is not addressed by host and port: give the whole -uri"
        ))),
    }
}

impl ListenSpec {
    /// The server side of `args`.
    pub fn from_args(args: &Args) -> Outcome<ListenSpec> {
        let uri = match &args.uri {
            Some(uri) => uri.clone(),
            None => {
                let scheme = transport_scheme(args)?;
                // UCX listens where its workers can reach each other; loopback suffices here.
                let host = if scheme == Scheme::Ucx {
                    "127.0.0.1"
                } else {
                    "0.0.0.0"
                };
                host_port_uri(scheme, host, args.port.unwrap_or(0))?
            }
        };
        let location = Location::parse(&uri).call("parsing the listen URI")?;
        let mut options = ListenOptions::default();
        if location.scheme() == Scheme::GrpcTls {
            options.extensions.insert(server_tls(args)?);
        }
        Ok(ListenSpec { uri, options })
    }
}

fn server_tls(args: &Args) -> Outcome<ServerTlsConfig> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            ServerTlsConfig::from_pem_files(cert, key).call("loading -tls_cert and -tls_key")
        }
        (None, None) => {
            let out = args.tls_ca_out.as_ref().ok_or_else(|| {
                Failure::Usage(
                    "a grpc+tls server needs -tls_cert and -tls_key, or -tls_ca_out FILE to \
                     write the CA of the certificate it mints"
                        .to_string(),
                )
            })?;
            let pki = LoopbackPki::generate().call("minting certificates")?;
            std::fs::write(out, &pki.ca_pem).map_err(|source| Failure::Io {
                context: format!("writing the CA certificate to {out}"),
                source,
            })?;
            pki.server_config(false).call("configuring TLS")
        }
        _ => Err(Failure::Usage(
            "-tls_cert and -tls_key go together".to_string(),
        )),
    }
}

/// How a client reaches the server, and any other location an endpoint names.
#[derive(Debug, Clone)]
pub struct Connector {
    /// The server's URI.
    pub uri: String,
    /// Connection options (TLS roots), used for every connection this client makes.
    pub options: ConnectOptions,
}

impl Connector {
    /// The client side of `args`.
    pub fn from_args(args: &Args) -> Outcome<Connector> {
        let uri = match &args.uri {
            Some(uri) => uri.clone(),
            None => {
                let port = args
                    .port
                    .ok_or_else(|| Failure::Usage("the client needs -port or -uri".to_string()))?;
                let host = args.host.as_deref().unwrap_or("localhost");
                host_port_uri(transport_scheme(args)?, host, port)?
            }
        };
        let mut options = ConnectOptions::default();
        if let Some(ca) = &args.tls_root_ca {
            let pem = std::fs::read(ca).map_err(|source| Failure::Io {
                context: format!("reading -tls_root_ca {ca}"),
                source,
            })?;
            let tls = ClientTlsConfig::new()
                .with_root_ca_pem(pem)
                .call("loading -tls_root_ca")?;
            options.extensions.insert(tls);
        }
        Ok(Connector { uri, options })
    }

    /// A new connection to the server.
    pub async fn connect(&self) -> Outcome<FlightClient> {
        self.connect_to(&self.uri).await
    }

    /// A new connection to `uri`, with this connector's options.
    pub async fn connect_to(&self, uri: &str) -> Outcome<FlightClient> {
        polyflight::connect_with_options(uri, self.options.clone())
            .await
            .call(&format!("connecting to {uri}"))
    }
}
