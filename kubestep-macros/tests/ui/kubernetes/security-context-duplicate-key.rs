use kubestep::prelude::*;

#[kubernetes(security_context = { run_as_user: 1000, run_as_user: 0 })]
fn train() -> u64 {
    1
}

fn main() {}
