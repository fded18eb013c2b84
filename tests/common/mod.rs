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
    let mut cmd = Command::new(example(name));
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
