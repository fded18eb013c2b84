//! Every value syntax, any decorator order, async steps, and plain calls.
use kubestep::prelude::*;

#[step]
fn start() -> Result<Vec<u64>, std::io::Error> {
    Ok((1..=4).collect())
}

#[retry(times = 2, minutes_between_retries = 0.5)]
#[kubernetes(
    cpu = 0.5, memory = "16Gi", disk = 20480, gpu = 1, gpu_vendor = "NVIDIA",
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
#[resources(memory = 8192, cpu = "250m")]
#[timeout(hours = 1, minutes = 30)]
fn square(n: u64) -> Result<u64, std::io::Error> {
    Ok(n * n)
}

/// Adds the squares.
#[step]
async fn end(squares: Vec<u64>) -> u64 {
    squares.iter().sum()
}

#[kubernetes(node_selector = { "disk": "ssd" }, secrets = "one-secret")]
fn alternative(n: u64) -> anyhow_like::Result<u64> {
    Ok(n)
}

mod anyhow_like {
    pub type Result<T> = std::result::Result<T, String>;
}

fn main() {
    assert_eq!(square(3).unwrap(), 9);
    assert_eq!(alternative(2), Ok(2));
    let _: fn(u64) -> Result<u64, std::io::Error> = *square;
    let _ = end(vec![1, 2]);
    let _flow = Flow::new("squares").start(start).foreach(square).join(end).build();
}
