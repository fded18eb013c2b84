//! Values typed as text (environment variables, config files, `--with`), read for the
//! parameter they go to: string parameters keep the text as written (`namespace=2024` is a
//! name), pair-holding parameters read `k=v,k2=v2`, name lists read `a,b`, and the rest read
//! JSON, then integer, then float, else string.

use crate::spec::parse_key_values;
use crate::value::Value;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Reads text as JSON, then as an integer, then as a float, else keeps the string.
pub fn parse_text(s: &str) -> Value {
    if let Ok(Json(v)) = serde_json::from_str::<Json>(s) {
        return v;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::Int(i);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Value::Float(x),
        _ => Value::string(s),
    }
}

/// JSON read straight into a [`Value`]: maps keep every entry in order, so a repeated key
/// reaches the spec's duplicate check instead of silently replacing the first.
struct Json(Value);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor).map(Json)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value other than null")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u)
            .map(Value::Int)
            .map_err(|_| E::custom("integer too large"))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::string(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Json(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::List(items.into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, Json(v))) = map.next_entry::<String, Json>()? {
            entries.push((Cow::Owned(k), v));
        }
        Ok(Value::Map(entries.into()))
    }
}

/// Parameters whose value is one string: their text is never read as a number.
fn is_string(key: &str) -> bool {
    matches!(
        key,
        "image"
            | "image_pull_policy"
            | "namespace"
            | "service_account"
            | "gpu_vendor"
            | "tmpfs_path"
            | "compute_pool"
            | "qos"
    )
}

/// Parameters whose string form holds `k=v,k2=v2` pairs.
pub(super) fn holds_pairs(key: &str) -> bool {
    matches!(
        key,
        "node_selector" | "labels" | "annotations" | "persistent_volume_claims"
    )
}

/// Reads `text` as the value of parameter `key`.
///
/// # Errors
/// The `k=v` form of a pair-holding parameter is malformed; the message says how.
pub fn read(key: &str, text: &str) -> Result<Value, String> {
    if is_string(key) {
        return Ok(Value::string(text));
    }
    let looks_json = text.starts_with('[') || text.starts_with('{');
    match key {
        "secrets" | "image_pull_secrets" if !looks_json => Ok(Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::string)
                .collect::<Vec<_>>()
                .into(),
        )),
        // node_selector accepts the pair string itself, with its own checks.
        _ if holds_pairs(key) && key != "node_selector" && !looks_json => {
            let pairs = parse_key_values(text)?;
            Ok(Value::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Value::string(v)))
                    .collect::<Vec<_>>()
                    .into(),
            ))
        }
        _ => Ok(parse_text(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_look_like_numbers_stay_names() {
        assert_eq!(read("namespace", "2024"), Ok(Value::string("2024")));
        assert_eq!(
            read("secrets", "123"),
            Ok(Value::List(vec![Value::string("123")].into()))
        );
        assert_eq!(read("cpu", "2"), Ok(Value::Int(2)));
    }

    #[test]
    fn json_keeps_repeated_keys_for_the_duplicate_check() {
        let Value::Map(m) = read("labels", r#"{"a":"x","a":"y"}"#).unwrap() else {
            panic!("not a map")
        };
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn pair_errors_keep_their_reason() {
        assert!(
            read("labels", "team=ml,tier")
                .unwrap_err()
                .contains("`tier` has no `=`")
        );
    }
}
