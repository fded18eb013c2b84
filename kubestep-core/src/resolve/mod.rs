//! Precedence: `--with` override > decorator in code > environment/config default > built-in,
//! with the source of every value recorded for `render --explain`.
//!
//! Scalars, node_selector, persistent_volume_claims, image_pull_secrets and tolerations take
//! the highest layer's value whole. Labels and annotations merge key by key, the higher layer
//! winning a key. Secrets are a union, as the design asks. `#[resources]` merges with
//! `#[kubernetes]` by taking the maximum of cpu, memory, disk, gpu and shared_memory.

pub mod env;
mod text;
pub mod with_arg;

pub use env::{Defaults, Settings};
pub use text::{parse_text, read};
pub use with_arg::WithArg;

use crate::quantity::{Cpu, Size};
use crate::spec::{
    self, GpuVendor, KubernetesArgs, PullPolicy, Qos, ResourcesArgs, SecurityContext, StepSpec,
    Toleration,
};
use crate::value::{DecoratorKind, StepDecl};
use std::collections::BTreeMap;
use std::fmt;

/// Where a resolved value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// kubestep's built-in default.
    BuiltIn,
    /// An environment variable.
    Env(String),
    /// A key of the config file.
    Config {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },
    /// `#[kubernetes(...)]` on the step.
    Decorator,
    /// `#[resources(...)]` on the step (it was the larger).
    Resources,
    /// A `--with` option.
    Override(String),
    /// `#[timeout(...)]` on the step.
    Timeout,
    /// Derived by kubestep from other values (named), such as the tmpfs size from memory.
    Derived(&'static str),
}

impl Source {
    /// Precedence: a higher rank beats a lower one.
    pub fn rank(&self) -> u8 {
        match self {
            Source::BuiltIn | Source::Derived(_) => 0,
            Source::Config { .. } => 1,
            Source::Env(_) => 2,
            Source::Decorator | Source::Resources | Source::Timeout => 3,
            Source::Override(text)
                if text
                    .split(':')
                    .next()
                    .is_some_and(|head| head.contains('/')) =>
            {
                5
            }
            Source::Override(_) => 4,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::BuiltIn => f.write_str("built-in default"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Config { file, key } => write!(f, "config file {file} ({key})"),
            Source::Decorator => f.write_str("#[kubernetes]"),
            Source::Resources => f.write_str("#[resources]"),
            Source::Override(text) => write!(f, "--with {text}"),
            Source::Timeout => f.write_str("#[timeout]"),
            Source::Derived(why) => write!(f, "derived: {why}"),
        }
    }
}

/// A value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

impl<T> Sourced<T> {
    fn new(value: T, source: &Source) -> Sourced<T> {
        Sourced {
            value,
            source: source.clone(),
        }
    }

    fn built_in(value: T) -> Sourced<T> {
        Sourced {
            value,
            source: Source::BuiltIn,
        }
    }
}

/// The tmpfs of a step, when it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Tmpfs {
    /// Its size.
    pub size: Sourced<Size>,
    /// Its mount path.
    pub path: Sourced<String>,
    /// Whether TMPDIR points at it.
    pub tempdir: Sourced<bool>,
}

/// Every Kubernetes setting of one step after precedence, each with its source.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// cpu request.
    pub cpu: Sourced<Cpu>,
    /// memory request.
    pub memory: Sourced<Size>,
    /// ephemeral-storage request.
    pub disk: Sourced<Size>,
    /// GPUs, when asked for.
    pub gpu: Option<Sourced<u32>>,
    /// GPU vendor.
    pub gpu_vendor: Sourced<GpuVendor>,
    /// Container image.
    pub image: Sourced<String>,
    /// Pull policy, when set.
    pub image_pull_policy: Option<Sourced<PullPolicy>>,
    /// Registry credential Secrets.
    pub image_pull_secrets: Vec<Sourced<String>>,
    /// Namespace.
    pub namespace: Sourced<String>,
    /// ServiceAccount, when set.
    pub service_account: Option<Sourced<String>>,
    /// Secrets exposed as environment.
    pub secrets: Vec<Sourced<String>>,
    /// Node selector (without compute_pool, which is separate).
    pub node_selector: BTreeMap<String, Sourced<String>>,
    /// Tolerations.
    pub tolerations: Vec<Sourced<Toleration>>,
    /// User labels.
    pub labels: BTreeMap<String, Sourced<String>>,
    /// User annotations.
    pub annotations: BTreeMap<String, Sourced<String>>,
    /// Claim -> mount path.
    pub persistent_volume_claims: BTreeMap<String, Sourced<String>>,
    /// /dev/shm size, when set.
    pub shared_memory: Option<Sourced<Size>>,
    /// The tmpfs, when enabled.
    pub tmpfs: Option<Tmpfs>,
    /// Container port, when set.
    pub port: Option<Sourced<u16>>,
    /// Compute pool, when set.
    pub compute_pool: Option<Sourced<String>>,
    /// QoS class.
    pub qos: Sourced<Qos>,
    /// Security context, when set.
    pub security_context: Option<Sourced<SecurityContext>>,
    /// Seconds parallel workers wait for the main node's name.
    pub hostname_resolution_timeout: Sourced<u64>,
    /// `#[timeout]` in seconds, when set.
    pub timeout_seconds: Option<u64>,
    /// Settings that are not parameters.
    pub settings: Settings,
}

/// A step's settings cannot be resolved: names the step, where the bad value came from, and the
/// rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An environment or config default is unusable.
    #[error("step `{step}`: {error}")]
    Default {
        /// The step.
        step: String,
        /// What is wrong.
        error: Box<env::Error>,
    },
    /// A `--with` value breaks a rule.
    #[error("step `{step}`: --with {text}: {message}")]
    Override {
        /// The step.
        step: String,
        /// The option as written.
        text: String,
        /// What is wrong.
        message: String,
    },
    /// The step's decorators break a rule (only possible for a spec not checked by the macro).
    #[error("step `{step}`: {message}")]
    Decorator {
        /// The step.
        step: String,
        /// What is wrong.
        message: String,
    },
    /// Values from different layers contradict each other.
    #[error("step `{step}`: {message}")]
    Conflict {
        /// The step.
        step: String,
        /// What is wrong, naming both sources.
        message: String,
    },
}

/// Every layer's values, not yet completed with built-ins.
#[derive(Default)]
struct Partial {
    cpu: Option<Sourced<Cpu>>,
    memory: Option<Sourced<Size>>,
    disk: Option<Sourced<Size>>,
    gpu: Option<Sourced<u32>>,
    gpu_vendor: Option<Sourced<GpuVendor>>,
    image: Option<Sourced<String>>,
    image_pull_policy: Option<Sourced<PullPolicy>>,
    image_pull_secrets: Vec<Sourced<String>>,
    namespace: Option<Sourced<String>>,
    service_account: Option<Sourced<String>>,
    secrets: Vec<Sourced<String>>,
    node_selector: BTreeMap<String, Sourced<String>>,
    tolerations: Vec<Sourced<Toleration>>,
    labels: BTreeMap<String, Sourced<String>>,
    annotations: BTreeMap<String, Sourced<String>>,
    persistent_volume_claims: BTreeMap<String, Sourced<String>>,
    shared_memory: Option<Sourced<Size>>,
    use_tmpfs: Option<Sourced<bool>>,
    tmpfs_tempdir: Option<Sourced<bool>>,
    tmpfs_size: Option<Sourced<Size>>,
    tmpfs_path: Option<Sourced<String>>,
    port: Option<Sourced<u16>>,
    compute_pool: Option<Sourced<String>>,
    qos: Option<Sourced<Qos>>,
    security_context: Option<Sourced<SecurityContext>>,
    hostname_resolution_timeout: Option<Sourced<u64>>,
}

impl Partial {
    fn apply(&mut self, k: &KubernetesArgs, source: &Source) {
        macro_rules! replace {
            ($($field:ident),*) => {$(
                if let Some(v) = &k.$field {
                    self.$field = Some(Sourced::new(v.clone(), source));
                }
            )*};
        }
        macro_rules! merge_map {
            ($($field:ident),*) => {$(
                for (key, v) in k.$field.iter().flatten() {
                    self.$field.insert(key.clone(), Sourced::new(v.clone(), source));
                }
            )*};
        }
        macro_rules! union {
            ($($field:ident),*) => {$(
                for v in k.$field.iter().flatten() {
                    if !self.$field.iter().any(|s| &s.value == v) {
                        self.$field.push(Sourced::new(v.clone(), source));
                    }
                }
            )*};
        }
        replace!(
            cpu,
            memory,
            disk,
            gpu,
            gpu_vendor,
            image,
            image_pull_policy,
            namespace,
            service_account,
            shared_memory,
            use_tmpfs,
            tmpfs_tempdir,
            tmpfs_size,
            tmpfs_path,
            port,
            compute_pool,
            qos,
            security_context,
            hostname_resolution_timeout
        );
        macro_rules! replace_all {
            ($($field:ident),*) => {$(
                if k.$field.is_some() {
                    self.$field = Default::default();
                }
            )*};
        }
        // A layer that gives a whole-value field drops the lower layers' entries first.
        replace_all!(
            node_selector,
            persistent_volume_claims,
            image_pull_secrets,
            tolerations
        );
        merge_map!(labels, annotations, node_selector, persistent_volume_claims);
        union!(secrets, image_pull_secrets, tolerations);
    }

    /// `#[resources]`: the larger of it and `#[kubernetes]` wins; over lower layers it just wins.
    fn apply_resources(&mut self, r: &ResourcesArgs) {
        fn max_by<T: Clone>(
            slot: &mut Option<Sourced<T>>,
            new: &Option<T>,
            key: impl Fn(&T) -> u128,
        ) {
            let Some(new) = new else { return };
            let keep = matches!(slot, Some(old) if old.source == Source::Decorator && key(&old.value) >= key(new));
            if !keep {
                *slot = Some(Sourced::new(new.clone(), &Source::Resources));
            }
        }
        max_by(&mut self.cpu, &r.cpu, |c| c.millis() as u128);
        max_by(&mut self.memory, &r.memory, Size::bytes);
        max_by(&mut self.disk, &r.disk, Size::bytes);
        max_by(&mut self.gpu, &r.gpu, |g| *g as u128);
        max_by(&mut self.shared_memory, &r.shared_memory, Size::bytes);
    }
}

/// Whether `step` runs on Kubernetes: it has `#[kubernetes]` or an override names it.
pub fn on_kubernetes(decl: &StepDecl, overrides: &[WithArg]) -> bool {
    decl.decorator(DecoratorKind::Kubernetes).is_some()
        || overrides
            .iter()
            .any(|w| w.step.as_deref().is_none_or(|s| s == decl.name))
}

/// Resolves a step's Kubernetes settings.
///
/// # Errors
/// A bad default or override value, or values from different layers that contradict each other;
/// the message names the step, the source, the value and the rule.
pub fn resolve(
    decl: &StepDecl,
    defaults: &Defaults,
    overrides: &[WithArg],
) -> Result<Resolved, Error> {
    let step = decl.name.to_string();
    let spec = StepSpec::from_decorators(decl.decorators).map_err(|errors| Error::Decorator {
        step: step.clone(),
        message: errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    })?;
    let mut p = Partial::default();
    for (layer, source) in defaults.layers().map_err(|error| Error::Default {
        step: step.clone(),
        error: Box::new(error),
    })? {
        p.apply(&layer, &source);
    }
    if let Some(k) = &spec.kubernetes {
        p.apply(k, &Source::Decorator);
    }
    if let Some(r) = &spec.resources {
        p.apply_resources(r);
    }
    // Flow-wide overrides first, then the ones naming this step, so the narrower one wins.
    let mine = |w: &&WithArg| w.step.as_deref().is_none_or(|s| s == decl.name);
    let (all, named): (Vec<&WithArg>, Vec<&WithArg>) = overrides
        .iter()
        .filter(mine)
        .partition(|w| w.step.is_none());
    for w in all.into_iter().chain(named) {
        let layer = KubernetesArgs::parse(&w.decorator.args).map_err(|errors| Error::Override {
            step: step.clone(),
            text: w.text.clone(),
            message: errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })?;
        p.apply(&layer, &Source::Override(w.text.clone()));
    }
    let settings = defaults.settings().map_err(|error| Error::Default {
        step: step.clone(),
        error: Box::new(error),
    })?;
    finish(step, p, spec, settings)
}

fn explicit(source: &Source) -> bool {
    matches!(
        source,
        Source::Decorator | Source::Resources | Source::Override(_)
    )
}

fn finish(
    step: String,
    mut p: Partial,
    spec: StepSpec,
    settings: Settings,
) -> Result<Resolved, Error> {
    let conflict = |message: String| Error::Conflict {
        step: step.clone(),
        message,
    };
    let qos = p
        .qos
        .clone()
        .unwrap_or_else(|| Sourced::built_in(Qos::Burstable));
    if qos.value == Qos::BestEffort {
        for (key, source) in [
            ("cpu", p.cpu.as_ref().map(|c| &c.source)),
            ("memory", p.memory.as_ref().map(|m| &m.source)),
            ("disk", p.disk.as_ref().map(|d| &d.source)),
        ] {
            if let Some(source) = source.filter(|s| explicit(s)) {
                return Err(conflict(format!(
                    "qos BestEffort (from {}) conflicts with {key} (from {source}): a BestEffort pod has no cpu, memory or disk requests",
                    qos.source
                )));
            }
        }
    }
    // The higher layer wins; within one layer the two settings contradict each other.
    if let Some(pool) = &p.compute_pool
        && let Some(sel) = p.node_selector.get(&settings.compute_pool_label)
        && sel.value != pool.value
    {
        if sel.source.rank() == pool.source.rank() {
            return Err(conflict(format!(
                "compute_pool {:?} (from {}) conflicts with node_selector {}={:?} (from {})",
                pool.value, pool.source, settings.compute_pool_label, sel.value, sel.source
            )));
        }
        if sel.source.rank() > pool.source.rank() {
            p.compute_pool = None;
        } else {
            p.node_selector.remove(&settings.compute_pool_label);
        }
    }
    let memory = p.memory.unwrap_or_else(|| {
        Sourced::built_in(Size::from_number(4096, crate::quantity::Unit::Megabytes))
    });
    let tmpfs_on = p
        .use_tmpfs
        .as_ref()
        .map_or(p.tmpfs_size.is_some(), |u| u.value);
    if let Some(use_tmpfs) = p.use_tmpfs.as_ref().filter(|u| !u.value)
        && let Some(size) = &p.tmpfs_size
    {
        return Err(conflict(format!(
            "tmpfs_size (from {}) is set but use_tmpfs = false (from {})",
            size.source, use_tmpfs.source
        )));
    }
    // An override is never silently ignored: tmpfs settings need a tmpfs.
    for (key, source) in [
        ("tmpfs_path", p.tmpfs_path.as_ref().map(|t| &t.source)),
        ("tmpfs_tempdir", p.tmpfs_tempdir.as_ref().map(|t| &t.source)),
    ] {
        if let Some(source) = source.filter(|_| !tmpfs_on) {
            return Err(conflict(format!(
                "{key} (from {source}) has no effect without a tmpfs; set use_tmpfs = true or tmpfs_size"
            )));
        }
    }
    let tmpfs = tmpfs_on.then(|| Tmpfs {
        size: p.tmpfs_size.clone().unwrap_or_else(|| Sourced {
            value: memory.value.half_as_mebibytes(),
            source: Source::Derived("half of memory"),
        }),
        path: p
            .tmpfs_path
            .clone()
            .unwrap_or_else(|| Sourced::built_in("/kubestep_temp".into())),
        tempdir: p
            .tmpfs_tempdir
            .clone()
            .unwrap_or_else(|| Sourced::built_in(true)),
    });
    let claims = p.persistent_volume_claims.iter().map(|(c, m)| {
        (
            format!("persistent_volume_claims {c:?} (from {})", m.source),
            m.value.as_str(),
        )
    });
    let tmpfs_mount = tmpfs.iter().map(|t| {
        (
            format!("tmpfs_path (from {})", t.path.source),
            t.path.value.as_str(),
        )
    });
    if let Some(message) = spec::mount_conflict(claims.chain(tmpfs_mount)) {
        return Err(conflict(message));
    }
    Ok(Resolved {
        cpu: p.cpu.unwrap_or_else(|| {
            Sourced::built_in(Cpu::from_value(&crate::Value::Int(1)).expect("1 is a valid cpu"))
        }),
        memory,
        disk: p.disk.unwrap_or_else(|| {
            Sourced::built_in(Size::from_number(10240, crate::quantity::Unit::Megabytes))
        }),
        gpu: p.gpu,
        gpu_vendor: p
            .gpu_vendor
            .unwrap_or_else(|| Sourced::built_in(GpuVendor::Nvidia)),
        image: p
            .image
            .unwrap_or_else(|| Sourced::built_in(DEFAULT_IMAGE.into())),
        image_pull_policy: p.image_pull_policy,
        image_pull_secrets: p.image_pull_secrets,
        namespace: p
            .namespace
            .unwrap_or_else(|| Sourced::built_in("default".into())),
        service_account: p.service_account,
        secrets: p.secrets,
        node_selector: p.node_selector,
        tolerations: p.tolerations,
        labels: p.labels,
        annotations: p.annotations,
        persistent_volume_claims: p.persistent_volume_claims,
        shared_memory: p.shared_memory,
        tmpfs,
        port: p.port,
        compute_pool: p.compute_pool,
        qos,
        security_context: p.security_context,
        hostname_resolution_timeout: p
            .hostname_resolution_timeout
            .unwrap_or_else(|| Sourced::built_in(600)),
        timeout_seconds: spec.timeout.map(|t| t.seconds),
        settings,
    })
}

/// The image a step runs in when nothing names one: a Debian slim image whose glibc (2.36) is
/// new enough for binaries built on this toolchain's hosts.
pub const DEFAULT_IMAGE: &str = "debian:bookworm-slim";

impl Resolved {
    /// Each parameter with its final value and source, for `show`.
    pub fn summary(&self) -> Vec<(&'static str, String, Source)> {
        fn one<T>(
            out: &mut Vec<(&'static str, String, Source)>,
            name: &'static str,
            v: &Sourced<T>,
            show: impl Fn(&T) -> String,
        ) {
            out.push((name, show(&v.value), v.source.clone()));
        }
        fn many<'a>(
            out: &mut Vec<(&'static str, String, Source)>,
            name: &'static str,
            items: impl Iterator<Item = (String, &'a Source)>,
        ) {
            for (text, source) in items {
                out.push((name, text, source.clone()));
            }
        }
        let mut out = Vec::new();
        one(&mut out, "cpu", &self.cpu, |c| c.quantity().to_string());
        one(&mut out, "memory", &self.memory, |m| {
            m.quantity().to_string()
        });
        one(&mut out, "disk", &self.disk, |d| d.quantity().to_string());
        if let Some(g) = &self.gpu {
            one(&mut out, "gpu", g, u32::to_string);
            one(&mut out, "gpu_vendor", &self.gpu_vendor, |v| {
                v.name().to_string()
            });
        }
        one(&mut out, "qos", &self.qos, |q| q.name().to_string());
        one(&mut out, "image", &self.image, String::clone);
        if let Some(p) = &self.image_pull_policy {
            one(&mut out, "image_pull_policy", p, |p| p.name().to_string());
        }
        many(
            &mut out,
            "image_pull_secrets",
            self.image_pull_secrets
                .iter()
                .map(|s| (s.value.clone(), &s.source)),
        );
        one(&mut out, "namespace", &self.namespace, String::clone);
        if let Some(s) = &self.service_account {
            one(&mut out, "service_account", s, String::clone);
        }
        many(
            &mut out,
            "secrets",
            self.secrets.iter().map(|s| (s.value.clone(), &s.source)),
        );
        many(
            &mut out,
            "node_selector",
            self.node_selector
                .iter()
                .map(|(k, v)| (format!("{k}={}", v.value), &v.source)),
        );
        many(
            &mut out,
            "tolerations",
            self.tolerations
                .iter()
                .map(|t| (format!("{:?}", t.value), &t.source)),
        );
        many(
            &mut out,
            "labels",
            self.labels
                .iter()
                .map(|(k, v)| (format!("{k}={}", v.value), &v.source)),
        );
        many(
            &mut out,
            "annotations",
            self.annotations
                .iter()
                .map(|(k, v)| (format!("{k}={}", v.value), &v.source)),
        );
        many(
            &mut out,
            "persistent_volume_claims",
            self.persistent_volume_claims
                .iter()
                .map(|(k, v)| (format!("{k} at {}", v.value), &v.source)),
        );
        if let Some(s) = &self.shared_memory {
            one(&mut out, "shared_memory", s, |s| s.quantity().to_string());
        }
        if let Some(t) = &self.tmpfs {
            one(&mut out, "tmpfs_size", &t.size, |s| {
                s.quantity().to_string()
            });
            one(&mut out, "tmpfs_path", &t.path, String::clone);
            one(&mut out, "tmpfs_tempdir", &t.tempdir, bool::to_string);
        }
        if let Some(p) = &self.port {
            one(&mut out, "port", p, u16::to_string);
        }
        if let Some(c) = &self.compute_pool {
            one(&mut out, "compute_pool", c, String::clone);
        }
        if let Some(s) = &self.security_context {
            one(&mut out, "security_context", s, |s| format!("{s:?}"));
        }
        one(
            &mut out,
            "hostname_resolution_timeout",
            &self.hostname_resolution_timeout,
            u64::to_string,
        );
        out
    }
}
