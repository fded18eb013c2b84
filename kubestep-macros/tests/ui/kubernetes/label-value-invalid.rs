use kubestep::prelude::*;

#[kubernetes(labels = { "team": "machine learning" })]
fn train() -> u64 {
    1
}

fn main() {}
