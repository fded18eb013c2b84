use kubestep::prelude::*;

#[resources(memory = 8192)]
fn train() -> u64 {
    1
}

fn main() {}
