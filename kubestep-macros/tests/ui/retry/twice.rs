use kubestep::prelude::*;

#[step]
#[retry(times = 2)]
#[retry(times = 3)]
fn train() -> u64 {
    1
}

fn main() {}
