use kubestep::prelude::*;

#[kubernetes(cpu = 2, memory = 1024, cpu = 4)]
fn train() -> u64 {
    1
}

fn main() {}
