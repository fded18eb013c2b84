use kubestep::prelude::*;

#[kubernetes(annotations = { owner: "a", "owner": "b" })]
fn train() -> u64 {
    1
}

fn main() {}
