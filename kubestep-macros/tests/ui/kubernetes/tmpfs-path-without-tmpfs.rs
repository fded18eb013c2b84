use kubestep::prelude::*;

#[kubernetes(tmpfs_path = "/scratch")]
fn train() -> u64 {
    1
}

fn main() {}
