//! What SIGHUP refreshes in a running server, in one place: the config file
//! is read again and each registered part takes what it needs from it (the
//! TLS certificates; other parts as they become reloadable). A part that
//! cannot apply the new config keeps what it has and says why in the log; the
//! others still reload.

use std::fmt;
use std::path::PathBuf;

use crate::config::Config;

/// A part of a running server that follows its config file on reload.
pub trait Reload: Send + Sync {
    /// What it reloads, for the log (`tls`, ...).
    fn name(&self) -> &'static str;

    /// Applies `config`. On an error nothing of this part changes.
    fn reload(&self, config: &Config) -> Result<(), String>;
}

/// The config file and the parts reloaded from it.
pub struct Reloaders {
    config_file: PathBuf,
    parts: Vec<Box<dyn Reload>>,
}

impl fmt::Debug for Reloaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.parts.iter().map(|part| part.name()).collect();
        f.debug_struct("Reloaders").field("config_file", &self.config_file).field("parts", &names).finish()
    }
}

/// How one reload went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The config file could not be read or is invalid: nothing changed.
    ConfigRefused(String),
    /// Each part's name, with why it kept its old state if it did.
    Parts(Vec<(&'static str, Result<(), String>)>),
}

impl Reloaders {
    /// Parts reloaded from `config_file`; none yet.
    pub fn new(config_file: impl Into<PathBuf>) -> Self {
        Reloaders { config_file: config_file.into(), parts: Vec::new() }
    }

    /// Adds a part.
    pub fn add(&mut self, part: impl Reload + 'static) {
        self.parts.push(Box::new(part));
    }

    /// Whether there is anything to reload.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Reads the config file and reloads every part from it, logging each outcome.
    pub fn reload_all(&self) -> ReloadOutcome {
        let config = match Config::load(&self.config_file) {
            Ok(config) => config,
            Err(error) => {
                tracing::error!(config = %self.config_file.display(), %error, "reload refused: nothing changed");
                return ReloadOutcome::ConfigRefused(error.to_string());
            }
        };
        let outcomes = self
            .parts
            .iter()
            .map(|part| {
                let outcome = part.reload(&config);
                match &outcome {
                    Ok(()) => tracing::info!(part = part.name(), "reloaded"),
                    Err(error) => tracing::error!(part = part.name(), %error, "reload failed: the old settings stay"),
                }
                (part.name(), outcome)
            })
            .collect();
        ReloadOutcome::Parts(outcomes)
    }
}
