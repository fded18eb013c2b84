//! Kubernetes naming rules: validators for what users write, and sanitisers for what kubestep
//! generates from flow, run, step and task names (DNS-1123 names, label values).

use sha2::{Digest, Sha256};

/// Longest DNS-1123 label (Job, container, volume and namespace names).
pub const MAX_LABEL: usize = 63;

const LABEL_RULE: &str = "at most 63 characters: lowercase letters, digits and '-', beginning and ending with a letter or digit";
const SUBDOMAIN_RULE: &str = "at most 253 characters: dot-separated parts of lowercase letters, digits and '-', each beginning and ending with a letter or digit";
const NAME_RULE: &str = "at most 63 characters: letters, digits, '-', '_' and '.', beginning and ending with a letter or digit";

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && alnum(b[0])
        && alnum(b[b.len() - 1])
}

/// A DNS-1123 label, such as a namespace or volume name.
pub fn dns_label(s: &str) -> Result<(), String> {
    if is_dns_label(s) {
        Ok(())
    } else {
        Err(format!("a DNS-1123 label: {LABEL_RULE}"))
    }
}

/// A DNS-1123 subdomain, such as a Secret, ServiceAccount or PersistentVolumeClaim name.
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && alnum(b[0])
                && alnum(b[b.len() - 1])
        });
    if ok {
        Ok(())
    } else {
        Err(format!("a DNS-1123 subdomain: {SUBDOMAIN_RULE}"))
    }
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && b.iter()
            .all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
        && alnum(b[0])
        && alnum(b[b.len() - 1])
}

/// A label or annotation key: an optional DNS-1123 subdomain prefix and `/`, then a name.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(|p| dns_subdomain(p).is_ok());
    if prefix_ok && is_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "a key is an optional DNS subdomain prefix and '/' (such as \"example.com/\"), then a name of {NAME_RULE}"
        ))
    }
}

/// A label value: empty, or a name of at most 63 characters.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || is_name_part(s) {
        Ok(())
    } else {
        Err(format!("a label value is empty or {NAME_RULE}"))
    }
}

/// Hex digest prefix used to keep shortened names unique.
pub fn short_hash(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    hex[..len.min(hex.len())].to_string()
}

/// Lowercases and replaces every character a DNS label cannot hold with `-`, collapsing runs and
/// trimming to `max` characters that begin and end alphanumeric (possibly empty).
fn dns_fold(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(max);
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// A DNS-1123 label made from `s`: `s` itself when it already is one, otherwise a folded prefix
/// plus a hash of the original, so different inputs stay different.
pub fn to_dns_label(s: &str) -> String {
    if is_dns_label(s) {
        return s.to_string();
    }
    let hash = short_hash(&[s], 8);
    let folded = dns_fold(s, MAX_LABEL - 9);
    if folded.is_empty() {
        format!("x-{hash}")
    } else {
        format!("{folded}-{hash}")
    }
}

/// A label value made from `s`: `s` itself when valid, otherwise a cleaned prefix plus a hash.
pub fn to_label_value(s: &str) -> String {
    if label_value(s).is_ok() {
        return s.to_string();
    }
    let hash = short_hash(&[s], 8);
    let mut cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned.truncate(MAX_LABEL - 9);
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned.is_empty() {
        hash
    } else {
        format!("{cleaned}-{hash}")
    }
}

/// The Job name of one attempt of one task: deterministic, unique per (flow, run, step, task,
/// attempt), a DNS-1123 label. The readable part is `<flow>-<step>`; the hash carries the rest.
pub fn job_name(flow: &str, run_id: &str, step: &str, task_id: &str, attempt: u32) -> String {
    attempt_name(&[flow, run_id, step, task_id], flow, step, attempt, 0)
}

/// The name of one attempt of a multi-node step of `size` members: its Indexed Job's and its
/// headless Service's. Room is left for the `-<rank>` the Job controller appends to make each
/// pod's hostname (a DNS label too), and it begins with a letter, as a Service name must.
pub fn gang_name(flow: &str, run_id: &str, step: &str, attempt: u32, size: u32) -> String {
    let rank_room = 1 + size.saturating_sub(1).to_string().len();
    // Five parts hashed, never the four of a task's Job.
    let ids = [flow, run_id, step, "gang", ""];
    let name = attempt_name(&ids, flow, step, attempt, rank_room);
    if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name
    } else {
        attempt_name(&ids, "", "", attempt, rank_room)
    }
}

/// The name of a run's own objects: its Lease and, for a detached run, its orchestrator Job.
/// Deterministic per (flow, run), so a second orchestrator of the run finds the first's.
pub fn run_name(flow: &str, run_id: &str) -> String {
    let hash = short_hash(&[flow, run_id, "run"], 10);
    // Room for the five characters the Job controller appends to name the Job's pods.
    let readable = dns_fold(&format!("{flow}-{run_id}"), MAX_LABEL - 6 - hash.len() - 1);
    if readable.is_empty() {
        format!("ks-{hash}")
    } else {
        format!("{readable}-{hash}")
    }
}

/// `<readable flow-step>-<hash of ids>-<attempt>`, at most [`MAX_LABEL`] less `spare`
/// characters; `ks-<hash>-<attempt>` when nothing readable is left.
fn attempt_name(ids: &[&str], flow: &str, step: &str, attempt: u32, spare: usize) -> String {
    let attempt = attempt.to_string();
    let hash = short_hash(ids, 10);
    let room = MAX_LABEL - spare - hash.len() - attempt.len() - 2;
    let readable = dns_fold(&format!("{flow}-{step}"), room);
    if readable.is_empty() {
        format!("ks-{hash}-{attempt}")
    } else {
        format!("{readable}-{hash}-{attempt}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validators() {
        assert!(dns_label("ml-team").is_ok());
        assert!(dns_label("ML").is_err());
        assert!(dns_subdomain("aws-creds.v1").is_ok());
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("team").is_ok());
        assert!(qualified_name("Team!").is_err());
        assert!(qualified_name("/x").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("a-").is_err());
        assert!(label_value("bißchen").is_err());
        assert!(label_value(&"a".repeat(64)).is_err());
    }

    #[test]
    fn gang_names_leave_room_for_ranks_and_begin_with_a_letter() {
        let long = "f".repeat(80);
        let name = gang_name(&long, "1", "train", 12, 1000);
        assert!(name.len() + "-999".len() <= MAX_LABEL, "{name}");
        assert!(is_dns_label(&format!("{name}-999")));
        let digits = gang_name("2024", "1", "9train", 0, 3);
        assert!(digits.starts_with("ks-"), "{digits}");
        assert_ne!(
            gang_name("f", "1", "s", 0, 3),
            gang_name("f", "1", "s", 1, 3)
        );
        assert_ne!(
            gang_name("f", "1", "s", 0, 3),
            job_name("f", "1", "s", "gang", 0)
        );
    }

    #[test]
    fn job_names_are_readable_and_distinct() {
        let a = job_name("squares", "1700000000", "square", "3", 0);
        assert!(a.starts_with("squares-square-"), "{a}");
        assert_ne!(a, job_name("squares", "1700000000", "square", "3", 1));
        assert_ne!(a, job_name("squares", "1700000001", "square", "3", 0));
    }

    proptest! {
        #[test]
        fn generated_names_are_valid(flow in ".{0,80}", run in ".{0,80}", step in ".{0,80}", task in ".{0,40}", attempt in 0u32..1_000_000) {
            let name = job_name(&flow, &run, &step, &task, attempt);
            prop_assert!(dns_label(&name).is_ok(), "{name:?}");
            prop_assert!(dns_label(&to_dns_label(&step)).is_ok());
            for s in [&flow, &run, &step, &task] {
                let v = to_label_value(s);
                prop_assert!(label_value(&v).is_ok(), "{v:?}");
            }
        }

        #[test]
        fn sanitising_keeps_distinct_inputs_distinct(a in "[a-zA-Z_./ -]{1,70}", b in "[a-zA-Z_./ -]{1,70}") {
            prop_assume!(a != b);
            prop_assert_ne!(to_label_value(&a), to_label_value(&b));
            prop_assert_ne!(to_dns_label(&a), to_dns_label(&b));
        }
    }
}
