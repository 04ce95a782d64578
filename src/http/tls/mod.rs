//! HTTPS and mutual TLS (rustls, TLS 1.2 and 1.3, ring provider).
//!
//! [`Tls`] holds the server config that new handshakes start from, behind an
//! [`ArcSwap`]: a reload builds a whole new config (certificate, key, client
//! verifier) and swaps it in, while every established connection keeps the
//! config it was handshaken with, so nothing is dropped. A reload that fails
//! leaves the current config in place. Sessions are not resumed across a
//! reload (the new config has a new session cache), so a resumed session can
//! never skip the new client CA.
//!
//! A client certificate, when sent and valid, becomes a [`ClientCertificate`]
//! of the connection, which `auth` matches against the principals'
//! `cert_sha256`.

mod accept;
mod failure;
mod load;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;

pub(crate) use self::accept::{handshake, remember_client_certificate};
pub use self::failure::{HandshakeFailure, HANDSHAKE_FAILURES};
use super::reload::Reload;
use crate::config::{Config, TlsConfig};

/// Why a `[tls]` section cannot be served; each names the config key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file named by the config could not be read.
    #[error("invalid config: `{key}`: cannot read `{path}`: {source}")]
    Read {
        /// The config key naming the file, e.g. `tls.cert`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was read but cannot be used.
    #[error("invalid config: `{key}`: {message}")]
    Invalid {
        /// The config key naming the file, e.g. `tls.key`.
        key: &'static str,
        /// What is wrong, naming the file.
        message: String,
    },
    /// The crypto provider refuses TLS 1.2 + 1.3 (not with the ring provider).
    #[error("the TLS provider cannot be set up: {0}")]
    Provider(String),
}

impl TlsError {
    /// The config key at fault (`tls.cert`, `tls.key`, `tls.client_ca`), if one is.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            TlsError::Read { key, .. } | TlsError::Invalid { key, .. } => Some(key),
            TlsError::Provider(_) => None,
        }
    }
}

/// The sha256 of the leaf certificate a client presented on its connection
/// (validated against `tls.client_ca` during the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate {
    /// sha256 of the certificate's DER.
    pub sha256: [u8; 32],
}

/// The server's TLS settings, reloadable while serving; clones share them.
#[derive(Debug, Clone)]
pub struct Tls {
    current: Arc<ArcSwap<ServerConfig>>,
}

impl Tls {
    /// Loads the certificate, key and client CA that `config` names.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let loaded = load::load(config)?;
        tracing::info!(cert_sha256 = %loaded.cert_sha256, client_auth = client_auth(config), "TLS loaded");
        Ok(Tls { current: Arc::new(ArcSwap::new(loaded.config)) })
    }

    /// Replaces the settings new handshakes use by those of `config`; on an
    /// error the current ones stay.
    pub fn reload(&self, config: &TlsConfig) -> Result<(), TlsError> {
        let loaded = load::load(config)?;
        self.current.store(loaded.config);
        tracing::info!(cert_sha256 = %loaded.cert_sha256, client_auth = client_auth(config), "TLS reloaded");
        Ok(())
    }

    /// The config the next handshake starts from.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }
}

impl Reload for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }

    fn reload(&self, config: &Config) -> Result<(), String> {
        let tls = config.tls.as_ref().ok_or("`[tls]` was removed; turning HTTPS off needs a restart")?;
        Tls::reload(self, tls).map_err(|e| e.to_string())
    }
}

fn client_auth(config: &TlsConfig) -> &'static str {
    match (&config.client_ca, config.client_auth()) {
        (None, _) => "none",
        (Some(_), crate::config::ClientAuth::Optional) => "optional",
        (Some(_), crate::config::ClientAuth::Required) => "required",
    }
}
