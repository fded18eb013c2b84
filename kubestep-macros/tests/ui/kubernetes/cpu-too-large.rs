use kubestep::prelude::*;

#[kubernetes(cpu = 1e300)]
fn train() -> u64 {
    1
}

fn main() {}
