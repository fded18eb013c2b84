use kubestep::prelude::*;

#[kubernetes(persistent_volume_claims = { "shm": "/dev/shm" })]
fn train() -> u64 {
    1
}

fn main() {}
