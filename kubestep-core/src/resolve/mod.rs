//! Precedence: `--with` override > decorator in code > environment/config default > built-in,
//! with the source of every value recorded for `render --explain`.
//!
//! Each parameter's layers merge by the policy its catalog row names (`params::Merge`): most
//! take the highest layer's value whole, labels and annotations merge key by key, secrets are a
//! union; `#[resources]` merges with `#[kubernetes]` by taking the maximum. The rules across
//! parameters (`spec::check`) then run on the merged view, naming each value's source.

pub mod env;
mod text;
pub mod with_arg;

pub use env::{Defaults, Settings};
pub use text::{parse_text, read};
pub use with_arg::WithArg;

pub use crate::spec::{Source, Sourced};

use crate::quantity::{Cpu, Size};
use crate::spec::check::check;
use crate::spec::layered::Layered;
use crate::spec::{
    GpuVendor, KubernetesArgs, PullPolicy, Qos, SecurityContext, StepSpec, Toleration,
};
use crate::value::{DecoratorKind, StepDecl};
use std::collections::BTreeMap;

/// The tmpfs of a step, when it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Tmpfs {
    /// Why there is one: `use_tmpfs`, or a `tmpfs_size` given.
    pub enabled: Sourced<bool>,
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
    /// Seconds a multi-node step's workers wait for the control member's name (and port).
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
    let mut p = Layered::default();
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

fn finish(step: String, p: Layered, spec: StepSpec, settings: Settings) -> Result<Resolved, Error> {
    if let Some(v) = check(&p, &settings.compute_pool_label, true)
        .into_iter()
        .next()
    {
        return Err(Error::Conflict {
            step,
            message: v.message,
        });
    }
    // Every field by name, so a parameter added to the catalog and not carried here does not
    // compile (an unused binding is a warning, and warnings are errors in CI).
    let Layered {
        cpu,
        memory,
        disk,
        gpu,
        gpu_vendor,
        image,
        image_pull_policy,
        image_pull_secrets,
        namespace,
        service_account,
        secrets,
        mut node_selector,
        tolerations,
        labels,
        annotations,
        persistent_volume_claims,
        shared_memory,
        use_tmpfs,
        tmpfs_tempdir,
        tmpfs_size,
        tmpfs_path,
        port,
        mut compute_pool,
        qos,
        security_context,
        hostname_resolution_timeout,
    } = p;
    // compute_pool and a node selector on its label from different layers: the higher wins
    // (the same layer giving both is a conflict, checked above).
    if let Some(pool) = &compute_pool
        && let Some(sel) = node_selector.get(&settings.compute_pool_label)
        && sel.value != pool.value
    {
        if sel.source.rank() > pool.source.rank() {
            compute_pool = None;
        } else {
            node_selector.remove(&settings.compute_pool_label);
        }
    }
    let memory = memory.unwrap_or_else(|| {
        Sourced::built_in(Size::from_number(4096, crate::quantity::Unit::Megabytes))
    });
    let enabled = use_tmpfs.unwrap_or_else(|| Sourced {
        value: tmpfs_size.is_some(),
        source: Source::Derived("tmpfs_size is given"),
    });
    let tmpfs = enabled.value.then(|| Tmpfs {
        enabled: enabled.clone(),
        size: tmpfs_size.unwrap_or_else(|| Sourced {
            value: memory.value.half_as_mebibytes(),
            source: Source::Derived("half of memory"),
        }),
        path: tmpfs_path
            .unwrap_or_else(|| Sourced::built_in(crate::spec::DEFAULT_TMPFS_PATH.into())),
        tempdir: tmpfs_tempdir.unwrap_or_else(|| Sourced::built_in(true)),
    });
    Ok(Resolved {
        cpu: cpu.unwrap_or_else(|| {
            Sourced::built_in(Cpu::from_value(&crate::Value::Int(1)).expect("1 is a valid cpu"))
        }),
        memory,
        disk: disk.unwrap_or_else(|| {
            Sourced::built_in(Size::from_number(10240, crate::quantity::Unit::Megabytes))
        }),
        gpu,
        gpu_vendor: gpu_vendor.unwrap_or_else(|| Sourced::built_in(GpuVendor::Nvidia)),
        image: image.unwrap_or_else(|| Sourced::built_in(DEFAULT_IMAGE.into())),
        image_pull_policy,
        image_pull_secrets,
        namespace: namespace.unwrap_or_else(|| Sourced::built_in("default".into())),
        service_account,
        secrets,
        node_selector,
        tolerations,
        labels,
        annotations,
        persistent_volume_claims,
        shared_memory,
        tmpfs,
        port,
        compute_pool,
        qos: qos.unwrap_or_else(|| Sourced::built_in(Qos::Burstable)),
        security_context,
        hostname_resolution_timeout: hostname_resolution_timeout
            .unwrap_or_else(|| Sourced::built_in(crate::parallel::DEFAULT_RESOLUTION_TIMEOUT)),
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
            one(&mut out, "use_tmpfs", &t.enabled, bool::to_string);
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
