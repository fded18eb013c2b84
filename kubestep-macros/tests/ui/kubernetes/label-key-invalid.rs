use kubestep::prelude::*;

#[kubernetes(labels = { "team!": "ml" })]
fn train() -> u64 {
    1
}

fn main() {}
