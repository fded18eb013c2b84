use kubestep::prelude::*;

#[kubernetes(qos = "BestEffort")]
#[resources(memory = 8192)]
fn train() -> u64 {
    1
}

fn main() {}
