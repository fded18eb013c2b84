use kubestep::prelude::*;

#[kubernetes(tolerations = [{ key: "gpu", operator: "In" }])]
fn train() -> u64 {
    1
}

fn main() {}
