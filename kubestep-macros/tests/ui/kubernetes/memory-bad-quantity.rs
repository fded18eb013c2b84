use kubestep::prelude::*;

#[kubernetes(memory = "16GB")]
fn train() -> u64 {
    1
}

fn main() {}
