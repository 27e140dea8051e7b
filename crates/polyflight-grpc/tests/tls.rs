//! `grpc+tls` end to end: mutual TLS identity in the `CallContext`, and every way a handshake
//! can fail — wrong server name, untrusted CA, a CA used as the server certificate, a missing or
//! foreign client certificate, a plaintext server — each with the right code and a message that
//! says which. Certificates are minted per test; nothing is written to disk except by the test
//! of PEM files, in a temporary directory it removes.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use polyflight_core::proto::{Action, ActionType, Result as ActionResult};
use polyflight_core::TransportFactory;
use polyflight_core::{
    CallContext, ConnectOptions, FlightClient, FlightCode, FlightError, FlightService,
    FlightStream, ListenOptions, Registry, Result, Scheme, Server, ServerBuilder,
};
use polyflight_grpc::tls::{
    loopback_mtls_endpoint, ClientTlsConfig, LoopbackPki, ServerTlsConfig, LOOPBACK_CLIENT_NAME,
};
use polyflight_grpc::{GrpcTlsTransport, GrpcTransport};
use std::time::{Duration, Instant};

/// Answers `peer` with what the transport reported about the caller.
struct PeerService;

#[polyflight_core::async_trait]
impl FlightService for PeerService {
    async fn do_action(
        &self,
        ctx: CallContext,
        action: Action,
    ) -> Result<FlightStream<ActionResult>> {
        let peer = ctx.peer();
        let lines: Vec<Bytes> = match action.r#type.as_str() {
            "peer" => vec![
                format!("scheme={}", peer.scheme.map(Scheme::as_str).unwrap_or("-")).into(),
                format!("address={}", peer.address.as_deref().unwrap_or("-")).into(),
            ],
            "tls" => match &peer.tls {
                Some(tls) => vec![
                    Bytes::from(tls.subject.clone()),
                    Bytes::from(tls.subject_alt_names.join(";")),
                    tls.certificate_der.clone(),
                ],
                None => vec![],
            },
            other => return Err(FlightError::unimplemented(other.to_string())),
        };
        Ok(futures::stream::iter(lines.into_iter().map(|body| Ok(ActionResult { body }))).boxed())
    }

    async fn list_actions(&self, _ctx: CallContext) -> Result<FlightStream<ActionType>> {
        Ok(futures::stream::iter([Ok(ActionType {
            r#type: "peer".into(),
            description: "who is calling".into(),
        })])
        .boxed())
    }
}

fn registry() -> Registry {
    Registry::new().with(GrpcTransport).with(GrpcTlsTransport)
}

async fn start(config: ServerTlsConfig) -> Server {
    let mut options = ListenOptions::default();
    options.extensions.insert(config);
    ServerBuilder::new(PeerService, registry())
        .listen_with("grpc+tls://127.0.0.1:0", options)
        .start()
        .await
        .expect("TLS server starts")
}

async fn connect(server: &Server, config: ClientTlsConfig) -> Result<FlightClient> {
    let mut options = ConnectOptions {
        connect_timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    options.extensions.insert(config);
    FlightClient::connect_with_options(registry(), server.location().uri(), options).await
}

async fn action(client: &FlightClient, kind: &str) -> Result<Vec<Bytes>> {
    client
        .do_action(Action {
            r#type: kind.into(),
            body: Bytes::new(),
        })
        .await?
        .try_collect()
        .await
}

fn der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("PEM certificate")
        .to_vec()
}

fn expect_failure(result: Result<FlightClient>, code: FlightCode, needle: &str) -> FlightError {
    let err = match result {
        Ok(_) => panic!("connecting should fail with {code} ({needle})"),
        Err(err) => err,
    };
    assert_eq!(err.code(), code, "unexpected error: {err}");
    assert!(
        err.message().contains(needle),
        "message lacks {needle:?}: {err}"
    );
    err
}

#[tokio::test]
async fn mutual_tls_identity_is_visible_in_the_call_context() {
    let pki = LoopbackPki::generate().unwrap();
    let server = start(pki.server_config(true).unwrap()).await;
    let client = connect(&server, pki.client_config(true).unwrap())
        .await
        .unwrap();
    let tls = action(&client, "tls").await.unwrap();
    assert_eq!(tls.len(), 3, "the server saw no client certificate");
    assert_eq!(tls[0], format!("CN={LOOPBACK_CLIENT_NAME}").as_bytes());
    assert_eq!(tls[1], b"DNS:client.localhost".as_slice());
    assert_eq!(tls[2], der(&pki.client_cert_pem));
    let peer = action(&client, "peer").await.unwrap();
    assert_eq!(peer[0], b"scheme=grpc+tls".as_slice());
    assert!(peer[1].starts_with(b"address=127.0.0.1:"), "{peer:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn loopback_endpoints_serve_tls_and_mutual_tls() {
    for mutual in [false, true] {
        let endpoint = if mutual {
            loopback_mtls_endpoint().unwrap()
        } else {
            GrpcTlsTransport.loopback_endpoint(Scheme::GrpcTls).unwrap()
        };
        assert!(endpoint.cleanup.is_empty(), "nothing is written to disk");
        let server = ServerBuilder::new(PeerService, registry())
            .listen_with(endpoint.listen_uri.clone(), endpoint.listen.clone())
            .start()
            .await
            .unwrap();
        let client = FlightClient::connect_with_options(
            registry(),
            server.location().uri(),
            endpoint.connect.clone(),
        )
        .await
        .unwrap();
        assert_eq!(client.list_actions().await.unwrap().len(), 1);
        let identity = action(&client, "tls").await.unwrap();
        assert_eq!(
            identity.is_empty(),
            !mutual,
            "mutual={mutual}: {identity:?}"
        );
        server.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn optional_client_certificates() {
    let pki = LoopbackPki::generate().unwrap();
    let config = pki
        .server_config(false)
        .unwrap()
        .optional_client_cert(&pki.ca_pem)
        .unwrap();
    let server = start(config).await;
    let anonymous = connect(&server, pki.client_config(false).unwrap())
        .await
        .unwrap();
    assert!(action(&anonymous, "tls").await.unwrap().is_empty());
    let identified = connect(&server, pki.client_config(true).unwrap())
        .await
        .unwrap();
    assert_eq!(action(&identified, "tls").await.unwrap().len(), 3);
    // A certificate that does not verify is still refused.
    let stranger = LoopbackPki::generate().unwrap();
    let foreign = pki
        .client_config(false)
        .unwrap()
        .with_client_identity_pem(&stranger.client_cert_pem, &stranger.client_key_pem)
        .unwrap();
    expect_failure(
        connect(&server, foreign).await,
        FlightCode::Unauthenticated,
        "rejected the client certificate",
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_server_name_is_unavailable_and_says_so() {
    let pki = LoopbackPki::generate().unwrap();
    let server = start(pki.server_config(false).unwrap()).await;
    let config = pki
        .client_config(false)
        .unwrap()
        .with_server_name("flight.example.com");
    let err = expect_failure(
        connect(&server, config).await,
        FlightCode::Unavailable,
        "not valid for the name \"flight.example.com\"",
    );
    assert!(
        err.message()
            .contains("(it is valid for: localhost, 127.0.0.1"),
        "lists the names it is valid for: {err}"
    );
    // The override works the other way round too: an IP location verified as `localhost`.
    let renamed = pki
        .client_config(false)
        .unwrap()
        .with_server_name("localhost");
    let client = connect(&server, renamed).await.unwrap();
    assert_eq!(client.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn untrusted_ca_is_unavailable_and_says_so() {
    let pki = LoopbackPki::generate().unwrap();
    let other = LoopbackPki::generate().unwrap();
    let server = start(pki.server_config(false).unwrap()).await;
    expect_failure(
        connect(&server, other.client_config(false).unwrap()).await,
        FlightCode::Unavailable,
        "not issued by a trusted CA",
    );
    // Trusting the right CA alongside the system's roots works.
    let both = ClientTlsConfig::new()
        .with_system_roots()
        .with_root_ca_pem(&pki.ca_pem)
        .unwrap();
    connect(&server, both).await.unwrap();
    // The explicitly insecure option connects to anything (tests only).
    let reckless = ClientTlsConfig::new().danger_accept_invalid_certs();
    let client = connect(&server, reckless).await.unwrap();
    assert_eq!(client.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn missing_client_certificate_is_unauthenticated_and_says_so() {
    let pki = LoopbackPki::generate().unwrap();
    let server = start(pki.server_config(true).unwrap()).await;
    expect_failure(
        connect(&server, pki.client_config(false).unwrap()).await,
        FlightCode::Unauthenticated,
        "requires a client certificate",
    );
    // A certificate from a CA the server does not trust for clients.
    let stranger = LoopbackPki::generate().unwrap();
    let foreign = pki
        .client_config(false)
        .unwrap()
        .with_client_identity_pem(&stranger.client_cert_pem, &stranger.client_key_pem)
        .unwrap();
    expect_failure(
        connect(&server, foreign).await,
        FlightCode::Unauthenticated,
        "rejected the client certificate",
    );
    // The server still serves clients that do it right.
    let client = connect(&server, pki.client_config(true).unwrap())
        .await
        .unwrap();
    assert_eq!(client.list_actions().await.unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_ca_certificate_used_as_server_certificate_is_explained() {
    // The self-signed-CA trap: OpenSSL peers accept it, rustls does not.
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let server = start(ServerTlsConfig::from_pem(cert.pem(), key.serialize_pem()).unwrap()).await;
    let trusting = ClientTlsConfig::new().with_root_ca_pem(cert.pem()).unwrap();
    expect_failure(
        connect(&server, trusting).await,
        FlightCode::Unavailable,
        "CA certificate as its own certificate",
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tls_client_against_a_plaintext_server_fails_clearly() {
    let server = ServerBuilder::new(PeerService, registry())
        .listen("grpc://127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let port = server.location().port().unwrap();
    let pki = LoopbackPki::generate().unwrap();
    let mut options = ConnectOptions::default();
    options.extensions.insert(pki.client_config(false).unwrap());
    let result = FlightClient::connect_with_options(
        registry(),
        &format!("grpc+tls://127.0.0.1:{port}"),
        options,
    )
    .await;
    expect_failure(result, FlightCode::Unavailable, "TLS");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_listener_without_certificates_is_refused() {
    let err = ServerBuilder::new(PeerService, registry())
        .listen("grpc+tls://127.0.0.1:0")
        .start()
        .await
        .unwrap_err();
    assert_eq!(err.code(), FlightCode::InvalidArgument);
    assert!(err.message().contains("ServerTlsConfig"), "{err}");
}

#[tokio::test]
async fn a_silent_client_neither_blocks_others_nor_stays_forever() {
    let pki = LoopbackPki::generate().unwrap();
    let config = pki
        .server_config(false)
        .unwrap()
        .with_handshake_timeout(Duration::from_millis(300));
    let server = start(config).await;
    let port = server.location().port().unwrap();
    // Connects over TCP and never says a word.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = Instant::now();
    let client = connect(&server, pki.client_config(false).unwrap())
        .await
        .unwrap();
    assert_eq!(client.list_actions().await.unwrap().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The server hangs up on it once the handshake timeout passes.
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open: {read:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn certificates_from_pem_files() {
    let pki = LoopbackPki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, contents: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let cert = write("server.pem", &pki.server_cert_pem);
    let key = write("server.key", &pki.server_key_pem);
    let ca = write("ca.pem", &pki.ca_pem);
    let config = ServerTlsConfig::from_pem_files(&cert, &key)
        .unwrap()
        .require_client_cert(polyflight_grpc::tls::read_pem_file(&ca).unwrap())
        .unwrap();
    let server = start(config).await;
    let client = connect(&server, pki.client_config(true).unwrap())
        .await
        .unwrap();
    assert_eq!(action(&client, "tls").await.unwrap().len(), 3);
    server.shutdown().await.unwrap();
    let missing = ServerTlsConfig::from_pem_files(dir.path().join("nope.pem"), &key).unwrap_err();
    assert_eq!(missing.code(), FlightCode::InvalidArgument);
    assert!(missing.message().contains("nope.pem"), "{missing}");
    dir.close().unwrap();
}
