use kubestep::prelude::*;

#[kubernetes(disk = 0)]
fn train() -> u64 {
    1
}

fn main() {}
