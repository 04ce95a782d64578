//! The HTTP adapter (actix-web): the contract of `api.md` over an [`Engine`].
//! It authenticates, parses, calls the engine and shapes answers; the
//! engine holds every rule.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let engine = warden::Engine::builder().build().await.expect("engine");
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let credentials = warden::http::Credentials::default()
//!     .with_token(warden::Principal::user("us-alice", &[warden::Role::Admin]), "secret-token");
//! warden::http::Server::new(engine)
//!     .credentials(credentials)
//!     .serve(listener, std::future::pending())
//!     .await
//! # }
//! ```

mod auth;
mod body;
pub mod forward;
mod framing;
mod listen;
mod metrics;
mod observe;
mod openapi;
mod openapi_limits;
mod openapi_links;
mod problem;
mod query;
mod reload;
mod routes;
mod schemas;
mod strict_json;
mod tls;
mod unread_body;
mod user_action;

use std::future::Future;
use std::io;
use std::net::TcpListener;

use actix_web::middleware::{from_fn, ErrorHandlers};
use actix_web::{web, App};

pub use self::auth::{Credentials, LiveCredentials, PrincipalsReloader};
pub use self::metrics::install as install_metrics;
pub use self::observe::REQUEST_ID;
pub use self::openapi::ApiDoc;
pub use self::problem::{Problem, PROBLEM_JSON};
pub use self::reload::{Reload, ReloadOutcome, Reloaders};
pub use self::tls::{ClientCertificate, HandshakeFailure, Tls, TlsError, HANDSHAKE_FAILURES};
pub use self::user_action::USER_ACTION_HEADER;

use self::body::BodyLimit;
use self::routes::ops::OpenApiJson;
use crate::config::{Config, DEFAULT_BODY_LIMIT};
use crate::engine::Engine;

/// Seconds that in-flight requests get to finish once shutdown starts: a
/// request waits at most for one journal commit and an actor round trip, so
/// this is generous, while still bounding how long a stop can take.
const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Largest answer of the leader to a forwarded change that a standby relays
/// (answers to changes are one entity each, far smaller).
const MAX_FORWARDED_ANSWER: usize = 4 * 1024 * 1024;

pub use crate::config::DEFAULT_MAX_CONNECTIONS;

/// An HTTP server over an engine.
#[derive(Debug)]
pub struct Server {
    engine: Engine,
    credentials: std::sync::Arc<LiveCredentials>,
    body_limit: usize,
    body_timeout: std::time::Duration,
    max_connections: usize,
    workers: Option<usize>,
    tls: Option<Tls>,
}

impl Server {
    /// A server with no principals (every authenticated route answers 401)
    /// and the default body limit.
    pub fn new(engine: Engine) -> Self {
        Server {
            engine,
            credentials: std::sync::Arc::new(LiveCredentials::new(Credentials::default())),
            body_limit: DEFAULT_BODY_LIMIT,
            body_timeout: body::DEFAULT_BODY_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: None,
            tls: None,
        }
    }

    /// A server with the principals and body limit of `config`; its `[tls]`
    /// is loaded by the caller (see [`Tls::load`]) and given to [`Server::tls`].
    pub fn from_config(engine: Engine, config: &Config) -> Self {
        let credentials =
            Credentials::new(config.principals.clone()).require_signed_actions(config.require_signed_actions);
        Server::new(engine)
            .credentials(credentials)
            .body_limit(config.body_limit)
            .body_timeout(config.body_timeout)
            .max_connections(config.max_connections)
    }

    /// How long a request body may take to arrive (default 10 s); later is
    /// 408 and the connection is closed.
    pub fn body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Most connections open at once (default 10 000); beyond it, new ones
    /// wait in the listen backlog.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections.max(1);
        self
    }

    /// What SIGHUP reloads of who may call (`[[principals]]`): register it
    /// with the binary's [`Reloaders`].
    pub fn principals_reloader(&self) -> PrincipalsReloader {
        PrincipalsReloader::new(self.credentials.clone(), self.engine.clone())
    }

    /// Who may call.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = std::sync::Arc::new(LiveCredentials::new(credentials));
        self
    }

    /// Largest accepted request body in bytes (default 1 MiB); larger is 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes.max(1);
        self
    }

    /// Serves HTTPS only, with `tls` (which may be reloaded while serving).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Number of worker threads (default: one per physical core).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers.max(1));
        self
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting,
    /// lets in-flight requests finish, and shuts the engine down (which
    /// flushes the journal). Must run inside an actix system.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + 'static) -> io::Result<()> {
        let metrics = web::Data::new(metrics::install());
        let engine = web::Data::new(self.engine.clone());
        let credentials = web::Data::from(self.credentials.clone());
        let openapi = web::Data::new(OpenApiJson(openapi::render()));
        // Challenges and tokens live as long as this server: a restart
        // invalidates every user action in progress.
        let pending_actions = web::Data::new(user_action::challenge::PendingActions::default());
        let limit = BodyLimit(self.body_limit);
        let timeout = body::BodyTimeout(self.body_timeout);
        let workers = self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let body_limit = self.body_limit;
        let address = listener.local_addr().ok();
        if let Some(address) = address {
            // A node that leads without a lease (a single node) names itself
            // as `/healthz`'s `leader`; a cluster's leader is named by its lease.
            if self.engine.is_leader() && self.engine.leader_url().is_none() {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                self.engine.set_leader_url(Some(format!("{scheme}://{address}")));
            }
        }

        let app = move || {
            App::new()
                .app_data(engine.clone())
                .app_data(credentials.clone())
                .app_data(metrics.clone())
                .app_data(openapi.clone())
                .app_data(pending_actions.clone())
                .app_data(limit)
                .app_data(timeout)
                .wrap(from_fn(user_action::require))
                .wrap(from_fn(forward::to_leader))
                .wrap(ErrorHandlers::new().default_handler(problem::rewrite_bare_error))
                .wrap(from_fn(observe::observe))
                .wrap(from_fn(unread_body::hold_body))
                .configure(routes::configure)
                .configure(|config| user_action::configure(config, body_limit))
                .default_service(web::to(not_found))
        };
        let https = self.tls.is_some();
        let settings = listen::Settings {
            workers,
            shutdown_timeout_secs: SHUTDOWN_TIMEOUT_SECS,
            max_connections: self.max_connections,
        };
        // Signals are the caller's `shutdown` future: the server then always
        // stops the same way, and the engine shuts down after it.
        let started = listen::server(listener, self.tls, app, settings);
        let server = match started {
            Ok(server) => server,
            Err(error) => {
                self.engine.shutdown();
                return Err(error);
            }
        };
        tracing::info!(address = ?address, https, "listening");

        let handle = server.handle();
        let stopper = actix_rt::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            handle.stop(true).await;
        });
        let upkeep = metrics::spawn_upkeep();

        let result = server.await;
        stopper.abort();
        upkeep.abort();
        // INVARIANT (answered means durable): the server has stopped, so no
        // request is in flight; shutting down flushes what was answered.
        self.engine.shutdown();
        tracing::info!("stopped");
        result
    }
}

/// Serves `engine` on `listener` with the principals, body limit and TLS of
/// `config` until `shutdown` resolves; see [`Server::serve`].
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    config: &Config,
    shutdown: impl Future<Output = ()> + 'static,
) -> io::Result<()> {
    let mut server = Server::from_config(engine.clone(), config);
    if let Some(tls) = &config.tls {
        match Tls::load(tls) {
            Ok(tls) => server = server.tls(tls),
            Err(error) => {
                engine.shutdown();
                return Err(io::Error::new(io::ErrorKind::InvalidInput, error));
            }
        }
    }
    server.serve(listener, shutdown).await
}

async fn not_found(request: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, Problem> {
    Err(Problem::not_found(format!("no route for `{}`", request.path())))
}
