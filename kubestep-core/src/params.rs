//! The catalog: every decorator parameter, what it accepts, its environment default and its doc.
//!
//! The macro, `--with` parsing, environment defaults, `show` and the docs all read this table, so
//! a parameter exists in one place.

use crate::value::DecoratorKind;

/// One decorator parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The key as written in the attribute.
    pub name: &'static str,
    /// What values it accepts, as error messages say it.
    pub expects: &'static str,
    /// The `KUBESTEP_KUBERNETES_*` variable that gives its default, if any.
    pub env: Option<&'static str>,
    /// One line for `show` and the docs.
    pub doc: &'static str,
}

const fn p(
    name: &'static str,
    expects: &'static str,
    env: Option<&'static str>,
    doc: &'static str,
) -> Param {
    Param {
        name,
        expects,
        env,
        doc,
    }
}

const SIZE_MB: &str = "a whole number of MB or a quantity string such as \"16Gi\"";
const SIZE_MIB: &str = "a whole number of MiB or a quantity string such as \"1Gi\"";
const STR_MAP: &str = "a map of strings, such as { \"key\": \"value\" }";

/// `#[kubernetes(...)]`.
pub const KUBERNETES: &[Param] = &[
    p(
        "cpu",
        "a number greater than 0 or a quantity string such as \"500m\"",
        Some("KUBESTEP_KUBERNETES_CPU"),
        "cpu request (cores)",
    ),
    p(
        "memory",
        SIZE_MB,
        Some("KUBESTEP_KUBERNETES_MEMORY"),
        "memory request; also the memory limit unless qos is BestEffort",
    ),
    p(
        "disk",
        SIZE_MB,
        Some("KUBESTEP_KUBERNETES_DISK"),
        "ephemeral-storage request",
    ),
    p(
        "gpu",
        "a whole number, 0 or more",
        None,
        "GPUs, as a limit on <gpu_vendor>.com/gpu; 0 keeps the pod off GPU nodes",
    ),
    p(
        "gpu_vendor",
        "\"nvidia\" or \"amd\"",
        Some("KUBESTEP_KUBERNETES_GPU_VENDOR"),
        "GPU vendor that names the GPU resource",
    ),
    p(
        "image",
        "a container image reference such as \"debian:bookworm-slim\"",
        Some("KUBESTEP_KUBERNETES_CONTAINER_IMAGE"),
        "image that runs the step",
    ),
    p(
        "image_pull_policy",
        "\"Always\", \"IfNotPresent\" or \"Never\"",
        Some("KUBESTEP_KUBERNETES_IMAGE_PULL_POLICY"),
        "when the node pulls the image",
    ),
    p(
        "image_pull_secrets",
        "a list of Secret names",
        Some("KUBESTEP_KUBERNETES_IMAGE_PULL_SECRETS"),
        "Secrets holding registry credentials",
    ),
    p(
        "namespace",
        "a namespace name (DNS-1123 label)",
        Some("KUBESTEP_KUBERNETES_NAMESPACE"),
        "namespace of the Job",
    ),
    p(
        "service_account",
        "a ServiceAccount name",
        Some("KUBESTEP_KUBERNETES_SERVICE_ACCOUNT"),
        "ServiceAccount of the pod",
    ),
    p(
        "secrets",
        "a Secret name or a list of Secret names",
        Some("KUBESTEP_KUBERNETES_SECRETS"),
        "Secrets exposed as environment variables (added to the environment default)",
    ),
    p(
        "node_selector",
        "a string \"k=v,k2=v2\" or a map of strings",
        Some("KUBESTEP_KUBERNETES_NODE_SELECTOR"),
        "node labels the pod requires",
    ),
    p(
        "tolerations",
        "a list of maps with keys key, operator, value, effect, toleration_seconds",
        Some("KUBESTEP_KUBERNETES_TOLERATIONS"),
        "taints the pod tolerates",
    ),
    p(
        "labels",
        STR_MAP,
        Some("KUBESTEP_KUBERNETES_LABELS"),
        "labels on the Job and its pod",
    ),
    p(
        "annotations",
        STR_MAP,
        Some("KUBESTEP_KUBERNETES_ANNOTATIONS"),
        "annotations on the Job and its pod",
    ),
    p(
        "persistent_volume_claims",
        "a map from claim name to absolute mount path",
        Some("KUBESTEP_KUBERNETES_PERSISTENT_VOLUME_CLAIMS"),
        "PersistentVolumeClaims to mount",
    ),
    p(
        "shared_memory",
        SIZE_MIB,
        Some("KUBESTEP_KUBERNETES_SHARED_MEMORY"),
        "size of /dev/shm",
    ),
    p(
        "use_tmpfs",
        "a boolean",
        None,
        "mount a tmpfs at tmpfs_path",
    ),
    p(
        "tmpfs_tempdir",
        "a boolean",
        None,
        "point TMPDIR and KUBESTEP_TEMPDIR at the tmpfs",
    ),
    p(
        "tmpfs_size",
        SIZE_MIB,
        None,
        "size of the tmpfs (default: half the memory)",
    ),
    p(
        "tmpfs_path",
        "an absolute path",
        None,
        "where the tmpfs is mounted",
    ),
    p(
        "port",
        "an integer from 1 to 65535",
        Some("KUBESTEP_KUBERNETES_PORT"),
        "container port to expose",
    ),
    p(
        "compute_pool",
        "a label value",
        None,
        "node pool, as a node selector on the compute-pool label",
    ),
    p(
        "qos",
        "\"Guaranteed\", \"Burstable\" or \"BestEffort\"",
        Some("KUBESTEP_KUBERNETES_QOS"),
        "QoS class: how requests and limits are set",
    ),
    p(
        "security_context",
        "a map with keys privileged, allow_privilege_escalation, run_as_user, run_as_group, run_as_non_root",
        None,
        "container security context",
    ),
    p(
        "hostname_resolution_timeout",
        "a whole number of seconds greater than 0",
        None,
        "how long parallel workers wait for the main node's name to resolve",
    ),
];

/// `#[resources(...)]`: merged with `#[kubernetes]` by taking the maximum.
pub const RESOURCES: &[Param] = &[
    p("cpu", KUBERNETES[0].expects, None, "cpu the step needs"),
    p("memory", SIZE_MB, None, "memory the step needs"),
    p("disk", SIZE_MB, None, "disk the step needs"),
    p(
        "gpu",
        "a whole number, 0 or more",
        None,
        "GPUs the step needs",
    ),
    p(
        "shared_memory",
        SIZE_MIB,
        None,
        "shared memory the step needs",
    ),
];

/// `#[retry(...)]`.
pub const RETRY: &[Param] = &[
    p(
        "times",
        "a whole number, 0 or more",
        None,
        "how many times a failed task is retried (default 3)",
    ),
    p(
        "minutes_between_retries",
        "a number of minutes, 0 or more",
        None,
        "pause before each retry (default 2)",
    ),
];

/// `#[timeout(...)]`: the parts add up.
pub const TIMEOUT: &[Param] = &[
    p("seconds", "a whole number, 0 or more", None, "seconds"),
    p("minutes", "a whole number, 0 or more", None, "minutes"),
    p("hours", "a whole number, 0 or more", None, "hours"),
];

/// The parameters of a decorator.
pub fn of(kind: DecoratorKind) -> &'static [Param] {
    match kind {
        DecoratorKind::Kubernetes => KUBERNETES,
        DecoratorKind::Resources => RESOURCES,
        DecoratorKind::Retry => RETRY,
        DecoratorKind::Timeout => TIMEOUT,
    }
}

/// The parameter `name` of `kind`.
pub fn find(kind: DecoratorKind, name: &str) -> Option<&'static Param> {
    of(kind).iter().find(|p| p.name == name)
}

/// The parameter whose name is nearest to a misspelt `name`, if one is near enough.
pub fn suggest(kind: DecoratorKind, name: &str) -> Option<&'static str> {
    nearest(name, of(kind).iter().map(|p| p.name))
}

/// The candidate nearest to `word`, if one is near enough to be a likely typo.
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The parameter names of `kind`, comma-separated, for "allowed: ..." messages.
pub fn names(kind: DecoratorKind) -> String {
    of(kind)
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest(DecoratorKind::Kubernetes, "cpus"), Some("cpu"));
        assert_eq!(suggest(DecoratorKind::Kubernetes, "memroy"), Some("memory"));
        assert_eq!(
            suggest(DecoratorKind::Kubernetes, "node_selectors"),
            Some("node_selector")
        );
        assert_eq!(suggest(DecoratorKind::Kubernetes, "zzzz"), None);
    }

    #[test]
    fn resources_are_a_subset_of_kubernetes() {
        for p in RESOURCES {
            assert!(
                find(DecoratorKind::Kubernetes, p.name).is_some(),
                "{}",
                p.name
            );
        }
    }
}
