use kubestep::prelude::*;

#[kubernetes(gpu = -1)]
fn train() -> u64 {
    1
}

fn main() {}
