use kubestep::prelude::*;

#[kubernetes(annotations = { "owner@": "ana" })]
fn train() -> u64 {
    1
}

fn main() {}
