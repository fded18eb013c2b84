//! Every `#[kubernetes]` parameter at once, as in the design's decorator syntax, with
//! `#[resources]`, `#[retry]` and `#[timeout]` beside it.
//!
//! `cargo run --example all_parameters -- render --explain`
use kubestep::prelude::*;

#[step]
fn start() -> Vec<f32> {
    vec![1.0, 2.0]
}

#[kubernetes(
    cpu = 0.5, memory = 16384, disk = 20480, gpu = 1, gpu_vendor = "nvidia",
    image = "ghcr.io/acme/train:1.4", image_pull_policy = "IfNotPresent",
    image_pull_secrets = ["regcred"], namespace = "ml", service_account = "trainer",
    secrets = ["aws-creds"], node_selector = "kubernetes.io/os=linux,kubernetes.io/arch=amd64",
    tolerations = [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
    labels = { "team": "ml" }, annotations = { "owner": "ana@example.com" },
    persistent_volume_claims = { "datasets": "/data" }, shared_memory = 1024,
    use_tmpfs = true, tmpfs_size = 2048, tmpfs_path = "/scratch", tmpfs_tempdir = true,
    port = 29500, compute_pool = "a100", qos = "Guaranteed",
    security_context = { run_as_non_root: true, run_as_user: 1000, allow_privilege_escalation: false },
    hostname_resolution_timeout = 300,
)]
#[resources(cpu = 4, memory = 8192)]
#[retry(times = 2, minutes_between_retries = 1)]
#[timeout(hours = 2)]
fn train(batch: Vec<f32>) -> f32 {
    batch.iter().sum()
}

fn main() {
    Flow::new("all-parameters").start(start).then(train).main()
}
