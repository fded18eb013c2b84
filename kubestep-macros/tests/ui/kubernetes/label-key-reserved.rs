use kubestep::prelude::*;

#[kubernetes(labels = { "kubestep.io/step": "x" })]
fn train() -> u64 {
    1
}

fn main() {}
