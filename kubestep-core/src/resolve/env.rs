//! Environment and config-file defaults: `KUBESTEP_KUBERNETES_*` variables.
//!
//! The runtime reads the process environment and the config file into [`Defaults`]; this module
//! only interprets them, so it stays free of I/O.

use super::text::read;
use super::{Source, Sourced};
use crate::params::KUBERNETES;
use crate::spec::{self, KubernetesArgs};
use crate::value::Arg;
use std::borrow::Cow;

/// Where a default came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The process environment.
    Env,
    /// A config file, by path.
    ConfigFile(String),
}

/// One `KUBESTEP_KUBERNETES_*` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The variable's name.
    pub var: String,
    /// Its text.
    pub value: String,
    /// Where it was read.
    pub origin: Origin,
}

/// Defaults below the decorator in precedence; an environment variable beats the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Every `KUBESTEP_KUBERNETES_*` entry found.
    pub entries: Vec<Entry>,
}

/// Settings that are not decorator parameters.
pub const SETTINGS: [(&str, &str); 10] = [
    (
        "KUBESTEP_KUBERNETES_COMPUTE_POOL_LABEL",
        "node label that compute_pool selects on (default kubestep.io/compute-pool)",
    ),
    (
        "KUBESTEP_KUBERNETES_GPU_NODE_LABEL",
        "node label that marks GPU nodes, avoided when gpu = 0 (default by vendor)",
    ),
    (
        "KUBESTEP_KUBERNETES_JOB_TTL_SECONDS_AFTER_FINISHED",
        "seconds a finished Job is kept (default 604800, 7 days)",
    ),
    (
        "KUBESTEP_KUBERNETES_FETCH_IMAGE",
        "image of the init container that fetches the step binary",
    ),
    (
        "KUBESTEP_KUBERNETES_BINARY_IN_IMAGE",
        "path of the step binary inside the image: no init container fetches it",
    ),
    (
        "KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT",
        "seconds a pod may wait to be scheduled before its task fails (default 600)",
    ),
    (
        "KUBESTEP_KUBERNETES_API_QPS",
        "most Kubernetes API requests per second a run makes, bursts of twice that (default 20)",
    ),
    (
        "KUBESTEP_KUBERNETES_NODE_LOST_SECONDS",
        "seconds a pod stays on a node that is not ready or unreachable before it is evicted and its task retried (default 30; Kubernetes' own is 300)",
    ),
    (
        "KUBESTEP_KUBERNETES_CLUSTER_DOMAIN",
        "the cluster's DNS domain, in the control address of a multi-node step (default cluster.local)",
    ),
    (
        "KUBESTEP_CONFIG",
        "path of a JSON file of KUBESTEP_KUBERNETES_* defaults",
    ),
];

/// Variables kubestep sets inside a step's pod; they describe the pod, they are not defaults.
pub const IN_POD: [&str; 6] = [
    "KUBESTEP_KUBERNETES_WORKLOAD",
    "KUBESTEP_KUBERNETES_POD_NAME",
    "KUBESTEP_KUBERNETES_POD_NAMESPACE",
    "KUBESTEP_KUBERNETES_POD_ID",
    "KUBESTEP_KUBERNETES_NODE_IP",
    "KUBESTEP_KUBERNETES_SERVICE_ACCOUNT_NAME",
];

/// A default that cannot be used, naming the variable, its value and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A `KUBESTEP_KUBERNETES_*` name that means nothing.
    #[error("unknown setting {var}{} ({origin}); known: {known}", hint.as_ref().map(|h| format!("; did you mean {h}?")).unwrap_or_default())]
    Unknown {
        /// The variable.
        var: String,
        /// Where it was read.
        origin: String,
        /// The nearest known name.
        hint: Option<String>,
        /// Every known name.
        known: String,
    },
    /// A value the parameter rejects.
    #[error("{var}={value:?} ({origin}): {message}")]
    Invalid {
        /// The variable.
        var: String,
        /// Its text.
        value: String,
        /// Where it was read.
        origin: String,
        /// The rule it breaks.
        message: String,
    },
}

impl Entry {
    fn source(&self) -> Source {
        match &self.origin {
            Origin::Env => Source::Env(self.var.clone()),
            Origin::ConfigFile(file) => Source::Config {
                file: file.clone(),
                key: self.var.clone(),
            },
        }
    }
}

impl Origin {
    fn describe(&self) -> String {
        match self {
            Origin::Env => "environment".into(),
            Origin::ConfigFile(path) => format!("config file {path}"),
        }
    }
}

/// Non-parameter settings, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Node label for compute pools.
    pub compute_pool_label: String,
    /// Node label marking GPU nodes, if set explicitly.
    pub gpu_node_label: Option<String>,
    /// `ttlSecondsAfterFinished` of every Job.
    pub job_ttl_seconds: Sourced<i32>,
    /// Image of the binary-fetching init container.
    pub fetch_image: String,
    /// Path of the step binary inside the image, when it is baked in.
    pub binary_in_image: Option<String>,
    /// How long a pod may stay unscheduled before its task fails.
    pub scheduling_timeout_seconds: u64,
    /// Client-side limit on API requests per second.
    pub api_qps: u32,
    /// The cluster's DNS domain: the suffix of a multi-node step's control address.
    pub cluster_domain: String,
    /// `tolerationSeconds` for the `not-ready` and `unreachable` node taints: how soon a lost
    /// node's pods are evicted, and their tasks retried elsewhere.
    pub node_lost_seconds: Sourced<i64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            compute_pool_label: crate::labels::COMPUTE_POOL.into(),
            gpu_node_label: None,
            job_ttl_seconds: Sourced {
                value: 604_800,
                source: Source::BuiltIn,
            },
            fetch_image: "curlimages/curl:8.11.1".into(),
            binary_in_image: None,
            scheduling_timeout_seconds: 600,
            api_qps: 20,
            cluster_domain: "cluster.local".into(),
            node_lost_seconds: Sourced {
                value: 30,
                source: Source::BuiltIn,
            },
        }
    }
}

impl Defaults {
    /// The entries in precedence order: config file first, so the environment overrides it.
    fn ordered(&self) -> impl Iterator<Item = &Entry> {
        let file = self.entries.iter().filter(|e| e.origin != Origin::Env);
        file.chain(self.entries.iter().filter(|e| e.origin == Origin::Env))
    }

    /// One layer per parameter default, lowest first, each with its source.
    ///
    /// # Errors
    /// An unknown variable, or a value the parameter rejects.
    pub fn layers(&self) -> Result<Vec<(KubernetesArgs, Source)>, Error> {
        let mut layers = Vec::new();
        for e in self.ordered() {
            if SETTINGS.iter().any(|(v, _)| *v == e.var) || IN_POD.contains(&e.var.as_str()) {
                continue;
            }
            let Some(param) = KUBERNETES.iter().find(|p| p.env == Some(e.var.as_str())) else {
                let known: Vec<&str> = KUBERNETES
                    .iter()
                    .filter_map(|p| p.env)
                    .chain(SETTINGS.iter().map(|(v, _)| *v))
                    .collect();
                return Err(Error::Unknown {
                    var: e.var.clone(),
                    origin: e.origin.describe(),
                    hint: crate::params::nearest(&e.var, known.iter().copied()).map(str::to_string),
                    known: known.join(", "),
                });
            };
            let value = read(param.name, e.value.trim()).map_err(|message| Error::Invalid {
                var: e.var.clone(),
                value: e.value.clone(),
                origin: e.origin.describe(),
                message,
            })?;
            let arg = Arg {
                key: Cow::Borrowed(param.name),
                value,
            };
            let args = KubernetesArgs::parse(std::slice::from_ref(&arg))
                .map_err(|errors| self.invalid(e, &errors))?;
            layers.push((args, e.source()));
        }
        Ok(layers)
    }

    fn invalid(&self, e: &Entry, errors: &[spec::Error]) -> Error {
        Error::Invalid {
            var: e.var.clone(),
            value: e.value.clone(),
            origin: e.origin.describe(),
            message: errors
                .iter()
                .map(|x| x.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// The settings that are not parameters.
    ///
    /// # Errors
    /// A setting with an invalid value.
    pub fn settings(&self) -> Result<Settings, Error> {
        let mut s = Settings::default();
        for e in self.ordered() {
            let bad = |message: &str| Error::Invalid {
                var: e.var.clone(),
                value: e.value.clone(),
                origin: e.origin.describe(),
                message: message.to_string(),
            };
            let label_key = |v: &str| {
                crate::names::qualified_name(v)
                    .map(|_| v.to_string())
                    .map_err(|r| bad(&format!("must be a node label key: {r}")))
            };
            match e.var.as_str() {
                "KUBESTEP_KUBERNETES_COMPUTE_POOL_LABEL" => {
                    s.compute_pool_label = label_key(&e.value)?
                }
                "KUBESTEP_KUBERNETES_GPU_NODE_LABEL" => {
                    s.gpu_node_label = Some(label_key(&e.value)?)
                }
                "KUBESTEP_KUBERNETES_JOB_TTL_SECONDS_AFTER_FINISHED" => {
                    let value = at_least(&e.value, 0)
                        .ok_or_else(|| bad("must be a whole number of seconds, 0 or more"))?;
                    s.job_ttl_seconds = Sourced {
                        value,
                        source: e.source(),
                    };
                }
                "KUBESTEP_KUBERNETES_FETCH_IMAGE" => {
                    if e.value.trim().is_empty() || e.value.contains(char::is_whitespace) {
                        return Err(bad("an image reference is not empty and has no spaces"));
                    }
                    s.fetch_image = e.value.clone();
                }
                "KUBESTEP_KUBERNETES_BINARY_IN_IMAGE" => {
                    if !e.value.starts_with('/') || e.value.contains(char::is_whitespace) {
                        return Err(bad("must be an absolute path without spaces"));
                    }
                    s.binary_in_image = Some(e.value.clone());
                }
                "KUBESTEP_KUBERNETES_SCHEDULING_TIMEOUT" => {
                    s.scheduling_timeout_seconds = at_least(&e.value, 1)
                        .ok_or_else(|| bad("must be a whole number of seconds, 1 or more"))?;
                }
                "KUBESTEP_KUBERNETES_NODE_LOST_SECONDS" => {
                    let value = at_least(&e.value, 0)
                        .ok_or_else(|| bad("must be a whole number of seconds, 0 or more"))?;
                    s.node_lost_seconds = Sourced {
                        value,
                        source: e.source(),
                    };
                }
                "KUBESTEP_KUBERNETES_CLUSTER_DOMAIN" => {
                    let domain = e.value.trim().trim_end_matches('.');
                    crate::names::dns_subdomain(domain)
                        .map_err(|r| bad(&format!("must be a DNS domain: {r}")))?;
                    s.cluster_domain = domain.to_string();
                }
                "KUBESTEP_KUBERNETES_API_QPS" => {
                    s.api_qps = at_least(&e.value, 1)
                        .filter(|n| *n <= 10_000)
                        .ok_or_else(|| bad("must be a whole number from 1 to 10000"))?;
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// `text` as a number of at least `min`, or `None`.
fn at_least<T: std::str::FromStr + PartialOrd>(text: &str, min: T) -> Option<T> {
    text.trim().parse().ok().filter(|n| *n >= min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str, value: &str) -> Defaults {
        Defaults {
            entries: vec![Entry {
                var: var.into(),
                value: value.into(),
                origin: Origin::Env,
            }],
        }
    }

    #[test]
    fn shared_memory_from_the_environment_works() {
        // Metaflow rejects every METAFLOW_KUBERNETES_SHARED_MEMORY because it arrives as a string.
        let layers = env("KUBESTEP_KUBERNETES_SHARED_MEMORY", "512")
            .layers()
            .unwrap();
        assert_eq!(
            layers[0].0.shared_memory.as_ref().unwrap().quantity(),
            "512Mi"
        );
    }

    #[test]
    fn errors_name_the_variable_the_value_and_the_rule() {
        let e = env("KUBESTEP_KUBERNETES_CPU", "-2")
            .layers()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KUBESTEP_KUBERNETES_CPU=\"-2\"") && e.contains("greater than 0"),
            "{e}"
        );
        let e = env("KUBESTEP_KUBERNETES_CPUS", "2")
            .layers()
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean KUBESTEP_KUBERNETES_CPU"), "{e}");
    }

    #[test]
    fn string_forms() {
        let l = env("KUBESTEP_KUBERNETES_LABELS", "team=ml,tier=gold")
            .layers()
            .unwrap();
        assert_eq!(l[0].0.labels.as_ref().unwrap().len(), 2);
        let l = env("KUBESTEP_KUBERNETES_SECRETS", "a,b").layers().unwrap();
        assert_eq!(l[0].0.secrets.as_ref().unwrap(), &["a", "b"]);
        let l = env(
            "KUBESTEP_KUBERNETES_TOLERATIONS",
            r#"[{"key":"gpu","operator":"Exists"}]"#,
        )
        .layers()
        .unwrap();
        assert_eq!(l[0].0.tolerations.as_ref().unwrap().len(), 1);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Every variable kubestep reads, and near misses of them.
        fn var() -> impl Strategy<Value = String> {
            let known: Vec<String> = KUBERNETES
                .iter()
                .filter_map(|p| p.env)
                .chain(SETTINGS.iter().map(|(v, _)| *v))
                .map(str::to_string)
                .collect();
            prop_oneof![
                proptest::sample::select(known),
                "KUBESTEP_KUBERNETES_[A-Z_]{0,24}",
            ]
        }

        /// Values users write: any text, numbers, lists, JSON, and the parameters' own forms.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                ".{0,60}",
                "-?[0-9]{0,12}(\\.[0-9]{0,6})?(e[0-9]{1,3})?[kMGTi]{0,2}",
                "[a-z0-9=,./:{}\\[\\]\" -]{0,60}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// No variable and value makes the defaults panic; a refusal names the variable
            /// and, for a known one, the value.
            #[test]
            fn no_variable_panics_and_refusals_name_it(var in var(), value in value()) {
                let d = env(&var, &value);
                for e in [d.layers().err(), d.settings().err()].into_iter().flatten() {
                    let text = e.to_string();
                    prop_assert!(text.contains(&var), "{text}");
                    if let Error::Invalid { .. } = e {
                        prop_assert!(text.contains(&format!("{value:?}")), "{text}");
                    }
                }
            }
        }
    }
}
