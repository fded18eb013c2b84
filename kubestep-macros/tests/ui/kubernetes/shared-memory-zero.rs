use kubestep::prelude::*;

#[kubernetes(shared_memory = 0)]
fn train() -> u64 {
    1
}

fn main() {}
