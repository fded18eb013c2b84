use kubestep::prelude::*;

#[kubernetes(cpu = true)]
fn train() -> u64 {
    1
}

fn main() {}
