use kubestep::prelude::*;

#[kubernetes(cpu = 1)]
#[kubernetes(memory = 1024)]
fn train() -> u64 {
    1
}

fn main() {}
