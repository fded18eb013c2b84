use kubestep::prelude::*;

#[kubernetes(qos = "BestEffort", cpu = 2)]
fn train() -> u64 {
    1
}

fn main() {}
