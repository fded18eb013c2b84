use kubestep::prelude::*;

#[kubernetes(port = 70000)]
fn train() -> u64 {
    1
}

fn main() {}
