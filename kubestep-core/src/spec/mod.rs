//! The typed step spec: each decorator's arguments checked and turned into typed values.
//!
//! The macro runs this code at compile time on the attribute's tokens, and the runtime runs the
//! same code on environment defaults and `--with` overrides, so a rule is written once.

pub(crate) mod check;
mod kubernetes;
pub(crate) mod layered;
mod policy;
mod resources;

pub use kubernetes::{
    GpuVendor, KubernetesArgs, PullPolicy, Qos, SecurityContext, TaintEffect, Toleration,
    TolerationOperator,
};
pub use layered::{DEFAULT_TMPFS_PATH, Source, Sourced};
pub use policy::{Retry, Timeout};
pub use resources::ResourcesArgs;

use crate::params;
use crate::value::{Arg, At, Decorator, DecoratorKind, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Which part of an argument an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The whole decorator (for example "specify a duration").
    Decorator,
    /// The parameter's name.
    Key,
    /// The value, or a part of it.
    Value(Vec<At>),
}

/// A decorator argument that breaks a rule: names the decorator, the parameter, the value and
/// the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// The decorator the argument belongs to.
    pub decorator: DecoratorKind,
    /// The index of the argument in the decorator, when the error is about one argument.
    pub arg: Option<usize>,
    /// The part of the argument at fault.
    pub place: Place,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// A problem inside one value, before it is tied to a decorator and an argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) at: Vec<At>,
    pub(crate) message: String,
}

impl Bad {
    pub(crate) fn new(message: impl Into<String>) -> Bad {
        Bad {
            at: Vec::new(),
            message: message.into(),
        }
    }

    /// The same problem, one level further down a list or map.
    fn inside(mut self, at: At) -> Bad {
        self.at.insert(0, at);
        self
    }
}

pub(crate) type Checked<T> = Result<T, Bad>;

/// "`key` expects X, found a boolean `true`".
pub(crate) fn wrong_type(key: &str, value: &Value, expects: &str) -> Bad {
    Bad::new(format!(
        "`{key}` expects {expects}, found {} `{value}`",
        value.kind()
    ))
}

/// "invalid `key` = value: rule".
pub(crate) fn invalid(key: &str, value: &dyn fmt::Display, rule: &str) -> Bad {
    Bad::new(format!("invalid `{key}` = {value}: {rule}"))
}

pub(crate) fn to_bool(key: &str, v: &Value) -> Checked<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong_type(key, v, "a boolean")),
    }
}

/// A non-negative integer no larger than `max`.
pub(crate) fn to_uint(key: &str, v: &Value, expects: &str, max: u64) -> Checked<u64> {
    match v {
        Value::Int(n) if *n >= 0 && (*n as u64) <= max => Ok(*n as u64),
        Value::Int(n) if *n < 0 => {
            Err(invalid(key, v, &format!("must be {expects}, not negative")))
        }
        Value::Int(_) => Err(invalid(
            key,
            v,
            &format!("must be {expects}, at most {max}"),
        )),
        Value::Float(x) => Err(invalid(
            key,
            v,
            &format!(
                "must be {expects}, not a fraction{}",
                if *x < 0.0 { " or negative" } else { "" }
            ),
        )),
        _ => Err(wrong_type(key, v, expects)),
    }
}

pub(crate) fn to_str<'v>(key: &str, v: &'v Value, expects: &str) -> Checked<&'v str> {
    match v {
        Value::Str(s) => Ok(s),
        _ => Err(wrong_type(key, v, expects)),
    }
}

type Rule = fn(&str) -> Result<(), String>;

/// A list of strings, each checked by `rule`, without duplicates.
pub(crate) fn to_str_list(
    key: &str,
    v: &Value,
    expects: &str,
    what: &str,
    rule: Rule,
) -> Checked<Vec<String>> {
    let Value::List(items) = v else {
        return Err(wrong_type(key, v, expects));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s =
            to_str(key, item, &format!("{what} strings")).map_err(|b| b.inside(At::Index(i)))?;
        rule(s).map_err(|r| {
            Bad::new(format!("invalid {what} {s:?} in `{key}`: must be {r}")).inside(At::Index(i))
        })?;
        if out.iter().any(|o| o == s) {
            return Err(
                Bad::new(format!("{what} {s:?} appears twice in `{key}`")).inside(At::Index(i))
            );
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// A map of strings; keys checked by `key_rule`, values by `value_rule`, without duplicate keys.
pub(crate) fn to_str_map(
    key: &str,
    v: &Value,
    expects: &str,
    (key_what, key_rule): (&str, Rule),
    (value_what, value_rule): (&str, Rule),
) -> Checked<BTreeMap<String, String>> {
    let Value::Map(entries) = v else {
        return Err(wrong_type(key, v, expects));
    };
    let mut out = BTreeMap::new();
    for (i, (k, val)) in entries.iter().enumerate() {
        key_rule(k).map_err(|r| {
            Bad::new(format!("invalid {key_what} {k:?} in `{key}`: {r}")).inside(At::Key(i))
        })?;
        let s = to_str(key, val, &format!("string values ({value_what})"))
            .map_err(|b| b.inside(At::Value(i)))?;
        value_rule(s).map_err(|r| {
            Bad::new(format!(
                "invalid {value_what} {s:?} for {k:?} in `{key}`: {r}"
            ))
            .inside(At::Value(i))
        })?;
        if out.insert(k.to_string(), s.to_string()).is_some() {
            return Err(Bad::new(format!("duplicate key {k:?} in `{key}`")).inside(At::Key(i)));
        }
    }
    Ok(out)
}

/// Parses `"k=v,k2=v2"`: the string form of node selectors (and of map-valued environment
/// defaults). Every item needs a `=`; keys may not repeat.
pub fn parse_key_values(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` has no `=`: write key=value pairs separated by commas, such as \"a=b,c=d\""))?;
        let (k, v) = (k.trim(), v.trim());
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(format!("key `{k}` is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Runs `set` on every argument, rejecting unknown and repeated parameters; every error is kept.
pub(crate) fn parse_args<T: Default>(
    kind: DecoratorKind,
    args: &[Arg],
    mut set: impl FnMut(&mut T, &str, &Value) -> Checked<()>,
) -> (T, Vec<Error>) {
    let mut out = T::default();
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for (i, arg) in args.iter().enumerate() {
        let key = arg.key.as_ref();
        let error = |place, message| Error {
            decorator: kind,
            arg: Some(i),
            place,
            message,
        };
        if params::find(kind, key).is_none() {
            let hint = params::suggest(kind, key)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            errors.push(error(
                Place::Key,
                format!(
                    "unknown parameter `{key}` for #[{kind}]; {hint}allowed: {}",
                    params::names(kind)
                ),
            ));
        } else if !seen.insert(key) {
            errors.push(error(
                Place::Key,
                format!("`{key}` is given twice in #[{kind}]"),
            ));
        } else if let Err(bad) = set(&mut out, key, &arg.value) {
            errors.push(error(Place::Value(bad.at), bad.message));
        }
    }
    (out, errors)
}

/// The index of the argument `key` in `args`.
pub(crate) fn arg_index(args: &[Arg], key: &str) -> Option<usize> {
    args.iter().position(|a| a.key == key)
}

/// Everything the decorators written on one step say, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepSpec {
    /// `#[kubernetes(...)]`, if present.
    pub kubernetes: Option<KubernetesArgs>,
    /// `#[resources(...)]`, if present.
    pub resources: Option<ResourcesArgs>,
    /// `#[retry(...)]`, if present.
    pub retry: Option<Retry>,
    /// `#[timeout(...)]`, if present.
    pub timeout: Option<Timeout>,
}

impl StepSpec {
    /// Checks a step's decorators: each argument, each decorator, and the rules across them.
    ///
    /// # Errors
    /// Every broken rule, each tied to the decorator and argument at fault.
    pub fn from_decorators(decorators: &[Decorator]) -> Result<StepSpec, Vec<Error>> {
        let mut spec = StepSpec::default();
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for d in decorators {
            if !seen.insert(d.kind) {
                errors.push(Error {
                    decorator: d.kind,
                    arg: None,
                    place: Place::Decorator,
                    message: format!(
                        "#[{}] is given twice on this step; merge the two into one",
                        d.kind
                    ),
                });
                continue;
            }
            let result = match d.kind {
                DecoratorKind::Kubernetes => {
                    KubernetesArgs::parse(&d.args).map(|k| spec.kubernetes = Some(k))
                }
                DecoratorKind::Resources => {
                    ResourcesArgs::parse(&d.args).map(|r| spec.resources = Some(r))
                }
                DecoratorKind::Retry => Retry::parse(&d.args).map(|r| spec.retry = Some(r)),
                DecoratorKind::Timeout => Timeout::parse(&d.args).map(|t| spec.timeout = Some(t)),
            };
            if let Err(e) = result {
                errors.extend(e);
            }
        }
        if errors.is_empty() {
            errors.extend(spec.check_across(decorators));
        }
        if errors.is_empty() {
            Ok(spec)
        } else {
            Err(errors)
        }
    }

    /// The rules across parameters (`check`), on the view of the decorators alone, each
    /// error pointing at the decorator and argument that gave the value.
    fn check_across(&self, decorators: &[Decorator]) -> Vec<Error> {
        let mut view = layered::Layered::default();
        if let Some(k) = &self.kubernetes {
            view.apply(k, &Source::Decorator);
        }
        if let Some(r) = &self.resources {
            view.apply_resources(r);
        }
        check::check(&view, crate::labels::COMPUTE_POOL, false)
            .into_iter()
            .map(|v| {
                let kind = match v.source {
                    Source::Resources => DecoratorKind::Resources,
                    _ => DecoratorKind::Kubernetes,
                };
                let args = decorators
                    .iter()
                    .find(|d| d.kind == kind)
                    .map_or(&[][..], |d| &d.args[..]);
                Error {
                    decorator: kind,
                    arg: arg_index(args, v.key),
                    place: Place::Key,
                    message: v.message,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_values("a=b, c=d").unwrap(),
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert!(
            parse_key_values("a=b,c")
                .unwrap_err()
                .contains("`c` has no `=`")
        );
        assert!(parse_key_values("a=b,a=c").unwrap_err().contains("twice"));
        assert_eq!(parse_key_values("").unwrap(), vec![]);
    }

    #[test]
    fn same_decorator_twice() {
        let d = Decorator {
            kind: DecoratorKind::Retry,
            args: Cow::Borrowed(&[]),
        };
        let errors = StepSpec::from_decorators(&[d.clone(), d]).unwrap_err();
        assert!(errors[0].message.contains("#[retry] is given twice"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::params;
    use proptest::prelude::*;
    use std::borrow::Cow;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_map(Value::Float),
            ".{0,40}".prop_map(Value::string),
            "[a-z0-9=,./:-]{0,40}".prop_map(Value::string),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(|v| Value::List(v.into())),
                prop::collection::vec(("[a-z_./-]{0,20}", inner), 0..6).prop_map(|v| Value::Map(
                    v.into_iter()
                        .map(|(k, v)| (Cow::Owned(k), v))
                        .collect::<Vec<_>>()
                        .into()
                )),
            ]
        })
    }

    proptest! {
        /// No value makes any parameter of any decorator panic; each is accepted or named.
        #[test]
        fn no_value_panics(v in value(), key_index in 0usize..64) {
            for kind in DecoratorKind::ALL {
                let ps = params::of(kind);
                let key = ps[key_index % ps.len()].name;
                let arg = Arg { key: Cow::Borrowed(key), value: v.clone() };
                let d = Decorator { kind, args: vec![arg].into() };
                if let Err(errors) = StepSpec::from_decorators(&[d]) {
                    prop_assert!(errors.iter().all(|e| !e.message.is_empty()));
                }
            }
        }

        #[test]
        fn key_value_strings_never_panic(s in ".{0,80}") {
            let _ = parse_key_values(&s);
        }
    }
}
