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
    parse(path, &text)
}

/// The entries of a config file's `text`.
fn parse(path: PathBuf, text: &str) -> Result<Vec<Entry>, Error> {
    let format = |message: String| Error::Format {
        path: path.clone(),
        message,
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| format(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// No text makes the parser panic; a refusal names the file and says the form.
        #[test]
        fn any_text_is_read_or_refused_by_name(text in prop_oneof![".{0,200}", "\\{[\"A-Z_:, 0-9\\[\\]{}]{0,80}\\}"]) {
            if let Err(e) = parse(PathBuf::from("conf.json"), &text) {
                let e = e.to_string();
                prop_assert!(e.contains("conf.json") && e.contains("must be a JSON object"), "{e}");
            }
        }

        /// An object of prefixed names keeps every entry: strings as written, other JSON as
        /// its text.
        #[test]
        fn every_entry_is_kept(map in prop::collection::btree_map("KUBESTEP_KUBERNETES_[A-Z_]{1,20}", prop_oneof![
            ".{0,30}".prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            prop::collection::vec(".{0,8}", 0..4).prop_map(serde_json::Value::from),
        ], 0..8)) {
            let text = serde_json::to_string(&map).unwrap();
            let entries = parse(PathBuf::from("conf.json"), &text).unwrap();
            prop_assert_eq!(entries.len(), map.len());
            for e in entries {
                let expected = match &map[&e.var] {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                prop_assert_eq!(e.value, expected);
            }
        }
    }
}
