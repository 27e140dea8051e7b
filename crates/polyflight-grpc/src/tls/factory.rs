//! The `grpc+tls://` transport: [`GrpcTlsTransport`] connects with a [`TlsConnector`] and
//! listens with a [`TlsAcceptor`], reading their settings from the options' extensions.

#[cfg(feature = "loopback-pki")]
use super::LoopbackPki;
use super::{invalid, ClientTlsConfig, ServerTlsConfig, TlsAcceptor, TlsConnector};
use crate::server::serve;
use crate::GrpcSettings;
use async_trait::async_trait;
use polyflight_core::transport::LoopbackEndpoint;
use polyflight_core::{
    CallHandler, ClientTransport, ConnectOptions, FlightError, ListenOptions, Listener, Location,
    Result, Scheme, TransportFactory,
};
use std::sync::Arc;

/// The `grpc+tls://` transport. Listeners need a [`ServerTlsConfig`] in
/// `ListenOptions.extensions`; clients use the [`ClientTlsConfig`] in
/// `ConnectOptions.extensions`, or trust the system roots when there is none.
#[derive(Debug, Clone, Default)]
pub struct GrpcTlsTransport;

#[async_trait]
impl TransportFactory for GrpcTlsTransport {
    fn name(&self) -> &str {
        "grpc+tls"
    }

    fn schemes(&self) -> &[Scheme] {
        &[Scheme::GrpcTls]
    }

    async fn connect(
        &self,
        location: &Location,
        options: &ConnectOptions,
    ) -> Result<Arc<dyn ClientTransport>> {
        let config = options
            .extensions
            .get::<ClientTlsConfig>()
            .cloned()
            .unwrap_or_default();
        let connector = Arc::new(TlsConnector::new(location, options, config)?);
        crate::client::connect_transport(location, connector, options).await
    }

    async fn listen(
        &self,
        location: &Location,
        handler: Arc<dyn CallHandler>,
        options: &ListenOptions,
    ) -> Result<Box<dyn Listener>> {
        let config = options.extensions.get::<ServerTlsConfig>().ok_or_else(|| {
            invalid(format!(
                "{location}: a grpc+tls listener needs a ServerTlsConfig (certificate and key) \
                 in ListenOptions.extensions"
            ))
        })?;
        let (acceptor, bound) = TlsAcceptor::bind(location, config).await?;
        Ok(Box::new(serve(
            acceptor,
            bound,
            handler,
            GrpcSettings::for_server(options),
        )))
    }

    /// `grpc+tls://127.0.0.1:0` with freshly minted certificates (see `LoopbackPki`), held in
    /// memory: nothing is written to disk. Needs the `loopback-pki` feature; without it, this is
    /// an `UNIMPLEMENTED` error that says so.
    fn loopback_endpoint(&self, scheme: Scheme) -> Result<LoopbackEndpoint> {
        if scheme != Scheme::GrpcTls {
            return Err(FlightError::unimplemented(format!(
                "grpc+tls has no loopback endpoint for {scheme}"
            )));
        }
        #[cfg(feature = "loopback-pki")]
        {
            LoopbackPki::generate()?.endpoint(false)
        }
        #[cfg(not(feature = "loopback-pki"))]
        {
            Err(FlightError::unimplemented(
                "the grpc+tls loopback endpoint needs polyflight-grpc's `loopback-pki` feature \
                 (certificates minted in memory)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "loopback-pki"))]
    fn without_the_pki_the_loopback_endpoint_names_the_feature() {
        let err = GrpcTlsTransport
            .loopback_endpoint(Scheme::GrpcTls)
            .unwrap_err();
        assert_eq!(err.code(), polyflight_core::FlightCode::Unimplemented);
        assert!(err.message().contains("`loopback-pki` feature"), "{err}");
    }

    #[test]
    #[cfg(feature = "loopback-pki")]
    fn with_the_pki_the_loopback_endpoint_is_grpc_tls_on_loopback() {
        let endpoint = GrpcTlsTransport.loopback_endpoint(Scheme::GrpcTls).unwrap();
        assert_eq!(endpoint.listen_uri, "grpc+tls://127.0.0.1:0");
    }

    #[test]
    fn other_schemes_have_no_loopback_endpoint() {
        let err = GrpcTlsTransport
            .loopback_endpoint(Scheme::Grpc)
            .unwrap_err();
        assert_eq!(err.code(), polyflight_core::FlightCode::Unimplemented);
    }
}
