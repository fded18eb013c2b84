//! Byte-stable multi-document YAML: the same objects always print the same bytes.

use serde::Serialize;

/// YAML serialisation failed.
pub type YamlError = serde_saphyr::ser::Error;

/// Prints objects as one multi-document YAML stream, each document opened by `---`.
///
/// k8s-openapi serialises maps as `BTreeMap`s and skips empty optionals, so the output depends
/// only on the objects.
pub fn to_yaml<T: Serialize>(objects: &[T]) -> Result<String, YamlError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(o)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
