use kubestep::prelude::*;

#[kubernetes(cpu = )]
#[resources(memory = 8192)]
fn train() -> u64 {
    1
}

fn main() {}
