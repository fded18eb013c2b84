use kubestep::prelude::*;

#[kubernetes(node_selector = "kubernetes.io/os=linux,disk")]
fn train() -> u64 {
    1
}

fn main() {}
