//! The layered view: `#[kubernetes]` values from several layers merged by each parameter's
//! policy in the catalog, every value with the layer it came from. Resolve folds the
//! environment, the decorators and `--with` into one; the macro folds the decorators alone.
//! The rules in `check` read this view, so they are the same at compile time and at run time.

use super::{
    GpuVendor, KubernetesArgs, PullPolicy, Qos, ResourcesArgs, SecurityContext, Toleration,
};
use crate::quantity::{Cpu, Size};
use std::collections::BTreeMap;
use std::fmt;

/// Where the tmpfs is mounted when `tmpfs_path` does not say.
pub const DEFAULT_TMPFS_PATH: &str = "/kubestep_temp";

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

    /// Written by the user for this step (a decorator or `--with`), not a default.
    pub fn explicit(&self) -> bool {
        matches!(
            self,
            Source::Decorator | Source::Resources | Source::Override(_)
        )
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
    /// `value`, from `source`.
    pub fn new(value: T, source: &Source) -> Sourced<T> {
        Sourced {
            value,
            source: source.clone(),
        }
    }

    /// `value`, kubestep's own default.
    pub fn built_in(value: T) -> Sourced<T> {
        Sourced {
            value,
            source: Source::BuiltIn,
        }
    }
}

/// The merge policies of the catalog ([`crate::params::Merge`]) as types, so that a policy a
/// parameter's type cannot follow (a key merge of a number) does not compile.
pub(crate) mod merge {
    /// See [`crate::params::Merge::Replace`].
    pub(crate) struct Replace;
    /// See [`crate::params::Merge::KeyMerge`].
    pub(crate) struct KeyMerge;
    /// See [`crate::params::Merge::Union`].
    pub(crate) struct Union;
}

/// A parameter type that merges by the policy `M`: what one layer's value does to the slot.
pub(crate) trait Lay<M> {
    /// What the view keeps for the parameter.
    type Slot: Default + Clone + fmt::Debug + PartialEq;
    /// Puts one layer's value over the slot.
    fn lay(slot: &mut Self::Slot, value: &Self, source: &Source);
}

macro_rules! scalars {
    ($($t:ty),*) => {$(
        impl Lay<merge::Replace> for $t {
            type Slot = Option<Sourced<$t>>;
            fn lay(slot: &mut Self::Slot, value: &Self, source: &Source) {
                *slot = Some(Sourced::new(value.clone(), source));
            }
        }
    )*};
}
scalars!(
    Cpu,
    Size,
    u16,
    u32,
    u64,
    bool,
    String,
    GpuVendor,
    PullPolicy,
    Qos,
    SecurityContext
);

impl<T: Clone + fmt::Debug + PartialEq> Lay<merge::Union> for Vec<T> {
    type Slot = Vec<Sourced<T>>;
    fn lay(slot: &mut Self::Slot, value: &Self, source: &Source) {
        for v in value {
            if !slot.iter().any(|s| &s.value == v) {
                slot.push(Sourced::new(v.clone(), source));
            }
        }
    }
}

impl<T: Clone + fmt::Debug + PartialEq> Lay<merge::Replace> for Vec<T> {
    type Slot = Vec<Sourced<T>>;
    fn lay(slot: &mut Self::Slot, value: &Self, source: &Source) {
        slot.clear();
        <Vec<T> as Lay<merge::Union>>::lay(slot, value, source);
    }
}

impl Lay<merge::KeyMerge> for BTreeMap<String, String> {
    type Slot = BTreeMap<String, Sourced<String>>;
    fn lay(slot: &mut Self::Slot, value: &Self, source: &Source) {
        for (k, v) in value {
            slot.insert(k.clone(), Sourced::new(v.clone(), source));
        }
    }
}

impl Lay<merge::Replace> for BTreeMap<String, String> {
    type Slot = BTreeMap<String, Sourced<String>>;
    fn lay(slot: &mut Self::Slot, value: &Self, source: &Source) {
        slot.clear();
        <Self as Lay<merge::KeyMerge>>::lay(slot, value, source);
    }
}

macro_rules! layered {
    // One row of `kubernetes_params!`.
    ($(#[doc = $doc:literal] $name:ident: $ty:ty, $merge:ident, env $env:expr, example $example:literal, expects $expects:expr;)*) => {
        /// Every `#[kubernetes]` parameter after the layers given so far, with its source.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub(crate) struct Layered {
            $(#[doc = $doc] pub(crate) $name: <$ty as Lay<merge::$merge>>::Slot,)*
        }

        impl Layered {
            /// Puts one layer over the view, each parameter by its policy.
            pub(crate) fn apply(&mut self, k: &KubernetesArgs, source: &Source) {
                $(if let Some(v) = &k.$name {
                    <$ty as Lay<merge::$merge>>::lay(&mut self.$name, v, source);
                })*
            }
        }
    };
}
crate::params::kubernetes_params!(layered);

impl Layered {
    /// `#[resources]`: the larger of it and `#[kubernetes]` wins; over lower layers it just wins.
    pub(crate) fn apply_resources(&mut self, r: &ResourcesArgs) {
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

    /// Whether the step gets a tmpfs: `use_tmpfs`, or else a `tmpfs_size` given.
    pub(crate) fn tmpfs_on(&self) -> bool {
        self.use_tmpfs
            .as_ref()
            .map_or(self.tmpfs_size.is_some(), |u| u.value)
    }

    /// Where the tmpfs is mounted, when there is one: `tmpfs_path` or the built-in path.
    pub(crate) fn tmpfs_mount(&self) -> Option<Sourced<String>> {
        self.tmpfs_on().then(|| {
            self.tmpfs_path
                .clone()
                .unwrap_or_else(|| Sourced::built_in(DEFAULT_TMPFS_PATH.into()))
        })
    }
}
