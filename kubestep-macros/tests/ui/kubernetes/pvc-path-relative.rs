use kubestep::prelude::*;

#[kubernetes(persistent_volume_claims = { "datasets": "data" })]
fn train() -> u64 {
    1
}

fn main() {}
