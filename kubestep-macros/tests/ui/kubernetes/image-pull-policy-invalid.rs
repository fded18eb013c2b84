use kubestep::prelude::*;

#[kubernetes(image_pull_policy = "Sometimes")]
fn train() -> u64 {
    1
}

fn main() {}
