//! Running the example binaries the way a user would, with a clean kubestep environment, and
//! finding the pods they start on the test cluster.
// Each test binary uses part of this module.
#![allow(dead_code)]

use kubestep::core::labels::{RUN_ID, STEP};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing; `cargo test` builds the examples first",
        path.display()
    );
    path
}

/// Runs an example with `args`, with no `KUBESTEP_*` variable but those in `env`, so results do
/// not depend on the machine's environment.
pub fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_program(&example(name), args, env)
}

/// Runs the program at `path` as [`run`] runs an example.
pub fn run_program(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(path);
    cmd.args(args);
    for (k, _) in std::env::vars()
        .filter(|(k, _)| k.starts_with("KUBESTEP_") && k != "KUBESTEP_SCHEMA_VALIDATOR")
    {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run example")
}

/// The name of the running pod of `step` in the run whose id `id_file` will hold.
pub async fn running_pod(id_file: &std::path::Path, step: &str) -> String {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(kubestep_testenv::shared().client().await, "default");
    for _ in 0..300 {
        if let Ok(run_id) = std::fs::read_to_string(id_file) {
            let lp = kube::api::ListParams::default()
                .labels(&format!("{RUN_ID}={run_id},{STEP}={step}"));
            for p in pods.list(&lp).await.unwrap().items {
                let running = p
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                    });
                if running {
                    return p.metadata.name.unwrap();
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no running pod of step {step}");
}

/// The code block that follows `<!-- getting-started: NAME -->` in the README.
pub fn readme_block(name: &str) -> String {
    let readme = include_str!("../../README.md");
    let marker = format!("<!-- getting-started: {name} -->");
    let at = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("the README has no `{marker}`"));
    let fence = at
        + readme[at..]
            .find("```")
            .expect("a code block after the marker");
    let body = fence + readme[fence..].find('\n').unwrap() + 1;
    let end = body + readme[body..].find("```").expect("the block's end");
    readme[body..end].to_string()
}

/// Builds the README's "Your own flow" crate, from exactly its `Cargo.toml` and `src/main.rs`
/// (`cargo_toml` as the README's, or changed by a test), in a temporary directory outside this
/// repository (whose `.cargo/config.toml` would otherwise apply): kubestep from this checkout
/// (`[patch.crates-io]`, while it is unpublished), this workspace's lock file, target directory
/// and profile, so dependencies built for the tests are reused. Returns cargo's output and the
/// executable.
pub fn build_crate(dir: &str, cargo_toml: &str) -> (Output, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = std::env::temp_dir().join("kubestep-fresh-crates").join(dir);
    std::fs::create_dir_all(krate.join("src")).unwrap();
    let manifest = format!(
        "{cargo_toml}\n[patch.crates-io]\nkubestep = {{ path = {:?} }}\n\n[workspace]\n",
        repo.display().to_string()
    );
    std::fs::write(krate.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(krate.join("src/main.rs"), readme_block("src/main.rs")).unwrap();
    std::fs::copy(repo.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("K8S_OPENAPI_ENABLED_VERSION");
    if cargo_toml.contains("features = [\"v1_33\"]") {
        // The version the feature names, as the workspace's .cargo/config.toml sets it for its
        // own builds: k8s-openapi's build script reruns when this variable changes, so without
        // it each build here and in the workspace would rebuild k8s-openapi and all above it.
        cmd.env("K8S_OPENAPI_ENABLED_VERSION", "1.33");
    }
    // The workspace's dev profile (Cargo.toml's [profile.dev]), so its builds are reused.
    for setting in [
        "profile.dev.debug=\"line-tables-only\"",
        "profile.dev.package.sha2.opt-level=3",
        "profile.dev.package.digest.opt-level=3",
        "profile.dev.package.block-buffer.opt-level=3",
        "profile.dev.package.memchr.opt-level=3",
    ] {
        cmd.args(["--config", setting]);
    }
    let out = cmd.output().expect("run cargo");
    (out, target.join("debug/hello-kubestep"))
}

/// The README's own crate, built: its executable.
pub fn getting_started() -> PathBuf {
    let (out, exe) = build_crate("getting-started", &readme_block("Cargo.toml"));
    assert!(
        out.status.success(),
        "the README's crate does not build:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// The `f64` column `name` of an Arrow table a flow handed back.
pub fn f64_column<'a>(
    table: &'a arrow_array::RecordBatch,
    name: &str,
) -> &'a arrow_array::Float64Array {
    table
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap_or_else(|| panic!("column {name} is not f64"))
}

/// What a member of the `allreduce` example's gang returns (the example's `Reduced`).
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[allow(dead_code, reason = "each test binary reads the fields it checks")]
pub struct Reduced {
    pub rank: u32,
    pub world_size: u32,
    pub master_addr: String,
    pub master_port: u16,
    pub host: String,
    pub sum: u64,
}

/// The sum the `allreduce` example's three members agree on: member r adds (r+1)*100 + r.
#[allow(dead_code, reason = "not every test binary runs the example")]
pub const ALLREDUCE_SUM: u64 = 100 + 201 + 302;
