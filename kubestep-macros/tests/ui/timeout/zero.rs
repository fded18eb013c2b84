use kubestep::prelude::*;

#[step]
#[timeout(seconds = 0)]
fn train() -> u64 {
    1
}

fn main() {}
