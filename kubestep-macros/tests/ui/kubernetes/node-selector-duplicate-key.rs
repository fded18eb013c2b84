use kubestep::prelude::*;

#[kubernetes(node_selector = "disk=ssd,disk=hdd")]
fn train() -> u64 {
    1
}

fn main() {}
