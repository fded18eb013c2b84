use kubestep::prelude::*;

#[step(cpu = 2)]
fn train() -> u64 {
    1
}

fn main() {}
