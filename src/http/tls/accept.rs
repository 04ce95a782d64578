//! The TLS handshake of each accepted TCP connection, with the server config
//! current at that moment, before actix-http serves HTTP/1.1 over it (see
//! `listen`). Doing the handshake ourselves (rather than through
//! actix-web's rustls acceptor, which drops handshake errors) is what lets a
//! failure be counted by reason and logged.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::Extensions;
use actix_rt::net::TcpStream;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::failure::{HandshakeFailure, HANDSHAKE_FAILURES};
use super::ClientCertificate;

/// Longest a handshake may take: a client that opens a connection and stalls
/// must not hold it (and its buffers) for ever. A real handshake takes a few
/// round trips; actix-web's own TLS acceptor allows 3 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Completes the TLS handshake of `tcp` under `config`; a failure is counted,
/// logged, and ends the connection.
pub(crate) async fn handshake(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    peer: Option<SocketAddr>,
) -> Result<TlsStream<TcpStream>, DispatchError> {
    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp)).await;
    let error = match outcome {
        Ok(Ok(stream)) => return Ok(stream),
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
pub(crate) fn remember_client_certificate(stream: &TlsStream<TcpStream>, data: &mut Extensions) {
    let (_, connection) = stream.get_ref();
    if let Some(leaf) = connection.peer_certificates().and_then(|chain| chain.first()) {
        data.insert(ClientCertificate { sha256: Sha256::digest(leaf.as_ref()).into() });
    }
}
