use kubestep::prelude::*;

#[kubernetes(compute_pool = "a100", node_selector = { "kubestep.io/compute-pool": "cpu" })]
fn train() -> u64 {
    1
}

fn main() {}
