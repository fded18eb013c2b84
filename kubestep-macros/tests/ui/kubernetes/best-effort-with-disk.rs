use kubestep::prelude::*;

#[kubernetes(qos = "BestEffort", disk = 2048)]
fn train() -> u64 {
    1
}

fn main() {}
