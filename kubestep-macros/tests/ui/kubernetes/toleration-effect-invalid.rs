use kubestep::prelude::*;

#[kubernetes(tolerations = [{ key: "gpu", operator: "Exists", effect: "NoRun" }])]
fn train() -> u64 {
    1
}

fn main() {}
