use kubestep::prelude::*;

#[kubernetes(namespace = "ML_Team")]
fn train() -> u64 {
    1
}

fn main() {}
