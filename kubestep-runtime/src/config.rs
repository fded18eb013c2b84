//! Reads the `KUBESTEP_KUBERNETES_*` defaults from the environment and the config file named by
//! `KUBESTEP_CONFIG` (a JSON object of the same names); kubestep-core interprets them.

use kubestep_core::resolve::Defaults;
use kubestep_core::resolve::env::{Entry, Origin};
use std::path::PathBuf;

/// The config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// It cannot be read.
    #[error("cannot read the config file {} (named by KUBESTEP_CONFIG)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a JSON object.
    #[error("config file {} (named by KUBESTEP_CONFIG) must be a JSON object such as {{\"KUBESTEP_KUBERNETES_NAMESPACE\": \"ml\"}}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

const PREFIX: &str = "KUBESTEP_KUBERNETES_";

/// Gathers the defaults: the config file, then the environment (which wins).
///
/// # Errors
/// The config file is unreadable or not a JSON object of names to values.
pub fn defaults() -> Result<Defaults, Error> {
    let mut entries = Vec::new();
    if let Some(path) = std::env::var_os("KUBESTEP_CONFIG").filter(|p| !p.is_empty()) {
        entries.extend(from_file(PathBuf::from(path))?);
    }
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    env.sort();
    entries.extend(env.into_iter().map(|(var, value)| Entry {
        var,
        value,
        origin: Origin::Env,
    }));
    Ok(Defaults { entries })
}

fn from_file(path: PathBuf) -> Result<Vec<Entry>, Error> {
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })?;
    let format = |message: String| Error::Format {
        path: path.clone(),
        message,
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    let serde_json::Value::Object(map) = json else {
        return Err(format("the top level is not an object".into()));
    };
    let origin = Origin::ConfigFile(path.display().to_string());
    map.into_iter()
        .map(|(var, value)| {
            if !var.starts_with(PREFIX) {
                return Err(format(format!("key {var:?} does not start with {PREFIX}")));
            }
            // Strings are taken as written; other JSON (lists, maps, numbers) as their JSON text.
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            Ok(Entry {
                var,
                value,
                origin: origin.clone(),
            })
        })
        .collect()
}
