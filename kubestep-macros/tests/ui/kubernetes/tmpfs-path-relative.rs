use kubestep::prelude::*;

#[kubernetes(use_tmpfs = true, tmpfs_path = "scratch")]
fn train() -> u64 {
    1
}

fn main() {}
