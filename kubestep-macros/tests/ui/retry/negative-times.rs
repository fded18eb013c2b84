use kubestep::prelude::*;

#[step]
#[retry(times = -1)]
fn train() -> u64 {
    1
}

fn main() {}
