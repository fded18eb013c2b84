//! Runtime overrides: settings given on the command line beat the decorator, for every step or
//! for one.
//!
//! `cargo run --example runtime_override -- render --with kubernetes:cpu=4,memory=16000 --with train/kubernetes:gpu=2,node_selector=pool=gpu,zone=a`
//! `cargo run --example runtime_override -- render --explain --with train/kubernetes:gpu=2`
use kubestep::prelude::*;

#[step]
fn start() -> Vec<u64> {
    vec![1, 2, 3]
}

#[kubernetes(cpu = 1, memory = 2048)]
fn train(v: Vec<u64>) -> u64 {
    v.iter().sum()
}

// No decorator: `--with kubernetes` sends this step to Kubernetes too.
#[step]
fn report(total: u64) -> String {
    format!("total {total}")
}

fn main() {
    Flow::new("override")
        .start(start)
        .then(train)
        .then(report)
        .main()
}
