//! Persistent volumes and scratch space: two claims mounted, and a tmpfs that TMPDIR points at.
//!
//! `cargo run --example persistent_volumes -- render`
use kubestep::prelude::*;

#[step]
fn start() -> String {
    "/data/train.csv".into()
}

#[kubernetes(
    persistent_volume_claims = { "datasets": "/data", "checkpoints": "/checkpoints" },
    use_tmpfs = true,
    tmpfs_size = 2048,
    tmpfs_path = "/scratch",
    memory = 8192,
    disk = 51200,
)]
fn preprocess(path: String) -> usize {
    path.len()
}

fn main() {
    Flow::new("volumes").start(start).then(preprocess).main()
}
