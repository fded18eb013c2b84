use kubestep::prelude::*;

#[kubernetes(tolerations = [{ key: "gpu", operator: "Exists", tolerationSeconds: 30 }])]
fn train() -> u64 {
    1
}

fn main() {}
