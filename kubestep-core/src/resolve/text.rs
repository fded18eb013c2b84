//! Values typed as text (environment variables, config files, `--with`): JSON, integer, float
//! or string, then shaped for the parameter they go to.

use crate::spec::parse_key_values;
use crate::value::Value;
use std::borrow::Cow;

/// Reads text as JSON, then as an integer, then as a float, else keeps the string.
pub fn parse_text(s: &str) -> Value {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(s)
        && let Some(v) = from_json(&json)
    {
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

fn from_json(j: &serde_json::Value) -> Option<Value> {
    Some(match j {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::string(s.as_str()),
        serde_json::Value::Array(items) => Value::List(
            items
                .iter()
                .map(from_json)
                .collect::<Option<Vec<_>>>()?
                .into(),
        ),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| Some((Cow::Owned(k.clone()), from_json(v)?)))
                .collect::<Option<Vec<_>>>()?
                .into(),
        ),
    })
}

/// Gives text-typed values the shape a parameter wants: `"k=v,k2=v2"` becomes a map for
/// labels, annotations and claims, and `"a,b"` a list for secret names. Anything that does not
/// fit is left for the spec to reject with its usual message.
pub fn coerce(key: &str, value: Value) -> Value {
    match (key, &value) {
        ("labels" | "annotations" | "persistent_volume_claims", Value::Str(s)) => {
            match parse_key_values(s) {
                Ok(pairs) => Value::Map(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (Cow::Owned(k), Value::string(v)))
                        .collect::<Vec<_>>()
                        .into(),
                ),
                Err(_) => value,
            }
        }
        ("secrets" | "image_pull_secrets", Value::Str(s)) => Value::List(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::string)
                .collect::<Vec<_>>()
                .into(),
        ),
        _ => value,
    }
}
