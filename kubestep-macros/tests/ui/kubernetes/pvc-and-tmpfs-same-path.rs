use kubestep::prelude::*;

#[kubernetes(use_tmpfs = true, tmpfs_path = "/data", persistent_volume_claims = { "datasets": "/data" })]
fn train() -> u64 {
    1
}

fn main() {}
