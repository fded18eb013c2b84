use kubestep::prelude::*;

#[kubernetes(cpu = -1.5)]
fn train() -> u64 {
    1
}

fn main() {}
