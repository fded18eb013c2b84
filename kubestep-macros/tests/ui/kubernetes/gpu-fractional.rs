use kubestep::prelude::*;

#[kubernetes(gpu = 0.5)]
fn train() -> u64 {
    1
}

fn main() {}
