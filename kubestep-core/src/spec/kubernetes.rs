//! `#[kubernetes(...)]`: every parameter of the decorator, checked one by one.

use super::{
    Bad, Checked, Error, Place, arg_index, invalid, parse_args, to_bool, to_str, to_str_list,
    to_str_map, to_uint, wrong_type,
};
use crate::names;
use crate::params::KUBERNETES;
use crate::quantity::{Cpu, Size, Unit};
use crate::value::{Arg, At, DecoratorKind, Value};
use std::collections::BTreeMap;

/// GPU vendor: names the extended resource `<vendor>.com/gpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuVendor {
    /// `nvidia.com/gpu`
    Nvidia,
    /// `amd.com/gpu`
    Amd,
}

impl GpuVendor {
    /// The lower-case vendor name.
    pub fn name(self) -> &'static str {
        match self {
            GpuVendor::Nvidia => "nvidia",
            GpuVendor::Amd => "amd",
        }
    }
}

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn name(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// QoS class, which decides how requests and limits are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qos {
    /// Limits equal requests.
    Guaranteed,
    /// Requests, and a memory limit equal to the memory request.
    Burstable,
    /// No cpu or memory requests or limits.
    BestEffort,
}

impl Qos {
    /// The Kubernetes spelling.
    pub fn name(self) -> &'static str {
        match self {
            Qos::Guaranteed => "Guaranteed",
            Qos::Burstable => "Burstable",
            Qos::BestEffort => "BestEffort",
        }
    }
}

/// A toleration's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOperator {
    /// Matches a taint with this key and value.
    Equal,
    /// Matches any taint with this key (or every taint, with no key).
    Exists,
}

impl TolerationOperator {
    /// The Kubernetes spelling.
    pub fn name(self) -> &'static str {
        match self {
            TolerationOperator::Equal => "Equal",
            TolerationOperator::Exists => "Exists",
        }
    }
}

/// A taint effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    /// `NoSchedule`
    NoSchedule,
    /// `PreferNoSchedule`
    PreferNoSchedule,
    /// `NoExecute`
    NoExecute,
}

impl TaintEffect {
    /// The Kubernetes spelling.
    pub fn name(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// One toleration, checked as the API server would.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Toleration {
    /// Taint key; none with `Exists` tolerates every taint.
    pub key: Option<String>,
    /// `Equal` (the Kubernetes default) or `Exists`.
    pub operator: Option<TolerationOperator>,
    /// Taint value, for `Equal`.
    pub value: Option<String>,
    /// Taint effect; none matches every effect.
    pub effect: Option<TaintEffect>,
    /// How long a `NoExecute` taint is tolerated.
    pub toleration_seconds: Option<i64>,
}

/// Container security context keys kubestep exposes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityContext {
    /// `privileged`
    pub privileged: Option<bool>,
    /// `allowPrivilegeEscalation`
    pub allow_privilege_escalation: Option<bool>,
    /// `runAsUser`
    pub run_as_user: Option<i64>,
    /// `runAsGroup`
    pub run_as_group: Option<i64>,
    /// `runAsNonRoot`
    pub run_as_non_root: Option<bool>,
}

/// The arguments of one `#[kubernetes(...)]` (or one `--with kubernetes:...`, or the environment
/// defaults): every field is optional, and precedence fills the gaps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KubernetesArgs {
    /// cpu request.
    pub cpu: Option<Cpu>,
    /// memory request (MB).
    pub memory: Option<Size>,
    /// ephemeral-storage request (MB).
    pub disk: Option<Size>,
    /// GPU count.
    pub gpu: Option<u32>,
    /// GPU vendor.
    pub gpu_vendor: Option<GpuVendor>,
    /// Container image.
    pub image: Option<String>,
    /// Image pull policy.
    pub image_pull_policy: Option<PullPolicy>,
    /// Registry credential Secrets.
    pub image_pull_secrets: Option<Vec<String>>,
    /// Namespace.
    pub namespace: Option<String>,
    /// ServiceAccount.
    pub service_account: Option<String>,
    /// Secrets exposed as environment.
    pub secrets: Option<Vec<String>>,
    /// Node selector.
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations.
    pub tolerations: Option<Vec<Toleration>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Claim name -> mount path.
    pub persistent_volume_claims: Option<BTreeMap<String, String>>,
    /// /dev/shm size (MiB).
    pub shared_memory: Option<Size>,
    /// Mount a tmpfs.
    pub use_tmpfs: Option<bool>,
    /// TMPDIR on the tmpfs.
    pub tmpfs_tempdir: Option<bool>,
    /// tmpfs size (MiB).
    pub tmpfs_size: Option<Size>,
    /// tmpfs mount path.
    pub tmpfs_path: Option<String>,
    /// Container port.
    pub port: Option<u16>,
    /// Compute pool.
    pub compute_pool: Option<String>,
    /// QoS class.
    pub qos: Option<Qos>,
    /// Security context.
    pub security_context: Option<SecurityContext>,
    /// Seconds parallel workers wait for the main node's name.
    pub hostname_resolution_timeout: Option<u64>,
}

/// Label and annotation keys kubestep sets itself; a user's may not take them.
pub const RESERVED_LABEL_PREFIXES: [&str; 2] = ["kubestep.io/", "app.kubernetes.io/managed-by"];

fn expects(key: &str) -> &'static str {
    KUBERNETES
        .iter()
        .find(|p| p.name == key)
        .map_or("a valid value", |p| p.expects)
}

/// Matches a string against a closed set of spellings.
fn one_of<T: Copy>(key: &str, v: &Value, options: &[(&str, T)], ignore_case: bool) -> Checked<T> {
    let s = to_str(key, v, expects(key))?;
    options
        .iter()
        .find(|(name, _)| {
            if ignore_case {
                name.eq_ignore_ascii_case(s)
            } else {
                *name == s
            }
        })
        .map(|(_, t)| *t)
        .ok_or_else(|| invalid(key, v, &format!("must be {}", expects(key))))
}

pub(super) fn size(key: &str, v: &Value, unit: Unit) -> Checked<Size> {
    match v {
        Value::Int(_) | Value::Str(_) | Value::Float(_) => {
            Size::from_value(v, unit).map_err(|r| invalid(key, v, &r))
        }
        _ => Err(wrong_type(key, v, expects(key))),
    }
}

pub(super) fn cpu(key: &str, v: &Value) -> Checked<Cpu> {
    match v {
        Value::Int(_) | Value::Float(_) | Value::Str(_) => {
            Cpu::from_value(v).map_err(|r| invalid(key, v, &r))
        }
        _ => Err(wrong_type(key, v, expects(key))),
    }
}

pub(super) fn gpu(key: &str, v: &Value) -> Checked<u32> {
    to_uint(key, v, "a whole number of GPUs, 0 or more", u32::MAX as u64).map(|n| n as u32)
}

fn absolute_path(key: &str, s: &str, what: &str) -> Result<(), String> {
    if s.starts_with('/') && !s.contains('\0') && !s.split('/').any(|part| part == "..") {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {s:?} in `{key}`: must be an absolute path (starting with '/') without '..'"
        ))
    }
}

fn label_key(k: &str) -> Result<(), String> {
    names::qualified_name(k)?;
    match RESERVED_LABEL_PREFIXES.iter().find(|p| k.starts_with(*p)) {
        Some(p) => Err(format!(
            "keys starting with \"{p}\" are reserved for the labels kubestep sets itself"
        )),
        None => Ok(()),
    }
}

fn any_value(_: &str) -> Result<(), String> {
    Ok(())
}

fn annotations(key: &str, v: &Value) -> Checked<BTreeMap<String, String>> {
    let map = to_str_map(
        key,
        v,
        expects(key),
        ("annotation key", label_key),
        ("annotation value", any_value),
    )?;
    let total: usize = map.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > 256 * 1024 {
        return Err(Bad::new(format!(
            "`{key}` holds {total} bytes; Kubernetes allows at most 262144 bytes of annotations"
        )));
    }
    Ok(map)
}

fn node_selector(key: &str, v: &Value) -> Checked<BTreeMap<String, String>> {
    let pairs = match v {
        Value::Str(s) => parse_node_selector_str(key, s)?,
        Value::Map(_) => {
            return to_str_map(
                key,
                v,
                expects(key),
                ("label key", names::qualified_name),
                ("label value", names::label_value),
            );
        }
        _ => return Err(wrong_type(key, v, expects(key))),
    };
    Ok(pairs.into_iter().collect())
}

fn parse_node_selector_str(key: &str, s: &str) -> Checked<Vec<(String, String)>> {
    let pairs = super::parse_key_values(s)
        .map_err(|r| Bad::new(format!("invalid `{key}` = {s:?}: {r}")))?;
    for (k, v) in &pairs {
        names::qualified_name(k)
            .map_err(|r| Bad::new(format!("invalid label key {k:?} in `{key}`: {r}")))?;
        names::label_value(v).map_err(|r| {
            Bad::new(format!(
                "invalid label value {v:?} for {k:?} in `{key}`: {r}"
            ))
        })?;
    }
    Ok(pairs)
}

const TOLERATION_KEYS: [&str; 5] = ["key", "operator", "value", "effect", "toleration_seconds"];

fn toleration(key: &str, v: &Value) -> Checked<Toleration> {
    let Value::Map(entries) = v else {
        return Err(wrong_type(
            key,
            v,
            "maps such as { key: \"k\", operator: \"Exists\" }",
        ));
    };
    let mut t = Toleration::default();
    let mut seen = Vec::new();
    for (i, (k, val)) in entries.iter().enumerate() {
        let k = k.as_ref();
        if seen.contains(&k) {
            return Err(Bad::new(format!("toleration key `{k}` is given twice")).inside(At::Key(i)));
        }
        seen.push(k);
        let field = format!("{key}.{k}");
        let r: Checked<()> = match k {
            "key" => to_str(&field, val, "a string").and_then(|s| {
                names::qualified_name(s).map_err(|r| invalid(&field, val, &r))?;
                t.key = Some(s.to_string());
                Ok(())
            }),
            "operator" => one_of(
                &field,
                val,
                &[
                    ("Equal", TolerationOperator::Equal),
                    ("Exists", TolerationOperator::Exists),
                ],
                false,
            )
            .map_err(|_| invalid(&field, val, "must be \"Equal\" or \"Exists\""))
            .map(|o| t.operator = Some(o)),
            "value" => to_str(&field, val, "a string").and_then(|s| {
                names::label_value(s).map_err(|r| invalid(&field, val, &r))?;
                t.value = Some(s.to_string());
                Ok(())
            }),
            "effect" => one_of(
                &field,
                val,
                &[
                    ("NoSchedule", TaintEffect::NoSchedule),
                    ("PreferNoSchedule", TaintEffect::PreferNoSchedule),
                    ("NoExecute", TaintEffect::NoExecute),
                ],
                false,
            )
            .map_err(|_| {
                invalid(
                    &field,
                    val,
                    "must be \"NoSchedule\", \"PreferNoSchedule\" or \"NoExecute\"",
                )
            })
            .map(|e| t.effect = Some(e)),
            "toleration_seconds" => match val {
                Value::Int(n) => {
                    t.toleration_seconds = Some(*n);
                    Ok(())
                }
                _ => Err(wrong_type(&field, val, "an integer number of seconds")),
            },
            _ => {
                let hint = crate::params::nearest(k, TOLERATION_KEYS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                Err(Bad::new(format!(
                    "unknown toleration key `{k}`; {hint}allowed: {}",
                    TOLERATION_KEYS.join(", ")
                ))
                .inside(At::Key(i)))
            }
        };
        r.map_err(|b| {
            if b.at.is_empty() {
                b.inside(At::Value(i))
            } else {
                b
            }
        })?;
    }
    // The API server's own rules (core/v1 validation of tolerations).
    let rule = if t.operator == Some(TolerationOperator::Exists)
        && t.value.as_deref().is_some_and(|v| !v.is_empty())
    {
        Some("a toleration with operator \"Exists\" must not have a value")
    } else if t.key.is_none() && t.operator != Some(TolerationOperator::Exists) {
        Some(
            "a toleration without a key must have operator \"Exists\" (it then tolerates every taint)",
        )
    } else if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
        Some("toleration_seconds is only allowed with effect \"NoExecute\"")
    } else {
        None
    };
    match rule {
        Some(r) => Err(Bad::new(format!("invalid toleration {v}: {r}"))),
        None => Ok(t),
    }
}

const SECURITY_KEYS: [&str; 5] = [
    "privileged",
    "allow_privilege_escalation",
    "run_as_user",
    "run_as_group",
    "run_as_non_root",
];

fn security_context(key: &str, v: &Value) -> Checked<SecurityContext> {
    let Value::Map(entries) = v else {
        return Err(wrong_type(key, v, expects(key)));
    };
    let mut sc = SecurityContext::default();
    let mut seen = Vec::new();
    for (i, (k, val)) in entries.iter().enumerate() {
        let k = k.as_ref();
        if seen.contains(&k) {
            return Err(
                Bad::new(format!("security_context key `{k}` is given twice")).inside(At::Key(i)),
            );
        }
        seen.push(k);
        let field = format!("{key}.{k}");
        let id = |val: &Value| {
            to_uint(
                &field,
                val,
                "a user or group id, 0 or more",
                i64::MAX as u64,
            )
            .map(|n| n as i64)
        };
        let r = match k {
            "privileged" => to_bool(&field, val).map(|b| sc.privileged = Some(b)),
            "allow_privilege_escalation" => {
                to_bool(&field, val).map(|b| sc.allow_privilege_escalation = Some(b))
            }
            "run_as_non_root" => to_bool(&field, val).map(|b| sc.run_as_non_root = Some(b)),
            "run_as_user" => id(val).map(|n| sc.run_as_user = Some(n)),
            "run_as_group" => id(val).map(|n| sc.run_as_group = Some(n)),
            _ => {
                let hint = crate::params::nearest(k, SECURITY_KEYS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                return Err(Bad::new(format!(
                    "unknown security_context key `{k}`; {hint}allowed: {}",
                    SECURITY_KEYS.join(", ")
                ))
                .inside(At::Key(i)));
            }
        };
        r.map_err(|b| b.inside(At::Value(i)))?;
    }
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        return Err(Bad::new(
            "invalid `security_context`: privileged = true needs privilege escalation; allow_privilege_escalation = false contradicts it",
        ));
    }
    if sc.run_as_non_root == Some(true) && sc.run_as_user == Some(0) {
        return Err(Bad::new(
            "invalid `security_context`: run_as_non_root = true contradicts run_as_user = 0 (root)",
        ));
    }
    Ok(sc)
}

impl KubernetesArgs {
    /// Checks the arguments of one `#[kubernetes(...)]`.
    ///
    /// # Errors
    /// Every broken rule, each tied to its argument.
    pub fn parse(args: &[Arg]) -> Result<KubernetesArgs, Vec<Error>> {
        let (k, mut errors): (KubernetesArgs, _) =
            parse_args(DecoratorKind::Kubernetes, args, KubernetesArgs::set);
        if errors.is_empty() {
            errors.extend(k.check(args));
        }
        if errors.is_empty() {
            Ok(k)
        } else {
            Err(errors)
        }
    }

    /// Sets one parameter from a value; the parameter is known to exist.
    pub(crate) fn set(&mut self, key: &str, v: &Value) -> Checked<()> {
        let e = expects(key);
        match key {
            "cpu" => self.cpu = Some(cpu(key, v)?),
            "memory" => self.memory = Some(size(key, v, Unit::Megabytes)?),
            "disk" => self.disk = Some(size(key, v, Unit::Megabytes)?),
            "gpu" => self.gpu = Some(gpu(key, v)?),
            "gpu_vendor" => {
                self.gpu_vendor = Some(one_of(
                    key,
                    v,
                    &[("nvidia", GpuVendor::Nvidia), ("amd", GpuVendor::Amd)],
                    true,
                )?)
            }
            "image" => {
                let s = to_str(key, v, e)?;
                if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(invalid(
                        key,
                        v,
                        "an image reference is not empty and has no spaces",
                    ));
                }
                self.image = Some(s.to_string());
            }
            "image_pull_policy" => {
                let opts = [
                    ("Always", PullPolicy::Always),
                    ("IfNotPresent", PullPolicy::IfNotPresent),
                    ("Never", PullPolicy::Never),
                ];
                self.image_pull_policy = Some(one_of(key, v, &opts, false)?);
            }
            "image_pull_secrets" => {
                self.image_pull_secrets =
                    Some(to_str_list(key, v, e, "Secret name", names::dns_subdomain)?)
            }
            "namespace" => {
                let s = to_str(key, v, e)?;
                names::dns_label(s).map_err(|r| invalid(key, v, &format!("must be {r}")))?;
                self.namespace = Some(s.to_string());
            }
            "service_account" => {
                let s = to_str(key, v, e)?;
                names::dns_subdomain(s).map_err(|r| invalid(key, v, &format!("must be {r}")))?;
                self.service_account = Some(s.to_string());
            }
            "secrets" => {
                // A single name is accepted as a one-element list.
                let list = match v {
                    Value::Str(s) => Value::List(vec![Value::string(s.as_ref())].into()),
                    other => other.clone(),
                };
                self.secrets = Some(to_str_list(
                    key,
                    &list,
                    e,
                    "Secret name",
                    names::dns_subdomain,
                )?);
            }
            "node_selector" => self.node_selector = Some(node_selector(key, v)?),
            "tolerations" => {
                let Value::List(items) = v else {
                    return Err(wrong_type(key, v, e));
                };
                let ts = items
                    .iter()
                    .enumerate()
                    .map(|(i, t)| toleration(key, t).map_err(|b| b.inside(At::Index(i))));
                self.tolerations = Some(ts.collect::<Checked<_>>()?);
            }
            "labels" => {
                self.labels = Some(to_str_map(
                    key,
                    v,
                    e,
                    ("label key", label_key),
                    ("label value", names::label_value),
                )?)
            }
            "annotations" => self.annotations = Some(annotations(key, v)?),
            "persistent_volume_claims" => {
                let map = to_str_map(
                    key,
                    v,
                    e,
                    ("claim name", names::dns_subdomain),
                    ("mount path", |_| Ok(())),
                )?;
                let Value::Map(entries) = v else {
                    unreachable!("checked by to_str_map")
                };
                for (i, (claim, path)) in map.iter().enumerate() {
                    let at = entries.iter().position(|(c, _)| c == claim).unwrap_or(i);
                    absolute_path(key, path, "mount path")
                        .map_err(|m| Bad::new(m).inside(At::Value(at)))?;
                    if map.iter().any(|(other, p)| other < claim && p == path) {
                        return Err(Bad::new(format!(
                            "mount path {path:?} is used by two claims in `{key}`"
                        ))
                        .inside(At::Value(at)));
                    }
                }
                self.persistent_volume_claims = Some(map);
            }
            "shared_memory" => self.shared_memory = Some(size(key, v, Unit::Mebibytes)?),
            "use_tmpfs" => self.use_tmpfs = Some(to_bool(key, v)?),
            "tmpfs_tempdir" => self.tmpfs_tempdir = Some(to_bool(key, v)?),
            "tmpfs_size" => self.tmpfs_size = Some(size(key, v, Unit::Mebibytes)?),
            "tmpfs_path" => {
                let s = to_str(key, v, e)?;
                absolute_path(key, s, "path").map_err(Bad::new)?;
                self.tmpfs_path = Some(s.to_string());
            }
            "port" => match v {
                Value::Int(n) if (1..=65535).contains(n) => self.port = Some(*n as u16),
                Value::Int(_) => return Err(invalid(key, v, "a port must be from 1 to 65535")),
                _ => return Err(wrong_type(key, v, e)),
            },
            "compute_pool" => {
                let s = to_str(key, v, e)?;
                if s.is_empty() {
                    return Err(invalid(key, v, "must not be empty"));
                }
                names::label_value(s)
                    .map_err(|r| invalid(key, v, &format!("it becomes a node label value: {r}")))?;
                self.compute_pool = Some(s.to_string());
            }
            "qos" => {
                let opts = [
                    ("Guaranteed", Qos::Guaranteed),
                    ("Burstable", Qos::Burstable),
                    ("BestEffort", Qos::BestEffort),
                ];
                self.qos = Some(one_of(key, v, &opts, true)?);
            }
            "security_context" => self.security_context = Some(security_context(key, v)?),
            "hostname_resolution_timeout" => {
                let n = to_uint(key, v, e, u32::MAX as u64)?;
                if n == 0 {
                    return Err(invalid(key, v, "must be greater than 0"));
                }
                self.hostname_resolution_timeout = Some(n);
            }
            other => unreachable!("parameter `{other}` is in the catalog but has no setter"),
        }
        Ok(())
    }

    /// Rules across the parameters of one decorator.
    pub(crate) fn check(&self, args: &[Arg]) -> Vec<Error> {
        let at = |key: &str, message: String| Error {
            decorator: DecoratorKind::Kubernetes,
            arg: arg_index(args, key),
            place: Place::Key,
            message,
        };
        let mut errors = Vec::new();
        if self.qos == Some(Qos::BestEffort) {
            for (key, given) in [
                ("cpu", self.cpu.is_some()),
                ("memory", self.memory.is_some()),
                ("disk", self.disk.is_some()),
            ] {
                if given {
                    errors.push(at(key, best_effort_conflict(key, "")));
                }
            }
        }
        let tmpfs_on = self.use_tmpfs.unwrap_or(self.tmpfs_size.is_some());
        if self.use_tmpfs == Some(false) && self.tmpfs_size.is_some() {
            errors.push(at(
                "tmpfs_size",
                "`tmpfs_size` is given but use_tmpfs = false; remove one of them".into(),
            ));
        }
        let tmpfs_path = self
            .tmpfs_path
            .as_deref()
            .filter(|_| tmpfs_on)
            .map(|p| ("tmpfs_path".to_string(), p));
        let claims = self
            .persistent_volume_claims
            .iter()
            .flatten()
            .map(|(c, p)| (format!("persistent_volume_claims {c:?}"), p.as_str()));
        if let Some(message) = mount_conflict(claims.chain(tmpfs_path)) {
            let key = if message.starts_with("tmpfs_path") {
                "tmpfs_path"
            } else {
                "persistent_volume_claims"
            };
            errors.push(at(key, message));
        }
        if let (Some(pool), Some(sel)) = (&self.compute_pool, &self.node_selector)
            && let Some(v) = sel.get(DEFAULT_COMPUTE_POOL_LABEL).filter(|v| *v != pool)
        {
            errors.push(at(
                "compute_pool",
                format!("compute_pool {pool:?} conflicts with node_selector {DEFAULT_COMPUTE_POOL_LABEL}={v:?}; give the pool once"),
            ));
        }
        errors
    }
}

impl KubernetesArgs {
    /// Rules for a whole decorator, which must stand on its own (an override layer may lean on
    /// the layers below it; resolve checks the result).
    pub(crate) fn check_complete(&self, args: &[Arg]) -> Vec<Error> {
        let tmpfs_on = self.use_tmpfs.unwrap_or(self.tmpfs_size.is_some());
        ["tmpfs_path", "tmpfs_tempdir"]
            .into_iter()
            .filter(|key| !tmpfs_on && arg_index(args, key).is_some())
            .map(|key| Error {
                decorator: DecoratorKind::Kubernetes,
                arg: arg_index(args, key),
                place: Place::Key,
                message: format!(
                    "`{key}` has no effect without a tmpfs; add use_tmpfs = true or tmpfs_size"
                ),
            })
            .collect()
    }
}

/// The node label `compute_pool` selects on unless KUBESTEP_KUBERNETES_COMPUTE_POOL_LABEL says
/// otherwise.
pub const DEFAULT_COMPUTE_POOL_LABEL: &str = "kubestep.io/compute-pool";

/// Why `key` cannot go with qos BestEffort; `from` names where the key was given, if elsewhere.
pub(crate) fn best_effort_conflict(key: &str, from: &str) -> String {
    format!(
        "`{key}`{from} conflicts with qos = \"BestEffort\": a BestEffort pod has no cpu, memory or disk requests; remove `{key}` or choose qos \"Burstable\""
    )
}

/// The first mount that collides with another or with a path kubestep mounts itself.
/// `mounts` are (what, path) pairs, what naming the parameter for the message.
pub(crate) fn mount_conflict<'a>(
    mounts: impl IntoIterator<Item = (String, &'a str)>,
) -> Option<String> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (what, path) in mounts {
        let path_norm = path.trim_end_matches('/');
        if path_norm == "/dev/shm"
            || path_norm == "/kubestep"
            || path_norm.starts_with("/kubestep/")
        {
            return Some(format!(
                "{what} mounts at {path:?}, a path kubestep uses itself (/dev/shm, /kubestep)"
            ));
        }
        if let Some((other, _)) = seen
            .iter()
            .find(|(_, p)| p.trim_end_matches('/') == path_norm)
        {
            return Some(format!("{what} and {other} both mount at {path:?}"));
        }
        seen.push((what, path));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::testing::{arg, map, s};
    use std::borrow::Cow;

    fn first_error(args: Vec<Arg>) -> Error {
        KubernetesArgs::parse(&args).unwrap_err().remove(0)
    }

    #[test]
    fn every_catalog_parameter_has_a_setter() {
        for p in KUBERNETES {
            // The setter must exist: a wrong-typed value is rejected with a message, not a panic.
            let _ = KubernetesArgs::default().set(p.name, &Value::List(Cow::Borrowed(&[])));
        }
    }

    #[test]
    fn node_selector_string_and_map() {
        let k =
            KubernetesArgs::parse(&[arg("node_selector", s("kubernetes.io/os=linux,disk=ssd"))])
                .unwrap();
        assert_eq!(
            k.node_selector.unwrap().get("disk").map(String::as_str),
            Some("ssd")
        );
        let e = first_error(vec![arg("node_selector", s("a=b,c"))]);
        assert!(e.message.contains("`c` has no `=`"), "{}", e.message);
    }

    #[test]
    fn toleration_rules() {
        let t = map(&[
            ("key", s("gpu")),
            ("operator", s("Exists")),
            ("value", s("x")),
        ]);
        let e = first_error(vec![arg("tolerations", Value::List(vec![t].into()))]);
        assert!(e.message.contains("must not have a value"), "{}", e.message);
        let t = map(&[("key", s("gpu")), ("efect", s("NoSchedule"))]);
        let e = first_error(vec![arg("tolerations", Value::List(vec![t].into()))]);
        assert_eq!(e.place, Place::Value(vec![At::Index(0), At::Key(1)]));
        assert!(e.message.contains("did you mean `effect`"), "{}", e.message);
    }

    #[test]
    fn reserved_labels_and_best_effort() {
        let e = first_error(vec![arg("labels", map(&[("kubestep.io/step", s("x"))]))]);
        assert!(e.message.contains("reserved"), "{}", e.message);
        let e = first_error(vec![arg("qos", s("BestEffort")), arg("cpu", Value::Int(1))]);
        assert_eq!(e.arg, Some(1));
    }
}
