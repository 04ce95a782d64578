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
//!
//! [prices]
//! ETH = "3000"
//!
//! [journal]
//! kind = "postgres"                       # default "redb", in data_dir
//! url = "postgresql://warden@127.0.0.1:5432/warden"
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
/// Longest `window_idle_seconds`: a day (longer keeps actors for nothing).
pub const MAX_WINDOW_IDLE_SECS: u64 = 86_400;
/// Longest `external_id_retention_days`: ten years.
pub const MAX_RETENTION_DAYS: u64 = 3650;
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

/// One principal of the config file, with the sha256 of its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalConfig {
    /// The principal (id, kind, roles).
    pub principal: Principal,
    /// sha256 of its bearer token; the token itself is never stored.
    pub token_sha256: [u8; 32],
}

impl PrincipalConfig {
    /// A principal authenticated by `token` (hashed here).
    pub fn with_token(principal: Principal, token: &str) -> Self {
        PrincipalConfig { principal, token_sha256: token_sha256(token) }
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
    /// Where the journal lives.
    pub journal: JournalConfig,
}

/// Where the journal lives: `[journal]` in the file.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum JournalConfig {
    /// A redb file in `data_dir` (the default).
    #[default]
    Redb,
    /// A PostgreSQL database, written by this one node (several nodes on one
    /// database, `[cluster]`, are not supported yet).
    Postgres {
        /// The connection URL or key-value string.
        url: String,
    },
}

impl std::fmt::Debug for JournalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalConfig::Redb => f.write_str("Redb"),
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
            journal: JournalConfig::default(),
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
    journal: Option<RawJournal>,
    /// Refused with a message of its own rather than as an unknown key.
    cluster: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJournal {
    kind: Option<String>,
    url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    id: String,
    #[serde(default)]
    kind: PrincipalKind,
    #[serde(default)]
    roles: Vec<Role>,
    token_sha256: String,
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
            let token_sha256 = parse_sha256(&p.token_sha256)
                .ok_or_else(|| invalid(key("token_sha256"), "must be 64 hexadecimal digits (a sha256 digest)"))?;
            if let Some(j) = principals.iter().position(|known| known.token_sha256 == token_sha256) {
                return Err(invalid(key("token_sha256"), format!("is the same as `principals[{j}].token_sha256`")));
            }
            let principal = Principal { id: p.id, kind: p.kind, roles: p.roles };
            principals.push(PrincipalConfig { principal, token_sha256 });
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
        if raw.cluster.is_some() {
            return Err(invalid(
                "cluster".into(),
                "is not supported yet: several nodes cannot share a journal in this version; run one node",
            ));
        }
        let journal = match raw.journal {
            None => JournalConfig::Redb,
            Some(journal) => parse_journal(journal)?,
        };
        Ok(Config {
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
            journal,
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

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut digest).ok()?;
    Some(digest)
}

fn parse_journal(raw: RawJournal) -> Result<JournalConfig, ConfigError> {
    match raw.kind.as_deref().unwrap_or("redb") {
        "redb" => match raw.url {
            Some(_) => Err(invalid("journal.url".into(), "applies to `kind = \"postgres\"` only")),
            None => Ok(JournalConfig::Redb),
        },
        "postgres" => match raw.url {
            Some(url) if !url.trim().is_empty() => Ok(JournalConfig::Postgres { url }),
            _ => Err(invalid("journal.url".into(), "is required with `kind = \"postgres\"`")),
        },
        other => Err(invalid("journal.kind".into(), format!("`{other}` is not `redb` or `postgres`"))),
    }
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
        assert_eq!(config.principals[0].token_sha256, token_sha256("test"));
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

    #[test]
    fn the_journal_is_redb_or_postgres() {
        assert_eq!(Config::from_toml("[journal]\nkind = \"redb\"\n").unwrap().journal, JournalConfig::Redb);
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
            ("[cluster]\nnode_id = \"node-a\"\n", "cluster"),
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
        assert_eq!(dev.token_sha256, token_sha256(&token));
    }
}
