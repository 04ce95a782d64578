//! The server's configuration file (TOML), as `api.md` shows it:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! data_dir = "warden-data"
//! evaluation = "all-triggered"
//! default_action = "NoAction"
//! body_limit = 1048576
//! window_idle_seconds = 600
//! external_id_retention_days = 30
//! webhook_allow_private = false
//! webhook_backlog = 10000
//!
//! [[principals]]
//! id = "us-alice"
//! kind = "User"
//! roles = ["Admin"]
//! token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
//! [[principals.credentials]]          # optional: a key for signed user actions
//! id = "cr-alice-laptop"
//! public_key = """-----BEGIN PUBLIC KEY-----
//! MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=
//! -----END PUBLIC KEY-----"""
//!
//! [prices]
//! ETH = "3000"
//!
//! [tls]                          # optional: HTTPS only
//! cert = "server.pem"
//! key = "server.key"
//! client_ca = "clients-ca.pem"   # optional: mutual TLS
//! client_auth = "optional"       # or "required"
//! [journal]
//! kind = "postgres"                       # default "redb", in data_dir
//! url = "postgresql://warden@127.0.0.1:5432/warden"
//! [cluster]                               # several nodes on that journal
//! node_id = "node-a"                      # unique per node
//! advertise_url = "http://127.0.0.1:8081" # where the other nodes reach this one
//! lease_seconds = 3
//! ```
//!
//! Unknown keys are an error naming the key: a typo must not silently fall
//! back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::RngCore;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::credential::PublicKey;
use crate::engine::EngineBuilder;
use crate::model::principal::{Principal, PrincipalKind, Role};
use crate::policy::{DefaultAction, EvaluationMode, PriceTable};

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where the journal lives unless told otherwise (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "warden-data";
/// Largest accepted request body: 1 MiB holds a policy with thousands of
/// whitelisted addresses, far more than any legitimate request, while keeping
/// what one request can make the server buffer small.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// `max_connections` by default: far above what one signer opens, well
/// under a server's file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Longest `window_idle_seconds`: a day (longer keeps actors for nothing).
pub const MAX_WINDOW_IDLE_SECS: u64 = 86_400;
/// Longest `external_id_retention_days`: ten years.
pub const MAX_RETENTION_DAYS: u64 = 3650;
/// `body_timeout_seconds` by default.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 10;
/// Largest `webhook_backlog`: a million events per webhook.
pub const MAX_WEBHOOK_BACKLOG: usize = 1_000_000;
/// The principal of development mode.
pub const DEV_PRINCIPAL_ID: &str = "us-dev";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("invalid config: {0}")]
    Parse(String),
    /// A value is of the right type but not acceptable.
    #[error("invalid config: `{key}` {message}")]
    Invalid {
        /// The offending key, e.g. `principals[0].token_sha256`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One principal of the config file, with how it authenticates: a bearer
/// token, a client certificate, or either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalConfig {
    /// The principal (id, kind, roles).
    pub principal: Principal,
    /// sha256 of its bearer token; the token itself is never stored.
    pub token_sha256: Option<[u8; 32]>,
    /// sha256 of its client certificate (DER), presented over mutual TLS.
    pub cert_sha256: Option<[u8; 32]>,
    /// Its keys for signed user actions; a principal with one must sign
    /// every change it makes.
    pub credentials: Vec<CredentialConfig>,
}

impl PrincipalConfig {
    /// A principal authenticated by `token` (hashed here).
    pub fn with_token(principal: Principal, token: &str) -> Self {
        PrincipalConfig {
            principal,
            token_sha256: Some(token_sha256(token)),
            cert_sha256: None,
            credentials: Vec::new(),
        }
    }

    /// A principal authenticated by the client certificate whose DER has the sha256 `cert_sha256`.
    pub fn with_certificate(principal: Principal, cert_sha256: [u8; 32]) -> Self {
        PrincipalConfig { principal, token_sha256: None, cert_sha256: Some(cert_sha256), credentials: Vec::new() }
    }

    /// The same principal with one more credential.
    pub fn with_credential(mut self, id: impl Into<String>, public_key: PublicKey) -> Self {
        self.credentials.push(CredentialConfig { id: id.into(), public_key });
        self
    }

    /// Its credential `id`, if it has one.
    pub fn credential(&self, id: &str) -> Option<&CredentialConfig> {
        self.credentials.iter().find(|credential| credential.id == id)
    }
}

/// A key a principal signs user actions with (`[[principals.credentials]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialConfig {
    /// What the client passes as `credId`, e.g. `cr-alice-laptop`.
    pub id: String,
    /// The public key (SPKI PEM in the file).
    pub public_key: PublicKey,
}

/// Whether a TLS client must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A client may present a certificate (then it must be valid) or not.
    #[default]
    Optional,
    /// The handshake fails without a valid client certificate.
    Required,
}

/// The `[tls]` section: HTTPS only, optionally with client certificates.
/// Relative paths are relative to the working directory, like `data_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The server's private key, PEM (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates are verified against;
    /// without it no client certificate is asked for.
    pub client_ca: Option<PathBuf>,
    /// `optional` (the default) or `required`; needs `client_ca`.
    pub client_auth: Option<ClientAuth>,
}

impl TlsConfig {
    /// Whether a client must present a certificate.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth.unwrap_or_default()
    }
}

/// The validated configuration of a Warden server.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to listen on (`host:port`).
    pub listen: String,
    /// Directory holding the journal (`warden.redb`).
    pub data_dir: PathBuf,
    /// `all-triggered` or `first-match`.
    pub evaluation: EvaluationMode,
    /// `first-match`'s answer when no policy triggers.
    pub default_action: DefaultAction,
    /// Who may call, and how they authenticate.
    pub principals: Vec<PrincipalConfig>,
    /// USD per whole unit of each symbol.
    pub prices: PriceTable,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// A velocity window holding nothing stops its actor after this long unused.
    pub window_idle: std::time::Duration,
    /// A repeated `externalId` older than this is a new activity.
    pub external_id_retention: std::time::Duration,
    /// Whether webhooks may reach loopback, link-local and private addresses.
    pub webhook_allow_private: bool,
    /// Most undelivered events one webhook holds.
    pub webhook_backlog: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: std::time::Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// HTTPS settings; without them the server speaks plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Every principal must sign its changes; one without credentials can only read.
    pub require_signed_actions: bool,
    /// Where the journal lives.
    pub journal: JournalConfig,
    /// This node's place among several sharing a PostgreSQL journal.
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: several nodes share one PostgreSQL journal; the one holding
/// the lease leads, the others are warm standbys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique per node.
    pub node_id: String,
    /// Where the other nodes (and forwarded changes) reach this one.
    pub advertise_url: String,
    /// How long a lease runs without renewal (default 3 s).
    pub lease: std::time::Duration,
}

/// Default of `[cluster] lease_seconds`.
pub const DEFAULT_LEASE_SECONDS: u64 = 3;

/// Where the journal lives: `[journal]` in the file.
#[derive(Clone, PartialEq, Eq)]
pub enum JournalConfig {
    /// A redb file in `data_dir` (the default).
    Redb {
        /// Commit every batch into redb in two phases (two fsyncs) instead
        /// of appending it to the commit log beside the file (one
        /// fdatasync) and checkpointing the log into redb when it is full:
        /// redb's advice for input that may be malicious, which the logged
        /// default is argued not to need (`warden_redb`'s crate docs).
        two_phase_commit: bool,
    },
    /// A PostgreSQL database: written by this one node, or shared by the
    /// nodes of a `[cluster]`.
    Postgres {
        /// The connection URL or key-value string.
        url: String,
    },
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig::Redb { two_phase_commit: false }
    }
}

impl std::fmt::Debug for JournalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalConfig::Redb { two_phase_commit } => {
                f.debug_struct("Redb").field("two_phase_commit", two_phase_commit).finish()
            }
            // The URL may hold a password: never in a log line.
            JournalConfig::Postgres { .. } => f.write_str("Postgres { url: <hidden> }"),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            evaluation: EvaluationMode::default(),
            default_action: DefaultAction::default(),
            principals: Vec::new(),
            prices: PriceTable::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            window_idle: crate::DEFAULT_WINDOW_IDLE,
            external_id_retention: crate::DEFAULT_EXTERNAL_ID_RETENTION,
            webhook_allow_private: false,
            webhook_backlog: crate::DEFAULT_WEBHOOK_BACKLOG,
            body_timeout: std::time::Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            tls: None,
            journal: JournalConfig::default(),
            require_signed_actions: false,
            cluster: None,
        }
    }
}

/// The file as written; [`Config`] is what it means.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    evaluation: EvaluationMode,
    #[serde(default)]
    default_action: DefaultAction,
    #[serde(default)]
    principals: Vec<RawPrincipal>,
    #[serde(default)]
    prices: BTreeMap<String, toml::Value>,
    body_limit: Option<usize>,
    window_idle_seconds: Option<u64>,
    external_id_retention_days: Option<u64>,
    #[serde(default)]
    webhook_allow_private: bool,
    webhook_backlog: Option<usize>,
    body_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    tls: Option<TlsConfig>,
    #[serde(default)]
    require_signed_actions: bool,
    journal: Option<RawJournal>,
    cluster: Option<RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    node_id: Option<String>,
    advertise_url: Option<String>,
    lease_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    kind: Option<String>,
    url: Option<String>,
    two_phase_commit: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    id: String,
    #[serde(default)]
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<Role>,
    token_sha256: Option<String>,
    cert_sha256: Option<String>,
    #[serde(default)]
    credentials: Vec<RawCredential>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    id: String,
    public_key: String,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text)
    }

    /// Parses and validates config text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut principals: Vec<PrincipalConfig> = Vec::with_capacity(raw.principals.len());
        for (i, p) in raw.principals.into_iter().enumerate() {
            let key = |name: &str| format!("principals[{i}].{name}");
            if p.id.trim().is_empty() {
                return Err(invalid(key("id"), "must not be empty"));
            }
            if principals.iter().any(|known| known.principal.id == p.id) {
                return Err(invalid(key("id"), format!("`{}` is listed twice", p.id)));
            }
            if p.token_sha256.is_none() && p.cert_sha256.is_none() {
                return Err(invalid(
                    key("token_sha256"),
                    "or `cert_sha256` is required: how does this principal sign in?",
                ));
            }
            let token_sha256 =
                parse_unique_digest(&principals, p.token_sha256.as_deref(), &key, "token_sha256", |c| c.token_sha256)?;
            let cert_sha256 =
                parse_unique_digest(&principals, p.cert_sha256.as_deref(), &key, "cert_sha256", |c| c.cert_sha256)?;
            if cert_sha256.is_some() && raw.tls.as_ref().is_none_or(|tls| tls.client_ca.is_none()) {
                // A certificate that is never asked for would leave the principal unable to sign in.
                return Err(invalid(
                    key("cert_sha256"),
                    "needs `tls.client_ca`: client certificates are only asked for over mutual TLS",
                ));
            }
            let credentials = parse_credentials(p.credentials, i, &principals)?;
            let principal = Principal { id: p.id, kind: p.kind, roles: p.roles };
            principals.push(PrincipalConfig { principal, token_sha256, cert_sha256, credentials });
        }
        if let Some(tls) = &raw.tls {
            if tls.client_auth.is_some() && tls.client_ca.is_none() {
                return Err(invalid(
                    "tls.client_auth".into(),
                    "needs `tls.client_ca` to verify client certificates against",
                ));
            }
        }
        let mut prices = PriceTable::new();
        for (symbol, value) in raw.prices {
            let key = format!("prices.{symbol}");
            let text = match &value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                _ => return Err(invalid(key, "must be a decimal string such as \"3000\"")),
            };
            let price = Decimal::from_str(text.trim())
                .map_err(|_| invalid(key.clone(), format!("`{text}` is not a decimal")))?;
            if price.is_sign_negative() {
                return Err(invalid(key, format!("`{text}` must not be negative")));
            }
            prices.insert(symbol, price);
        }
        let body_limit = raw.body_limit.unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit == 0 {
            return Err(invalid("body_limit".into(), "must be at least 1 byte"));
        }
        let window_idle = match raw.window_idle_seconds {
            None => crate::DEFAULT_WINDOW_IDLE,
            Some(0) => return Err(invalid("window_idle_seconds".into(), "must be at least 1 second")),
            Some(s) if s > MAX_WINDOW_IDLE_SECS => {
                return Err(invalid("window_idle_seconds".into(), format!("must be at most {MAX_WINDOW_IDLE_SECS}")))
            }
            Some(s) => std::time::Duration::from_secs(s),
        };
        let external_id_retention = match raw.external_id_retention_days {
            None => crate::DEFAULT_EXTERNAL_ID_RETENTION,
            Some(0) => return Err(invalid("external_id_retention_days".into(), "must be at least 1 day")),
            Some(d) if d > MAX_RETENTION_DAYS => {
                return Err(invalid(
                    "external_id_retention_days".into(),
                    format!("must be at most {MAX_RETENTION_DAYS}"),
                ))
            }
            Some(d) => std::time::Duration::from_secs(d * 24 * 3600),
        };
        let webhook_backlog = match raw.webhook_backlog {
            None => crate::DEFAULT_WEBHOOK_BACKLOG,
            Some(n) if (1..=MAX_WEBHOOK_BACKLOG).contains(&n) => n,
            Some(_) => {
                return Err(invalid("webhook_backlog".into(), format!("must be 1 to {MAX_WEBHOOK_BACKLOG} events")))
            }
        };
        let body_timeout = match raw.body_timeout_seconds {
            None => DEFAULT_BODY_TIMEOUT_SECS,
            Some(s) if (1..=3600).contains(&s) => s,
            Some(_) => return Err(invalid("body_timeout_seconds".into(), "must be 1 to 3600 seconds")),
        };
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) if (1..=1_000_000).contains(&n) => n,
            Some(_) => return Err(invalid("max_connections".into(), "must be 1 to 1000000")),
        };
        let journal = match raw.journal {
            None => JournalConfig::default(),
            Some(journal) => parse_journal(journal)?,
        };
        let cluster = raw.cluster.map(|cluster| parse_cluster(cluster, &journal)).transpose()?;
        Ok(Config {
            body_timeout: std::time::Duration::from_secs(body_timeout),
            max_connections,
            webhook_backlog,
            webhook_allow_private: raw.webhook_allow_private,
            window_idle,
            external_id_retention,
            listen: raw.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            data_dir: raw.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            evaluation: raw.evaluation,
            default_action: raw.default_action,
            principals,
            prices,
            body_limit,
            tls: raw.tls,
            journal,
            cluster,
            require_signed_actions: raw.require_signed_actions,
        })
    }

    /// The embedded default in development mode: one Admin+Signer user
    /// (`us-dev`) with a fresh random token, returned once beside the config.
    pub fn development() -> (Config, String) {
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let token = format!("wdn_dev_{}", hex::encode(bytes));
        let principal = Principal::user(DEV_PRINCIPAL_ID, &[Role::Admin, Role::Signer]);
        // Development mode runs its receivers on this machine too.
        let config = Config {
            principals: vec![PrincipalConfig::with_token(principal, &token)],
            webhook_allow_private: true,
            ..Config::default()
        };
        (config, token)
    }

    /// The principals, as the engine knows them.
    pub fn engine_principals(&self) -> Vec<Principal> {
        self.principals.iter().map(|p| p.principal.clone()).collect()
    }

    /// An engine builder with this config's evaluation mode, default action,
    /// prices and principals (the journal is the caller's to add).
    pub fn engine_builder(&self) -> EngineBuilder {
        EngineBuilder::default()
            .evaluation_mode(self.evaluation)
            .default_action(self.default_action)
            .prices(self.prices.clone())
            .principals(self.engine_principals())
            .window_idle(self.window_idle)
            .external_id_retention(self.external_id_retention)
            .webhook_allow_private(self.webhook_allow_private)
            .webhook_backlog(self.webhook_backlog)
    }
}

/// The sha256 of a bearer token, as stored in the config.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The lower-case hex sha256 of a bearer token, as written in `token_sha256`.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(token_sha256(token))
}

/// The digest at `principals[i].{name}`, if given: 64 hex digits, and no
/// other principal's (two principals sharing a credential could not be told apart).
fn parse_unique_digest(
    known: &[PrincipalConfig],
    text: Option<&str>,
    key: &dyn Fn(&str) -> String,
    name: &str,
    field: impl Fn(&PrincipalConfig) -> Option<[u8; 32]>,
) -> Result<Option<[u8; 32]>, ConfigError> {
    let Some(text) = text else { return Ok(None) };
    let digest =
        parse_sha256(text).ok_or_else(|| invalid(key(name), "must be 64 hexadecimal digits (a sha256 digest)"))?;
    if let Some(j) = known.iter().position(|other| field(other) == Some(digest)) {
        return Err(invalid(key(name), format!("is the same as `principals[{j}].{name}`")));
    }
    Ok(Some(digest))
}

/// The credentials of principal `i`. A credential id names one key across
/// the whole config: the journal records only the id, so `warden audit
/// verify` must find exactly one key for it.
fn parse_credentials(
    raw: Vec<RawCredential>,
    i: usize,
    earlier: &[PrincipalConfig],
) -> Result<Vec<CredentialConfig>, ConfigError> {
    let mut credentials: Vec<CredentialConfig> = Vec::with_capacity(raw.len());
    for (j, c) in raw.into_iter().enumerate() {
        let key = |name: &str| format!("principals[{i}].credentials[{j}].{name}");
        if c.id.trim().is_empty() || c.id.len() > 256 {
            return Err(invalid(key("id"), "must be 1 to 256 bytes"));
        }
        let taken = credentials.iter().any(|known| known.id == c.id)
            || earlier.iter().any(|principal| principal.credential(&c.id).is_some());
        if taken {
            return Err(invalid(key("id"), format!("`{}` is listed twice", c.id)));
        }
        let public_key = PublicKey::from_pem(&c.public_key).map_err(|e| invalid(key("public_key"), e.to_string()))?;
        credentials.push(CredentialConfig { id: c.id, public_key });
    }
    Ok(credentials)
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest).ok()?;
    Some(digest)
}

fn parse_journal(raw: RawJournal) -> Result<JournalConfig, ConfigError> {
    match raw.kind.as_deref().unwrap_or("redb") {
        "redb" => match raw.url {
            Some(_) => Err(invalid("journal.url".into(), "applies to `kind = \"postgres\"` only")),
            None => Ok(JournalConfig::Redb { two_phase_commit: raw.two_phase_commit.unwrap_or(false) }),
        },
        "postgres" if raw.two_phase_commit.is_some() => Err(invalid(
            "journal.two_phase_commit".into(),
            "applies to `kind = \"redb\"` only: PostgreSQL commits through its own WAL",
        )),
        "postgres" => match raw.url {
            Some(url) if !url.trim().is_empty() => Ok(JournalConfig::Postgres { url }),
            _ => Err(invalid("journal.url".into(), "is required with `kind = \"postgres\"`")),
        },
        other => Err(invalid("journal.kind".into(), format!("`{other}` is not `redb` or `postgres`"))),
    }
}

fn parse_cluster(raw: RawCluster, journal: &JournalConfig) -> Result<ClusterConfig, ConfigError> {
    if !matches!(journal, JournalConfig::Postgres { .. }) {
        return Err(invalid(
            "cluster".into(),
            "needs `[journal] kind = \"postgres\"`: the nodes of a cluster share one PostgreSQL journal",
        ));
    }
    let node_id = match raw.node_id {
        Some(id) if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()) => id,
        _ => return Err(invalid("cluster.node_id".into(), "is required: 1 to 64 visible ASCII characters")),
    };
    let advertise_url = match raw.advertise_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => url.trim_end_matches('/').to_owned(),
        _ => {
            return Err(invalid(
                "cluster.advertise_url".into(),
                "is required: the http:// or https:// URL where the other nodes reach this one",
            ))
        }
    };
    let seconds = raw.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS);
    if !(1..=600).contains(&seconds) {
        return Err(invalid("cluster.lease_seconds".into(), "must be 1 to 600 seconds"));
    }
    Ok(ClusterConfig { node_id, advertise_url, lease: std::time::Duration::from_secs(seconds) })
}

fn invalid(key: String, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
listen = "127.0.0.1:9999"
data_dir = "/tmp/w"
evaluation = "first-match"
default_action = "Block"
body_limit = 2048

[[principals]]
id = "us-alice"
kind = "User"
roles = ["Admin"]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[prices]
ETH = "3000"
BTC = 60000
"#;

    #[test]
    fn the_contract_sample_parses() {
        let config = Config::from_toml(SAMPLE).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9999");
        assert_eq!(config.evaluation, EvaluationMode::FirstMatch);
        assert_eq!(config.default_action, DefaultAction::Block);
        assert_eq!(config.body_limit, 2048);
        assert_eq!(config.principals[0].principal.roles, vec![Role::Admin]);
        assert_eq!(config.principals[0].token_sha256, Some(token_sha256("test")));
        assert_eq!(config.prices["ETH"], Decimal::from(3000));
        assert_eq!(config.prices["BTC"], Decimal::from(60000));
    }

    #[test]
    fn defaults_apply_to_an_empty_file() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml("listen = \"x\"\nlisten_addr = \"y\"\n").unwrap_err().to_string();
        assert!(err.contains("listen_addr"), "{err}");
        let err = Config::from_toml("[[principals]]\nid = \"a\"\ntoken_sha256 = \"00\"\nrole = [\"Admin\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("role"), "{err}");
    }

    #[test]
    fn upkeep_limits_parse_and_bad_ones_are_named() {
        let config = Config::from_toml("window_idle_seconds = 5\nexternal_id_retention_days = 2\n").unwrap();
        assert_eq!(config.window_idle, std::time::Duration::from_secs(5));
        assert_eq!(config.external_id_retention, std::time::Duration::from_secs(2 * 86_400));
        for (text, key) in [
            ("window_idle_seconds = 0", "window_idle_seconds"),
            ("window_idle_seconds = 86401", "window_idle_seconds"),
            ("external_id_retention_days = 0", "external_id_retention_days"),
            ("external_id_retention_days = 100000", "external_id_retention_days"),
        ] {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let err = Config::from_toml("[[principals]]\nid = \"a\"\ntoken_sha256 = \"abc\"\n").unwrap_err().to_string();
        assert!(err.contains("principals[0].token_sha256"), "{err}");
        let err = Config::from_toml("[prices]\nETH = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("prices.ETH"), "{err}");
        let err = Config::from_toml("evaluation = \"random\"\n").unwrap_err().to_string();
        assert!(err.contains("evaluation"), "{err}");
    }

    const CERT_PRINCIPAL: &str = "[[principals]]\nid = \"sa-1\"\nroles = [\"Signer\"]\n\
        cert_sha256 = \"3b1f000000000000000000000000000000000000000000000000000000000000\"\n";

    #[test]
    fn tls_and_certificate_principals_parse() {
        let text = format!(
            "[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\nclient_ca = \"ca.pem\"\nclient_auth = \"required\"\n\n{CERT_PRINCIPAL}"
        );
        let config = Config::from_toml(&text).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("s.pem"));
        assert_eq!(tls.client_auth(), ClientAuth::Required);
        assert_eq!(config.principals[0].token_sha256, None);
        assert_eq!(config.principals[0].cert_sha256.unwrap()[..2], [0x3b, 0x1f]);

        let tls = Config::from_toml("[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\n").unwrap().tls.unwrap();
        assert_eq!((tls.client_ca.as_deref(), tls.client_auth()), (None, ClientAuth::Optional));
    }

    #[test]
    fn tls_mistakes_are_named() {
        let err = Config::from_toml("[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\nclient_auth = \"required\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tls.client_auth"), "{err}");
        let err = Config::from_toml("[tls]\ncert = \"s.pem\"\nkeys = \"s.key\"\n").unwrap_err().to_string();
        assert!(err.contains("keys"), "{err}");
        let err =
            Config::from_toml("[tls]\ncert = \"s.pem\"\nkey = \"s.key\"\nclient_ca = \"c\"\nclient_auth = \"maybe\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("maybe"), "{err}");
        // A certificate principal without mutual TLS could never sign in.
        let err = Config::from_toml(CERT_PRINCIPAL).unwrap_err().to_string();
        assert!(err.contains("principals[0].cert_sha256") && err.contains("tls.client_ca"), "{err}");
        let err = Config::from_toml("[[principals]]\nid = \"a\"\n").unwrap_err().to_string();
        assert!(err.contains("principals[0].token_sha256") && err.contains("cert_sha256"), "{err}");
        let twice = format!(
            "[tls]\ncert = \"s\"\nkey = \"k\"\nclient_ca = \"c\"\n{CERT_PRINCIPAL}{}",
            CERT_PRINCIPAL.replace("sa-1", "sa-2")
        );
        let err = Config::from_toml(&twice).unwrap_err().to_string();
        assert!(err.contains("principals[1].cert_sha256") && err.contains("principals[0].cert_sha256"), "{err}");
    }

    #[test]
    fn a_cluster_shares_a_postgres_journal() {
        let text = "[journal]\nkind = \"postgres\"\nurl = \"postgresql://h/db\"\n[cluster]\nnode_id = \"node-a\"\n\
                    advertise_url = \"http://127.0.0.1:8081/\"\n";
        let cluster = Config::from_toml(text).unwrap().cluster.unwrap();
        assert_eq!(cluster.node_id, "node-a");
        assert_eq!(cluster.advertise_url, "http://127.0.0.1:8081");
        assert_eq!(cluster.lease, std::time::Duration::from_secs(DEFAULT_LEASE_SECONDS));
    }

    #[test]
    fn the_journal_is_redb_or_postgres() {
        assert_eq!(Config::from_toml("[journal]\nkind = \"redb\"\n").unwrap().journal, JournalConfig::default());
        assert_eq!(
            Config::from_toml("[journal]\ntwo_phase_commit = true\n").unwrap().journal,
            JournalConfig::Redb { two_phase_commit: true }
        );
        let config = Config::from_toml("[journal]\nkind = \"postgres\"\nurl = \"postgresql://w:secret@h/db\"\n");
        let journal = config.unwrap().journal;
        assert_eq!(journal, JournalConfig::Postgres { url: "postgresql://w:secret@h/db".into() });
        assert!(!format!("{journal:?}").contains("secret"), "the URL's password must not be printed");
        let cases = [
            ("[journal]\nkind = \"postgres\"\n", "journal.url"),
            ("[journal]\nkind = \"postgres\"\nurl = \" \"\n", "journal.url"),
            ("[journal]\nkind = \"redb\"\nurl = \"postgresql://h/db\"\n", "journal.url"),
            ("[journal]\nkind = \"sqlite\"\n", "journal.kind"),
            ("[journal]\nkind = \"redb\"\npath = \"x\"\n", "path"),
            ("[journal]\nkind = \"postgres\"\nurl = \"postgresql://h/db\"\ntwo_phase_commit = true\n", "journal.two_phase_commit"),
            ("[cluster]\nnode_id = \"node-a\"\n", "cluster"),
            (
                "[journal]\nkind = \"postgres\"\nurl = \"postgresql://h/db\"\n[cluster]\nadvertise_url = \"http://h:1\"\n",
                "cluster.node_id",
            ),
            (
                "[journal]\nkind = \"postgres\"\nurl = \"postgresql://h/db\"\n[cluster]\nnode_id = \"a\"\nadvertise_url = \"h:1\"\n",
                "cluster.advertise_url",
            ),
            (
                "[journal]\nkind = \"postgres\"\nurl = \"postgresql://h/db\"\n[cluster]\nnode_id = \"a\"\nadvertise_url = \"http://h:1\"\nlease_seconds = 0\n",
                "cluster.lease_seconds",
            ),
        ];
        for (text, key) in cases {
            let err = Config::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(key), "`{text}`: {err}");
        }
    }

    #[test]
    fn development_mode_has_one_admin_signer() {
        let (config, token) = Config::development();
        assert_eq!(config.principals.len(), 1);
        let dev = &config.principals[0];
        assert_eq!(dev.principal.id, DEV_PRINCIPAL_ID);
        assert!(dev.principal.has_role(Role::Admin) && dev.principal.has_role(Role::Signer));
        assert_eq!(dev.token_sha256, Some(token_sha256(&token)));
    }

    fn with_key(pem_file: &str, id: &str) -> String {
        let pem =
            std::fs::read_to_string(format!("{}/tests/fixtures/keys/{pem_file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        format!(
            "require_signed_actions = true\n[[principals]]\nid = \"us-a\"\ntoken_sha256 = \"{}\"\n\
             [[principals.credentials]]\nid = \"{id}\"\npublic_key = \"\"\"{pem}\"\"\"\n",
            token_sha256_hex("t")
        )
    }

    #[test]
    fn credentials_are_read_per_principal() {
        let config = Config::from_toml(&with_key("p256.pub", "cr-a")).unwrap();
        assert!(config.require_signed_actions);
        let credential = config.principals[0].credential("cr-a").unwrap();
        assert_eq!(credential.public_key.algorithm(), "P-256");
        assert!(config.principals[0].credential("cr-b").is_none());
    }

    #[test]
    fn bad_credentials_are_named() {
        let err = Config::from_toml(&with_key("rsa-1024.pub", "cr-a")).unwrap_err().to_string();
        assert!(err.contains("principals[0].credentials[0].public_key") && err.contains("1024"), "{err}");
        let err = Config::from_toml(&with_key("p256.key", "cr-a")).unwrap_err().to_string();
        assert!(err.contains("principals[0].credentials[0].public_key"), "{err}");
        let err = Config::from_toml(&with_key("p256.pub", "")).unwrap_err().to_string();
        assert!(err.contains("principals[0].credentials[0].id"), "{err}");
        let twice = with_key("p256.pub", "cr-a")
            + &with_key("ed25519.pub", "cr-a")
                .replacen("require_signed_actions = true\n", "", 1)
                .replace("us-a", "us-b")
                .replace(&token_sha256_hex("t"), &token_sha256_hex("u"));
        let err = Config::from_toml(&twice).unwrap_err().to_string();
        assert!(err.contains("principals[1].credentials[0].id") && err.contains("twice"), "{err}");
    }
}
