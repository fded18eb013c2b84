use kubestep::prelude::*;

#[step]
#[resources(cpu = 0)]
fn train() -> u64 {
    1
}

fn main() {}
