//! The HTTPS server: each accepted TCP connection is handshaken here, with
//! the server config current at that moment, before actix-http serves
//! HTTP/1.1 over it. Doing the handshake ourselves (rather than through
//! actix-web's rustls acceptor, which drops handshake errors) is what lets a
//! failure be counted by reason and logged.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{Extensions, HttpService, Protocol, Request, Response};
use actix_rt::net::TcpStream;
use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::failure::{HandshakeFailure, HANDSHAKE_FAILURES};
use super::{ClientCertificate, Tls};

/// Longest a handshake may take: a client that opens a connection and stalls
/// must not hold it (and its buffers) for ever. A real handshake takes a few
/// round trips; actix-web's own TLS acceptor allows 3 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a closing connection may take to flush, as actix-web's `HttpServer` sets it.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the server is run: the caller's settings that apply to HTTPS as they do to HTTP.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Worker threads; `None` for actix's default (one per core).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get once a graceful stop starts.
    pub shutdown_timeout_secs: u64,
    /// Most connections open at once, per worker.
    pub max_connections_per_worker: usize,
}

/// An HTTPS server serving the app that `factory` makes (once per worker),
/// with `tls`'s server config; the equivalent of actix-web's
/// `HttpServer::new(factory).listen_rustls_0_23(..).run()`.
pub(crate) fn server<F, I, S, B>(
    listener: TcpListener,
    tls: Tls,
    factory: F,
    settings: Settings,
) -> io::Result<actix_web::dev::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = listener.local_addr()?;
    let mut builder = actix_server::Server::build().disable_signals().shutdown_timeout(settings.shutdown_timeout_secs);
    if let Some(workers) = settings.workers {
        builder = builder.workers(workers);
    }
    builder = builder.max_concurrent_connections(settings.max_connections_per_worker);
    // Idle keep-alive connections close as soon as a graceful stop begins,
    // instead of holding it for the whole shutdown timeout.
    let graceful = builder.graceful_shutdown_signal();
    let builder = builder.listen("warden-https", listener, move || {
        let tls = tls.clone();
        let graceful = graceful.clone();
        let app = factory().into_factory().map_err(|error| error.into().error_response());
        // What `HttpRequest::connection_info` reports: https, at the listening address.
        let app = map_config(app, move |()| AppConfig::__priv_test_new(true, address.to_string(), address));
        let http = HttpService::build()
            .secure()
            .local_addr(address)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .graceful_shutdown_signal(move || {
                let graceful = graceful.clone();
                async move { graceful.notified().await }
            })
            .on_connect_ext(remember_client_certificate)
            .finish(app);
        fn_service(move |tcp: TcpStream| handshake(tls.server_config(), tcp)).and_then(http)
    })?;
    Ok(builder.run())
}

/// Completes the TLS handshake of `tcp` under `config`; a failure is counted,
/// logged, and ends the connection.
async fn handshake(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
) -> Result<(TlsStream<TcpStream>, Protocol, Option<SocketAddr>), DispatchError> {
    let peer = tcp.peer_addr().ok();
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)).await;
    let error = match outcome {
        Ok(Ok(stream)) => return Ok((stream, Protocol::Http1, peer)),
        Ok(Err(error)) => error,
        Err(_elapsed) => io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake did not finish in time"),
    };
    let reason = HandshakeFailure::of(&error);
    metrics::counter!(HANDSHAKE_FAILURES, "reason" => reason.label()).increment(1);
    // One line per failed connection, like the one line per request: a client
    // whose certificate is refused must be able to learn why from the operator.
    tracing::warn!(reason = reason.label(), peer = ?peer, %error, "TLS handshake failed");
    Err(DispatchError::Io(error))
}

/// Makes the client's certificate, when it sent one, a connection datum that
/// every request of the connection can read (see `auth`).
fn remember_client_certificate(stream: &TlsStream<TcpStream>, data: &mut Extensions) {
    let (_, connection) = stream.get_ref();
    if let Some(leaf) = connection.peer_certificates().and_then(|chain| chain.first()) {
        data.insert(ClientCertificate { sha256: Sha256::digest(leaf.as_ref()).into() });
    }
}
