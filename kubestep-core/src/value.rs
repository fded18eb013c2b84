//! Span-free decorator values, shared by the macro, `--with` overrides and environment defaults.
//!
//! Everything here can be built in a `static`, so the macro can leave a step's decorators in the
//! binary as plain data, and the same types can hold values parsed at run time.

use std::borrow::Cow;
use std::fmt;

/// A decorator value: a literal, a list `[a, b]` or a map `{ key: value }`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// An integer literal, with its sign.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal.
    Str(Cow<'static, str>),
    /// `[a, b, ...]`.
    List(Cow<'static, [Value]>),
    /// `{ key: value, ... }`, in source order (duplicates are rejected by the spec, not here).
    Map(Cow<'static, [(Cow<'static, str>, Value)]>),
}

impl Value {
    /// What kind of value this is, as error messages name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
        }
    }

    /// A string value built at run time.
    pub fn string(s: impl Into<String>) -> Value {
        Value::Str(Cow::Owned(s.into()))
    }
}

impl fmt::Display for Value {
    /// Writes the value the way it would be written in the attribute.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    f.write_str(if i > 0 { ", " } else { " " })?;
                    write!(f, "{k:?}: {v}")?;
                }
                f.write_str(if entries.is_empty() { "}" } else { " }" })
            }
        }
    }
}

/// The decorators kubestep knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecoratorKind {
    /// `#[kubernetes(...)]`
    Kubernetes,
    /// `#[resources(...)]`
    Resources,
    /// `#[retry(...)]`
    Retry,
    /// `#[timeout(...)]`
    Timeout,
}

impl DecoratorKind {
    /// Every decorator, in the order `show` lists them.
    pub const ALL: [DecoratorKind; 4] = [
        DecoratorKind::Kubernetes,
        DecoratorKind::Resources,
        DecoratorKind::Retry,
        DecoratorKind::Timeout,
    ];

    /// The attribute's name.
    pub fn name(self) -> &'static str {
        match self {
            DecoratorKind::Kubernetes => "kubernetes",
            DecoratorKind::Resources => "resources",
            DecoratorKind::Retry => "retry",
            DecoratorKind::Timeout => "timeout",
        }
    }

    /// The decorator with this attribute name.
    pub fn from_name(name: &str) -> Option<DecoratorKind> {
        DecoratorKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for DecoratorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One `key = value` argument of a decorator.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// The parameter's name.
    pub key: Cow<'static, str>,
    /// Its value.
    pub value: Value,
}

/// One decorator with its arguments, as written on a step or given by `--with`.
#[derive(Clone, Debug, PartialEq)]
pub struct Decorator {
    /// Which decorator.
    pub kind: DecoratorKind,
    /// Its arguments, in source order.
    pub args: Cow<'static, [Arg]>,
}

/// What the macro leaves in the binary for one step: its name, its signature and its decorators.
#[derive(Clone, Debug, PartialEq)]
pub struct StepDecl {
    /// The function's name, which is the step's name.
    pub name: &'static str,
    /// The function's doc comment, trimmed.
    pub doc: &'static str,
    /// The input type as written, or `()` for a step without input.
    pub input: &'static str,
    /// The output type (the `T` of `Result<T, E>`), as written.
    pub output: &'static str,
    /// Whether the function is `async`.
    pub is_async: bool,
    /// The decorators written on the function, at most one of each kind.
    pub decorators: &'static [Decorator],
}

impl StepDecl {
    /// The decorator of this kind, if the step has one.
    pub fn decorator(&self, kind: DecoratorKind) -> Option<&Decorator> {
        self.decorators.iter().find(|d| d.kind == kind)
    }
}

/// Where inside a value an error sits, so the macro can point at the exact token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The n-th element of a list.
    Index(usize),
    /// The key of the n-th map entry.
    Key(usize),
    /// The value of the n-th map entry.
    Value(usize),
}

/// Short constructors for tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Arg, Value};
    use std::borrow::Cow;

    pub(crate) fn arg(key: &'static str, value: Value) -> Arg {
        Arg {
            key: Cow::Borrowed(key),
            value,
        }
    }

    pub(crate) fn s(x: &str) -> Value {
        Value::string(x)
    }

    pub(crate) fn map(entries: &[(&str, Value)]) -> Value {
        Value::Map(
            entries
                .iter()
                .map(|(k, v)| (Cow::Owned(k.to_string()), v.clone()))
                .collect::<Vec<_>>()
                .into(),
        )
    }
}
