use kubestep::prelude::*;

#[kubernetes(qos = "Premium")]
fn train() -> u64 {
    1
}

fn main() {}
