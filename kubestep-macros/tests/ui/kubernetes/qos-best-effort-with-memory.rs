use kubestep::prelude::*;

#[kubernetes(memory = 1024, qos = "BestEffort")]
fn train() -> u64 {
    1
}

fn main() {}
