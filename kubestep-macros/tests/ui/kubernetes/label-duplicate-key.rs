use kubestep::prelude::*;

#[kubernetes(labels = { team: "ml", "team": "data" })]
fn train() -> u64 {
    1
}

fn main() {}
