use kubestep::prelude::*;

#[kubernetes(memory = -4096)]
fn train() -> u64 {
    1
}

fn main() {}
