//! `warden serve [--config FILE] [--listen ADDR] [--data-dir DIR]`: the
//! policy engine over HTTP, journaled in `DATA_DIR/warden.redb`, or in
//! PostgreSQL with `[journal] kind = "postgres"`.
//!
//! Without `--config` it runs in development mode: one Admin+Signer user
//! (`us-dev`) whose fresh token is printed once on stdout.
//!
//! With `--config`, SIGHUP reads the file again and reloads what can change
//! while serving (the `[tls]` certificate, key and client CA).
//!
//! `warden audit verify --config FILE [--data-dir DIR]` re-verifies every
//! signed user action of the journal against the configured keys.
//!
//! `warden approvals list|show|decide` is an approver's client of a server.

#[path = "warden/approvals.rs"]
mod approvals;

use std::io::IsTerminal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use warden::cluster::Cluster;
use warden::config::{Config, JournalConfig, DEV_PRINCIPAL_ID};
use warden::http::{Reloaders, Tls};
use warden::Journal;
use warden_postgres::PostgresJournal;
use warden_redb::{Commit, RedbJournal};

/// mimalloc rather than glibc's malloc: the server allocates and frees many
/// small objects per request, from several threads, and glibc's allocator
/// took about a tenth of its CPU under load.
#[global_allocator]
static ALLOCATOR: warden::allocator::Mimalloc = warden::allocator::Mimalloc;

/// The journal's file name inside the data directory.
const JOURNAL_FILE: &str = "warden.redb";

#[derive(Debug, Parser)]
#[command(name = "warden", version, about = "Transaction policy engine: allow, block or require a quorum of approvers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the HTTP server until SIGTERM or ctrl-c; SIGHUP reloads the config's principals and TLS files.
    Serve {
        /// The TOML config file; without it, development mode.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address to listen on, overriding the config's `listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Directory of the journal, overriding the config's `data_dir`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Checks the journal.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// An approver's client: list, show and decide approvals on a server.
    Approvals {
        #[command(flatten)]
        connection: approvals::Connection,
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Re-verifies, offline, every signed user action against the config's
    /// keys: one line per failure, a summary; exit status 1 if any fails.
    /// The server must be stopped (the journal file is opened exclusively).
    Verify {
        /// The config file holding the principals' credentials.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Directory of the journal, overriding the config's `data_dir`.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Command::Serve { config, listen, data_dir } => {
            match actix_web::rt::System::new().block_on(serve(config, listen, data_dir)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("warden: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { command: AuditCommand::Verify { config, data_dir } } => audit_verify(&config, data_dir),
        Command::Approvals { connection, command } => {
            match actix_web::rt::System::new().block_on(approvals::run(connection, command)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("warden: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Exit status of `audit verify` when the journal cannot be checked at all
/// (1 is "some signature fails").
const AUDIT_ERROR: u8 = 2;

fn audit_verify(config_file: &std::path::Path, data_dir: Option<PathBuf>) -> ExitCode {
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("warden: {error}");
            return ExitCode::from(AUDIT_ERROR);
        }
    };
    let journal_path = data_dir.unwrap_or(config.data_dir.clone()).join(JOURNAL_FILE);
    if !journal_path.exists() {
        eprintln!("warden: no journal at `{}`", journal_path.display());
        return ExitCode::from(AUDIT_ERROR);
    }
    let report = RedbJournal::open(&journal_path)
        .map_err(|e| format!("cannot open journal `{}`: {e}", journal_path.display()))
        .and_then(|journal| {
            warden::audit::verify_journal(&journal, &config.principals)
                .map_err(|e| format!("cannot read the journal: {e}"))
        });
    match report {
        Err(error) => {
            eprintln!("warden: {error}");
            ExitCode::from(AUDIT_ERROR)
        }
        Ok(report) => {
            for failure in &report.failures {
                println!("FAILED {failure}");
            }
            println!(
                "{} signed actions checked in {} records: {} failed",
                report.checked,
                report.records,
                report.failures.len()
            );
            if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn serve(
    config_file: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut config, dev_token) = match &config_file {
        Some(path) => (Config::load(path)?, None),
        None => {
            let (config, token) = Config::development();
            (config, Some(token))
        }
    };
    if let Some(listen) = listen {
        config.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }

    // Before the journal is opened: bad TLS files are refused at once, naming their key.
    let tls = config.tls.as_ref().map(Tls::load).transpose()?;
    // Before the engine: recovery already records metrics.
    warden::http::install_metrics();
    let (journal, shared) = open_journal(&config).await?;
    let mut builder = config.engine_builder().shared_journal(journal);
    if config.cluster.is_some() {
        // Every node of a cluster starts as a standby and leads once it
        // holds the lease.
        builder = builder.standby();
    }
    let engine = builder.build().await?;
    let cluster = match (&config.cluster, shared, &config.journal) {
        (Some(cluster), Some(shared), JournalConfig::Postgres { url }) => Some(Cluster::start(
            engine.clone(),
            shared,
            url.clone(),
            cluster.clone(),
            tokio::runtime::Handle::current(),
        )?),
        _ => None,
    };
    let listener =
        TcpListener::bind(&config.listen).map_err(|e| format!("cannot listen on `{}`: {e}", config.listen))?;
    let address = listener.local_addr()?;

    if let Some(token) = dev_token {
        println!("development mode: principal `{DEV_PRINCIPAL_ID}` (Admin, Signer); this token is shown only once:");
        println!("WARDEN_TOKEN={token}");
    }
    // Listening for SIGHUP before saying where we listen: from then on a
    // SIGHUP reloads, and can no longer end the process by its default action.
    let mut server = warden::http::Server::from_config(engine, &config);
    let reloader = config_file.map(|file| {
        let mut reloaders = Reloaders::new(file);
        reloaders.add(server.principals_reloader());
        if let Some(tls) = &tls {
            reloaders.add(tls.clone());
        }
        actix_web::rt::spawn(reload_on_sighup(hangups(), reloaders))
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("warden listening on {scheme}://{address}");
    tracing::info!(%address, data_dir = %config.data_dir.display(), journal = ?config.journal, principals = config.principals.len(), "warden started");

    if let Some(tls) = tls {
        server = server.tls(tls);
    }
    let served = server.serve(listener, shutdown_signal()).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    if let Some(cluster) = cluster {
        // Releases the lease, so a standby takes over without waiting for it.
        // Off this thread: the role may be waiting on this runtime.
        let _ = actix_web::rt::task::spawn_blocking(move || cluster.stop()).await;
    }
    served?;
    Ok(())
}

/// The stream of SIGHUPs, registered now (`None` where there are none).
#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGHUP: reloading is off");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

/// Reloads `reloaders` on every SIGHUP, for as long as the server runs.
#[cfg(unix)]
async fn reload_on_sighup(hangups: Option<tokio::signal::unix::Signal>, reloaders: Reloaders) {
    let Some(mut hangups) = hangups else { return };
    while hangups.recv().await.is_some() {
        tracing::info!(?reloaders, "SIGHUP received: reloading");
        // A few small files read and parsed: short enough for this thread,
        // which serves no requests (the workers have their own).
        reloaders.reload_all();
    }
}

#[cfg(not(unix))]
async fn reload_on_sighup(_: Option<()>, _: Reloaders) {}

/// The journal the config names.
/// The journal of `config`; a PostgreSQL one is also answered as itself,
/// for a cluster's role to follow.
async fn open_journal(
    config: &Config,
) -> Result<(Arc<dyn Journal>, Option<Arc<PostgresJournal>>), Box<dyn std::error::Error>> {
    match &config.journal {
        JournalConfig::Redb { two_phase_commit } => {
            std::fs::create_dir_all(&config.data_dir)
                .map_err(|e| format!("cannot create data directory `{}`: {e}", config.data_dir.display()))?;
            let journal_path = config.data_dir.join(JOURNAL_FILE);
            let commit = if *two_phase_commit { Commit::TwoPhase } else { Commit::Logged };
            let journal = RedbJournal::open_with(&journal_path, commit)
                .map_err(|e| format!("cannot open journal `{}`: {e}", journal_path.display()))?;
            Ok((Arc::new(journal), None))
        }
        JournalConfig::Postgres { url } => {
            // The PostgreSQL client blocks on a runtime of its own, which
            // must not start inside this async task: open it on the blocking pool.
            let url = url.clone();
            let journal = actix_web::rt::task::spawn_blocking(move || PostgresJournal::open(&url))
                .await
                .map_err(|e| format!("cannot open the postgres journal: {e}"))?
                .map_err(|e| format!("cannot open the postgres journal: {e}"))?;
            let journal = Arc::new(journal);
            Ok((journal.clone(), Some(journal)))
        }
    }
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
