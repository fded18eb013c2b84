use kubestep::prelude::*;

#[kubernetes(cpus = 2)]
fn train() -> u64 {
    1
}

fn main() {}
