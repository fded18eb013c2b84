use kubestep::prelude::*;

#[kubernetes(security_context = { run_as_user: 1000, read_only_root: true })]
fn train() -> u64 {
    1
}

fn main() {}
