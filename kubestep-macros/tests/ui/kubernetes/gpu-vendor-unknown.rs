use kubestep::prelude::*;

#[kubernetes(gpu = 1, gpu_vendor = "intel")]
fn train() -> u64 {
    1
}

fn main() {}
