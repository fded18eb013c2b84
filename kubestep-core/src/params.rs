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
    /// How values from several layers (environment, decorator, `--with`) combine.
    pub merge: Merge,
    /// A value as `--with` and the environment variable take it (empty where none is shown).
    pub example: &'static str,
}

/// How a parameter's values from several layers combine; the higher layer is the one with
/// precedence (`--with` for one step > `--with` for all > decorator > environment > config
/// file > built-in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The higher layer's value replaces the lower's whole.
    Replace,
    /// Maps merge key by key, the higher layer winning a key.
    KeyMerge,
    /// Lists join, without repeats.
    Union,
    /// `#[resources]` against `#[kubernetes]`: the larger wins.
    Max,
}

const SIZE_MB: &str = "a whole number of MB or a quantity string such as \"16Gi\"";
const SIZE_MIB: &str = "a whole number of MiB or a quantity string such as \"1Gi\"";
const STR_MAP: &str = "a map of strings, such as { \"key\": \"value\" }";

/// The `#[kubernetes]` table: every parameter once, with its Rust type, how its layers merge
/// (see [`Merge`]), its environment variable, an example value as `--with` takes it, and what it
/// accepts.
///
/// It is a callback macro: `kubernetes_params!(m)` calls `m!` with the rows, and each place
/// that needs the parameters generates its part from them (this catalog, the fields and setter
/// of `KubernetesArgs`, the layered view resolve merges into). Adding a parameter is a row here,
/// a parser in `spec/kubernetes.rs` (the compiler asks for it), and its rendering (a test asks).
macro_rules! kubernetes_params {
    ($then:ident) => {
        $then! {
            /// cpu request (cores)
            cpu: Cpu, Replace,
                env Some("KUBESTEP_KUBERNETES_CPU"), example "3",
                expects "a number greater than 0 or a quantity string such as \"500m\"";
            /// memory request; also the memory limit unless qos is BestEffort
            memory: Size, Replace,
                env Some("KUBESTEP_KUBERNETES_MEMORY"), example "3000",
                expects SIZE_MB;
            /// ephemeral-storage request
            disk: Size, Replace,
                env Some("KUBESTEP_KUBERNETES_DISK"), example "20000",
                expects SIZE_MB;
            /// GPUs, as a limit on `nvidia.com/gpu` or `amd.com/gpu`; 0 keeps the pod off GPU nodes
            gpu: u32, Replace,
                env None, example "1",
                expects "a whole number, 0 or more";
            /// GPU vendor that names the GPU resource
            gpu_vendor: GpuVendor, Replace,
                env Some("KUBESTEP_KUBERNETES_GPU_VENDOR"), example "amd",
                expects "\"nvidia\" or \"amd\"";
            /// image that runs the step
            image: String, Replace,
                env Some("KUBESTEP_KUBERNETES_CONTAINER_IMAGE"), example "ghcr.io/acme/train:1.4",
                expects "a container image reference such as \"debian:bookworm-slim\"";
            /// when the node pulls the image
            image_pull_policy: PullPolicy, Replace,
                env Some("KUBESTEP_KUBERNETES_IMAGE_PULL_POLICY"), example "Always",
                expects "\"Always\", \"IfNotPresent\" or \"Never\"";
            /// Secrets holding registry credentials
            image_pull_secrets: Vec<String>, Replace,
                env Some("KUBESTEP_KUBERNETES_IMAGE_PULL_SECRETS"), example "regcred",
                expects "a list of Secret names";
            /// namespace of the Job
            namespace: String, Replace,
                env Some("KUBESTEP_KUBERNETES_NAMESPACE"), example "ml",
                expects "a namespace name (DNS-1123 label)";
            /// ServiceAccount of the pod
            service_account: String, Replace,
                env Some("KUBESTEP_KUBERNETES_SERVICE_ACCOUNT"), example "trainer",
                expects "a ServiceAccount name";
            /// Secrets exposed as environment variables (added to the environment default)
            secrets: Vec<String>, Union,
                env Some("KUBESTEP_KUBERNETES_SECRETS"), example "s3-credentials,db-password",
                expects "a Secret name or a list of Secret names";
            /// node labels the pod requires
            node_selector: BTreeMap<String, String>, Replace,
                env Some("KUBESTEP_KUBERNETES_NODE_SELECTOR"), example "disktype=ssd",
                expects "a string \"k=v,k2=v2\" or a map of strings";
            /// taints the pod tolerates
            tolerations: Vec<Toleration>, Replace,
                env Some("KUBESTEP_KUBERNETES_TOLERATIONS"), example "[{\"key\":\"spot\",\"operator\":\"Exists\"}]",
                expects "a list of maps with keys key, operator, value, effect, toleration_seconds";
            /// labels on the Job and its pod
            labels: BTreeMap<String, String>, KeyMerge,
                env Some("KUBESTEP_KUBERNETES_LABELS"), example "team=ml",
                expects STR_MAP;
            /// annotations on the Job and its pod
            annotations: BTreeMap<String, String>, KeyMerge,
                env Some("KUBESTEP_KUBERNETES_ANNOTATIONS"), example "owner=ml-platform",
                expects STR_MAP;
            /// PersistentVolumeClaims to mount
            persistent_volume_claims: BTreeMap<String, String>, Replace,
                env Some("KUBESTEP_KUBERNETES_PERSISTENT_VOLUME_CLAIMS"), example "data=/data",
                expects "a map from claim name to absolute mount path";
            /// size of /dev/shm
            shared_memory: Size, Replace,
                env Some("KUBESTEP_KUBERNETES_SHARED_MEMORY"), example "1024",
                expects SIZE_MIB;
            /// mount a tmpfs at tmpfs_path
            use_tmpfs: bool, Replace,
                env None, example "true",
                expects "a boolean";
            /// point TMPDIR and KUBESTEP_TEMPDIR at the tmpfs
            tmpfs_tempdir: bool, Replace,
                env None, example "false",
                expects "a boolean";
            /// size of the tmpfs (default: half the memory)
            tmpfs_size: Size, Replace,
                env None, example "2048",
                expects SIZE_MIB;
            /// where the tmpfs is mounted
            tmpfs_path: String, Replace,
                env None, example "/scratch",
                expects "an absolute path";
            /// container port to expose
            port: u16, Replace,
                env Some("KUBESTEP_KUBERNETES_PORT"), example "8080",
                expects "an integer from 1 to 65535";
            /// node pool, as a node selector on the compute-pool label
            compute_pool: String, Replace,
                env None, example "a100",
                expects "a label value";
            /// QoS class: how requests and limits are set
            qos: Qos, Replace,
                env Some("KUBESTEP_KUBERNETES_QOS"), example "Guaranteed",
                expects "\"Guaranteed\", \"Burstable\" or \"BestEffort\"";
            /// container security context
            security_context: SecurityContext, Replace,
                env None, example "{\"run_as_non_root\":true,\"run_as_user\":1000}",
                expects "a map with keys privileged, allow_privilege_escalation, run_as_user, run_as_group, run_as_non_root";
            /// how long a multi-node step's workers wait for the control member's name and port
            hostname_resolution_timeout: u64, Replace,
                env None, example "60",
                expects "a whole number of seconds greater than 0";
        }
    };
}
pub(crate) use kubernetes_params;

macro_rules! catalog {
    // One row of `kubernetes_params!`.
    ($(#[doc = $doc:literal] $name:ident: $ty:ty, $merge:ident, env $env:expr, example $example:literal, expects $expects:expr;)*) => {
        /// `#[kubernetes(...)]`.
        pub const KUBERNETES: &[Param] = &[$(
            Param {
                name: stringify!($name),
                expects: $expects,
                env: $env,
                doc: $doc.trim_ascii(),
                merge: Merge::$merge,
                example: $example,
            },
        )*];
    };
}
kubernetes_params!(catalog);

const fn p(name: &'static str, expects: &'static str, merge: Merge, doc: &'static str) -> Param {
    Param {
        name,
        expects,
        env: None,
        doc,
        merge,
        example: "",
    }
}

/// `#[resources(...)]`: merged with `#[kubernetes]` by taking the maximum.
pub const RESOURCES: &[Param] = &[
    p(
        "cpu",
        KUBERNETES[0].expects,
        Merge::Max,
        "cpu the step needs",
    ),
    p("memory", SIZE_MB, Merge::Max, "memory the step needs"),
    p("disk", SIZE_MB, Merge::Max, "disk the step needs"),
    p(
        "gpu",
        "a whole number, 0 or more",
        Merge::Max,
        "GPUs the step needs",
    ),
    p(
        "shared_memory",
        SIZE_MIB,
        Merge::Max,
        "shared memory the step needs",
    ),
];

/// `#[retry(...)]`.
pub const RETRY: &[Param] = &[
    p(
        "times",
        "a whole number, 0 or more",
        Merge::Replace,
        "how many times a failed task is retried (default 3)",
    ),
    p(
        "minutes_between_retries",
        "a number of minutes, 0 or more",
        Merge::Replace,
        "pause before each retry (default 2)",
    ),
];

/// `#[timeout(...)]`: the parts add up.
pub const TIMEOUT: &[Param] = &[
    p(
        "seconds",
        "a whole number, 0 or more",
        Merge::Replace,
        "seconds",
    ),
    p(
        "minutes",
        "a whole number, 0 or more",
        Merge::Replace,
        "minutes",
    ),
    p(
        "hours",
        "a whole number, 0 or more",
        Merge::Replace,
        "hours",
    ),
];

impl Merge {
    /// How the docs say it.
    pub fn describe(self) -> &'static str {
        match self {
            Merge::Replace => "replaced whole",
            Merge::KeyMerge => "merged key by key",
            Merge::Union => "joined",
            Merge::Max => "the larger",
        }
    }
}

/// The `#[kubernetes]` parameters as the README's Markdown table (a test keeps them equal).
pub fn kubernetes_table() -> String {
    let mut out = String::from(
        "| parameter | accepts | across layers | default from | `--with` example | what it does |\n|---|---|---|---|---|---|\n",
    );
    for p in KUBERNETES {
        let env = p.env.map_or_else(String::new, |e| format!("`{e}`"));
        out.push_str(&format!(
            "| `{}` | {} | {} | {env} | `{}={}` | {} |\n",
            p.name,
            p.expects.replace('|', "\\|"),
            p.merge.describe(),
            p.name,
            p.example,
            p.doc
        ));
    }
    out
}

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

    /// The README's parameter table is the catalog's (`KUBESTEP_BLESS=1` rewrites it), and the
    /// crate documentation names every parameter.
    #[test]
    fn the_readme_lists_every_parameter() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = ("<!-- parameters:begin -->\n", "<!-- parameters:end -->");
        let start = readme.find(begin).expect("the README has the begin marker") + begin.len();
        let stop = readme.find(end).expect("the README has the end marker");
        // The crate documentation's table says where each parameter renders to: it lists them all.
        let facade = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../src/lib.rs"))
            .expect("src/lib.rs");
        for p in KUBERNETES {
            assert!(
                facade.contains(&format!("`{}`", p.name)),
                "the crate documentation (src/lib.rs) does not list `{}`",
                p.name
            );
        }
        let table = kubernetes_table();
        if readme[start..stop] != table {
            if std::env::var_os("KUBESTEP_BLESS").is_some() {
                let new = format!("{}{table}{}", &readme[..start], &readme[stop..]);
                std::fs::write(path, new).expect("write README.md");
            } else {
                panic!(
                    "README.md's parameter table differs from the catalog; rerun with KUBESTEP_BLESS=1"
                );
            }
        }
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
