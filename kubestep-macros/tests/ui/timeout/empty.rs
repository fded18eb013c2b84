use kubestep::prelude::*;

#[timeout]
#[step]
fn train() -> u64 {
    1
}

fn main() {}
