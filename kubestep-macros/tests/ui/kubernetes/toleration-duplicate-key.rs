use kubestep::prelude::*;

#[kubernetes(tolerations = [{ key: "a", key: "b", operator: "Exists" }])]
fn train() -> u64 {
    1
}

fn main() {}
