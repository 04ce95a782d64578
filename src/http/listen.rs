//! The server loop, for HTTP and HTTPS alike: each accepted TCP connection
//! is handshaken first when TLS is on (see `tls`), then wrapped in
//! [`ProblemFraming`] (problem documents for actix-http's own error answers)
//! and served HTTP/1.1 by actix-http. This is what actix-web's `HttpServer`
//! does, with those two steps added.

use std::fmt;
use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::error::DispatchError;
use actix_http::{Extensions, HttpService, Protocol, Request, Response};
use actix_rt::net::TcpStream;
use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;

use super::framing::ProblemFraming;
use super::tls::{self, Tls};

/// How long a closing connection may take to flush, as actix-web's `HttpServer` sets it.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How the server is run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Worker threads.
    pub workers: usize,
    /// Seconds in-flight requests get once a graceful stop starts.
    pub shutdown_timeout_secs: u64,
    /// Most connections served at once, over all workers.
    pub max_connections: usize,
}

/// A server serving the app that `factory` makes (once per worker) on
/// `listener`, over HTTPS with `tls`'s config when given, else plain HTTP.
pub(crate) fn server<F, I, S, B>(
    listener: TcpListener,
    tls: Option<Tls>,
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
    builder = builder.workers(settings.workers);
    // actix counts connections per worker, so its limit, split over the
    // workers and rounded up, may admit a few more than asked: each
    // connection also takes one of the server's own slots before it is
    // served, and waits for one while they are all taken.
    builder = builder.max_concurrent_connections(settings.max_connections.div_ceil(settings.workers).max(1));
    let slots = Arc::new(Semaphore::new(settings.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    // Idle keep-alive connections close as soon as a graceful stop begins,
    // instead of holding it for the whole shutdown timeout.
    let graceful = builder.graceful_shutdown_signal();
    let secure = tls.is_some();
    let builder = builder.listen("warden", listener, move || {
        let tls = tls.clone();
        let slots = slots.clone();
        let graceful = graceful.clone();
        let app = factory().into_factory().map_err(|error| error.into().error_response());
        // What `HttpRequest::connection_info` reports: the scheme, at the listening address.
        let app = map_config(app, move |()| AppConfig::__priv_test_new(secure, address.to_string(), address));
        let mut http = HttpService::build()
            .local_addr(address)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .graceful_shutdown_signal(move || {
                let graceful = graceful.clone();
                async move { graceful.notified().await }
            })
            .on_connect_ext(|io: &ProblemFraming<Connection>, data: &mut Extensions| {
                if let Stream::Tls(stream) = &io.get_ref().stream {
                    tls::remember_client_certificate(stream, data);
                }
            });
        if secure {
            http = http.secure();
        }
        let http = http.finish(app);
        fn_service(move |tcp: TcpStream| {
            let tls = tls.clone();
            let slots = slots.clone();
            async move {
                // Held as long as the connection: it is served only with one.
                let slot = slots.acquire_owned().await.map_err(|_| DispatchError::Io(io::ErrorKind::Other.into()))?;
                let peer = tcp.peer_addr().ok();
                let stream = match tls {
                    Some(tls) => Stream::Tls(Box::new(tls::handshake(tls.server_config(), tcp, peer).await?)),
                    None => Stream::Plain(tcp),
                };
                let connection = Connection { stream, _slot: slot };
                Ok::<_, DispatchError>((ProblemFraming::new(connection), Protocol::Http1, peer))
            }
        })
        .and_then(http)
    })?;
    Ok(builder.run())
}

/// An accepted connection, holding one of the server's connection slots.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: Stream,
    _slot: OwnedSemaphorePermit,
}

/// A connection's stream: plain, or after its TLS handshake.
#[derive(Debug)]
pub(crate) enum Stream {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
