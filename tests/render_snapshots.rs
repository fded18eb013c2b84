//! Every example's `render` output against its checked-in YAML, and every rendered manifest
//! against the OpenAPI schema of current Kubernetes releases in strict mode (unknown fields
//! rejected) with `kubernetes-validate`, which `scripts/test` installs.
//!
//! After a deliberate change, regenerate the snapshots with
//! `KUBESTEP_BLESS=1 cargo test --test render_snapshots` and review the diff.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// (snapshot name, example, arguments after the example's name)
const CASES: &[(&str, &str, &[&str])] = &[
    ("basic", "basic", &["render"]),
    (
        "basic_with_kubernetes",
        "basic",
        &["render", "--with", "kubernetes"],
    ),
    (
        "basic_binary_in_image",
        "basic",
        &["render", "--binary-in-image", "/usr/local/bin/squares"],
    ),
    ("gpu", "gpu", &["render"]),
    ("node_selector", "node_selector", &["render"]),
    ("tolerations", "tolerations", &["render"]),
    ("custom_image", "custom_image", &["render"]),
    ("persistent_volumes", "persistent_volumes", &["render"]),
    ("labels_annotations", "labels_annotations", &["render"]),
    ("security_context", "security_context", &["render"]),
    (
        "runtime_override",
        "runtime_override",
        &[
            "render",
            "--with",
            "kubernetes:cpu=4,memory=16000",
            "--with",
            "train/kubernetes:gpu=2,node_selector=pool=gpu,zone=a",
        ],
    ),
    ("all_parameters", "all_parameters", &["render"]),
    ("flow_shapes", "flow_shapes", &["render"]),
];

/// Versions to validate against: the one the examples build with, and the newest.
const SCHEMA_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

fn render(name: &str, args: &[&str]) -> String {
    let out = common::run(name, args, &[]);
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The binary's hash changes with every build; the snapshot keeps its place, not its value.
fn normalise(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    let mut lines = yaml.lines();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        if line.trim() == "- name: KUBESTEP_BINARY_SHA256"
            && let Some(value) = lines.next()
        {
            let indent = &value[..value.len() - value.trim_start().len()];
            assert!(
                value.trim_start().starts_with("value: "),
                "unexpected line after the hash name: {value}"
            );
            out.push_str(&format!("{indent}value: <sha256 of the example binary>\n"));
        }
    }
    out
}

fn validator() -> PathBuf {
    let path = std::env::var_os("KUBESTEP_SCHEMA_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| "kubernetes-validate".into());
    let found = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "kubernetes-validate was not found at {} (set KUBESTEP_SCHEMA_VALIDATOR); run the tests with scripts/test, which installs it",
        path.display()
    );
    path
}

#[test]
fn rendered_jobs_match_snapshots_and_the_kubernetes_schema() {
    let validator = validator();
    let bless = std::env::var_os("KUBESTEP_BLESS").is_some();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/render");
    let scratch = std::env::temp_dir().join(format!("kubestep-render-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let mut failures = Vec::new();
    let mut files = Vec::new();
    for (case, example, args) in CASES {
        let rendered = render(example, args);
        assert_eq!(
            rendered,
            render(example, args),
            "{case}: the same input must print the same bytes"
        );
        let yaml = normalise(&rendered);
        let path = dir.join(format!("{case}.yaml"));
        if bless {
            std::fs::write(&path, &yaml).expect("write snapshot");
        } else {
            let expected = std::fs::read_to_string(&path).unwrap_or_default();
            if expected != yaml {
                failures.push(format!(
                    "{case}: render output differs from {} (KUBESTEP_BLESS=1 to accept)\n{yaml}",
                    path.display()
                ));
            }
        }
        let file = scratch.join(format!("{case}.yaml"));
        std::fs::write(&file, &rendered).expect("write temp manifest");
        files.push(file);
    }
    // One validator run per version: it loads the schemas once for every file.
    for version in SCHEMA_VERSIONS {
        let out = Command::new(&validator)
            .args(["--strict", "--quiet", "-k", version])
            .args(&files)
            .output()
            .expect("run kubernetes-validate");
        if !out.status.success() {
            failures.push(format!(
                "invalid against Kubernetes {version} (strict):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_validator_rejects_unknown_fields() {
    // Guards the guard: strict mode must fail on a field Kubernetes does not have.
    let file = std::env::temp_dir().join(format!("kubestep-bad-{}.yaml", std::process::id()));
    std::fs::write(&file, "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec: {bogus: 1, template: {spec: {containers: [{name: a, image: b}]}}}\n").unwrap();
    let out = Command::new(validator())
        .args(["--strict", "--quiet", "-k", SCHEMA_VERSIONS[0]])
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted an unknown field"
    );
}

/// A schedule's CronJob (`render --deploy`), with its orchestrator's Job template, is valid
/// against the same schemas, strictly. Not a snapshot: it carries this machine's datastore
/// settings.
#[test]
fn the_schedule_passes_the_kubernetes_schema() {
    let validator = validator();
    let rendered = render(
        "reliability",
        &[
            "render",
            "--deploy",
            "--schedule",
            "0 3 * * *",
            "--timezone",
            "Europe/Paris",
            "--datastore",
            "s3",
            "--datastore-root",
            "s3://kubestep/flows",
        ],
    );
    let file = std::env::temp_dir().join(format!("kubestep-schedule-{}.yaml", std::process::id()));
    std::fs::write(&file, &rendered).expect("write temp manifest");
    for version in SCHEMA_VERSIONS {
        let out = Command::new(&validator)
            .args(["--strict", "--quiet", "-k", version])
            .arg(&file)
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "invalid against Kubernetes {version} (strict):\n{}{}\n{rendered}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_file(&file);
}
