//! `--with kubernetes:k=v,...` and `--with STEP/kubernetes:k=v,...`: runtime overrides.
//!
//! Values are read as JSON, then integer, then float, then string, as Metaflow does, but the
//! split between parameters only happens before a known parameter name, so
//! `node_selector=a=b,c=d` keeps both pairs (Metaflow rejects it).

use super::text::{holds_pairs, read};
use crate::params;
use crate::value::{Arg, Decorator, DecoratorKind};
use std::borrow::Cow;

/// One parsed `--with` option.
#[derive(Clone, Debug, PartialEq)]
pub struct WithArg {
    /// The step it is limited to, if any.
    pub step: Option<String>,
    /// The decorator and its arguments.
    pub decorator: Decorator,
    /// The option as the user wrote it, for messages and `render --explain`.
    pub text: String,
}

/// A `--with` option that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid --with {text:?}: {message}")]
pub struct Error {
    /// The option as written.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

/// Parses one `--with` value.
///
/// # Errors
/// An unknown decorator, a missing `=`, or an unknown parameter (with the nearest name).
/// Values are checked later, against the step, by [`super::resolve`].
pub fn parse(text: &str) -> Result<WithArg, Error> {
    let err = |message: String| Error {
        text: text.to_string(),
        message,
    };
    let (head, body) = match text.split_once(':') {
        Some((h, b)) => (h, Some(b)),
        None => (text, None),
    };
    let (step, name) = match head.split_once('/') {
        Some((s, n)) => (Some(s.trim()), n.trim()),
        None => (None, head.trim()),
    };
    if step == Some("") {
        return Err(err("the step name before '/' is empty".into()));
    }
    if name != "kubernetes" {
        let hint = params::nearest(name, ["kubernetes"])
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return Err(err(format!(
            "`{name}` cannot be attached with --with; only `kubernetes` can{hint}"
        )));
    }
    let kind = DecoratorKind::Kubernetes;
    let mut args = Vec::new();
    for item in split_items(kind, body.unwrap_or("")) {
        let (key, raw) = item.split_once('=').ok_or_else(|| {
            err(format!(
                "`{item}` has no `=`: write key=value, such as cpu=4"
            ))
        })?;
        let key = key.trim();
        let Some(param) = params::find(kind, key) else {
            let hint = params::suggest(kind, key)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(err(format!(
                "unknown parameter `{key}` for kubernetes; {hint}allowed: {}",
                params::names(kind)
            )));
        };
        if args.iter().any(|a: &Arg| a.key == key) {
            return Err(err(format!("`{key}` is given twice")));
        }
        args.push(Arg {
            key: Cow::Borrowed(param.name),
            value: read(param.name, raw.trim())
                .map_err(|m| err(format!("invalid `{key}` = {raw:?}: {m}")))?,
        });
    }
    Ok(WithArg {
        step: step.map(str::to_string),
        decorator: Decorator {
            kind,
            args: args.into(),
        },
        text: text.to_string(),
    })
}

/// Splits `a=1,b=[1,2],c={"x":1}` into items: at top-level commas (outside brackets and quotes)
/// that are followed by `name=`. Inside a pair-holding parameter only a known parameter name
/// starts a new item, so `node_selector=a=b,c=d` stays whole.
fn split_items(kind: DecoratorKind, body: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut depth, mut quote) = (0usize, 0i32, false);
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote => i += 1,
            b'"' => quote = !quote,
            b'[' | b'{' if !quote => depth += 1,
            b']' | b'}' if !quote => depth -= 1,
            b',' if !quote && depth <= 0 => {
                let rest = &body[i + 1..];
                let name = rest.split('=').next().unwrap_or("").trim();
                let is_name = rest.contains('=')
                    && !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                let current = body[start..i].split('=').next().unwrap_or("").trim();
                let splits = if holds_pairs(current) {
                    params::find(kind, name).is_some()
                } else {
                    is_name
                };
                if splits {
                    items.push(&body[start..i]);
                    start = i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    items.push(&body[start..]);
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;
    use proptest::prelude::*;

    fn value(w: &WithArg, key: &str) -> Value {
        w.decorator
            .args
            .iter()
            .find(|a| a.key == key)
            .unwrap()
            .value
            .clone()
    }

    #[test]
    fn values_are_json_int_float_or_string() {
        let w = parse("kubernetes:cpu=8,memory=0.5,image=debian:bookworm,tolerations=[{\"key\":\"a\",\"operator\":\"Exists\"}]").unwrap();
        assert_eq!(value(&w, "cpu"), Value::Int(8));
        assert_eq!(value(&w, "memory"), Value::Float(0.5));
        assert_eq!(value(&w, "image"), Value::string("debian:bookworm"));
        assert!(matches!(value(&w, "tolerations"), Value::List(_)));
        assert_eq!(w.step, None);
    }

    #[test]
    fn node_selector_pairs_stay_together() {
        let w = parse("train/kubernetes:node_selector=a=b,c=d,gpu=2").unwrap();
        assert_eq!(w.step.as_deref(), Some("train"));
        assert_eq!(value(&w, "node_selector"), Value::string("a=b,c=d"));
        assert_eq!(value(&w, "gpu"), Value::Int(2));
        let w = parse("kubernetes:labels=team=ml,tier=gold").unwrap();
        assert!(matches!(value(&w, "labels"), Value::Map(m) if m.len() == 2));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(
            parse("kubernetes:cpus=8")
                .unwrap_err()
                .message
                .contains("did you mean `cpu`")
        );
        assert!(
            parse("kubernets:cpu=8")
                .unwrap_err()
                .message
                .contains("did you mean `kubernetes`")
        );
        assert!(
            parse("kubernetes:cpu")
                .unwrap_err()
                .message
                .contains("no `=`")
        );
        assert!(
            parse("kubernetes:cpu=1,cpu=2")
                .unwrap_err()
                .message
                .contains("twice")
        );
        assert!(parse("kubernetes").unwrap().decorator.args.is_empty());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse(&s);
            let _ = parse(&format!("kubernetes:{s}"));
            let _ = parse(&format!("step/kubernetes:node_selector={s}"));
        }

        #[test]
        fn integers_round_trip(cpu in 1i64..1_000_000, port in 1i64..65536) {
            let w = parse(&format!("kubernetes:cpu={cpu},port={port}")).unwrap();
            prop_assert_eq!(value(&w, "cpu"), Value::Int(cpu));
            prop_assert_eq!(value(&w, "port"), Value::Int(port));
        }
    }
}
