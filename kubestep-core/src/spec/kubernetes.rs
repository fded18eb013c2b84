//! `#[kubernetes(...)]`: every parameter of the decorator, checked one by one.

use super::{
    Bad, Checked, Error, invalid, parse_args, to_bool, to_str, to_str_map, to_uint, wrong_type,
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

macro_rules! args {
    // One row of `kubernetes_params!`.
    ($(#[doc = $doc:literal] $name:ident: $ty:ty, $merge:ident, env $env:expr, example $example:literal, expects $expects:expr;)*) => {
        /// The arguments of one `#[kubernetes(...)]` (or one `--with kubernetes:...`, or the
        /// environment defaults): every field is optional, and precedence fills the gaps.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct KubernetesArgs {
            $(#[doc = $doc] pub $name: Option<$ty>,)*
        }

        impl KubernetesArgs {
            /// Sets one parameter from a value, through the parser of the same name.
            pub(crate) fn set(&mut self, key: &str, v: &Value) -> Checked<()> {
                match key {
                    $(stringify!($name) => self.$name = Some(parse::$name(key, v)?),)*
                    other => unreachable!("`{other}` is not a #[kubernetes] parameter"),
                }
                Ok(())
            }
        }
    };
}
crate::params::kubernetes_params!(args);

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
    match crate::labels::RESERVED_PREFIXES
        .iter()
        .find(|p| k.starts_with(*p))
    {
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
    /// Checks the arguments of one `#[kubernetes(...)]`, each on its own (the rules across
    /// parameters are in `check`, run on the whole step).
    ///
    /// # Errors
    /// Every broken rule, each tied to its argument.
    pub fn parse(args: &[Arg]) -> Result<KubernetesArgs, Vec<Error>> {
        let (k, errors): (KubernetesArgs, _) =
            parse_args(DecoratorKind::Kubernetes, args, KubernetesArgs::set);
        if errors.is_empty() {
            Ok(k)
        } else {
            Err(errors)
        }
    }
}

/// One parser per `#[kubernetes]` parameter, named after it: the generated setter calls
/// `parse::<name>`, so a catalog row without a parser does not compile.
mod parse {
    use super::*;
    use crate::spec::to_str_list;

    pub(super) fn cpu(key: &str, v: &Value) -> Checked<Cpu> {
        super::cpu(key, v)
    }

    pub(super) fn memory(key: &str, v: &Value) -> Checked<Size> {
        size(key, v, Unit::Megabytes)
    }

    pub(super) fn disk(key: &str, v: &Value) -> Checked<Size> {
        size(key, v, Unit::Megabytes)
    }

    pub(super) fn gpu(key: &str, v: &Value) -> Checked<u32> {
        super::gpu(key, v)
    }

    pub(super) fn gpu_vendor(key: &str, v: &Value) -> Checked<GpuVendor> {
        let opts = [("nvidia", GpuVendor::Nvidia), ("amd", GpuVendor::Amd)];
        one_of(key, v, &opts, true)
    }

    pub(super) fn image(key: &str, v: &Value) -> Checked<String> {
        let s = to_str(key, v, expects(key))?;
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                key,
                v,
                "an image reference is not empty and has no spaces",
            ));
        }
        Ok(s.to_string())
    }

    pub(super) fn image_pull_policy(key: &str, v: &Value) -> Checked<PullPolicy> {
        let opts = [
            ("Always", PullPolicy::Always),
            ("IfNotPresent", PullPolicy::IfNotPresent),
            ("Never", PullPolicy::Never),
        ];
        one_of(key, v, &opts, false)
    }

    pub(super) fn image_pull_secrets(key: &str, v: &Value) -> Checked<Vec<String>> {
        to_str_list(key, v, expects(key), "Secret name", names::dns_subdomain)
    }

    pub(super) fn namespace(key: &str, v: &Value) -> Checked<String> {
        let s = to_str(key, v, expects(key))?;
        names::dns_label(s).map_err(|r| invalid(key, v, &format!("must be {r}")))?;
        Ok(s.to_string())
    }

    pub(super) fn service_account(key: &str, v: &Value) -> Checked<String> {
        let s = to_str(key, v, expects(key))?;
        names::dns_subdomain(s).map_err(|r| invalid(key, v, &format!("must be {r}")))?;
        Ok(s.to_string())
    }

    pub(super) fn secrets(key: &str, v: &Value) -> Checked<Vec<String>> {
        // A single name is accepted as a one-element list.
        let list = match v {
            Value::Str(s) => Value::List(vec![Value::string(s.as_ref())].into()),
            other => other.clone(),
        };
        to_str_list(
            key,
            &list,
            expects(key),
            "Secret name",
            names::dns_subdomain,
        )
    }

    pub(super) fn node_selector(key: &str, v: &Value) -> Checked<BTreeMap<String, String>> {
        super::node_selector(key, v)
    }

    pub(super) fn tolerations(key: &str, v: &Value) -> Checked<Vec<Toleration>> {
        let Value::List(items) = v else {
            return Err(wrong_type(key, v, expects(key)));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, t)| toleration(key, t).map_err(|b| b.inside(At::Index(i))))
            .collect()
    }

    pub(super) fn labels(key: &str, v: &Value) -> Checked<BTreeMap<String, String>> {
        to_str_map(
            key,
            v,
            expects(key),
            ("label key", label_key),
            ("label value", names::label_value),
        )
    }

    pub(super) fn annotations(key: &str, v: &Value) -> Checked<BTreeMap<String, String>> {
        super::annotations(key, v)
    }

    pub(super) fn persistent_volume_claims(
        key: &str,
        v: &Value,
    ) -> Checked<BTreeMap<String, String>> {
        let map = to_str_map(
            key,
            v,
            expects(key),
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
        Ok(map)
    }

    pub(super) fn shared_memory(key: &str, v: &Value) -> Checked<Size> {
        size(key, v, Unit::Mebibytes)
    }

    pub(super) fn use_tmpfs(key: &str, v: &Value) -> Checked<bool> {
        to_bool(key, v)
    }

    pub(super) fn tmpfs_tempdir(key: &str, v: &Value) -> Checked<bool> {
        to_bool(key, v)
    }

    pub(super) fn tmpfs_size(key: &str, v: &Value) -> Checked<Size> {
        size(key, v, Unit::Mebibytes)
    }

    pub(super) fn tmpfs_path(key: &str, v: &Value) -> Checked<String> {
        let s = to_str(key, v, expects(key))?;
        absolute_path(key, s, "path").map_err(Bad::new)?;
        Ok(s.to_string())
    }

    pub(super) fn port(key: &str, v: &Value) -> Checked<u16> {
        match v {
            Value::Int(n) if (1..=65535).contains(n) => Ok(*n as u16),
            Value::Int(_) => Err(invalid(key, v, "a port must be from 1 to 65535")),
            _ => Err(wrong_type(key, v, expects(key))),
        }
    }

    pub(super) fn compute_pool(key: &str, v: &Value) -> Checked<String> {
        let s = to_str(key, v, expects(key))?;
        if s.is_empty() {
            return Err(invalid(key, v, "must not be empty"));
        }
        names::label_value(s)
            .map_err(|r| invalid(key, v, &format!("it becomes a node label value: {r}")))?;
        Ok(s.to_string())
    }

    pub(super) fn qos(key: &str, v: &Value) -> Checked<Qos> {
        let opts = [
            ("Guaranteed", Qos::Guaranteed),
            ("Burstable", Qos::Burstable),
            ("BestEffort", Qos::BestEffort),
        ];
        one_of(key, v, &opts, true)
    }

    pub(super) fn security_context(key: &str, v: &Value) -> Checked<SecurityContext> {
        super::security_context(key, v)
    }

    pub(super) fn hostname_resolution_timeout(key: &str, v: &Value) -> Checked<u64> {
        let n = to_uint(key, v, expects(key), u32::MAX as u64)?;
        if n == 0 {
            return Err(invalid(key, v, "must be greater than 0"));
        }
        Ok(n)
    }
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
        assert_eq!(
            e.place,
            super::super::Place::Value(vec![At::Index(0), At::Key(1)])
        );
        assert!(e.message.contains("did you mean `effect`"), "{}", e.message);
    }

    #[test]
    fn reserved_labels_and_best_effort() {
        let e = first_error(vec![arg("labels", map(&[("kubestep.io/step", s("x"))]))]);
        assert!(e.message.contains("reserved"), "{}", e.message);
        let d = crate::Decorator {
            kind: DecoratorKind::Kubernetes,
            args: vec![arg("qos", s("BestEffort")), arg("cpu", Value::Int(1))].into(),
        };
        let e = crate::spec::StepSpec::from_decorators(&[d]).unwrap_err();
        assert_eq!(e[0].arg, Some(1), "{e:?}");
    }
}
