use kubestep::prelude::*;

#[kubernetes(tmpfs_size = 0)]
fn train() -> u64 {
    1
}

fn main() {}
