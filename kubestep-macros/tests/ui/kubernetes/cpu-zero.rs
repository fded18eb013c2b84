use kubestep::prelude::*;

#[kubernetes(cpu = 0)]
fn train() -> u64 {
    1
}

fn main() {}
