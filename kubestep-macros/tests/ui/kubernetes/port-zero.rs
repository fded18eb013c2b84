use kubestep::prelude::*;

#[kubernetes(port = 0)]
fn train() -> u64 {
    1
}

fn main() {}
